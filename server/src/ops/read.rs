//! Reads of operations: listing with SkyPilot's filters, a stream of
//! snapshots that ends when the operation is done, and a log stream that
//! follows a running operation and resumes from any byte offset.

use futures_util::stream::{self, Stream, StreamExt};
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;

use super::Engine;
use crate::{
    error::{Error, Result},
    logfile::{self, Followed, Piece, read_chunk_async, tail_offset},
    store::OpRecord,
};

/// Which operations to list; newest first.
#[derive(Debug, Clone, Default)]
pub struct ListQuery {
    /// Only this user's operations.
    pub user_id: Option<String>,
    /// Only finished (true) or unfinished (false) operations.
    pub done: Option<bool>,
    /// Only operations on this cluster.
    pub cluster: Option<String>,
    /// Only operations older than this id (for paging).
    pub before: Option<String>,
    /// At most this many; 0 for no limit.
    pub limit: usize,
}

impl ListQuery {
    fn matches(&self, record: &OpRecord) -> bool {
        self.user_id.as_ref().is_none_or(|user| *user == record.user_id)
            && self.done.is_none_or(|done| done == record.is_done())
            && self.cluster.as_ref().is_none_or(|cluster| *cluster == record.cluster)
            && self.before.as_ref().is_none_or(|before| record.id < *before)
    }
}

/// A piece of an operation's log.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LogChunk {
    pub offset: u64,
    pub data: Vec<u8>,
}

impl Engine {
    /// Operations matching `query`, newest first.
    pub fn list(&self, query: &ListQuery) -> Result<Vec<OpRecord>> {
        let limit = if query.limit == 0 { usize::MAX } else { query.limit };
        if query.done == Some(false) {
            // Unfinished operations are all in memory: no store scan.
            let mut records: Vec<_> = {
                let live = self.inner.live.lock().unwrap_or_else(|p| p.into_inner());
                live.values().map(|op| op.snapshot()).filter(|r| query.matches(r)).collect()
            };
            records.sort_by(|a, b| b.id.cmp(&a.id));
            records.truncate(limit);
            return Ok(records);
        }
        let mut records = Vec::new();
        for record in self.inner.store.ops_newest_first(query.before.as_deref()) {
            let record = record?;
            let record = match self.live(&record.id) {
                Some(live) => live.snapshot(),
                None => record,
            };
            if query.matches(&record) {
                records.push(record);
                if records.len() >= limit {
                    break;
                }
            }
        }
        Ok(records)
    }

    /// Snapshots of an operation: the current one, then one per change; ends
    /// after the snapshot that shows it done, or with UNAVAILABLE at shutdown
    /// (so that a client knows to watch again once the server is back).
    pub fn watch(&self, id_or_prefix: &str) -> Result<impl Stream<Item = Result<OpRecord>> + use<>> {
        let id = self.resolve(id_or_prefix)?;
        let changes = self.live(&id).map(|live| live.subscribe());
        let first = self.get(&id)?;
        let shutdown = self.inner.shutdown.clone();
        let state = (Some(first), changes);
        Ok(stream::unfold(state, move |(pending, mut changes)| {
            let shutdown = shutdown.clone();
            async move {
                if let Some(record) = pending {
                    let done = record.is_done();
                    return Some((Ok(record), (None, if done { None } else { changes })));
                }
                let receiver = changes.as_mut()?;
                tokio::select! {
                    changed = receiver.changed() => changed.ok()?,
                    _ = shutdown.cancelled() => return Some((Err(Error::shutting_down()), (None, None))),
                }
                let record = receiver.borrow_and_update().clone();
                let done = record.is_done();
                Some((Ok(record), (None, if done { None } else { changes })))
            }
        }))
    }

    /// The operation's log from `offset` (or the last `tail_lines` lines, or
    /// the start). With `follow`, keeps streaming until the operation is done.
    pub fn logs(
        &self,
        id_or_prefix: &str,
        follow: bool,
        tail_lines: Option<u64>,
        offset: Option<u64>,
    ) -> Result<impl Stream<Item = Result<LogChunk>> + use<>> {
        let id = self.resolve(id_or_prefix)?;
        let path = self.inner.logs.path(&id);
        let start = match (offset, tail_lines) {
            (Some(offset), _) => offset,
            (None, Some(lines)) => tail_offset(&path, lines)?,
            (None, None) => 0,
        };
        let live = self.live(&id).filter(|_| follow);
        let shutdown = self.inner.shutdown.clone();
        let writer =
            live.map(|live| Writer { growth: live.log.subscribe(), state: live.subscribe(), shutdown });
        let pieces = logfile::follow(OpLogFile { path, writer }, start);
        Ok(pieces.filter_map(|piece| {
            std::future::ready(match piece {
                Ok(Piece::Data { offset, data }) => Some(Ok(LogChunk { offset, data })),
                Ok(Piece::End { .. }) => None,
                Err(err) => Some(Err(err)),
            })
        }))
    }
}

/// An operation's log file, and its writer while the operation runs.
struct OpLogFile {
    path: std::path::PathBuf,
    writer: Option<Writer>,
}

/// What a follower of a running operation's log waits on: the log growing
/// or the state changing.
struct Writer {
    growth: watch::Receiver<u64>,
    state: watch::Receiver<OpRecord>,
    shutdown: CancellationToken,
}

impl Followed for OpLogFile {
    type End = ();

    async fn read(&mut self, offset: u64) -> Result<Vec<u8>> {
        read_chunk_async(self.path.clone(), offset).await
    }

    fn finished(&mut self) -> Result<Option<()>> {
        let Some(writer) = self.writer.as_mut() else { return Ok(Some(())) };
        writer.growth.borrow_and_update();
        Ok(writer.state.borrow_and_update().is_done().then_some(()))
    }

    /// Also wakes when the operation is forgotten, which happens only once it is done.
    async fn changed(&mut self) -> Result<()> {
        let Some(writer) = self.writer.as_mut() else { return Ok(()) };
        tokio::select! {
            _ = writer.growth.changed() => Ok(()),
            _ = writer.state.changed() => Ok(()),
            _ = writer.shutdown.cancelled() => Err(Error::shutting_down()),
        }
    }
}
