//! A job's output: streaming it to stdout (resuming across server restarts;
//! Ctrl-C detaches and leaves the job running), and SkyPilot's exit codes for
//! how a job ended.

use std::io::Write;

use skypilot_api::{
    Client, ClientError, names,
    proto::skypilot::v1::{
        Job, JobStatus, ListJobsRequest, ManagedJob, TailJobLogsRequest, TailJobLogsResponse,
        TailManagedJobLogsResponse,
    },
};

use crate::error::{CliError, CliResult, EXIT_DETACHED};

/// A message of a followed log stream: where its bytes start, the bytes,
/// and (on the last one) the record the stream ended with.
pub trait LogChunk {
    type End;
    fn into_parts(self) -> (i64, Vec<u8>, Option<Self::End>);
}

impl LogChunk for TailJobLogsResponse {
    type End = Job;
    fn into_parts(self) -> (i64, Vec<u8>, Option<Job>) {
        (self.offset, self.data, self.job)
    }
}

impl LogChunk for TailManagedJobLogsResponse {
    type End = ManagedJob;
    fn into_parts(self) -> (i64, Vec<u8>, Option<ManagedJob>) {
        (self.offset, self.data, self.job)
    }
}

/// Copies one log stream to stdout, keeping `offset` after the last byte
/// written. Inside: the record the stream ended with, None when it closed
/// without one, or the error that broke it (the caller resumes from
/// `offset` when the server was only unavailable).
pub async fn copy_chunks<C: LogChunk>(
    client: &Client,
    stream: &mut tonic::Streaming<C>,
    offset: &mut Option<i64>,
) -> CliResult<Result<Option<C::End>, ClientError>> {
    let mut stdout = std::io::stdout();
    loop {
        match stream.message().await {
            Ok(Some(chunk)) => {
                let (at, data, end) = chunk.into_parts();
                stdout.write_all(&data)?;
                stdout.flush()?;
                *offset = Some(at + data.len() as i64);
                if end.is_some() {
                    return Ok(Ok(end));
                }
            }
            Ok(None) => return Ok(Ok(None)),
            Err(status) => return Ok(Err(client.stream_error(status))),
        }
    }
}

/// SkyPilot's exit codes for `sky logs` (JobExitCode).
pub mod job_exit {
    pub const SUCCEEDED: u8 = 0;
    pub const FAILED: u8 = 100;
    pub const NOT_FINISHED: u8 = 101;
    pub const NOT_FOUND: u8 = 102;
    pub const CANCELLED: u8 = 103;
}

/// After a job is submitted: stream its output and exit with its outcome,
/// or (detached) say how to follow it.
pub async fn after_submit(client: &Client, cluster: &str, job_id: i64, detach: bool) -> CliResult {
    if detach {
        eprintln!("\u{251c}\u{2500}\u{2500} To stream job logs: sky logs {cluster} {job_id}");
        eprintln!("\u{2514}\u{2500}\u{2500} To view the job queue: sky queue {cluster}");
        return Ok(());
    }
    eprintln!(
        "\u{2514}\u{2500}\u{2500} Job started. Streaming logs... (Ctrl-C to exit log streaming; job will not be killed)"
    );
    let job = tail(client, cluster, job_id, true, None).await?;
    let Some(job) = job else { return Ok(()) };
    let status = names::job_status(job.status());
    match job.status() {
        JobStatus::Succeeded => {
            eprintln!("\u{2713} Job finished (status: {status}).");
            Ok(())
        }
        _ => {
            let code =
                job.exit_code.filter(|c| *c > 0 && *c < 256).map(|c| c as u8).unwrap_or(match job.status() {
                    JobStatus::Cancelled => job_exit::CANCELLED,
                    _ => job_exit::FAILED,
                });
            let detail = if job.message.is_empty() { String::new() } else { format!(": {}", job.message) };
            Err(CliError { message: format!("\u{2717} Job {job_id} {status}{detail}"), exit_code: code })
        }
    }
}

/// Streams a job's log to stdout (job 0: the latest); returns its final
/// record (None if not following). Resumes from the last byte written when
/// the server goes away meanwhile. Ctrl-C detaches.
pub async fn tail(
    client: &Client,
    cluster: &str,
    job_id: i64,
    follow: bool,
    tail_lines: Option<i32>,
) -> CliResult<Option<Job>> {
    let copy = async {
        let mut offset: Option<i64> = None;
        let mut job_id = job_id;
        loop {
            let request = TailJobLogsRequest {
                cluster_name: cluster.to_string(),
                job_id,
                follow,
                tail_lines: if offset.is_none() { tail_lines } else { None },
                offset,
            };
            let mut stream = client.tail_job_logs(request).await?;
            match copy_chunks(client, &mut stream, &mut offset).await? {
                Ok(Some(job)) => return Ok::<_, CliError>(Some(job)),
                Err(err) if !err.is_unavailable() => return Err(err.into()),
                // The stream ended without the job's final record: the server went away; resume.
                _ if follow => {
                    if job_id == 0 {
                        job_id = latest_job(client, cluster).await?;
                    }
                }
                _ => return Ok(None),
            }
        }
    };
    tokio::select! {
        result = copy => result,
        _ = tokio::signal::ctrl_c() => Err(CliError {
            message: format!(
                "\nJob {} keeps running.\n\u{251c}\u{2500}\u{2500} To stream its logs: sky logs {cluster} {}\n\
                 \u{2514}\u{2500}\u{2500} To cancel it: sky cancel {cluster} {}",
                if job_id == 0 { "(latest)".to_string() } else { job_id.to_string() },
                if job_id == 0 { String::new() } else { job_id.to_string() },
                if job_id == 0 { String::new() } else { job_id.to_string() },
            ),
            exit_code: EXIT_DETACHED,
        }),
    }
}

async fn latest_job(client: &Client, cluster: &str) -> CliResult<i64> {
    let jobs = client
        .list_jobs(ListJobsRequest {
            cluster_name: cluster.to_string(),
            all_users: true,
            page_size: 1,
            ..Default::default()
        })
        .await?;
    jobs.first().map(|j| j.job_id).ok_or_else(|| CliError::new(format!("cluster {cluster} has no jobs")))
}
