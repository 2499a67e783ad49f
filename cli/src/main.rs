//! `sky`: the SkyPilot command line, a gRPC client of the API server. The same
//! binary runs the server (`sky api start --foreground`).

mod api;
mod check;
mod connect;
mod error;
mod follow;
mod output;
mod server_cmd;

use std::process::ExitCode;

use clap::{Parser, Subcommand};

use api::Format;
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
    /// Manage the SkyPilot API server and its requests.
    #[command(subcommand)]
    Api(ApiCommand),
    /// Check which infras are usable.
    Check {
        /// Infras to check (default: all).
        infras: Vec<String>,
        /// Submit and return at once, printing the request id.
        #[arg(long = "async")]
        run_async: bool,
    },
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
            eprintln!("{err}");
            ExitCode::from(err.exit_code)
        }
    }
}

fn run_client(command: Command) -> CliResult {
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
    runtime.block_on(async move {
        match command {
            Command::Check { infras, run_async } => check::check(infras, run_async).await,
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
                ApiCommand::Login { endpoint } => api::login(endpoint).await,
                ApiCommand::Logout => api::logout(),
            },
        }
    })
}
