//! `sky`: the SkyPilot command line, a gRPC client of the API server. The same
//! binary runs the server (`sky api start --foreground`).

mod api;
mod check;
mod clusters_cmd;
mod connect;
mod error;
mod follow;
mod output;
mod server_cmd;
mod task_args;
mod users_cmd;

use std::process::ExitCode;

use clap::{Parser, Subcommand};

use api::Format;
use clusters_cmd::{ExecArgs, LaunchArgs};
use error::CliResult;
use server_cmd::StartArgs;

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
    Status {
        /// Cluster names or glob patterns.
        clusters: Vec<String>,
        /// Show every user's clusters.
        #[arg(short = 'u', long = "all-users")]
        all_users: bool,
        /// Show more details.
        #[arg(short, long)]
        verbose: bool,
        /// Query the infra for the latest status (always current on the local infra).
        #[arg(short, long)]
        refresh: bool,
    },
    /// Show the job queue of clusters.
    Queue {
        /// Clusters (default: all of yours).
        clusters: Vec<String>,
        /// Show only pending and running jobs.
        #[arg(short = 's', long = "skip-finished")]
        skip_finished: bool,
        /// Show every user's jobs.
        #[arg(short = 'u', long = "all-users")]
        all_users: bool,
    },
    /// Stream a job's output (the latest job by default).
    Logs {
        cluster: String,
        job_id: Option<i64>,
        /// Keep streaming until the job ends (default).
        #[arg(long, overrides_with = "no_follow")]
        follow: bool,
        /// Print what is there and return.
        #[arg(long)]
        no_follow: bool,
        /// Start with the last N lines.
        #[arg(long)]
        tail: Option<u32>,
        /// Only print the job's status; the exit code tells it too.
        #[arg(long)]
        status: bool,
    },
    /// Cancel jobs on a cluster.
    Cancel {
        cluster: String,
        job_ids: Vec<i64>,
        /// Cancel all of the cluster's unfinished jobs.
        #[arg(short, long)]
        all: bool,
        /// Do not ask for confirmation.
        #[arg(short, long)]
        yes: bool,
    },
    /// Stop clusters (their jobs are cancelled; files are kept).
    Stop(ClusterSelection),
    /// Start stopped clusters.
    Start(ClusterSelection),
    /// Tear clusters down.
    Down(ClusterSelection),
    /// Stop (or tear down) clusters after they have been idle for a while.
    Autostop {
        clusters: Vec<String>,
        /// Every cluster of yours.
        #[arg(short, long)]
        all: bool,
        /// Idle minutes before autostop.
        #[arg(short = 'i', long = "idle-minutes")]
        idle_minutes: Option<i32>,
        /// Tear down instead of stopping.
        #[arg(long)]
        down: bool,
        /// Turn autostop off.
        #[arg(long)]
        cancel: bool,
        /// Do not ask for confirmation.
        #[arg(short, long)]
        yes: bool,
    },
    /// Manage the SkyPilot API server and its requests.
    #[command(subcommand)]
    Api(ApiCommand),
    /// Manage the users of a team deployment.
    #[command(subcommand)]
    Users(users_cmd::UsersCommand),
    /// Manage service-account tokens.
    #[command(subcommand)]
    Tokens(users_cmd::TokensCommand),
    /// Check which infras are usable.
    Check {
        /// Infras to check (default: all).
        infras: Vec<String>,
        /// Submit and return at once, printing the request id.
        #[arg(long = "async")]
        run_async: bool,
    },
}

/// Which clusters a command acts on.
#[derive(Debug, clap::Args)]
pub struct ClusterSelection {
    /// Cluster names or glob patterns (matching only your clusters unless -u).
    clusters: Vec<String>,
    /// Every cluster of yours.
    #[arg(short, long)]
    all: bool,
    /// Match every user's clusters.
    #[arg(short = 'u', long = "all-users")]
    all_users: bool,
    /// Do not ask for confirmation.
    #[arg(short, long)]
    yes: bool,
}

#[derive(Debug, Subcommand)]
enum ApiCommand {
    /// Start the API server (in the background unless --foreground).
    Start(StartArgs),
    /// Stop the local API server.
    Stop,
    /// List requests: active ones of the current user by default.
    Status {
        /// Request ids (or unique prefixes) to show.
        request_ids: Vec<String>,
        /// Include finished requests.
        #[arg(short = 'a', long = "all-status")]
        all_status: bool,
        /// Show every user's requests.
        #[arg(short = 'u', long = "all-users")]
        all_users: bool,
        /// Show more columns.
        #[arg(short, long)]
        verbose: bool,
        /// Show at most this many requests.
        #[arg(short, long)]
        limit: Option<u32>,
        /// Output format.
        #[arg(short, long, value_enum, default_value = "table")]
        output: Format,
    },
    /// Stream the log of a request (the latest one by default).
    Logs {
        /// Request id or unique prefix.
        request_id: Option<String>,
        /// Keep streaming until the request finishes (default).
        #[arg(long, overrides_with = "no_follow")]
        follow: bool,
        /// Print what is there and return.
        #[arg(long)]
        no_follow: bool,
        /// Start with the last N lines.
        #[arg(long)]
        tail: Option<u32>,
        /// Show the local API server's own log instead.
        #[arg(long)]
        server_logs: bool,
    },
    /// Cancel requests.
    Cancel {
        /// Request ids (or unique prefixes) to cancel.
        request_ids: Vec<String>,
        /// Cancel all of your active requests.
        #[arg(short, long)]
        all: bool,
        /// With --all: every user's active requests.
        #[arg(short = 'u', long = "all-users")]
        all_users: bool,
        /// Do not ask for confirmation.
        #[arg(short, long)]
        yes: bool,
    },
    /// Show the API server in use, its health, version and your user.
    Info {
        /// Output format.
        #[arg(short, long, value_enum, default_value = "table")]
        output: Format,
    },
    /// Connect to an API server and save its endpoint in ~/.sky/skyconfig.yaml.
    Login {
        /// Endpoint, e.g. http://user:password@host:46580.
        #[arg(short, long)]
        endpoint: Option<String>,
        /// A service-account token (sky_...) to log in with.
        #[arg(long)]
        token: Option<String>,
    },
    /// Forget the saved API server endpoint.
    Logout,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Api(ApiCommand::Start(args)) if args.foreground => server_cmd::run_foreground(&args),
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
            Command::Check { infras, run_async } => check::check(infras, run_async).await,
            Command::Launch(args) => clusters_cmd::launch(args).await,
            Command::Users(command) => users_cmd::users(command).await,
            Command::Tokens(command) => users_cmd::tokens(command).await,
            Command::Exec(args) => clusters_cmd::exec(args).await,
            Command::Status { clusters, all_users, verbose, refresh: _ } => {
                clusters_cmd::status(clusters, all_users, verbose).await
            }
            Command::Queue { clusters, skip_finished, all_users } => {
                clusters_cmd::queue(clusters, skip_finished, all_users).await
            }
            Command::Logs { cluster, job_id, follow: _, no_follow, tail, status } => {
                clusters_cmd::logs(cluster, job_id, !no_follow, tail, status).await
            }
            Command::Cancel { cluster, job_ids, all, yes } => {
                clusters_cmd::cancel(cluster, job_ids, all, yes).await
            }
            Command::Stop(s) => clusters_cmd::cluster_action("stop", s).await,
            Command::Start(s) => clusters_cmd::cluster_action("start", s).await,
            Command::Down(s) => clusters_cmd::cluster_action("down", s).await,
            Command::Autostop { clusters, all, idle_minutes, down, cancel, yes: _ } => {
                clusters_cmd::autostop(clusters, all, idle_minutes, down, cancel).await
            }
            Command::Api(api) => match api {
                ApiCommand::Start(args) => server_cmd::start(&args).await,
                ApiCommand::Stop => server_cmd::stop().await,
                ApiCommand::Status { request_ids, all_status, all_users, verbose, limit, output } => {
                    api::status(request_ids, all_status, all_users, verbose, limit, output).await
                }
                ApiCommand::Logs { request_id, follow: _, no_follow, tail, server_logs } => {
                    api::logs(request_id, !no_follow, tail, server_logs).await
                }
                ApiCommand::Cancel { request_ids, all, all_users, yes } => {
                    api::cancel(request_ids, all, all_users, yes).await
                }
                ApiCommand::Info { output } => api::info(output).await,
                ApiCommand::Login { endpoint, token } => api::login(endpoint, token).await,
                ApiCommand::Logout => api::logout(),
            },
        }
    })
}
