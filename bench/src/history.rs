//! Cost with history: the same work on a cluster while it is new and once
//! it has a long history of finished jobs (written straight into the
//! stopped server's store, as months of use would leave it).

use std::time::{Duration, Instant};

use skypilot_api::proto::skypilot::v1::{ExecRequest, JobStatus, ListJobsRequest, TaskSpec};
use skypilot_server::{ClusterRecord, JobRecord, Store, Table};

use crate::{
    connect, ms,
    process::{Sky, median, rss_mb},
};

const CLUSTER: &str = "hist";

/// What one round measured.
struct Round {
    exec_detached: Duration,
    queue: Duration,
    submissions_per_second: f64,
}

pub fn figures(sky: &Sky, history: usize, samples: usize, batch: usize) {
    let runtime = tokio::runtime::Builder::new_multi_thread().enable_all().build().expect("runtime");
    sky.run(&["api", "start"]);
    sky.run(&["launch", "-c", CLUSTER, "-y", "--cpus", "1", "true"]);
    let new = measure(sky, &runtime, samples, batch);
    sky.run(&["api", "stop"]);
    runtime.block_on(add_history(&sky.home().join(".sky/api_server/db"), history));
    sky.run(&["api", "start"]);
    let old = measure(sky, &runtime, samples, batch);
    let rss = rss_mb(sky.server_pid());
    println!("history_jobs: {history} count");
    println!("history_exec_detached_median_new: {:.1} ms", ms(new.exec_detached));
    println!("history_exec_detached_median_with_history: {:.1} ms", ms(old.exec_detached));
    println!("history_queue_median_new: {:.1} ms", ms(new.queue));
    println!("history_queue_median_with_history: {:.1} ms", ms(old.queue));
    println!("history_submissions_per_second_new: {:.0} /s", new.submissions_per_second);
    println!("history_submissions_per_second_with_history: {:.0} /s", old.submissions_per_second);
    println!("history_server_rss: {rss:.1} MB");
    sky.run(&["down", CLUSTER, "-y"]);
    sky.run(&["api", "stop"]);
}

fn measure(sky: &Sky, runtime: &tokio::runtime::Runtime, samples: usize, batch: usize) -> Round {
    let mut execs: Vec<Duration> =
        (0..samples).map(|_| sky.run(&["exec", CLUSTER, "-d", "true"]).wall).collect();
    let mut queues: Vec<Duration> = (0..samples).map(|_| sky.run(&["queue", CLUSTER]).wall).collect();
    let submissions_per_second = runtime.block_on(async {
        let client = connect(sky).await;
        let started = Instant::now();
        let mut names = Vec::new();
        for _ in 0..batch {
            let task = TaskSpec { run: "true".into(), num_nodes: 1, ..Default::default() };
            let request =
                ExecRequest { cluster_name: CLUSTER.into(), task: Some(task), ..Default::default() };
            names.push(client.exec(request).await.expect("exec").name);
        }
        for name in &names {
            client.wait_operation(name, Duration::from_secs(600)).await.expect("wait");
        }
        let rate = batch as f64 / started.elapsed().as_secs_f64();
        // The next round starts with nothing running.
        loop {
            let active = ListJobsRequest {
                cluster_name: CLUSTER.into(),
                skip_finished: true,
                all_users: true,
                ..Default::default()
            };
            if client.list_jobs(active).await.expect("queue").is_empty() {
                break;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        rate
    });
    Round { exec_detached: median(&mut execs), queue: median(&mut queues), submissions_per_second }
}

/// Gives the cluster `count` finished jobs of its owner before its next job.
async fn add_history(db: &std::path::Path, count: usize) {
    let store = Store::open(db).expect("the stopped server's store");
    let mut cluster: ClusterRecord =
        store.get(Table::Clusters, CLUSTER.as_bytes()).expect("read").expect("cluster");
    let first = cluster.next_job_id;
    for job_id in first..first + count as i64 {
        let mut key = format!("{CLUSTER}\0").into_bytes();
        key.extend_from_slice(&job_id.to_be_bytes());
        let job = JobRecord {
            job_id,
            cluster: CLUSTER.into(),
            status: JobStatus::Succeeded as i32,
            cpus: 0.1,
            user_id: cluster.user_id.clone(),
            user_name: cluster.user_name.clone(),
            ..Default::default()
        };
        store.put(Table::Jobs, &key, &job).expect("write");
    }
    cluster.next_job_id = first + count as i64;
    store.put(Table::Clusters, CLUSTER.as_bytes(), &cluster).expect("write");
    store.durable().await.expect("durable");
    store.close().expect("close");
}
