//! The job runtime on a remote host, shared by the infras that reach their
//! nodes' files over SSH (SSH node pools, and Slurm clusters through their
//! login node): starting a detached run, finding it again, watching it
//! until it ends, and reading, measuring and archiving the job logs that
//! the host keeps.

use std::{
    future::Future,
    path::Path,
    process::Stdio,
    time::{Duration, Instant},
};

use super::{
    connection::{Ssh, SshError},
    pool::infra_error,
    pools::Host,
    remote,
};
use crate::{
    error::{Error, Result},
    infra::{RunEnd, RunHandle, RunRef, RunSpec},
    logfile,
};

/// An infra that runs scripts on SSH hosts (noting whether they answer).
pub(crate) trait HostRunner: Sync {
    fn ssh(&self) -> &Ssh;
    /// Runs `script` on `host`, as an infra error when it fails.
    fn run_script(&self, host: &Host, script: &str) -> impl Future<Output = Result<Vec<u8>>> + Send;
}

/// Starts `spec` detached on `host`, its output appended to `log` there;
/// `script` is what the run executes (the spec's own, or one that runs it
/// elsewhere).
pub(crate) async fn start(
    runner: &impl HostRunner,
    host: &Host,
    spec: &RunSpec,
    script: &str,
    log: &str,
) -> Result<RunHandle> {
    let delimiter = format!("SKY_SCRIPT_{}", skypilot_api::identity::random_hex(16)?);
    let start = remote::start(&spec.run, script, &spec.env, &spec.log_prefix, log, &delimiter);
    let output = runner.run_script(host, &start).await?;
    parse_handle(&output).ok_or_else(|| {
        Error::internal(format!(
            "{} did not report the run it started: {}",
            host.label(),
            String::from_utf8_lossy(&output).trim()
        ))
    })
}

/// The handle of a run that started on `host`; None when it never did.
pub(crate) async fn find(runner: &impl HostRunner, host: &Host, run: &RunRef) -> Option<RunHandle> {
    let output = runner.run_script(host, &remote::find(run)).await.ok()?;
    parse_handle(&output)
}

/// "PID START_TICKS" as a handle; "PID gone" (a run that ended already)
/// gets a start time no process has, so that its exit file tells how it ended.
fn parse_handle(output: &[u8]) -> Option<RunHandle> {
    let text = String::from_utf8_lossy(output);
    let mut words = text.split_whitespace();
    let pid = words.next()?.parse().ok()?;
    let start_ticks = match words.next()? {
        "gone" => u64::MAX,
        ticks => ticks.parse().ok()?,
    };
    Some(RunHandle { pid, start_ticks })
}

/// Up to `logfile::CHUNK_BYTES` of the job's log on `host` at `offset`.
pub(crate) async fn read_log(
    runner: &impl HostRunner,
    host: &Host,
    cluster: &str,
    job_id: i64,
    offset: u64,
) -> Result<Vec<u8>> {
    let script = remote::read_chunk(&remote::job_log(cluster, job_id), offset, logfile::CHUNK_BYTES);
    runner.run_script(host, &script).await
}

/// Where the last `lines` lines of the job's log on `host` start.
pub(crate) async fn log_tail_offset(
    runner: &impl HostRunner,
    host: &Host,
    cluster: &str,
    job_id: i64,
    lines: u64,
) -> Result<u64> {
    let output =
        runner.run_script(host, &remote::tail_offset(&remote::job_log(cluster, job_id), lines)).await?;
    String::from_utf8_lossy(&output)
        .trim()
        .parse()
        .map_err(|_| Error::internal(format!("{} did not report the log's size", host.label())))
}

/// Copies the logs of the cluster's jobs on `host` to `dest/<job id>.log`;
/// returns how many it copied.
pub(crate) async fn archive_logs(
    runner: &impl HostRunner,
    host: &Host,
    cluster: &str,
    dest: &Path,
) -> Result<usize> {
    let listed = runner.run_script(host, &remote::logged_jobs(cluster)).await?;
    let jobs: Vec<i64> =
        String::from_utf8_lossy(&listed).lines().filter_map(|line| line.trim().parse().ok()).collect();
    for job_id in &jobs {
        std::fs::create_dir_all(dest)?;
        let file = std::fs::File::create(dest.join(format!("{job_id}.log")))?;
        let log = remote::job_log(cluster, *job_id);
        let copied = runner
            .ssh()
            .command(host, &format!("bash -c {}", remote::quote(&format!("cat {log}"))))
            .stdout(file)
            .stderr(Stdio::piped())
            .output()
            .await?;
        if !copied.status.success() {
            return Err(infra_error(runner.ssh().failure(host, copied.status.code(), &copied.stderr)));
        }
    }
    Ok(jobs.len())
}

/// How often a run is looked at while it runs, at first and at most.
const POLL_FIRST: Duration = Duration::from_millis(100);
const POLL_MAX: Duration = Duration::from_secs(2);

/// What one look at a running run (`remote::poll` on its host) said.
pub(crate) enum Look {
    Running,
    Ended(RunEnd),
    /// The look failed, or the host did not answer (for less than allowed).
    Unknown,
    /// The host has not answered for the allowed time.
    Lost(SshError),
}

/// Reads the looks at one run until it ends, backing off between them,
/// and takes the run's host for lost once it has not answered for
/// `lost_after`.
pub(crate) struct RunWatch {
    lost_after: Duration,
    pause: Duration,
    silent_since: Option<Instant>,
}

impl RunWatch {
    pub(crate) fn new(lost_after: Duration) -> RunWatch {
        RunWatch { lost_after, pause: POLL_FIRST, silent_since: None }
    }

    /// What the answer to one `remote::poll` of `run` says.
    pub(crate) fn read(&mut self, run: &RunRef, polled: std::result::Result<Vec<u8>, SshError>) -> Look {
        match polled {
            Ok(output) => {
                self.silent_since = None;
                match String::from_utf8_lossy(&output).trim() {
                    "running" => Look::Running,
                    "" => Look::Ended(RunEnd::Killed),
                    code => Look::Ended(code.parse().map_or(RunEnd::Killed, RunEnd::Exited)),
                }
            }
            Err(err @ SshError::Failed { .. }) => {
                tracing::warn!(cluster = %run.cluster, rank = run.rank, error = %err, "cannot look at a run");
                Look::Unknown
            }
            Err(err) => match self.silent_since.get_or_insert_with(Instant::now).elapsed() >= self.lost_after
            {
                true => Look::Lost(err),
                false => Look::Unknown,
            },
        }
    }

    /// Waits before the next look, longer each time.
    pub(crate) async fn pause(&mut self) {
        tokio::time::sleep(self.pause).await;
        self.pause = (self.pause * 2).min(POLL_MAX);
    }
}
