//! Autostop: a cluster idle (no pending or running job) for its set minutes
//! is stopped, or torn down, by a `sky.stop` / `sky.down` request submitted
//! on behalf of its owner, so that it queues behind other work on the cluster.

use std::{collections::HashMap, time::Duration};

use skypilot_api::proto::skypilot::v1::{ClusterActionRequest, ClusterStatus};

use super::cluster::{DOWN, STOP};
use crate::{
    auth::Caller,
    clock::now_ms,
    clusters::Clusters,
    ops::{Engine, Submission},
};

/// Checks every `interval` for clusters whose autostop is due.
pub async fn autostop_loop(clusters: Clusters, engine: Engine, interval: Duration) {
    // Cluster -> the autostop request submitted for it and not finished yet.
    let mut submitted: HashMap<String, String> = HashMap::new();
    let shutdown = clusters.shutting_down();
    loop {
        tokio::select! {
            _ = tokio::time::sleep(interval) => {}
            _ = shutdown.cancelled() => return,
        }
        submitted.retain(|_, id| engine.get(id).is_ok_and(|op| !op.is_done()));
        let Ok(all) = clusters.list(&[], None) else { continue };
        for cluster in all {
            let due = cluster.status() == ClusterStatus::Up
                && cluster.autostop_idle_minutes >= 0
                && cluster.idle_since_ms > 0
                && now_ms() - cluster.idle_since_ms >= i64::from(cluster.autostop_idle_minutes) * 60_000;
            if !due || submitted.contains_key(&cluster.name) {
                continue;
            }
            let kind = if cluster.autostop_down { DOWN } else { STOP };
            let request = ClusterActionRequest { cluster_name: cluster.name.clone(), ..Default::default() };
            let owner = Caller::owner(&cluster.user_name, &cluster.user_id);
            match engine.submit(Submission::new(kind, owner, &request)).await {
                Ok(op) => {
                    tracing::info!(cluster = %cluster.name, request = %op.id, "autostop: cluster idle, {kind}");
                    submitted.insert(cluster.name.clone(), op.id);
                }
                Err(err) => {
                    tracing::warn!(cluster = %cluster.name, error = %err, "autostop could not submit")
                }
            }
        }
    }
}
