//! SSH node pool figures, on real OpenSSH servers started here (each on its
//! own loopback address with its own Unix user; needs root and
//! `/usr/sbin/sshd`): the time from `sky exec` to a two-node job running on
//! both hosts, with warm connections, and many jobs queued on a three-node
//! cluster spread over three hosts.

use std::time::Duration;

use skypilot_api::{
    Client,
    client::request_metadata,
    proto::skypilot::v1::{ExecRequest, JobStatus, ListJobsRequest, TailJobLogsRequest, TaskSpec},
};

use crate::{connect, process::Sky};

/// Prints the SSH figures, or why they cannot be measured here.
pub fn figures(sky_binary: std::path::PathBuf, samples: usize, queued: usize) {
    // SAFETY: geteuid has no preconditions.
    if unsafe { libc::geteuid() } != 0 || !std::path::Path::new("/usr/sbin/sshd").exists() {
        println!("ssh_pool: not measured (needs root and /usr/sbin/sshd, to start test hosts)");
        return;
    }
    let hosts = crate::ssh_hosts::SshHosts::start(3);
    let sky = Sky::new(sky_binary);
    let pools = sky.home().join(".sky/ssh_node_pools.yaml");
    std::fs::create_dir_all(pools.parent().expect("a folder")).expect("~/.sky");
    std::fs::copy(hosts.pool_file("lab"), &pools).expect("pool file");
    sky.run(&["api", "start"]);
    let pid = sky.server_pid();
    sky.run(&["ssh", "up"]);
    sky.run(&[
        "launch",
        "-c",
        "pair",
        "-y",
        "--infra",
        "ssh/lab",
        "--num-nodes",
        "2",
        "--cpus",
        "0.5",
        "-d",
        "true",
    ]);
    sky.run(&[
        "launch",
        "-c",
        "trio",
        "-y",
        "--infra",
        "ssh/lab",
        "--num-nodes",
        "3",
        "--cpus",
        "0.5",
        "-d",
        "true",
    ]);
    let runtime = tokio::runtime::Builder::new_multi_thread().enable_all().build().expect("runtime");
    runtime.block_on(async {
        let client = connect(&sky).await;
        let mut starts = Vec::new();
        for _ in 0..samples {
            starts.push(exec_to_start_on_every_node(&client, "pair", 2).await);
        }
        println!(
            "ssh_exec_to_job_start_on_2_hosts_median: {:.1} ms",
            crate::ms(crate::process::median(&mut starts))
        );
        let (elapsed, peak) =
            crate::jobs::queue_many_of(&client, pid, "trio", &task("true", 3), queued).await;
        println!("ssh_queued_jobs_on_3_hosts_finished: {queued} count");
        println!("ssh_queued_jobs_on_3_hosts_seconds: {:.2} s", elapsed.as_secs_f64());
        println!("ssh_server_rss_peak_queued_jobs: {peak:.1} MB");
    });
    for cluster in ["pair", "trio"] {
        sky.run(&["down", cluster, "-y"]);
    }
    sky.run(&["api", "stop"]);
}

fn task(run: &str, nodes: i32) -> TaskSpec {
    TaskSpec { run: run.into(), num_nodes: nodes, ..Default::default() }
}

/// Submits a job on `nodes` nodes that prints when it started on each, and
/// returns the time from the request's creation to its start on the last node.
pub(crate) async fn exec_to_start_on_every_node(client: &Client, cluster: &str, nodes: i32) -> Duration {
    let request = ExecRequest {
        cluster_name: cluster.into(),
        task: Some(task("date +%s%N", nodes)),
        idempotency_key: String::new(),
    };
    let op = client.exec(request).await.expect("exec");
    let created = request_metadata(&op).expect("metadata").create_time.expect("created");
    client.wait_operation(&op.name, Duration::from_secs(60)).await.expect("wait");
    let job = wait_until_done(client, cluster).await;
    let read =
        TailJobLogsRequest { cluster_name: cluster.into(), job_id: job, follow: false, ..Default::default() };
    let mut stream = client.tail_job_logs(read).await.expect("tail");
    let mut log = Vec::new();
    while let Some(chunk) = stream.message().await.expect("tail stream") {
        log.extend(chunk.data);
    }
    let starts: Vec<i128> = String::from_utf8_lossy(&log)
        .lines()
        .filter_map(|line| line.rsplit(' ').next()?.trim().parse().ok())
        .collect();
    assert_eq!(starts.len(), nodes as usize, "one start per node: {}", String::from_utf8_lossy(&log));
    let created = i128::from(created.seconds) * 1_000_000_000 + i128::from(created.nanos);
    let last = starts.into_iter().max().expect("a start");
    Duration::from_nanos((last - created).max(0) as u64)
}

/// Waits until the cluster's latest job has ended successfully; its id.
async fn wait_until_done(client: &Client, cluster: &str) -> i64 {
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
        match latest.status() {
            JobStatus::Succeeded => return latest.job_id,
            JobStatus::Pending | JobStatus::SettingUp | JobStatus::Running => {}
            other => panic!("job {} ended {other:?}: {}", latest.job_id, latest.message),
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}
