//! Streaming a job's log: from an offset or the last N lines, following it
//! while the job runs; the last chunk carries the job's final record.

use std::{sync::Arc, time::Duration};

use futures_util::stream::{Stream, StreamExt};
use tokio::sync::watch;

use super::{Clusters, is_job_done};
use crate::{
    error::{Error, Result},
    infra::{Infra, LogChanges},
    logfile::{self, Followed, Piece},
    store::JobRecord,
};

/// Job processes write their logs themselves: a follower wakes when the
/// infra says the log grew and on every job state change; where the infra
/// cannot tell (a job that has not started, no watches left) it looks at
/// this interval.
const FOLLOW_POLL: Duration = Duration::from_millis(100);

/// A piece of a job's log; the last one has `job` set and no data.
pub struct JobLogChunk {
    pub offset: u64,
    pub data: Vec<u8>,
    pub job: Option<JobRecord>,
}

/// A job's log as the infra holds it, and the job's record.
struct JobLog {
    clusters: Clusters,
    /// Where the job ran, kept for when the cluster goes away mid-stream.
    infra: Arc<dyn Infra>,
    cluster: String,
    job_id: i64,
    follow: bool,
    changes: watch::Receiver<u64>,
    /// Wake-ups from the infra when the log grows, once it can give them.
    growth: Option<LogChanges>,
}

impl Followed for JobLog {
    type End = JobRecord;

    async fn read(&mut self, offset: u64) -> Result<Vec<u8>> {
        self.infra.read_log(&self.cluster, self.job_id, offset).await
    }

    fn finished(&mut self) -> Result<Option<JobRecord>> {
        self.changes.borrow_and_update();
        let job = self.clusters.job(&self.cluster, self.job_id)?;
        Ok((is_job_done(job.status()) || !self.follow).then_some(job))
    }

    async fn changed(&mut self) -> Result<()> {
        if self.growth.is_none() {
            self.growth = self.infra.log_changes(&self.cluster, self.job_id);
            if self.growth.is_some() {
                // The log may have grown between the last read and the
                // watch starting: read it once more before waiting.
                return Ok(());
            }
        }
        let shutdown = self.clusters.inner.shutdown.clone();
        let growth = async {
            match self.growth.as_mut() {
                Some(growth) => growth.changed().await,
                None => tokio::time::sleep(FOLLOW_POLL).await,
            }
        };
        tokio::select! {
            _ = self.changes.changed() => Ok(()),
            _ = growth => Ok(()),
            _ = shutdown.cancelled() => Err(Error::shutting_down()),
        }
    }
}

impl Clusters {
    /// The id of the cluster's latest job.
    pub fn latest_job_id(&self, cluster: &str) -> Result<i64> {
        let record = self.get(cluster)?;
        let latest = record.next_job_id - 1;
        match latest >= 1 && self.job(cluster, latest).is_ok() {
            true => Ok(latest),
            false => Err(Error::not_found(format!("cluster {cluster:?} has no jobs yet"))),
        }
    }

    /// A job's log (job 0: the latest).
    pub async fn job_logs(
        &self,
        cluster: &str,
        job_id: i64,
        follow: bool,
        tail_lines: Option<u64>,
        offset: Option<u64>,
    ) -> Result<impl Stream<Item = Result<JobLogChunk>> + use<>> {
        let job_id = if job_id == 0 { self.latest_job_id(cluster)? } else { job_id };
        self.job(cluster, job_id)?;
        let start = match (offset, tail_lines) {
            (Some(offset), _) => offset,
            (None, Some(lines)) => self.infra_of(cluster)?.log_tail_offset(cluster, job_id, lines).await?,
            (None, None) => 0,
        };
        let log = JobLog {
            clusters: self.clone(),
            infra: self.infra_of(cluster)?,
            cluster: cluster.to_string(),
            job_id,
            follow,
            changes: self.inner.job_changes.subscribe(),
            growth: None,
        };
        Ok(logfile::follow(log, start).map(|piece| {
            piece.map(|piece| match piece {
                Piece::Data { offset, data } => JobLogChunk { offset, data, job: None },
                Piece::End { offset, end } => JobLogChunk { offset, data: Vec::new(), job: Some(end) },
            })
        }))
    }
}
