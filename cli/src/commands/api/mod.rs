//! `sky api ...`: the API server (starting, stopping, connecting to it) and
//! the requests it runs.

mod cancel;
mod info;
mod login;
mod logout;
mod logs;
mod start;
mod status;
mod stop;

use clap::Subcommand;

use crate::error::CliResult;

#[derive(Debug, Subcommand)]
pub enum ApiCommand {
    /// Start the API server (in the background unless --foreground).
    Start(Box<start::StartArgs>),
    /// Stop the local API server.
    Stop,
    /// List requests: active ones of the current user by default.
    Status(status::StatusArgs),
    /// Stream the log of a request (the latest one by default).
    Logs(logs::LogsArgs),
    /// Cancel requests.
    Cancel(cancel::CancelArgs),
    /// Show the API server in use, its health, version and your user.
    Info(info::InfoArgs),
    /// Connect to an API server and save its endpoint in ~/.sky/skyconfig.yaml.
    Login(login::LoginArgs),
    /// Forget the saved API server endpoint.
    Logout,
}

impl ApiCommand {
    /// Runs the subcommand as a client (`sky api start --foreground` runs
    /// outside the client's runtime: see `StartArgs::run_foreground`).
    pub async fn run(self) -> CliResult {
        match self {
            ApiCommand::Start(args) => args.run().await,
            ApiCommand::Stop => stop::run().await,
            ApiCommand::Status(args) => args.run().await,
            ApiCommand::Logs(args) => args.run().await,
            ApiCommand::Cancel(args) => args.run().await,
            ApiCommand::Info(args) => args.run().await,
            ApiCommand::Login(args) => args.run().await,
            ApiCommand::Logout => logout::run(),
        }
    }
}
