//! `sky`: the SkyPilot command line, a gRPC client of the API server. The same
//! binary runs the server (`sky api start --foreground`).

mod cluster_match;
mod commands;
mod connect;
mod error;
mod follow;
mod job_output;
mod output;
mod prompt;
mod task_args;
mod upload;

use std::process::ExitCode;

use clap::{Parser, Subcommand};
use skypilot_api::client::ClusterAction;

use commands::{
    api::ApiCommand,
    autostop::AutostopArgs,
    cancel::CancelArgs,
    check::CheckArgs,
    dashboard::DashboardArgs,
    exec::ExecArgs,
    jobs::JobsCommand,
    launch::LaunchArgs,
    lifecycle::{ClusterSelection, DownArgs},
    logs::LogsArgs,
    queue::QueueArgs,
    ssh::SshCommand,
    status::StatusArgs,
    tokens::TokensCommand,
    users::UsersCommand,
};
use error::CliResult;

#[derive(Debug, Parser)]
#[command(name = "sky", version, about = "SkyPilot: run AI workloads on any infra, through an API server.")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Launch a cluster (or reuse one) and run a task on it.
    Launch(LaunchArgs),
    /// Run a task as a job on an existing cluster (no setup).
    Exec(ExecArgs),
    /// Show clusters.
    Status(StatusArgs),
    /// Show the job queue of clusters.
    Queue(QueueArgs),
    /// Stream a job's output (the latest job by default).
    Logs(LogsArgs),
    /// Cancel jobs on a cluster.
    Cancel(CancelArgs),
    /// Stop clusters (their jobs are cancelled; files are kept).
    Stop(ClusterSelection),
    /// Start stopped clusters.
    Start(ClusterSelection),
    /// Tear clusters down.
    Down(DownArgs),
    /// Stop (or tear down) clusters after they have been idle for a while.
    Autostop(AutostopArgs),
    /// Managed jobs: each on a cluster of its own, recovered when its nodes are lost.
    #[command(subcommand)]
    Jobs(JobsCommand),
    /// Manage the SkyPilot API server and its requests.
    #[command(subcommand)]
    Api(ApiCommand),
    /// Manage the users of a team deployment.
    #[command(subcommand)]
    Users(UsersCommand),
    /// Manage service-account tokens.
    #[command(subcommand)]
    Tokens(TokensCommand),
    /// Check which infras are usable.
    Check(CheckArgs),
    /// Open the API server's dashboard in a browser (prints its address when none can be opened).
    Dashboard(DashboardArgs),
    /// Bring SSH node pools up or down.
    #[command(subcommand)]
    Ssh(SshCommand),
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Api(ApiCommand::Start(args)) if args.foreground => args.run_foreground(),
        command => run_client(command),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            if !err.message.is_empty() {
                eprintln!("{err}");
            }
            ExitCode::from(err.exit_code)
        }
    }
}

fn run_client(command: Command) -> CliResult {
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
    runtime.block_on(async move {
        match command {
            Command::Launch(args) => args.run().await,
            Command::Exec(args) => args.run().await,
            Command::Status(args) => args.run().await,
            Command::Queue(args) => args.run().await,
            Command::Logs(args) => args.run().await,
            Command::Cancel(args) => args.run().await,
            Command::Stop(selection) => selection.run(ClusterAction::Stop).await,
            Command::Start(selection) => selection.run(ClusterAction::Start).await,
            Command::Down(args) => args.run().await,
            Command::Autostop(args) => args.run().await,
            Command::Jobs(command) => command.run().await,
            Command::Api(command) => command.run().await,
            Command::Users(command) => command.run().await,
            Command::Tokens(command) => command.run().await,
            Command::Check(args) => args.run().await,
            Command::Dashboard(args) => args.run().await,
            Command::Ssh(command) => command.run().await,
        }
    })
}
