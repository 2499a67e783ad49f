//! The operation engine: accepts requests that their `OperationKind`
//! validated and authorized as durable operations, schedules
//! them on the LONG and SHORT queues (one at a time per cluster), runs them
//! through their `OperationKind`, and answers reads about them. Every state
//! change is written to the store before anyone hears of it.

mod drive;
pub mod kind;
mod live;
pub mod log;
mod queue;
mod quota;
mod read;

use std::{
    collections::HashMap,
    sync::{
        Arc, Mutex,
        atomic::{AtomicBool, Ordering},
    },
    time::Duration,
};

use skypilot_api::{
    names::error_reason,
    proto::skypilot::v1::{RequestState, Schedule},
};
use tokio_util::{sync::CancellationToken, task::TaskTracker};

pub use kind::{Admitted, BoxFuture, OpContext, OpOutput, OperationKind};
use live::LiveOp;
use log::LogDir;
use queue::Queues;
use quota::{Limits, Quota};
pub use read::ListQuery;

use crate::{
    auth::Caller,
    clock::now_ms,
    error::{Error, ErrorReason, Result, is_retryable},
    store::{OpRecord, Store, StoredError, payload_digest},
};

/// Longest idempotency key accepted.
const MAX_IDEMPOTENCY_KEY_CHARS: usize = 256;
/// How many matches an ambiguous-prefix error lists.
const AMBIGUOUS_MATCHES_SHOWN: usize = 5;

/// Engine settings.
#[derive(Debug, Clone)]
pub struct EngineConfig {
    /// Concurrent LONG operations (launch, exec, start ...).
    pub long_workers: usize,
    /// Concurrent SHORT operations (status, stop, cancel, check ...).
    pub short_workers: usize,
    /// Unfinished requests one user may have.
    pub max_requests_per_user: usize,
    /// Bytes of request data one user's unfinished requests may hold.
    pub max_request_bytes_per_user: usize,
}

impl Default for EngineConfig {
    fn default() -> Self {
        EngineConfig {
            long_workers: 8,
            short_workers: 32,
            max_requests_per_user: 2_000,
            max_request_bytes_per_user: 256 << 20,
        }
    }
}

/// A request to run an operation.
#[derive(Debug, Clone)]
pub struct Submission {
    /// The registered kind, e.g. "sky.check".
    pub kind: &'static str,
    /// The encoded request message.
    pub payload: Vec<u8>,
    pub caller: Caller,
}

impl Submission {
    pub fn new(kind: &'static str, caller: Caller, request: &impl prost::Message) -> Submission {
        Submission { kind, payload: request.encode_to_vec(), caller }
    }
}

/// Handle to the engine; cheap to clone.
#[derive(Clone)]
pub struct Engine {
    inner: Arc<Inner>,
}

struct Inner {
    store: Store,
    logs: LogDir,
    kinds: HashMap<&'static str, Arc<dyn OperationKind>>,
    live: Mutex<HashMap<String, Arc<LiveOp>>>,
    queues: Queues,
    quota: Quota,
    limits: Limits,
    accepting: AtomicBool,
    /// Fires at shutdown: queued operations stop waiting, streams end.
    shutdown: CancellationToken,
    /// Fires when the shutdown grace period is over: running operations are
    /// abandoned as they are (RUNNING), to be recovered at the next start.
    halt: CancellationToken,
    tasks: TaskTracker,
}

impl Engine {
    /// Creates the engine over `store` and `logs`, then recovers the
    /// operations a previous run left unfinished.
    pub async fn start(
        store: Store,
        logs: LogDir,
        kinds: Vec<Arc<dyn OperationKind>>,
        config: &EngineConfig,
    ) -> Result<Engine> {
        let engine = Engine {
            inner: Arc::new(Inner {
                store,
                logs,
                kinds: kinds.into_iter().map(|kind| (kind.name(), kind)).collect(),
                live: Mutex::default(),
                queues: Queues::new(config.long_workers, config.short_workers),
                quota: Quota::default(),
                limits: Limits {
                    requests: config.max_requests_per_user,
                    bytes: config.max_request_bytes_per_user,
                },
                accepting: AtomicBool::new(true),
                shutdown: CancellationToken::new(),
                halt: CancellationToken::new(),
                tasks: TaskTracker::new(),
            }),
        };
        engine.recover().await?;
        Ok(engine)
    }

    /// Accepts a request once its kind has validated and authorized it:
    /// stores it as PENDING (durably), queues it and returns its record. With
    /// an idempotency key already used by the same caller, returns that
    /// operation instead (or an error when the request differs).
    pub async fn submit(&self, submission: Submission) -> Result<OpRecord> {
        // A store that failed a write (a full disk) takes no more: say so,
        // rather than that the server is stopping because of it.
        if let Some(failure) = self.inner.store.write_failure() {
            return Err(failure);
        }
        if !self.inner.accepting.load(Ordering::Acquire) {
            return Err(Error::new(
                ErrorReason::Unavailable,
                "the API server is shutting down; retry in a few seconds",
            ));
        }
        let kind = self.kind(submission.kind)?;
        let caller = submission.caller;
        let admitted = kind.validate(&caller, submission.payload)?;
        validate_idempotency_key(&admitted.idempotency_key)?;
        kind.authorize(&caller, &admitted)?;

        let mut record = OpRecord {
            id: uuid::Uuid::now_v7().to_string(),
            kind: submission.kind.to_string(),
            state: RequestState::Pending as i32,
            user_name: caller.name.clone(),
            user_id: caller.id.clone(),
            user_is_admin: caller.is_admin(),
            cluster: admitted.cluster,
            schedule: kind.schedule() as i32,
            created_ms: now_ms(),
            payload_size: admitted.payload.len() as i64,
            payload_digest: payload_digest(&admitted.payload),
            idempotency_key: admitted.idempotency_key,
            ..Default::default()
        };
        if !record.idempotency_key.is_empty()
            && let Some(existing) = self.claim_idempotency_key(&record)?
        {
            return Ok(existing);
        }
        let reservation = match self.inner.quota.reserve(
            &record.user_id,
            admitted.payload.len(),
            Some(self.inner.limits),
        ) {
            Ok(reservation) => reservation,
            Err(err) => {
                self.forget_unaccepted(&record);
                return Err(err);
            }
        };
        let stored = async {
            let log = self.inner.logs.open_writer(&record.id)?;
            self.inner.store.keep_payload(&mut record, &admitted.payload)?;
            self.inner.store.put_op(&record)?;
            self.inner.store.durable().await?;
            Ok(log)
        }
        .await;
        let log = match stored {
            Ok(log) => log,
            Err(err) => {
                // Its record may reach the disk all the same: the next start drops it.
                if let Err(io) = self.inner.store.remember_refused(&record.id) {
                    tracing::error!(id = %record.id, error = %io, "cannot remember a refused request");
                }
                self.forget_unaccepted(&record);
                return Err(err);
            }
        };
        tracing::debug!(id = %record.id, kind = %record.kind, "operation accepted");
        self.enqueue(LiveOp::new(record.clone(), log, reservation));
        Ok(record)
    }

    /// Undoes what a submission that could not be made durable left behind, as
    /// far as the store still lets us (a full disk may refuse even this).
    fn forget_unaccepted(&self, record: &OpRecord) {
        let store = &self.inner.store;
        let _ = store.delete_op(record);
        if !record.idempotency_key.is_empty() {
            let _ = store.release_idempotency_key(&record.user_id, &record.idempotency_key, &record.id);
        }
        let _ = self.inner.logs.remove(&record.id);
    }

    /// Binds the new record's idempotency key to its id, or returns the
    /// operation the key already names.
    fn claim_idempotency_key(&self, new: &OpRecord) -> Result<Option<OpRecord>> {
        let store = &self.inner.store;
        let key = &new.idempotency_key;
        let user = &new.user_id;
        let Some(existing_id) = store.claim_idempotency_key(user, key, &new.id)? else {
            return Ok(None);
        };
        if store.get_op(&existing_id)?.is_none() {
            // The operation the key named is gone (expired): reuse the key.
            store.release_idempotency_key(user, key, &existing_id)?;
            return self.claim_idempotency_key(new);
        }
        let existing = self.get(&existing_id)?;
        let same = existing.kind == new.kind
            && store.payload_digest(&existing)? == new.payload_digest
            && existing.cluster == new.cluster;
        if !same {
            return Err(Error::new(
                ErrorReason::IdempotencyKeyReused,
                format!(
                    "idempotency_key {key:?} was already used for request {} ({}) with a \
                     different request; use a new key for a new request",
                    existing.id, existing.kind
                ),
            ));
        }
        Ok(Some(existing))
    }

    /// The latest record of an operation, by id or unique id prefix.
    pub fn get(&self, id_or_prefix: &str) -> Result<OpRecord> {
        let id = self.resolve(id_or_prefix)?;
        if let Some(live) = self.live(&id) {
            return Ok(live.snapshot());
        }
        self.inner.store.get_op(&id)?.ok_or_else(|| not_found(id_or_prefix))
    }

    /// Cancels an operation on behalf of its owner or an admin: a PENDING
    /// one at once, a RUNNING one through its cancellation token (the record
    /// turns CANCELLED when it stops).
    pub async fn cancel(&self, caller: &Caller, id_or_prefix: &str) -> Result<OpRecord> {
        let id = self.resolve(id_or_prefix)?;
        ensure_may_manage(caller, &self.get(&id)?)?;
        let Some(live) = self.live(&id) else {
            let record = self.get(&id)?;
            return Err(Error::new(
                ErrorReason::AlreadyDone,
                format!("request {id} already finished ({})", state_name(&record)),
            ));
        };
        let record = live
            .transition(&self.inner.store, |record| {
                if record.state() != RequestState::Pending {
                    return false;
                }
                finish(record, Err(Error::cancelled()));
                true
            })
            .await?;
        live.cancel.cancel();
        if record.is_done() {
            self.forget(&id);
        }
        tracing::info!(id = %id, "operation cancelled");
        Ok(record)
    }

    /// Deletes a finished operation and its log, on behalf of its owner or an admin.
    pub async fn delete(&self, caller: &Caller, id_or_prefix: &str) -> Result<()> {
        let record = self.get(id_or_prefix)?;
        ensure_may_manage(caller, &record)?;
        if !record.is_done() {
            return Err(Error::new(
                ErrorReason::FailedPrecondition,
                format!(
                    "request {} is still {}; cancel it first (sky api cancel {})",
                    record.id,
                    state_name(&record),
                    record.id
                ),
            ));
        }
        self.inner.store.delete_op(&record)?;
        self.inner.store.durable().await?;
        self.inner.logs.remove(&record.id)?;
        Ok(())
    }

    /// Waits up to `timeout` for the operation to finish; returns it either way.
    pub async fn wait(&self, id_or_prefix: &str, timeout: Duration) -> Result<OpRecord> {
        let id = self.resolve(id_or_prefix)?;
        if let Some(live) = self.live(&id) {
            let mut changes = live.subscribe();
            let finished = changes.wait_for(|record| record.is_done());
            let _ = tokio::time::timeout(timeout, finished).await;
        }
        self.get(&id)
    }

    /// Removes finished operations older than `cutoff_ms` (and their logs);
    /// returns how many were removed. Looks only at operations created
    /// before the cutoff (ids sort by creation): none created after it can
    /// have finished before it.
    pub async fn remove_finished_before(&self, cutoff_ms: i64) -> Result<usize> {
        let mut removed = 0;
        for (seen, record) in self.inner.store.ops_oldest_first().enumerate() {
            if seen % 256 == 255 {
                tokio::task::yield_now().await; // a long sweep never holds a worker
            }
            let record = record?;
            if record.created_ms >= cutoff_ms {
                break;
            }
            if record.is_done() && record.finished_ms < cutoff_ms {
                self.inner.store.delete_op(&record)?;
                self.inner.logs.remove(&record.id)?;
                removed += 1;
            }
        }
        if removed > 0 {
            self.inner.store.durable().await?;
        }
        Ok(removed)
    }

    /// Stops accepting work, lets running operations finish for up to
    /// `grace`, leaves the rest recoverable, and flushes the store.
    pub async fn shutdown(&self, grace: Duration) -> Result<()> {
        self.inner.accepting.store(false, Ordering::Release);
        self.inner.shutdown.cancel();
        self.inner.tasks.close();
        if tokio::time::timeout(grace, self.inner.tasks.wait()).await.is_err() {
            tracing::warn!(
                running = self.live_count(),
                "grace period over; unfinished operations are recovered at the next start"
            );
            self.inner.halt.cancel();
            self.inner.tasks.wait().await;
        }
        self.inner.store.durable().await
    }

    /// Operations not finished yet, counted by (kind, state, queue).
    pub fn live_summary(&self) -> Vec<(String, String, String, i64)> {
        let live: Vec<Arc<LiveOp>> =
            self.inner.live.lock().unwrap_or_else(|p| p.into_inner()).values().cloned().collect();
        let mut counts: HashMap<(String, String, String), i64> = HashMap::new();
        for op in live {
            let record = op.snapshot();
            let queue = match record.schedule() {
                Schedule::Long => "long",
                Schedule::Short | Schedule::Unspecified => "short",
            };
            *counts
                .entry((record.kind.clone(), state_name(&record).to_string(), queue.to_string()))
                .or_default() += 1;
        }
        counts.into_iter().map(|((kind, state, queue), count)| (kind, state, queue, count)).collect()
    }

    /// Number of operations not finished yet.
    pub fn live_count(&self) -> usize {
        self.inner.live.lock().unwrap_or_else(|p| p.into_inner()).len()
    }

    /// The full id for an id or unique id prefix (with or without "operations/").
    pub fn resolve(&self, id_or_prefix: &str) -> Result<String> {
        let prefix = id_or_prefix.strip_prefix("operations/").unwrap_or(id_or_prefix);
        if prefix.is_empty() {
            return Err(Error::invalid("name", "empty request id; give an id or a unique prefix of one"));
        }
        if prefix.len() > 36 || !prefix.chars().all(|c| c.is_ascii_hexdigit() || c == '-') {
            return Err(Error::invalid(
                "name",
                format!("{prefix:?} is not a request id (ids look like 0193a1b2-...)"),
            ));
        }
        let prefix = prefix.to_ascii_lowercase();
        let matches = self.inner.store.op_ids_with_prefix(&prefix, AMBIGUOUS_MATCHES_SHOWN + 1)?;
        match matches.as_slice() {
            [] => Err(not_found(&prefix)),
            [only] => Ok(only.clone()),
            several => {
                let shown = several[..several.len().min(AMBIGUOUS_MATCHES_SHOWN)].join(", ");
                let more = if several.len() > AMBIGUOUS_MATCHES_SHOWN { ", ..." } else { "" };
                Err(Error::new(
                    ErrorReason::AmbiguousId,
                    format!(
                        "request id prefix {prefix:?} matches several requests ({shown}{more}); \
                         give more characters"
                    ),
                ))
            }
        }
    }

    fn kind(&self, name: &str) -> Result<Arc<dyn OperationKind>> {
        self.inner
            .kinds
            .get(name)
            .cloned()
            .ok_or_else(|| Error::internal(format!("no operation kind {name:?} is registered")))
    }

    fn live(&self, id: &str) -> Option<Arc<LiveOp>> {
        self.inner.live.lock().unwrap_or_else(|p| p.into_inner()).get(id).cloned()
    }

    fn forget(&self, id: &str) {
        self.inner.live.lock().unwrap_or_else(|p| p.into_inner()).remove(id);
    }
}

/// Sets the terminal state, finish time and result of `record`.
fn finish(record: &mut OpRecord, outcome: Result<OpOutput>) {
    record.finished_ms = now_ms();
    match outcome {
        Ok(output) => {
            record.set_state(RequestState::Succeeded);
            record.response_type_url = output.type_url;
            record.response = output.value;
            record.status_message.clear();
        }
        Err(err) => {
            let state = if err.reason == ErrorReason::Cancelled {
                RequestState::Cancelled
            } else {
                RequestState::Failed
            };
            record.set_state(state);
            record.status_message = err.message.clone();
            record.error = Some(StoredError {
                reason: error_reason(err.reason).to_string(),
                retryable: is_retryable(err.reason),
                message: err.message,
            });
        }
    }
    let labels =
        crate::metrics::KindState { kind: record.kind.clone(), state: state_name(record).to_string() };
    crate::metrics::global().operations_finished.get_or_create(&labels).inc();
}

/// Refuses unless `caller` owns the operation or is an admin.
fn ensure_may_manage(caller: &Caller, record: &OpRecord) -> Result<()> {
    caller.ensure_may_manage(&record.user_id, &record.user_name, &format!("request {}", record.id))
}

fn validate_idempotency_key(key: &str) -> Result<()> {
    if key.chars().count() > MAX_IDEMPOTENCY_KEY_CHARS {
        return Err(Error::invalid(
            "idempotency_key",
            format!("longer than {MAX_IDEMPOTENCY_KEY_CHARS} characters"),
        ));
    }
    if key.chars().any(char::is_control) {
        return Err(Error::invalid("idempotency_key", "contains control characters"));
    }
    Ok(())
}

fn not_found(id: &str) -> Error {
    Error::not_found(format!(
        "no request with id {id:?}; `sky api status -a` lists requests (finished ones are kept \
         for a limited time)"
    ))
}

/// SkyPilot's spelling of a request's state.
pub fn state_name(record: &OpRecord) -> &'static str {
    skypilot_api::names::request_state(record.state())
}
