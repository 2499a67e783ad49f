//! The metrics figures: how long a Prometheus scrape of the local server's
//! `/metrics` takes (HTTP/1.1 on loopback, a new connection each time, as a
//! scraper makes), with the clusters and jobs the benchmark made so far, and
//! (`sky-bench --metrics`) with many clusters and jobs.

use std::{
    io::{Read, Write},
    time::{Duration, Instant},
};

use skypilot_api::proto::skypilot::v1::{LaunchRequest, Resources, TaskSpec};

use crate::{connect, process::Sky};

/// The local server's `/metrics` response (status line, headers and page),
/// on a new connection.
pub fn scrape(sky: &Sky) -> Vec<u8> {
    let address = sky.endpoint().trim_start_matches("http://").to_string();
    let mut stream = std::net::TcpStream::connect(&address).expect("connect to the server");
    write!(stream, "GET /metrics HTTP/1.1\r\nHost: {address}\r\nConnection: close\r\n\r\n").expect("request");
    let mut page = Vec::new();
    stream.read_to_end(&mut page).expect("response");
    assert!(page.starts_with(b"HTTP/1.1 200"), "{}", String::from_utf8_lossy(&page));
    page
}

/// The median wall time of `samples` scrapes, and the size of the last page.
pub fn scrape_median(sky: &Sky, samples: usize) -> (Duration, usize) {
    let mut times = Vec::with_capacity(samples);
    let mut size = 0;
    for _ in 0..samples {
        let started = Instant::now();
        size = scrape(sky).len();
        times.push(started.elapsed());
    }
    (crate::process::median(&mut times), size)
}

/// The server's own latency histogram of `method` (`/package.Service/Method`):
/// cumulative counts by upper bound in seconds.
pub fn server_latency_histogram(sky: &Sky, method: &str) -> Vec<(f64, u64)> {
    let page = String::from_utf8(scrape(sky)).expect("a text page");
    let wanted = format!("method=\"{method}\"");
    page.lines()
        .filter(|line| line.starts_with("skypilot_grpc_latency_seconds_bucket{") && line.contains(&wanted))
        .filter_map(|line| {
            let bound = line.split("le=\"").nth(1)?.split('"').next()?;
            let bound = if bound == "+Inf" { f64::INFINITY } else { bound.parse().ok()? };
            let count = line.rsplit(' ').next()?.parse().ok()?;
            Some((bound, count))
        })
        .collect()
}

/// The upper bound, in ms, of the bucket holding the `q` quantile of the
/// calls counted between two histograms of the same method.
pub fn server_quantile_bound(before: &[(f64, u64)], after: &[(f64, u64)], q: f64) -> f64 {
    let count_before = |bound: f64| before.iter().find(|(b, _)| *b == bound).map_or(0, |(_, c)| *c);
    let deltas: Vec<(f64, u64)> = after.iter().map(|(bound, c)| (*bound, c - count_before(*bound))).collect();
    let total = deltas.iter().map(|(_, c)| *c).max().unwrap_or(0);
    let rank = (total as f64 * q).ceil() as u64;
    deltas.iter().find(|(_, c)| *c >= rank.max(1)).map_or(f64::NAN, |(bound, _)| bound * 1000.0)
}

/// Launches `clusters` tiny clusters and `jobs` trivial jobs spread over
/// them (all finished); the number of jobs made.
pub async fn seed(sky: &Sky, clusters: usize, jobs: usize) -> usize {
    let client = connect(sky).await;
    let tiny = TaskSpec {
        run: "true".into(),
        num_nodes: 1,
        resources: Some(Resources { cpus: "0.001".into(), ..Default::default() }),
        ..Default::default()
    };
    let mut launches = Vec::new();
    for index in 0..clusters {
        let request = LaunchRequest {
            cluster_name: format!("m{index}"),
            task: Some(tiny.clone()),
            ..Default::default()
        };
        launches.push(client.launch(request).await.expect("launch").name);
    }
    for name in &launches {
        let op = client.wait_operation(name, Duration::from_secs(600)).await.expect("wait");
        assert!(op.done, "launch {name} did not finish");
    }
    let pid = sky.server_pid();
    let per_cluster = jobs.saturating_sub(clusters) / clusters.max(1);
    for index in 0..clusters {
        crate::jobs::queue_many_of(&client, pid, &format!("m{index}"), &tiny, per_cluster).await;
    }
    clusters + per_cluster * clusters
}

/// Seeds `clusters` clusters and `jobs` jobs, then prints the scrape figures.
pub async fn figures(sky: &Sky, clusters: usize, jobs: usize, samples: usize) {
    let made = seed(sky, clusters, jobs).await;
    let (scrape, size) = scrape_median(sky, samples);
    println!("metrics_scrape_{clusters}_clusters_{made}_jobs_median: {:.2} ms", crate::ms(scrape));
    println!("metrics_page_size_{clusters}_clusters: {:.1} KB", size as f64 / 1024.0);
}
