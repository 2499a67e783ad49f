//! `sky jobs logs`: a managed job's output (every attempt, each after a
//! header naming it) or its controller's log; following it until the job
//! ends, with SkyPilot's exit codes for how it ended.

use skypilot_api::{
    Client, names,
    proto::skypilot::v1::{ManagedJob, ManagedJobStatus, TailManagedJobLogsRequest},
};

use crate::{
    connect::connect,
    error::{CliError, CliResult, EXIT_DETACHED},
    job_output::{copy_chunks, job_exit},
};

/// Options of `sky jobs logs`.
#[derive(Debug, clap::Args)]
pub struct JobsLogsArgs {
    /// Managed job id (default: your latest).
    job_id: Option<i64>,
    /// The newest job of this name.
    #[arg(short = 'n', long)]
    name: Option<String>,
    /// Keep streaming until the job ends (default).
    #[arg(long, overrides_with = "no_follow")]
    follow: bool,
    /// Print what is there and return.
    #[arg(long)]
    no_follow: bool,
    /// The controller's log of the job (its launches, failures and recoveries).
    #[arg(long)]
    controller: bool,
}

impl JobsLogsArgs {
    pub async fn run(self) -> CliResult {
        let client = connect().await?;
        let id = match (self.job_id, self.name) {
            (Some(id), _) => id,
            (None, Some(name)) => name_to_id(&client, &name).await?,
            (None, None) => 0,
        };
        follow_job(&client, id, self.controller, !self.no_follow, None).await
    }
}

/// The job a `-n NAME` names, resolved by the server.
async fn name_to_id(client: &Client, name: &str) -> CliResult<i64> {
    let request = TailManagedJobLogsRequest { name: name.to_string(), follow: false, ..Default::default() };
    let mut stream = client.tail_managed_job_logs(request).await?;
    while let Some(chunk) = stream.message().await.map_err(|status| client.stream_error(status))? {
        if let Some(job) = chunk.job {
            return Ok(job.job_id);
        }
    }
    Err(CliError::new(format!("no managed job named {name:?}")))
}

/// Streams job `id`'s output (or controller log) to stdout, resuming after
/// a server restart; when following, exits as the job ended.
pub async fn follow_job(
    client: &Client,
    id: i64,
    controller: bool,
    follow: bool,
    tail_lines: Option<i32>,
) -> CliResult {
    let copy = async {
        let (mut offset, mut id) = (None, id);
        loop {
            let request = TailManagedJobLogsRequest {
                job_id: id,
                name: String::new(),
                follow,
                controller,
                offset,
                tail_lines: if offset.is_none() { tail_lines } else { None },
            };
            let mut stream = client.tail_managed_job_logs(request).await?;
            match copy_chunks(client, &mut stream, &mut offset).await? {
                Ok(Some(job)) => return Ok::<_, CliError>(Some(job)),
                Err(err) if !err.is_unavailable() => return Err(err.into()),
                // Ended without the job's final record: the server went away; resume.
                _ if follow => {
                    if id == 0 {
                        id = latest(client).await?;
                    }
                }
                _ => return Ok(None),
            }
        }
    };
    let job = tokio::select! {
        result = copy => result?,
        _ = tokio::signal::ctrl_c() => {
            let which = if id == 0 { String::new() } else { format!(" {id}") };
            return Err(CliError {
                message: format!(
                    "\nThe managed job keeps running.\n\u{251c}\u{2500}\u{2500} To stream its logs: sky jobs logs{which}\n\
                     \u{2514}\u{2500}\u{2500} To cancel it: sky jobs cancel{which}"
                ),
                exit_code: EXIT_DETACHED,
            });
        }
    };
    match job {
        Some(job) if follow => ended(&job),
        _ => Ok(()),
    }
}

/// The caller's newest job.
async fn latest(client: &Client) -> CliResult<i64> {
    let request =
        skypilot_api::proto::skypilot::v1::ListManagedJobsRequest { page_size: 1, ..Default::default() };
    let page = client.list_managed_jobs(request).await?;
    page.jobs.first().map(|job| job.job_id).ok_or_else(|| CliError::new("You have no managed jobs."))
}

/// How a followed job ended, as a message and SkyPilot's exit code.
fn ended(job: &ManagedJob) -> CliResult {
    let status = names::managed_job_status(job.status());
    let code = match job.status() {
        ManagedJobStatus::Succeeded => {
            eprintln!("\u{2713} Managed job {} finished (status: {status}).", job.job_id);
            return Ok(());
        }
        ManagedJobStatus::Cancelled => job_exit::CANCELLED,
        _ => job_exit::FAILED,
    };
    let why = if job.failure_reason.is_empty() { String::new() } else { format!(": {}", job.failure_reason) };
    Err(CliError { message: format!("\u{2717} Managed job {} {status}{why}", job.job_id), exit_code: code })
}
