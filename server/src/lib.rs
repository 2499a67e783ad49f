//! The SkyPilot-compatible API server. `ARCHITECTURE.md` at the repository
//! root maps the layers; from the top:
//!
//! - `serve`: the server process (data-dir lock, port, health, shutdown);
//! - `grpc`: thin tonic handlers (caller, submit or read, convert);
//! - `kinds`: the requests the server runs (`sky.launch` ...): validation,
//!   permission and what each does; also autostop;
//! - `ops`: the operation engine (queues, cancellation, logs, recovery);
//! - `clusters`: clusters and their job queues, above the `Infra` contract;
//! - `infra`: where clusters run (`local`, SSH node pools);
//! - `uploads`: clients' workdirs and file mounts, held per user;
//! - `auth`: callers, users and tokens;
//! - `store`: the embedded sled store;
//! - `data_dir`, `logfile`, `clock`, `error`: the ground floor.
//!
//! Only what the `sky` binary, the benchmarks and the tests use is exported.

mod auth;
mod clock;
mod clusters;
mod config;
mod data_dir;
mod error;
mod grpc;
mod health;
mod infra;
mod kinds;
mod logfile;
mod managed;
mod metrics;
mod ops;
mod retention;
mod serve;
mod store;
mod uploads;

pub use auth::Caller;
pub use clusters::{Clusters, Page};
pub use config::{LocalInfraMode, ServerConfig, TlsFiles};
pub use data_dir::DataDirError;
pub use error::{Error, ErrorReason, Result};
pub use grpc::{DASHBOARD_PATH, dashboard_size};
pub use infra::run_as::FIRST_CLUSTER_UID;
pub use ops::{Admitted, BoxFuture, Engine, EngineConfig, OpContext, OpOutput, OperationKind, Submission};
pub use retention::Retention;
pub use serve::{RunningServer, Server, StartError};
pub use store::{ClusterRecord, JobRecord, OpRecord, Store, Table};
pub use uploads::{UploadLimits, Uploads};
