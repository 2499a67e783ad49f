//! Managed jobs: how fast a burst of submissions is accepted and what the
//! server holds while they queue; then the controller's own CPU for each
//! running job (the jobs' processes are not the server's).

use std::time::{Duration, Instant};

use skypilot_api::proto::skypilot::v1::{
    CancelManagedJobsRequest, LaunchManagedJobRequest, ListManagedJobsRequest, ManagedJobStatus, Resources,
    TaskSpec,
};

use crate::{
    connect,
    process::{Sky, cpu_seconds, rss_mb},
};

/// Concurrent clients of the burst.
const CLIENTS: usize = 64;

fn task(cpus: &str, run: &str) -> TaskSpec {
    TaskSpec {
        run: run.into(),
        num_nodes: 1,
        resources: Some(Resources { cpus: cpus.into(), ..Default::default() }),
        ..Default::default()
    }
}

/// `window`: how long CPU and memory are sampled, while jobs queue and while they run.
pub async fn figures(sky: &Sky, burst: usize, running: usize, window: Duration) {
    let pid = sky.server_pid();
    let client = connect(sky).await;
    let host_cpus = std::thread::available_parallelism().map(|n| n.get()).unwrap_or(1).to_string();

    // A burst: each job asks for the whole host, so all but one queue.
    let started = Instant::now();
    let per_client = burst.div_ceil(CLIENTS);
    let mut clients = tokio::task::JoinSet::new();
    for c in 0..CLIENTS {
        let (client, cpus) = (client.clone(), host_cpus.clone());
        clients.spawn(async move {
            let mut names = Vec::new();
            for _ in 0..per_client.min(burst.saturating_sub(c * per_client)) {
                let request = LaunchManagedJobRequest {
                    tasks: vec![task(&cpus, "sleep 600")],
                    name: "burst".into(),
                    ..Default::default()
                };
                names.push(client.launch_managed_job(request).await.expect("launch").name);
            }
            for name in &names {
                let op = client.wait_operation(name, Duration::from_secs(120)).await.expect("wait");
                assert!(op.done, "submission {name} not accepted");
            }
            names.len()
        });
    }
    let accepted: usize = clients.join_all().await.iter().sum();
    let accept_seconds = started.elapsed().as_secs_f64();
    let mut rss_peak = rss_mb(pid);
    let cpu_before = cpu_seconds(pid);
    let settle = Instant::now();
    while settle.elapsed() < window {
        rss_peak = rss_peak.max(rss_mb(pid));
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let queued_cpu = (cpu_seconds(pid) - cpu_before) / settle.elapsed().as_secs_f64() * 100.0;
    println!("managed_jobs_burst_accepted: {accepted} count");
    println!("managed_jobs_burst_accept_seconds: {accept_seconds:.2} s");
    println!("managed_jobs_burst_server_rss_peak: {rss_peak:.1} MB");
    println!("managed_jobs_burst_queued_server_cpu: {queued_cpu:.1} %");
    cancel_all(&client).await;

    // Running jobs, each printing a line a second.
    let share = format!("{:.3}", 1.0 / running as f64);
    for _ in 0..running {
        let request = LaunchManagedJobRequest {
            tasks: vec![task(&share, "while true; do echo tick; sleep 1; done")],
            name: "steady".into(),
            ..Default::default()
        };
        client.launch_managed_job(request).await.expect("launch");
    }
    let deadline = Instant::now() + Duration::from_secs(120);
    loop {
        let page = client
            .list_managed_jobs(ListManagedJobsRequest { skip_finished: true, ..Default::default() })
            .await
            .expect("list");
        let up = page.jobs.iter().filter(|job| job.status() == ManagedJobStatus::Running).count();
        if up >= running {
            break;
        }
        assert!(Instant::now() < deadline, "only {up} of {running} managed jobs came up");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let cpu_before = cpu_seconds(pid);
    tokio::time::sleep(window).await;
    let per_job = (cpu_seconds(pid) - cpu_before) / window.as_secs_f64() * 100.0 / running as f64;
    println!("managed_jobs_running: {running} count");
    println!("managed_jobs_controller_cpu_per_running_job: {per_job:.3} %");
    println!("managed_jobs_server_rss_running: {:.1} MB", rss_mb(pid));
    cancel_all(&client).await;
}

/// Cancels every unfinished managed job and waits for the cancel to end.
async fn cancel_all(client: &skypilot_api::Client) {
    let op = client
        .cancel_managed_jobs(CancelManagedJobsRequest { all: true, ..Default::default() })
        .await
        .expect("cancel");
    client.wait_operation(&op.name, Duration::from_secs(600)).await.expect("cancel ends");
}
