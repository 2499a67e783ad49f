//! Running operations: queueing a live operation, driving it through
//! PENDING -> RUNNING -> done, and recovering what a previous run of the
//! server left unfinished.

use std::sync::Arc;

use skypilot_api::proto::skypilot::v1::{RequestState, Role, Schedule};

use super::{Engine, LiveOp, OpContext, finish, queue::ClusterTurn};
use crate::clock::now_ms;
use crate::{
    auth::Caller,
    error::{Error, ErrorReason, Result},
    store::OpRecord,
};

impl Engine {
    /// Registers a live operation and starts its driver. Operations on one
    /// cluster must be enqueued in submission order.
    pub(super) fn enqueue(&self, live: LiveOp) {
        let live = Arc::new(live);
        let (id, cluster) = {
            let record = live.snapshot();
            (record.id, record.cluster)
        };
        let turn = (!cluster.is_empty()).then(|| self.inner.queues.join_cluster(&cluster, &id));
        self.inner.live.lock().unwrap_or_else(|p| p.into_inner()).insert(id, live.clone());
        let engine = self.clone();
        self.inner.tasks.spawn(async move { engine.drive(live, turn).await });
    }

    async fn drive(&self, live: Arc<LiveOp>, mut turn: Option<ClusterTurn>) {
        let id = live.snapshot().id;
        // Wait for earlier operations on the same cluster, even when this one
        // is cancelled meanwhile, so that the next in line keeps waiting too.
        if let Some(turn) = turn.as_mut() {
            tokio::select! {
                _ = turn.wait() => {}
                _ = self.inner.shutdown.cancelled() => return,
            }
        }
        let record = live.snapshot();
        if record.state() != RequestState::Pending {
            return; // cancelled while waiting
        }
        let Ok(kind) = self.kind(&record.kind) else {
            self.conclude(&live, Err(Error::internal(format!("unknown request kind {:?}", record.kind))))
                .await;
            return;
        };
        let schedule = Schedule::try_from(record.schedule).unwrap_or(Schedule::Short);
        let _worker = tokio::select! {
            permit = self.inner.queues.worker(schedule) => permit,
            _ = live.cancel.cancelled() => return,
            _ = self.inner.shutdown.cancelled() => return,
        };
        let started = live
            .transition(&self.inner.store, |record| {
                if record.state() != RequestState::Pending {
                    return false;
                }
                record.set_state(RequestState::Running);
                record.started_ms = now_ms();
                true
            })
            .await;
        match started {
            Ok(record) if record.state() == RequestState::Running => {}
            Ok(_) => return, // cancelled just before starting
            Err(err) => {
                tracing::error!(%id, error = %err, "could not record start; operation left pending");
                return;
            }
        }
        tracing::debug!(%id, kind = %record.kind, "operation running");
        let payload = match self.inner.store.payload(&record) {
            Ok(payload) => payload,
            Err(err) => return self.conclude(&live, Err(err)).await,
        };
        let ctx = OpContext {
            id: id.clone(),
            caller: submitter(&record),
            cluster: record.cluster.clone(),
            payload,
            cancel: live.cancel.clone(),
            log: live.log.clone(),
        };
        let outcome = tokio::select! {
            biased;
            outcome = kind.run(ctx) => outcome,
            _ = live.cancel.cancelled() => Err(Error::cancelled()),
            _ = self.inner.halt.cancelled() => return, // stays RUNNING: recovered at next start
        };
        self.conclude(&live, outcome).await;
    }

    /// Records the outcome, then forgets the live operation.
    async fn conclude(&self, live: &LiveOp, outcome: Result<super::OpOutput>) {
        let log_size = live.log.len() as i64;
        let result = live
            .transition(&self.inner.store, |record| {
                if record.is_done() {
                    return false;
                }
                finish(record, outcome);
                record.log_size = log_size;
                true
            })
            .await;
        let record = live.snapshot();
        match result {
            Ok(_) => {
                tracing::debug!(id = %record.id, state = super::state_name(&record), "operation done")
            }
            Err(err) => {
                tracing::error!(id = %record.id, error = %err, "could not record the outcome")
            }
        }
        self.forget(&record.id);
    }

    /// Requeues PENDING operations and re-drives or fails RUNNING ones.
    pub(super) async fn recover(&self) -> Result<()> {
        // Requests refused when the store could not take them (a full disk)
        // are dropped, even if their record made it to disk.
        let refused = self.inner.store.refused_ops();
        if !refused.is_empty() {
            for id in &refused {
                if let Some(record) = self.inner.store.get_op(id)? {
                    self.inner.store.delete_op(&record)?;
                    let _ = self.inner.logs.remove(id);
                }
            }
            self.inner.store.durable().await?;
            self.inner.store.forget_refused()?;
            tracing::info!(count = refused.len(), "dropped requests refused when the disk was full");
        }
        let unfinished: Vec<_> = self
            .inner
            .store
            .ops_oldest_first()
            .filter(|record| !matches!(record, Ok(record) if record.is_done()))
            .collect::<Result<_>>()?;
        for mut record in unfinished {
            let resumable = self.kind(&record.kind).map(|kind| kind.resumable()).unwrap_or(false);
            if record.state() == RequestState::Running {
                if resumable {
                    record.set_state(RequestState::Pending);
                    record.status_message = "re-queued after a server restart".into();
                } else {
                    finish(
                        &mut record,
                        Err(Error::new(
                            ErrorReason::InterruptedByRestart,
                            "interrupted by server restart; submit the request again",
                        )),
                    );
                    record.log_size = self.inner.logs.len(&record.id) as i64;
                }
                self.inner.store.put_op(&record)?;
            }
            if record.state() == RequestState::Pending {
                tracing::info!(id = %record.id, kind = %record.kind, "re-queued after restart");
                let log = self.inner.logs.open_writer(&record.id)?;
                let size = usize::try_from(record.payload_size).unwrap_or(0).max(record.payload.len());
                let reservation = self.inner.quota.reserve(&record.user_id, size, None)?;
                self.enqueue(LiveOp::new(record, log, reservation));
            } else {
                tracing::warn!(id = %record.id, kind = %record.kind, "failed: interrupted by restart");
            }
        }
        self.inner.store.durable().await
    }
}

/// On whose behalf, and with what rights, an operation runs: its submitter's.
fn submitter(record: &OpRecord) -> Caller {
    let role = if record.user_is_admin { Role::Admin } else { Role::User };
    Caller { name: record.user_name.clone(), id: record.user_id.clone(), role, on_server_host: false }
}
