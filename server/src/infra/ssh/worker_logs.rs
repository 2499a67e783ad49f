//! The logs of runs on worker hosts. A run on a host other than the head
//! node's logs to a file of its own there; while it runs, its whole lines
//! are appended to the job's log on the head's host (so that followers see
//! them as they come), and the rest when it ends. The head keeps how many
//! bytes were appended, and an append happens only where that count is the
//! one the server started from: each byte reaches the job's log once, also
//! across API server restarts and dropped connections.

use std::time::Duration;

use super::{
    connection::{Ssh, SshError},
    pools::Host,
    remote,
};
use crate::{infra::RunRef, logfile::CHUNK_BYTES};

/// How long one read or append may take.
const TIMEOUT: Duration = Duration::from_secs(60);

/// A worker run's log, as merged so far into the job's log.
pub struct WorkerLog<'a> {
    ssh: &'a Ssh,
    run: &'a RunRef,
    worker: &'a Host,
    head: &'a Host,
    /// Bytes appended so far, once asked of the head.
    merged: Option<u64>,
}

impl<'a> WorkerLog<'a> {
    pub fn new(ssh: &'a Ssh, run: &'a RunRef, worker: &'a Host, head: &'a Host) -> WorkerLog<'a> {
        WorkerLog { ssh, run, worker, head, merged: None }
    }

    /// Appends what the run logged since the last merge: whole lines, or
    /// everything once the run has ended (`ended`).
    pub async fn merge(&mut self, ended: bool) -> Result<(), SshError> {
        let counter = remote::run_file(self.run, "merged");
        let mut merged = match self.merged {
            Some(merged) => merged,
            None => parse_count(&self.ssh.run(self.head, &remote::merged_bytes(&counter), TIMEOUT).await?),
        };
        let worker_log = remote::run_file(self.run, "log");
        loop {
            let chunk = self
                .ssh
                .run(self.worker, &remote::read_chunk(&worker_log, merged, CHUNK_BYTES), TIMEOUT)
                .await?;
            let whole = match ended {
                true => chunk.len(),
                false => chunk.iter().rposition(|byte| *byte == b'\n').map_or(0, |last| last + 1),
            };
            if whole == 0 {
                break;
            }
            let job_log = remote::job_log(&self.run.cluster, self.run.job_id);
            let append = remote::append_at(&job_log, &counter, merged, whole);
            merged =
                parse_count(&self.ssh.run_with_input(self.head, &append, &chunk[..whole], TIMEOUT).await?);
            if chunk.len() < CHUNK_BYTES {
                break;
            }
        }
        self.merged = Some(merged);
        Ok(())
    }
}

fn parse_count(output: &[u8]) -> u64 {
    String::from_utf8_lossy(output).trim().parse().unwrap_or(0)
}
