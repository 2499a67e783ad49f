//! Job figures on the local infra: time from `sky exec` submission to the
//! job's start (server-side timestamps), and many jobs queued on one cluster.

use std::time::{Duration, Instant};

use skypilot_api::{
    Client,
    client::request_metadata,
    proto::skypilot::v1::{ExecRequest, JobStatus, ListJobsRequest, TaskSpec},
};

use crate::{connect, process::Sky};

fn trivial_task() -> TaskSpec {
    TaskSpec { run: "true".into(), num_nodes: 1, ..Default::default() }
}

/// Submits one trivial job and returns the time from the request's creation
/// to the job's start, as the server recorded them.
pub async fn exec_to_start(client: &Client, cluster: &str) -> Duration {
    let request = ExecRequest {
        cluster_name: cluster.into(),
        task: Some(trivial_task()),
        idempotency_key: String::new(),
    };
    let op = client.exec(request).await.expect("exec");
    let created = request_metadata(&op).expect("metadata").create_time.expect("created");
    client.wait_operation(&op.name, Duration::from_secs(60)).await.expect("wait");
    loop {
        let jobs = client
            .list_jobs(ListJobsRequest {
                cluster_name: cluster.into(),
                all_users: true,
                page_size: 1,
                ..Default::default()
            })
            .await
            .expect("queue");
        let latest = jobs.first().expect("a job");
        if let Some(started) = &latest.started_at {
            let nanos = (started.seconds - created.seconds) as i128 * 1_000_000_000
                + i128::from(started.nanos - created.nanos);
            return Duration::from_nanos(nanos.max(0) as u64);
        }
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
}

/// Queues `count` trivial jobs at once and waits for all of them; returns the
/// time taken and the server's peak RSS while they ran.
pub async fn queue_many(sky: &Sky, pid: u32, cluster: &str, count: usize) -> (Duration, f64) {
    queue_many_of(&connect(sky).await, pid, cluster, &trivial_task(), count).await
}

/// Queues `count` copies of `task` at once and waits for all of them; the
/// time taken and the server's peak RSS meanwhile.
pub async fn queue_many_of(
    client: &Client,
    pid: u32,
    cluster: &str,
    task: &TaskSpec,
    count: usize,
) -> (Duration, f64) {
    let started = Instant::now();
    let mut peak = crate::process::rss_mb(pid);
    let mut submitted = Vec::new();
    for _ in 0..count {
        let request = ExecRequest {
            cluster_name: cluster.into(),
            task: Some(task.clone()),
            idempotency_key: String::new(),
        };
        submitted.push(client.exec(request).await.expect("exec").name);
    }
    for name in &submitted {
        let op = client.wait_operation(name, Duration::from_secs(600)).await.expect("wait");
        assert!(op.done, "exec request {name} did not finish");
        peak = peak.max(crate::process::rss_mb(pid));
    }
    loop {
        peak = peak.max(crate::process::rss_mb(pid));
        let active = client
            .list_jobs(ListJobsRequest {
                cluster_name: cluster.into(),
                skip_finished: true,
                all_users: true,
                ..Default::default()
            })
            .await
            .expect("queue");
        if active.is_empty() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let all = client
        .list_jobs(ListJobsRequest { cluster_name: cluster.into(), all_users: true, ..Default::default() })
        .await
        .expect("queue");
    let failed = all.iter().filter(|j| j.status() != JobStatus::Succeeded).count();
    assert_eq!(failed, 0, "{failed} jobs did not succeed");
    (started.elapsed(), peak)
}
