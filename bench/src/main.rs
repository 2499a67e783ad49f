//! `sky-bench [--quick | --uploads | --history | --managed | --pinned | --slurm | --metrics | --dashboard]`: starts a real local API server with the
//! `sky` binary next to this one (in a temporary HOME, on a free loopback
//! port) and prints one `name: value unit` line per figure. `--quick` runs
//! few iterations, to check that every figure is produced; `--uploads`,
//! `--history`, `--managed`, `--pinned` and `--slurm` run only the upload
//! figures, the cost of a cluster's history, the managed jobs figures, the
//! 64-client latency with the server on a CPU of its own, the Slurm
//! figures (on a Slurm started here), the metrics scrape with 200
//! clusters and 2,000 jobs, or the dashboard's first page with as many (in a
//! headless Chromium).

mod dashboard;
mod history;
mod jobs;
mod load;
mod managed;
mod metrics;
mod pinned;
mod process;
mod slurm;
mod ssh;

// Test hosts (SSH servers, a Slurm) and ports, shared with the tests.
#[path = "../../server/tests/common/ports.rs"]
mod ports;
#[path = "../../server/tests/common/slurm_cluster.rs"]
#[allow(dead_code)]
mod slurm_cluster;
#[path = "../../server/tests/common/ssh_hosts.rs"]
#[allow(dead_code)]
mod ssh_hosts;
#[path = "../../server/tests/common/unix_user.rs"]
#[allow(dead_code)]
mod unix_user;
mod uploads;

use std::{
    path::PathBuf,
    sync::Arc,
    time::{Duration, Instant},
};

use process::{Sky, median};
use skypilot_api::{Client, Endpoint, EndpointSource, identity::Identity, proto::skypilot::v1::CheckRequest};

struct Plan {
    cold_starts: usize,
    cli_runs: usize,
    short_ops: usize,
    clients: usize,
    exec_samples: usize,
    queued_jobs: usize,
    latency_calls: usize,
    long_requests: usize,
    watchers: usize,
    log_megabytes: usize,
    ssh_jobs: usize,
    upload_files: usize,
    large_upload_mb: usize,
    history_jobs: usize,
    managed_burst: usize,
    managed_running: usize,
}

fn main() {
    let quick = std::env::args().any(|arg| arg == "--quick");
    let plan = if quick {
        Plan {
            cold_starts: 3,
            cli_runs: 5,
            short_ops: 640,
            clients: 64,
            exec_samples: 3,
            queued_jobs: 20,
            latency_calls: 50,
            long_requests: 100,
            watchers: 100,
            log_megabytes: 5,
            ssh_jobs: 10,
            upload_files: 100,
            large_upload_mb: 50,
            history_jobs: 2_000,
            managed_burst: 100,
            managed_running: 10,
        }
    } else {
        Plan {
            cold_starts: 11,
            cli_runs: 31,
            short_ops: 20_000,
            clients: 64,
            exec_samples: 21,
            queued_jobs: 200,
            latency_calls: 2000,
            long_requests: 1000,
            watchers: 1000,
            log_megabytes: 200,
            ssh_jobs: 100,
            upload_files: 2000,
            large_upload_mb: 1000,
            history_jobs: 100_000,
            managed_burst: 1000,
            managed_running: 50,
        }
    };
    let sky = Sky::new(sky_binary());
    if std::env::args().any(|arg| arg == "--history") {
        history::figures(&sky, plan.history_jobs, plan.cli_runs, plan.queued_jobs.min(1000));
        return;
    }
    if std::env::args().any(|arg| arg == "--pinned") {
        pinned::figures(&sky, plan.latency_calls);
        return;
    }
    if std::env::args().any(|arg| arg == "--managed") {
        managed_figures(&sky, &plan);
        return;
    }
    if std::env::args().any(|arg| arg == "--metrics") {
        sky.run(&["api", "start"]);
        let runtime = tokio::runtime::Builder::new_multi_thread().enable_all().build().expect("runtime");
        runtime.block_on(metrics::figures(&sky, 200, 2_000, plan.cli_runs));
        sky.run(&["api", "stop"]);
        return;
    }
    if std::env::args().any(|arg| arg == "--dashboard") {
        sky.run(&["api", "start"]);
        dashboard::figures(&sky, 200, 2_000, 11);
        sky.run(&["api", "stop"]);
        return;
    }
    if std::env::args().any(|arg| arg == "--slurm") {
        slurm::figures(sky_binary(), plan.exec_samples);
        return;
    }
    if std::env::args().any(|arg| arg == "--uploads") {
        sky.run(&["api", "start"]);
        let runtime = tokio::runtime::Builder::new_multi_thread().enable_all().build().expect("runtime");
        runtime.block_on(upload_figures(&sky, plan.upload_files, plan.large_upload_mb));
        sky.run(&["api", "stop"]);
        return;
    }
    println!("mode: {}", if quick { "quick" } else { "full" });
    println!("cpus: {} count", std::thread::available_parallelism().map(|n| n.get()).unwrap_or(1));

    // Cold start: `sky api start` returns once the server reports SERVING.
    let mut starts = Vec::new();
    for _ in 0..plan.cold_starts {
        let run = sky.run(&["api", "start"]);
        starts.push(run.wall);
        sky.run(&["api", "stop"]);
    }
    println!("cold_start_median: {:.1} ms", ms(median(&mut starts)));

    sky.run(&["api", "start"]);
    let pid = sky.server_pid();
    let runtime = tokio::runtime::Builder::new_multi_thread().enable_all().build().expect("runtime");
    runtime.block_on(async {
        let client = connect(&sky).await;
        for _ in 0..10 {
            let op = client.check(CheckRequest::default()).await.expect("check");
            client.wait_operation(&op.name, Duration::from_secs(60)).await.expect("wait");
        }
    });
    std::thread::sleep(Duration::from_millis(200)); // let the server settle before sampling
    println!("idle_server_rss: {:.1} MB", process::rss_mb(pid));

    let mut walls = Vec::new();
    let mut peak = 0.0f64;
    for _ in 0..plan.cli_runs {
        let run = sky.run(&["api", "status"]);
        walls.push(run.wall);
        peak = peak.max(run.max_rss_mb);
    }
    println!("cli_api_status_median: {:.1} ms", ms(median(&mut walls)));
    println!("cli_api_status_peak_rss: {:.1} MB", peak);

    let (elapsed, done) = runtime.block_on(short_ops(&sky, plan.short_ops, plan.clients));
    println!("short_ops_completed: {done} count");
    println!("short_ops_per_second: {:.0} ops/s", done as f64 / elapsed.as_secs_f64());
    println!("server_rss_after_load: {:.1} MB", process::rss_mb(pid));

    sky.run(&["launch", "-c", "bench", "-y", "--cpus", "1", "-d", "true"]);
    let mut starts = Vec::new();
    let mut walls = Vec::new();
    let mut status_peak = 0.0f64;
    for _ in 0..plan.cli_runs {
        let run = sky.run(&["status"]);
        walls.push(run.wall);
        status_peak = status_peak.max(run.max_rss_mb);
    }
    println!("cli_status_median: {:.1} ms", ms(median(&mut walls)));
    println!("cli_status_peak_rss: {:.1} MB", status_peak);
    let mut walls = Vec::new();
    let mut queue_peak = 0.0f64;
    for _ in 0..plan.cli_runs {
        let run = sky.run(&["queue", "bench"]);
        walls.push(run.wall);
        queue_peak = queue_peak.max(run.max_rss_mb);
    }
    println!("cli_queue_median: {:.1} ms", ms(median(&mut walls)));
    println!("cli_queue_peak_rss: {:.1} MB", queue_peak);
    runtime.block_on(async {
        let client = connect(&sky).await;
        for _ in 0..plan.exec_samples {
            starts.push(jobs::exec_to_start(&client, "bench").await);
        }
    });
    println!("exec_to_job_start_median: {:.1} ms", ms(median(&mut starts)));
    let (elapsed, rss_peak) = runtime.block_on(jobs::queue_many(&sky, pid, "bench", plan.queued_jobs));
    println!("queued_jobs_finished: {} count", plan.queued_jobs);
    println!("queued_jobs_seconds: {:.2} s", elapsed.as_secs_f64());
    println!("server_rss_peak_queued_jobs: {rss_peak:.1} MB");
    let (scrape, size) = metrics::scrape_median(&sky, plan.cli_runs);
    println!("metrics_scrape_median: {:.2} ms", ms(scrape));
    println!("metrics_page_size: {:.1} KB", size as f64 / 1024.0);

    runtime.block_on(async {
        for call in [load::Unary::ServerInfo, load::Unary::ListRequests, load::Unary::ClusterStatus] {
            let (p50, p99) = load::unary_latency(&sky, call, 1, plan.latency_calls).await;
            println!("{}_1_client_p50: {p50:.3} ms", call.name());
            println!("{}_1_client_p99: {p99:.3} ms", call.name());
            let before = metrics::server_latency_histogram(&sky, call.method());
            let (p50, p99) = load::unary_latency(&sky, call, 64, plan.latency_calls / 10).await;
            let after = metrics::server_latency_histogram(&sky, call.method());
            println!("{}_64_clients_p50: {p50:.3} ms", call.name());
            println!("{}_64_clients_p99: {p99:.3} ms", call.name());
            // The server's share alone: from a call reaching its layers to its
            // answer, as its own histogram counts it (bucket bounds double).
            for (q, name) in [(0.5, "p50"), (0.99, "p99")] {
                let bound = metrics::server_quantile_bound(&before, &after, q);
                println!("{}_64_clients_server_{name}_at_most: {bound:.1} ms", call.name());
            }
        }
        let rss = load::queued_long_requests(&sky, pid, "bench", plan.long_requests).await;
        println!("server_rss_{}_queued_long_requests: {rss:.1} MB", plan.long_requests);
        let fan_out = load::watch_fan_out(&sky, "bench", plan.watchers, 20).await;
        println!("watch_fan_out_{}_watchers: {fan_out:.1} ms", plan.watchers);
        let throughput = load::log_throughput(&sky, "bench", plan.log_megabytes).await;
        println!("job_log_stream_throughput: {throughput:.0} MB/s");
        let cpu = load::idle_followers_cpu(&sky, pid, "bench", plan.watchers).await;
        println!("idle_log_followers_{}_server_cpu: {cpu:.1} %", plan.watchers);
        upload_figures(&sky, plan.upload_files, plan.large_upload_mb).await;
    });
    println!("server_rss_end: {:.1} MB", process::rss_mb(pid));

    sky.run(&["down", "bench", "-y"]);
    sky.run(&["api", "stop"]);

    history::figures(&sky, plan.history_jobs, plan.cli_runs, plan.queued_jobs.min(1000));
    managed_figures(&sky, &plan);
    ssh::figures(sky_binary(), plan.exec_samples, plan.ssh_jobs);
    slurm::figures(sky_binary(), plan.exec_samples);
}

fn managed_figures(sky: &Sky, plan: &Plan) {
    sky.run(&["api", "start"]);
    let runtime = tokio::runtime::Builder::new_multi_thread().enable_all().build().expect("runtime");
    let window = Duration::from_secs(if plan.managed_running < 50 { 2 } else { 10 });
    runtime.block_on(managed::figures(sky, plan.managed_burst, plan.managed_running, window));
    sky.run(&["api", "stop"]);
}

async fn upload_figures(sky: &Sky, files: usize, large_mb: usize) {
    let client = connect(sky).await;
    let figures = uploads::figures(&client, sky.server_pid(), files, large_mb).await;
    println!("upload_{files}_files_of_100_kb_throughput: {:.0} MB/s", figures.throughput);
    println!("upload_{files}_files_listing_and_hashing: {:.1} ms", figures.scan_ms);
    println!("upload_unchanged_again: {:.1} ms", figures.unchanged_ms);
    println!("server_rss_peak_during_{large_mb}_mb_upload: {:.1} MB", figures.peak_rss);
    println!("upload_{large_mb}_mb_of_10_mb_files_throughput: {:.0} MB/s", figures.large_throughput);
}

/// Submits `total` `sky check` requests from `clients` concurrent clients, each
/// waiting for its request to finish before the next; returns the time taken.
async fn short_ops(sky: &Sky, total: usize, clients: usize) -> (Duration, usize) {
    let per_client = total.div_ceil(clients);
    let mut connected = Vec::new();
    for _ in 0..clients {
        connected.push(Arc::new(connect(sky).await));
    }
    let started = Instant::now();
    let mut tasks = Vec::new();
    for client in connected {
        tasks.push(tokio::spawn(async move {
            let mut done = 0;
            for _ in 0..per_client {
                let op = client.check(CheckRequest::default()).await.expect("submit");
                let op = client.wait_operation(&op.name, Duration::from_secs(60)).await.expect("wait");
                assert!(op.done, "operation did not finish");
                done += 1;
            }
            done
        }));
    }
    let mut done = 0;
    for task in tasks {
        done += task.await.expect("client task");
    }
    (started.elapsed(), done)
}

pub(crate) async fn connect(sky: &Sky) -> Client {
    let endpoint = Endpoint::parse(&sky.endpoint(), EndpointSource::Env).expect("endpoint");
    let me = Identity { name: "bench".into(), id: "be0c0000".into() };
    Client::connect(&endpoint, &me).await.expect("connect")
}

fn sky_binary() -> PathBuf {
    let exe = std::env::current_exe().expect("own path");
    let sky = exe.with_file_name("sky");
    assert!(sky.exists(), "{} not found: build it first (cargo build --release)", sky.display());
    sky
}

fn ms(duration: Duration) -> f64 {
    duration.as_secs_f64() * 1000.0
}
