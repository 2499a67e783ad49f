//! Server-side figures under load: unary latency percentiles from 1 and 64
//! clients, RSS with many queued LONG requests, `WatchOperation` fan-out and
//! log streaming throughput.

use std::{
    sync::Arc,
    time::{Duration, Instant, SystemTime, UNIX_EPOCH},
};

use skypilot_api::{
    Client,
    client::request_metadata,
    proto::skypilot::v1::{
        ExecRequest, ListClustersRequest, ListRequestsRequest, TailJobLogsRequest, TaskSpec,
    },
};

use crate::{connect, process::Sky};

/// p50 and p99 of `samples`, in milliseconds.
fn percentiles(samples: &mut [Duration]) -> (f64, f64) {
    samples.sort();
    let at = |q: f64| samples[((samples.len() as f64 - 1.0) * q).round() as usize].as_secs_f64() * 1000.0;
    (at(0.50), at(0.99))
}

#[derive(Clone, Copy)]
pub enum Unary {
    ServerInfo,
    ListRequests,
    ClusterStatus,
}

impl Unary {
    pub fn name(self) -> &'static str {
        match self {
            Unary::ServerInfo => "get_server_info",
            Unary::ListRequests => "list_requests",
            Unary::ClusterStatus => "cluster_status",
        }
    }

    /// The method it calls, as the server's metrics name it.
    pub fn method(self) -> &'static str {
        match self {
            Unary::ServerInfo => "/skypilot.v1.ServerService/GetServerInfo",
            Unary::ListRequests => "/skypilot.v1.RequestService/ListRequests",
            Unary::ClusterStatus => "/skypilot.v1.ClusterService/ListClusters",
        }
    }

    async fn call(self, client: &Client) {
        match self {
            Unary::ServerInfo => {
                client.server_info().await.expect("server info");
            }
            Unary::ListRequests => {
                client
                    .list_requests(ListRequestsRequest { limit: 50, ..Default::default() })
                    .await
                    .expect("requests");
            }
            Unary::ClusterStatus => {
                client.list_clusters(ListClustersRequest::default()).await.expect("clusters");
            }
        }
    }
}

/// Latency percentiles of `call` with `clients` concurrent clients making
/// `per_client` calls each.
pub async fn unary_latency(sky: &Sky, call: Unary, clients: usize, per_client: usize) -> (f64, f64) {
    let mut tasks = Vec::new();
    for _ in 0..clients {
        let client = connect(sky).await;
        tasks.push(tokio::spawn(async move {
            call.call(&client).await; // warm up the connection
            let mut samples = Vec::with_capacity(per_client);
            for _ in 0..per_client {
                let started = Instant::now();
                call.call(&client).await;
                samples.push(started.elapsed());
            }
            samples
        }));
    }
    let mut all = Vec::new();
    for task in tasks {
        all.extend(task.await.expect("client task"));
    }
    percentiles(&mut all)
}

fn task(run: &str) -> TaskSpec {
    TaskSpec { run: run.into(), num_nodes: 1, ..Default::default() }
}

/// Submits `count` exec requests at once on `cluster` (they queue on it);
/// returns the server's RSS with all of them accepted, then waits for them.
pub async fn queued_long_requests(sky: &Sky, pid: u32, cluster: &str, count: usize) -> f64 {
    let client = Arc::new(connect(sky).await);
    let mut names = Vec::with_capacity(count);
    for _ in 0..count {
        let request = ExecRequest {
            cluster_name: cluster.into(),
            task: Some(task("true")),
            idempotency_key: String::new(),
        };
        names.push(client.exec(request).await.expect("exec").name);
    }
    let rss = crate::process::rss_mb(pid);
    for name in &names {
        client.wait_operation(name, Duration::from_secs(600)).await.expect("wait");
    }
    rss
}

/// Opens `watchers` WatchOperation streams on one request queued behind
/// `blockers` others on the same cluster; returns the time from its change to
/// done (server timestamp) until the last watcher saw it, in milliseconds.
pub async fn watch_fan_out(sky: &Sky, cluster: &str, watchers: usize, blockers: usize) -> f64 {
    let client = connect(sky).await;
    for _ in 0..blockers {
        let request = ExecRequest {
            cluster_name: cluster.into(),
            task: Some(task("true")),
            idempotency_key: String::new(),
        };
        client.exec(request).await.expect("exec");
    }
    let request = ExecRequest {
        cluster_name: cluster.into(),
        task: Some(task("true")),
        idempotency_key: String::new(),
    };
    let watched = client.exec(request).await.expect("exec").name;
    // Spread the streams over a few connections (HTTP/2 caps streams per connection).
    let mut connections = Vec::new();
    for _ in 0..16 {
        connections.push(Arc::new(connect(sky).await));
    }
    let mut tasks = Vec::new();
    let (ready_tx, mut ready_rx) = tokio::sync::mpsc::channel::<()>(watchers);
    for i in 0..watchers {
        let client = connections[i % connections.len()].clone();
        let name = watched.clone();
        let ready = ready_tx.clone();
        tasks.push(tokio::spawn(async move {
            let mut stream = client.watch_operation(&name).await.expect("watch");
            let _ = ready.send(()).await;
            let mut last = None;
            while let Some(update) = stream.message().await.expect("watch stream") {
                let op = update.operation.expect("operation");
                if op.done {
                    last = Some((SystemTime::now(), request_metadata(&op).expect("metadata").finish_time));
                }
            }
            last
        }));
    }
    drop(ready_tx);
    for _ in 0..watchers {
        ready_rx.recv().await;
    }
    let mut latest = Duration::ZERO;
    for task in tasks {
        let (seen, finished) = task.await.expect("watcher").expect("watcher saw the end");
        let finished = finished.expect("finish time");
        let finished = UNIX_EPOCH + Duration::new(finished.seconds as u64, finished.nanos as u32);
        latest = latest.max(seen.duration_since(finished).unwrap_or_default());
    }
    latest.as_secs_f64() * 1000.0
}

/// Runs a job that prints `megabytes` MB, then streams its whole log;
/// returns MB/s.
pub async fn log_throughput(sky: &Sky, cluster: &str, megabytes: usize) -> f64 {
    let client = connect(sky).await;
    let bytes = megabytes * 1_000_000;
    let run = format!("yes 'a line of job output, as a training loop would print it' | head -c {bytes}");
    let request =
        ExecRequest { cluster_name: cluster.into(), task: Some(task(&run)), idempotency_key: String::new() };
    let op = client.exec(request).await.expect("exec");
    client.wait_operation(&op.name, Duration::from_secs(600)).await.expect("wait");
    let jobs = client
        .list_jobs(skypilot_api::proto::skypilot::v1::ListJobsRequest {
            cluster_name: cluster.into(),
            all_users: true,
            page_size: 1,
            ..Default::default()
        })
        .await
        .expect("queue");
    let job_id = jobs.first().expect("job").job_id;
    // Wait for the job to end by following it, then time a full read.
    let follow =
        TailJobLogsRequest { cluster_name: cluster.into(), job_id, follow: true, ..Default::default() };
    let mut stream = client.tail_job_logs(follow).await.expect("tail");
    while stream.message().await.expect("tail stream").is_some() {}
    let started = Instant::now();
    let read =
        TailJobLogsRequest { cluster_name: cluster.into(), job_id, follow: false, ..Default::default() };
    let mut stream = client.tail_job_logs(read).await.expect("tail");
    let mut received = 0usize;
    while let Some(chunk) = stream.message().await.expect("tail stream") {
        received += chunk.data.len();
    }
    assert_eq!(received, bytes, "the whole log arrives");
    received as f64 / 1_000_000.0 / started.elapsed().as_secs_f64()
}

/// Follows the log of a job that prints nothing for a while with `followers`
/// streams, and returns the server's CPU use meanwhile, in % of one core.
pub async fn idle_followers_cpu(sky: &Sky, pid: u32, cluster: &str, followers: usize) -> f64 {
    let client = connect(sky).await;
    let request = ExecRequest {
        cluster_name: cluster.into(),
        task: Some(task("sleep 4")),
        idempotency_key: String::new(),
    };
    let op = client.exec(request).await.expect("exec");
    client.wait_operation(&op.name, Duration::from_secs(60)).await.expect("wait");
    let mut streams = Vec::new();
    for _ in 0..followers {
        let follow = TailJobLogsRequest {
            cluster_name: cluster.into(),
            job_id: 0,
            follow: true,
            ..Default::default()
        };
        streams.push(client.tail_job_logs(follow).await.expect("tail"));
    }
    tokio::time::sleep(Duration::from_millis(500)).await; // let every stream settle
    let (cpu_before, started) = (crate::process::cpu_seconds(pid), Instant::now());
    tokio::time::sleep(Duration::from_secs(2)).await;
    let used = crate::process::cpu_seconds(pid) - cpu_before;
    let percent = used / started.elapsed().as_secs_f64() * 100.0;
    for mut stream in streams {
        while stream.message().await.expect("tail stream").is_some() {}
    }
    percent
}
