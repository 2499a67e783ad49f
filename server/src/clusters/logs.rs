//! Streaming a job's log: from an offset or the last N lines, following it
//! while the job runs; the last chunk carries the job's final record.

use std::time::Duration;

use futures_util::stream::{self, Stream};

use super::{Clusters, is_job_done, job_prefix};
use crate::{
    error::{Error, Result},
    ops::log::{read_chunk_async, tail_offset},
    store::{JobRecord, Table},
};

/// Job processes write their logs themselves: a follower also looks for
/// growth at this interval, besides waking on every job state change.
const FOLLOW_POLL: Duration = Duration::from_millis(100);

/// A piece of a job's log; the last one has `job` set and no data.
pub struct JobLogChunk {
    pub offset: u64,
    pub data: Vec<u8>,
    pub job: Option<JobRecord>,
}

struct Cursor {
    clusters: Clusters,
    cluster: String,
    job_id: i64,
    path: std::path::PathBuf,
    offset: u64,
    follow: bool,
    changes: tokio::sync::watch::Receiver<u64>,
    finished: bool,
}

impl Clusters {
    /// The id of the cluster's latest job.
    pub fn latest_job_id(&self, cluster: &str) -> Result<i64> {
        self.get(cluster)?;
        let jobs: Vec<JobRecord> = self.inner.store.scan(Table::Jobs, &job_prefix(cluster))?;
        jobs.last()
            .map(|j| j.job_id)
            .ok_or_else(|| Error::not_found(format!("cluster {cluster:?} has no jobs yet")))
    }

    /// A job's log (job 0: the latest).
    pub fn job_logs(
        &self,
        cluster: &str,
        job_id: i64,
        follow: bool,
        tail_lines: Option<u64>,
        offset: Option<u64>,
    ) -> Result<impl Stream<Item = Result<JobLogChunk>> + use<>> {
        let job_id = if job_id == 0 { self.latest_job_id(cluster)? } else { job_id };
        self.job(cluster, job_id)?;
        let path = self.job_log_path(cluster, job_id);
        let start = match (offset, tail_lines) {
            (Some(offset), _) => offset,
            (None, Some(lines)) => tail_offset(&path, lines)?,
            (None, None) => 0,
        };
        let cursor = Cursor {
            clusters: self.clone(),
            cluster: cluster.to_string(),
            job_id,
            path,
            offset: start,
            follow,
            changes: self.inner.job_changes.subscribe(),
            finished: false,
        };
        Ok(stream::unfold(cursor, |mut cursor| async move {
            if cursor.finished {
                return None;
            }
            loop {
                cursor.changes.borrow_and_update();
                let job = match cursor.clusters.job(&cursor.cluster, cursor.job_id) {
                    Ok(job) => job,
                    Err(err) => {
                        cursor.finished = true;
                        return Some((Err(err), cursor));
                    }
                };
                let done = is_job_done(job.status()) || !cursor.follow;
                let offset = cursor.offset;
                let chunk = match read_chunk_async(cursor.path.clone(), offset).await {
                    Ok(chunk) => chunk,
                    Err(err) => {
                        cursor.finished = true;
                        return Some((Err(err), cursor));
                    }
                };
                if !chunk.is_empty() {
                    cursor.offset += chunk.len() as u64;
                    return Some((Ok(JobLogChunk { offset, data: chunk, job: None }), cursor));
                }
                if done {
                    cursor.finished = true;
                    return Some((Ok(JobLogChunk { offset, data: Vec::new(), job: Some(job) }), cursor));
                }
                let shutdown = cursor.clusters.inner.shutdown.clone();
                tokio::select! {
                    _ = cursor.changes.changed() => {}
                    _ = tokio::time::sleep(FOLLOW_POLL) => {}
                    _ = shutdown.cancelled() => {
                        cursor.finished = true;
                        return Some((Err(crate::ops::shutting_down()), cursor));
                    }
                }
            }
        }))
    }
}
