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
    /// Starts the flushing task for `db`; it ends when every handle is dropped.
    pub fn start(db: sled::Db) -> Flusher {
        let (requests, mut receiver) = mpsc::unbounded_channel::<Waiter>();
        tokio::spawn(async move {
            while let Some(first) = receiver.recv().await {
                let mut waiters = vec![first];
                while let Ok(next) = receiver.try_recv() {
                    waiters.push(next);
                }
                let db = db.clone();
                let result = match tokio::task::spawn_blocking(move || db.flush()).await {
                    Ok(Ok(_)) => Ok(()),
                    Ok(Err(err)) => Err(Error::from(err)),
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
        self.requests
            .send(done)
            .map_err(|_| Error::new(ErrorKind::Unavailable, "the store is closed"))?;
        wait.await
            .map_err(|_| Error::new(ErrorKind::Unavailable, "the store is closed"))?
    }
}
