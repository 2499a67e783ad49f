//! Prometheus metrics scraped by a real Prometheus (Debian's `prometheus`,
//! started by the test with a configuration of its own): the server's
//! `--metrics-port` is scraped every second, and a PromQL query over what
//! was scraped counts the calls the test made through the real `sky` binary.

mod common;

use std::{
    io::{Read, Write},
    path::Path,
    process::{Child, Command, Stdio},
    time::{Duration, Instant},
};

use common::{ServerProcess, quiet_port, sky_at};

const PROMETHEUS: &str = "/usr/bin/prometheus";

/// A plain HTTP GET on loopback: the body (empty when nothing listens there yet).
fn get(port: u16, path: &str) -> String {
    let Ok(mut stream) = std::net::TcpStream::connect(("127.0.0.1", port)) else { return String::new() };
    write!(stream, "GET {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nConnection: close\r\n\r\n").unwrap();
    let mut response = String::new();
    stream.read_to_string(&mut response).unwrap();
    response.split_once("\r\n\r\n").map(|(_, body)| body.to_string()).unwrap_or_default()
}

/// `text` with what a URL's query may not hold escaped.
fn url_escape(text: &str) -> String {
    text.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => (b as char).to_string(),
            _ => format!("%{b:02X}"),
        })
        .collect()
}

/// The value of an instant PromQL query that gives one sample, once it gives one.
fn query(prometheus: u16, promql: &str) -> Option<String> {
    let body = get(prometheus, &format!("/api/v1/query?query={}", url_escape(promql)));
    let value = body.split("\"value\":[").nth(1)?;
    Some(value.split(',').nth(1)?.trim_matches(|c| c == '"' || c == ']' || c == '}').to_string())
}

struct Prometheus {
    child: Child,
    port: u16,
    _dir: tempfile::TempDir,
}

impl Prometheus {
    /// Starts Prometheus scraping `target` (host:port) every second.
    fn start(target: &str) -> Prometheus {
        assert!(
            Path::new(PROMETHEUS).exists(),
            "{PROMETHEUS} is missing: install prometheus (scripts/test.sh does)"
        );
        let dir = tempfile::tempdir().unwrap();
        let config = dir.path().join("prometheus.yml");
        std::fs::write(
            &config,
            format!(
                "global:\n  scrape_interval: 1s\n  evaluation_interval: 1s\nscrape_configs:\n  - job_name: skypilot\n    \
                 static_configs:\n      - targets: ['{target}']\n"
            ),
        )
        .unwrap();
        let port = quiet_port();
        let child = Command::new(PROMETHEUS)
            .arg(format!("--config.file={}", config.display()))
            .arg(format!("--storage.tsdb.path={}", dir.path().join("data").display()))
            .arg(format!("--web.listen-address=127.0.0.1:{port}"))
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(dir.path().join("prometheus.log")).unwrap())
            .spawn()
            .unwrap();
        Prometheus { child, port, _dir: dir }
    }
}

impl Drop for Prometheus {
    fn drop(&mut self) {
        // SAFETY: kill has no memory preconditions; the pid is our own child's.
        unsafe { libc::kill(self.child.id() as i32, libc::SIGTERM) };
        let _ = self.child.wait();
    }
}

#[test]
fn a_real_prometheus_scrapes_the_metrics_port_and_counts_the_calls_the_test_made() {
    let home = tempfile::tempdir().unwrap();
    let metrics_port = quiet_port();
    let server = ServerProcess::start_with_flags(
        home.path(),
        &home.path().join("data"),
        &["--metrics-port", &metrics_port.to_string()],
    );
    sky_at(home.path(), server.port, &["launch", "-c", "seen", "-y", "--cpus", "0.5", "echo hello"]).ok();
    let page = get(metrics_port, "/metrics");
    assert!(page.contains("skypilot_clusters{infra=\"local\",state=\"UP\"} 1"), "{page}");
    assert!(page.contains("skypilot_jobs_finished_total{infra=\"local\",state=\"SUCCEEDED\"} 1"), "{page}");
    assert!(
        page.contains("skypilot_operations_finished_total{kind=\"sky.launch\",state=\"SUCCEEDED\"} 1"),
        "{page}"
    );
    let listed =
        "skypilot_grpc_calls_total{method=\"/skypilot.v1.ClusterService/ListClusters\",code=\"OK\"} ";
    let before: u64 =
        page.lines().find_map(|line| line.strip_prefix(listed)).map_or(0, |n| n.trim().parse().unwrap());
    let calls = 7;
    for _ in 0..calls {
        sky_at(home.path(), server.port, &["status"]).ok();
    }

    let prometheus = Prometheus::start(&format!("127.0.0.1:{metrics_port}"));
    let promql =
        "sum(skypilot_grpc_calls_total{method=\"/skypilot.v1.ClusterService/ListClusters\",code=\"OK\"})";
    let deadline = Instant::now() + Duration::from_secs(60);
    let mut seen = None;
    while Instant::now() < deadline {
        seen = query(prometheus.port, promql);
        if seen.as_deref() == Some((before + calls).to_string().as_str()) {
            break;
        }
        std::thread::sleep(Duration::from_millis(200));
    }
    let expected = (before + calls).to_string();
    assert_eq!(seen.as_deref(), Some(expected.as_str()), "Prometheus counts the calls made");
    let up = query(prometheus.port, "up{job=\"skypilot\"}");
    assert_eq!(up.as_deref(), Some("1"));
    assert!(server.stop(), "the server stops cleanly");
}
