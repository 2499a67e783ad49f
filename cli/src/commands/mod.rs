//! One module per `sky` command or command group: each holds the command's
//! clap arguments and the `run` that carries it out.

pub mod api;
pub mod autostop;
pub mod cancel;
pub mod check;
pub mod dashboard;
pub mod exec;
pub mod jobs;
pub mod launch;
pub mod lifecycle;
pub mod logs;
pub mod queue;
pub mod ssh;
pub mod status;
pub mod tokens;
pub mod users;
