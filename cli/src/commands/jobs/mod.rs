//! `sky jobs`: managed jobs, each on a cluster of its own that the API
//! server launches, relaunches when its nodes are lost, and tears down.

mod cancel;
mod launch;
mod logs;
mod queue;

use crate::error::CliResult;

/// The `sky jobs` subcommands.
#[derive(Debug, clap::Subcommand)]
pub enum JobsCommand {
    /// Launch a managed job (a task YAML, a pipeline YAML, or a command).
    Launch(launch::JobsLaunchArgs),
    /// Show managed jobs.
    Queue(queue::JobsQueueArgs),
    /// Cancel managed jobs.
    Cancel(cancel::JobsCancelArgs),
    /// Stream a managed job's output, or its controller's log.
    Logs(logs::JobsLogsArgs),
}

impl JobsCommand {
    pub async fn run(self) -> CliResult {
        match self {
            JobsCommand::Launch(args) => args.run().await,
            JobsCommand::Queue(args) => args.run().await,
            JobsCommand::Cancel(args) => args.run().await,
            JobsCommand::Logs(args) => args.run().await,
        }
    }
}
