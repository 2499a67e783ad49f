//! Group commit: callers that need their writes on disk ask for a flush; one
//! background task flushes sled once for everyone who asked while the previous
//! flush ran, so thousands of writes a second share a few fsyncs.

use tokio::sync::{mpsc, oneshot, watch};

use crate::error::{Error, ErrorReason, Result};

type Waiter = oneshot::Sender<Result<()>>;

/// Handle to the flushing task.
#[derive(Clone)]
pub struct Flusher {
    requests: mpsc::UnboundedSender<Waiter>,
    /// The first failed write: sled refuses every write after an I/O error
    /// until the database is opened again.
    failure: std::sync::Arc<watch::Sender<Option<Error>>>,
}

impl Flusher {
    /// Starts the flushing task for the store's database; it ends when every
    /// handle is dropped. It touches the database only while flushing, under
    /// the read lock, so closing the store waits for a flush under way.
    pub fn start(state: super::Shared) -> Flusher {
        let (requests, mut receiver) = mpsc::unbounded_channel::<Waiter>();
        let failure = std::sync::Arc::new(watch::channel(None).0);
        let failed = failure.clone();
        tokio::spawn(async move {
            while let Some(first) = receiver.recv().await {
                let mut waiters = vec![first];
                while let Ok(next) = receiver.try_recv() {
                    waiters.push(next);
                }
                let state = state.clone();
                let flush = move || {
                    let guard = state.read().unwrap_or_else(|p| p.into_inner());
                    match guard.as_ref() {
                        Some(open) => open.db.flush().map(|_| ()).map_err(Error::from),
                        None => Err(super::closed()),
                    }
                };
                let started = std::time::Instant::now();
                let result = match tokio::task::spawn_blocking(flush).await {
                    Ok(result) => result,
                    Err(err) => Err(Error::new(ErrorReason::Storage, format!("flush task: {err}"))),
                };
                crate::metrics::global().store_commit_latency.observe(started.elapsed().as_secs_f64());
                if let Err(err) = &result
                    && matches!(err.reason, ErrorReason::Storage | ErrorReason::StorageFull)
                {
                    record(&failed, err);
                }
                for waiter in waiters {
                    let _ = waiter.send(result.clone());
                }
            }
        });
        Flusher { requests, failure }
    }

    /// Notes a write that failed for lack of space (sled refuses writes from then on).
    pub fn report(&self, err: &Error) {
        if err.reason == ErrorReason::StorageFull {
            record(&self.failure, err);
        }
    }

    /// The first failed write, if one failed.
    pub fn failure(&self) -> Option<Error> {
        self.failure.borrow().clone()
    }

    /// Resolves with the error once a write has failed.
    pub async fn failed(&self) -> Error {
        let mut failure = self.failure.subscribe();
        match failure.wait_for(Option::is_some).await {
            Ok(failed) => failed.clone().expect("waited for a failure"),
            Err(_) => std::future::pending().await, // the flusher is gone: the store was closed
        }
    }

    /// Returns once everything written before this call is on disk.
    pub async fn flush(&self) -> Result<()> {
        let (done, wait) = oneshot::channel();
        self.requests.send(done).map_err(|_| Error::new(ErrorReason::Unavailable, "the store is closed"))?;
        wait.await.map_err(|_| Error::new(ErrorReason::Unavailable, "the store is closed"))?
    }
}

/// Keeps the first failure.
fn record(failure: &watch::Sender<Option<Error>>, err: &Error) {
    failure.send_if_modified(|first| first.is_none() && first.replace(err.clone()).is_none());
}
