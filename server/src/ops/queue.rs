//! Scheduling: the LONG and SHORT queues, each a fair semaphore with its own
//! bound, and per-cluster turns so that operations on one cluster run one at
//! a time in submission order while different clusters run in parallel.

use std::{
    collections::HashMap,
    sync::{Arc, Mutex},
};

use skypilot_api::proto::skypilot::v1::Schedule;
use tokio::sync::{OwnedSemaphorePermit, Semaphore, oneshot};

/// For each cluster: the last operation in line and the receiver that fires
/// when it is done.
type Tails = Arc<Mutex<HashMap<String, (String, oneshot::Receiver<()>)>>>;

/// The two queues and the per-cluster turn chains.
pub struct Queues {
    long: Arc<Semaphore>,
    short: Arc<Semaphore>,
    tails: Tails,
}

impl Queues {
    pub fn new(long_workers: usize, short_workers: usize) -> Queues {
        Queues {
            long: Arc::new(Semaphore::new(long_workers.max(1))),
            short: Arc::new(Semaphore::new(short_workers.max(1))),
            tails: Arc::default(),
        }
    }

    /// Waits for a worker slot on `schedule`'s queue (FIFO).
    pub async fn worker(&self, schedule: Schedule) -> OwnedSemaphorePermit {
        let semaphore = match schedule {
            Schedule::Long => &self.long,
            Schedule::Short | Schedule::Unspecified => &self.short,
        };
        semaphore.clone().acquire_owned().await.expect("queue semaphores are never closed")
    }

    /// Puts `op_id` in line on `cluster`. Must be called in submission order.
    pub fn join_cluster(&self, cluster: &str, op_id: &str) -> ClusterTurn {
        let (release, done) = oneshot::channel();
        let mut tails = self.tails.lock().unwrap_or_else(|p| p.into_inner());
        let previous = tails.insert(cluster.to_string(), (op_id.to_string(), done)).map(|(_, rx)| rx);
        ClusterTurn {
            cluster: cluster.to_string(),
            op_id: op_id.to_string(),
            previous,
            _release: release,
            tails: self.tails.clone(),
        }
    }
}

/// A place in a cluster's line. Dropping it lets the next operation go.
pub struct ClusterTurn {
    cluster: String,
    op_id: String,
    previous: Option<oneshot::Receiver<()>>,
    _release: oneshot::Sender<()>,
    tails: Tails,
}

impl ClusterTurn {
    /// Returns once every earlier operation on the cluster has finished.
    pub async fn wait(&mut self) {
        if let Some(previous) = self.previous.take() {
            // The sender is never used: it is dropped when the earlier
            // operation is done, which ends this wait either way.
            let _ = previous.await;
        }
    }
}

impl Drop for ClusterTurn {
    fn drop(&mut self) {
        let mut tails = self.tails.lock().unwrap_or_else(|p| p.into_inner());
        if tails.get(&self.cluster).is_some_and(|(last, _)| *last == self.op_id) {
            tails.remove(&self.cluster);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_cluster_turn_waits_for_the_previous_operation() {
        let queues = Queues::new(1, 1);
        let first = queues.join_cluster("c", "1");
        let mut second = queues.join_cluster("c", "2");
        let mut other = queues.join_cluster("d", "3");
        other.wait().await; // another cluster does not wait
        let waiting = tokio::spawn(async move { second.wait().await });
        tokio::task::yield_now().await;
        assert!(!waiting.is_finished());
        drop(first);
        waiting.await.unwrap();
    }

    #[tokio::test]
    async fn finished_lines_leave_no_entry_behind() {
        let queues = Queues::new(1, 1);
        drop(queues.join_cluster("c", "1"));
        assert!(queues.tails.lock().unwrap().is_empty());
    }
}
