//! `sky logs`: a job's output, or with `--status` only how it ended, told by
//! the exit code too.

use skypilot_api::{
    names,
    proto::skypilot::v1::{JobStatus, ListJobsRequest},
};

use crate::{
    connect::connect,
    error::{CliError, CliResult},
    job_output::{job_exit, tail},
};

/// Options of `sky logs`.
#[derive(Debug, clap::Args)]
pub struct LogsArgs {
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
}

impl LogsArgs {
    pub async fn run(self) -> CliResult {
        let LogsArgs { cluster, job_id, follow: _, no_follow, tail: tail_lines, status: status_only } = self;
        let client = connect().await?;
        if status_only {
            // The newest job up to the one asked for: one record, whatever the history.
            let jobs = client
                .list_jobs(ListJobsRequest {
                    cluster_name: cluster.clone(),
                    all_users: true,
                    page_size: 1,
                    page_token: job_id.map(|id| id.saturating_add(1).to_string()).unwrap_or_default(),
                    ..Default::default()
                })
                .await?;
            let job = match job_id {
                Some(id) => jobs.iter().find(|j| j.job_id == id),
                None => jobs.first(),
            };
            let Some(job) = job else {
                return Err(CliError {
                    message: format!(
                        "Job {} not found on cluster {cluster}.",
                        job_id.map(|i| i.to_string()).unwrap_or_else(|| "(latest)".into())
                    ),
                    exit_code: job_exit::NOT_FOUND,
                });
            };
            println!("Job {}: {}", job.job_id, names::job_status(job.status()));
            let code = match job.status() {
                JobStatus::Succeeded => job_exit::SUCCEEDED,
                JobStatus::Failed | JobStatus::FailedSetup => job_exit::FAILED,
                JobStatus::Cancelled => job_exit::CANCELLED,
                _ => job_exit::NOT_FINISHED,
            };
            return if code == 0 {
                Ok(())
            } else {
                Err(CliError { message: String::new(), exit_code: code })
            };
        }
        let tail_lines = tail_lines.map(|t| t.min(i32::MAX as u32) as i32);
        let Some(job) = tail(&client, &cluster, job_id.unwrap_or(0), !no_follow, tail_lines).await? else {
            return Ok(());
        };
        let exit_code = match job.status() {
            JobStatus::Failed | JobStatus::FailedSetup => job_exit::FAILED,
            JobStatus::Cancelled => job_exit::CANCELLED,
            _ => return Ok(()),
        };
        // How it ended, and why when the server says (e.g. a node was lost).
        let why = if job.message.is_empty() { String::new() } else { format!(": {}", job.message) };
        let message = format!("\u{2717} Job {} {}{why}", job.job_id, names::job_status(job.status()));
        Err(CliError { message, exit_code })
    }
}
