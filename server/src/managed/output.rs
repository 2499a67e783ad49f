//! A managed job's two logs, in its folder on the API server's host: its
//! output (each attempt's job log on its cluster, copied as it grows, after a
//! header line naming the attempt), which outlives the clusters it ran on;
//! and the controller's log of what it did for the job. Streaming either
//! from an offset or the last N lines, following it until the job is over.

use std::{
    io::{self, Write as _},
    path::{Path, PathBuf},
};

use futures_util::{Stream, StreamExt as _};
use tokio::sync::watch;

use super::{Controller, Step};
use crate::{
    error::{Error, Result},
    logfile::{self, Followed, Piece},
    store::ManagedJobRecord,
};

pub(super) const OUTPUT_LOG: &str = "output.log";
pub(super) const CONTROLLER_LOG: &str = "controller.log";

/// Appends `bytes` to the file at `path`, creating it.
pub(super) fn append(path: &Path, bytes: &[u8]) -> io::Result<()> {
    std::fs::OpenOptions::new().create(true).append(true).open(path)?.write_all(bytes)
}

/// A piece of a managed job's log; the last one has `job` set and no data.
pub struct ManagedLogChunk {
    pub offset: u64,
    pub data: Vec<u8>,
    pub job: Option<ManagedJobRecord>,
}

impl Controller {
    pub(super) fn output_path(&self, job_id: i64) -> PathBuf {
        self.job_dir(job_id).join(OUTPUT_LOG)
    }

    /// Copies the current attempt's job log from its cluster into the
    /// job's output, after `header`; returns when that job has ended and
    /// its log is copied. The output is first cut back to where the attempt
    /// began, so that copying it again after a restart repeats nothing.
    pub(super) async fn copy_output(&self, job: &ManagedJobRecord, header: &str) -> Result<()> {
        let path = self.output_path(job.job_id);
        let (base, header_bytes) = (job.output_base as u64, header.as_bytes().to_vec());
        let cut = path.clone();
        tokio::task::spawn_blocking(move || {
            let file = std::fs::OpenOptions::new().create(true).write(true).truncate(false).open(&cut)?;
            if file.metadata()?.len() > base {
                file.set_len(base)?;
            }
            append(&cut, &header_bytes)
        })
        .await
        .map_err(|err| Error::internal(format!("output writer: {err}")))??;
        self.bump(job.job_id);
        let clusters = &self.inner.clusters;
        let mut chunks =
            Box::pin(clusters.job_logs(&job.cluster_name, job.cluster_job_id, true, None, Some(0)).await?);
        while let Some(chunk) = chunks.next().await {
            let chunk = chunk?;
            if chunk.job.is_some() {
                break;
            }
            let path = path.clone();
            tokio::task::spawn_blocking(move || append(&path, &chunk.data))
                .await
                .map_err(|err| Error::internal(format!("output writer: {err}")))??;
            self.bump(job.job_id);
        }
        Ok(())
    }

    /// The job's output (or, with `controller`, its controller log) from
    /// `offset` or the last `tail_lines` lines; following it until the job is over.
    pub fn logs(
        &self,
        job_id: i64,
        controller: bool,
        follow: bool,
        tail_lines: Option<u64>,
        offset: Option<u64>,
    ) -> Result<impl Stream<Item = Result<ManagedLogChunk>> + use<>> {
        self.get(job_id)?;
        let path = self.job_dir(job_id).join(if controller { CONTROLLER_LOG } else { OUTPUT_LOG });
        let start = match (offset, tail_lines) {
            (Some(offset), _) => offset,
            (None, Some(lines)) => logfile::tail_offset(&path, lines)?,
            (None, None) => 0,
        };
        let log =
            ManagedLog { controller: self.clone(), job_id, path, follow, changes: self.subscribe(job_id) };
        Ok(logfile::follow(log, start).map(|piece| {
            piece.map(|piece| match piece {
                Piece::Data { offset, data } => ManagedLogChunk { offset, data, job: None },
                Piece::End { offset, end } => ManagedLogChunk { offset, data: Vec::new(), job: Some(end) },
            })
        }))
    }
}

/// One of a managed job's logs, written by the controller.
struct ManagedLog {
    controller: Controller,
    job_id: i64,
    path: PathBuf,
    follow: bool,
    changes: watch::Receiver<u64>,
}

impl Followed for ManagedLog {
    type End = ManagedJobRecord;

    async fn read(&mut self, offset: u64) -> Result<Vec<u8>> {
        logfile::read_chunk_async(self.path.clone(), offset).await
    }

    fn finished(&mut self) -> Result<Option<ManagedJobRecord>> {
        self.changes.borrow_and_update();
        let job = self.controller.get(self.job_id)?;
        Ok((Step::of(&job) == Step::Done || !self.follow).then_some(job))
    }

    async fn changed(&mut self) -> Result<()> {
        let shutdown = self.controller.inner.shutdown.clone();
        tokio::select! {
            changed = self.changes.changed() => {
                if changed.is_err() {
                    // No longer driven: the job is over (which `finished`
                    // sees next), or its record went away.
                    tokio::time::sleep(std::time::Duration::from_millis(100)).await;
                }
                Ok(())
            }
            _ = shutdown.cancelled() => Err(Error::shutting_down()),
        }
    }
}
