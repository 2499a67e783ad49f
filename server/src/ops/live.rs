//! An operation that has not finished yet: its current record (changed only
//! through `transition`), the channel watchers follow, its cancellation token
//! and its log writer.

use std::sync::Arc;

use tokio::sync::{Mutex, watch};
use tokio_util::sync::CancellationToken;

use super::{log::OpLog, quota::Reservation};
use crate::{
    error::Result,
    store::{OpRecord, Store},
};

pub struct LiveOp {
    record: Mutex<OpRecord>,
    snapshots: watch::Sender<OpRecord>,
    pub cancel: CancellationToken,
    pub log: Arc<OpLog>,
    /// Its share of its user's quota, given back when it goes.
    _reservation: Reservation,
}

impl LiveOp {
    pub fn new(record: OpRecord, log: OpLog, reservation: Reservation) -> LiveOp {
        let (snapshots, _) = watch::channel(record.clone());
        LiveOp {
            record: Mutex::new(record),
            snapshots,
            cancel: CancellationToken::new(),
            log: Arc::new(log),
            _reservation: reservation,
        }
    }

    /// The latest record, with the log size as of now.
    pub fn snapshot(&self) -> OpRecord {
        let mut record = self.snapshots.borrow().clone();
        if !record.is_done() {
            record.log_size = self.log.len() as i64;
        }
        record
    }

    /// A receiver that sees every state change.
    pub fn subscribe(&self) -> watch::Receiver<OpRecord> {
        self.snapshots.subscribe()
    }

    /// Applies `change` to the record if it returns true, writes the result
    /// durably, and only then publishes it to watchers. Returns the record as
    /// it stands afterwards.
    pub async fn transition(
        &self,
        store: &Store,
        change: impl FnOnce(&mut OpRecord) -> bool,
    ) -> Result<OpRecord> {
        let mut current = self.record.lock().await;
        let mut next = current.clone();
        if !change(&mut next) {
            return Ok(next);
        }
        store.put_op(&next)?;
        store.durable().await?;
        *current = next.clone();
        self.snapshots.send_replace(next.clone());
        Ok(next)
    }
}
