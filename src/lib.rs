//! The API library: the generated protocol, endpoint and config resolution,
//! caller identity, and a small typed client shared by the `sky` CLI, the
//! server (for the identity of a local server's owner) and the tests.

pub mod base64;
pub mod client;
pub mod config;
pub mod endpoint;
pub mod identity;
pub mod names;
pub mod peer;
pub mod proto;
pub mod task;
pub mod upload;
pub mod version;

pub use client::{Client, ClientError};
pub use endpoint::{Endpoint, EndpointSource};
