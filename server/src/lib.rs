//! The SkyPilot-compatible API server.
//!
//! - `grpc`: thin tonic handlers over the engine;
//! - `ops`: the operation engine (queues, cancellation, logs, recovery);
//! - `store`: the embedded sled store;
//! - `kinds`: the operations the server runs (`sky.check` ...);
//! - `infra`: where clusters run;
//! - `serve`: the server process (data-dir lock, port, health, shutdown).

pub mod auth;
pub mod clusters;
pub mod config;
pub mod data_dir;
pub mod error;
pub mod grpc;
pub mod health;
pub mod infra;
pub mod kinds;
pub mod ops;
pub mod retention;
pub mod serve;
pub mod store;

pub use config::{ServerConfig, TlsFiles};
pub use serve::{RunningServer, Server, StartError};
