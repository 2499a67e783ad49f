//! Group commit: callers that need their writes on disk ask for a flush; one
//! background task flushes sled once for everyone who asked while the previous
//! flush ran, so thousands of writes a second share a few fsyncs.

use tokio::sync::{mpsc, oneshot};

use crate::error::{Error, ErrorKind, Result};

type Waiter = oneshot::Sender<Result<()>>;

/// Handle to the flushing task.
#[derive(Clone)]
pub struct Flusher {
    requests: mpsc::UnboundedSender<Waiter>,
}

impl Flusher {
    /// Starts the flushing task for the store's database; it ends when every
    /// handle is dropped. It touches the database only while flushing, under
    /// the read lock, so closing the store waits for a flush under way.
    pub fn start(state: super::Shared) -> Flusher {
        let (requests, mut receiver) = mpsc::unbounded_channel::<Waiter>();
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
                let result = match tokio::task::spawn_blocking(flush).await {
                    Ok(result) => result,
                    Err(err) => Err(Error::new(ErrorKind::Storage, format!("flush task: {err}"))),
                };
                for waiter in waiters {
                    let _ = waiter.send(result.clone());
                }
            }
        });
        Flusher { requests }
    }

    /// Returns once everything written before this call is on disk.
    pub async fn flush(&self) -> Result<()> {
        let (done, wait) = oneshot::channel();
        self.requests.send(done).map_err(|_| Error::new(ErrorKind::Unavailable, "the store is closed"))?;
        wait.await.map_err(|_| Error::new(ErrorKind::Unavailable, "the store is closed"))?
    }
}
