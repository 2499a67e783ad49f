//! Time: the wall clock in milliseconds, as records store it, and a bounded
//! wait for a background task at shutdown.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use tokio::task::JoinHandle;

/// Milliseconds since the Unix epoch.
pub fn now_ms() -> i64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_millis() as i64).unwrap_or(0)
}

/// Waits for `task` to end, for at most `within`; then aborts it.
pub async fn join_within<T>(mut task: JoinHandle<T>, within: Duration) {
    if tokio::time::timeout(within, &mut task).await.is_err() {
        task.abort();
        let _ = task.await;
    }
}
