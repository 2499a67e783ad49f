//! Prometheus metrics. What the server counts as it goes (gRPC calls by
//! method and code with their latency, authentication failures, log bytes
//! streamed, finished operations and jobs, managed-job recoveries, store
//! commits) lives in one process-wide registry (`global`); what it measures
//! at each scrape (operations not finished by kind, state and queue,
//! clusters and active jobs by infra and state, the store's size) comes in a
//! `Snapshot`. `render` writes both in Prometheus's text format.

use std::sync::{LazyLock, Mutex};

use prometheus_client::{
    encoding::{EncodeLabelSet, text::encode},
    metrics::{
        counter::Counter,
        family::Family,
        gauge::Gauge,
        histogram::{Histogram, exponential_buckets},
    },
    registry::{Registry, Unit},
};

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct MethodCode {
    /// `/package.Service/Method`, or "other" for a path that names none.
    pub method: String,
    /// The gRPC status code's name ("OK", "InvalidArgument" ...).
    pub code: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct Method {
    pub method: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct Stream {
    /// "job", "request" or "managed_job".
    pub stream: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct KindState {
    pub kind: String,
    pub state: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct KindStateQueue {
    pub kind: String,
    pub state: String,
    /// "long" or "short".
    pub queue: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct InfraState {
    pub infra: String,
    pub state: String,
}

type Latencies = Family<Method, Histogram, fn() -> Histogram>;

/// The server's metrics.
pub struct Metrics {
    registry: Registry,
    pub grpc_calls: Family<MethodCode, Counter>,
    pub grpc_latency: Latencies,
    pub auth_failures: Counter,
    pub log_bytes: Family<Stream, Counter>,
    pub operations_finished: Family<KindState, Counter>,
    pub jobs_finished: Family<InfraState, Counter>,
    pub managed_job_recoveries: Counter,
    pub store_commit_latency: Histogram,
    // Measured at each scrape.
    operations: Family<KindStateQueue, Gauge>,
    clusters: Family<InfraState, Gauge>,
    jobs: Family<InfraState, Gauge>,
    store_bytes: Gauge,
    /// One scrape at a time sets the measured families and encodes them.
    scraping: Mutex<()>,
}

/// What one scrape measures.
#[derive(Debug, Default)]
pub struct Snapshot {
    /// Operations not finished: (kind, state, queue, count).
    pub operations: Vec<(String, String, String, i64)>,
    /// Clusters: (infra, status, count).
    pub clusters: Vec<(String, String, i64)>,
    /// Jobs not finished: (infra, status, count).
    pub jobs: Vec<(String, String, i64)>,
    pub store_bytes: i64,
}

/// The server's metrics, one set per process.
pub fn global() -> &'static Metrics {
    static METRICS: LazyLock<Metrics> = LazyLock::new(Metrics::new);
    &METRICS
}

/// Seconds, from 100 µs to about 6.5 s, doubling.
fn latency_buckets() -> Histogram {
    Histogram::new(exponential_buckets(0.0001, 2.0, 17))
}

impl Metrics {
    fn new() -> Metrics {
        let metrics = Metrics {
            registry: Registry::with_prefix("skypilot"),
            grpc_calls: Family::default(),
            grpc_latency: Family::new_with_constructor(latency_buckets),
            auth_failures: Counter::default(),
            log_bytes: Family::default(),
            operations_finished: Family::default(),
            jobs_finished: Family::default(),
            managed_job_recoveries: Counter::default(),
            store_commit_latency: latency_buckets(),
            operations: Family::default(),
            clusters: Family::default(),
            jobs: Family::default(),
            store_bytes: Gauge::default(),
            scraping: Mutex::new(()),
        };
        let mut registry = metrics.registry;
        registry.register(
            "grpc_calls",
            "gRPC calls handled, by method and status code",
            metrics.grpc_calls.clone(),
        );
        registry.register_with_unit(
            "grpc_latency",
            "Time from a gRPC call's arrival to its response headers (the whole call when unary)",
            Unit::Seconds,
            metrics.grpc_latency.clone(),
        );
        registry.register(
            "auth_failures",
            "Calls refused for missing or wrong credentials",
            metrics.auth_failures.clone(),
        );
        registry.register_with_unit(
            "log_streamed",
            "Log bytes sent to clients, by stream",
            Unit::Bytes,
            metrics.log_bytes.clone(),
        );
        registry.register(
            "operations_finished",
            "Requests that ended, by kind and final state",
            metrics.operations_finished.clone(),
        );
        registry.register(
            "jobs_finished",
            "Cluster jobs that ended, by infra and final status",
            metrics.jobs_finished.clone(),
        );
        registry.register(
            "managed_job_recoveries",
            "Managed-job recoveries started (a lost node, a cancelled allocation ...)",
            metrics.managed_job_recoveries.clone(),
        );
        registry.register_with_unit(
            "store_commit_latency",
            "Time one group commit (flush) of the store takes",
            Unit::Seconds,
            metrics.store_commit_latency.clone(),
        );
        registry.register(
            "operations",
            "Requests not finished, by kind, state and queue (PENDING ones are the queue depth)",
            metrics.operations.clone(),
        );
        registry.register("clusters", "Clusters, by infra and status", metrics.clusters.clone());
        registry.register(
            "jobs_active",
            "Cluster jobs not finished, by infra and status",
            metrics.jobs.clone(),
        );
        registry.register_with_unit(
            "store_size",
            "Size of the store on disk",
            Unit::Bytes,
            metrics.store_bytes.clone(),
        );
        Metrics { registry, ..metrics }
    }

    /// Counts a finished gRPC call.
    pub fn grpc_call(&self, method: &str, code: &str) {
        self.grpc_calls.get_or_create(&MethodCode { method: method.into(), code: code.into() }).inc();
    }

    /// Counts `bytes` of log sent on `stream`.
    pub fn log_streamed(&self, stream: &str, bytes: usize) {
        self.log_bytes.get_or_create(&Stream { stream: stream.into() }).inc_by(bytes as u64);
    }

    /// Every metric in Prometheus's text format, with `snapshot` as the
    /// measured ones.
    pub fn render(&self, snapshot: &Snapshot) -> String {
        let _one_at_a_time = self.scraping.lock().unwrap_or_else(|p| p.into_inner());
        self.operations.clear();
        for (kind, state, queue, count) in &snapshot.operations {
            let labels = KindStateQueue { kind: kind.clone(), state: state.clone(), queue: queue.clone() };
            self.operations.get_or_create(&labels).set(*count);
        }
        for (family, counts) in [(&self.clusters, &snapshot.clusters), (&self.jobs, &snapshot.jobs)] {
            family.clear();
            for (infra, state, count) in counts {
                family.get_or_create(&InfraState { infra: infra.clone(), state: state.clone() }).set(*count);
            }
        }
        self.store_bytes.set(snapshot.store_bytes);
        let mut text = String::new();
        // Writing to a String cannot fail.
        let _ = encode(&mut text, &self.registry);
        text
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_scrape_holds_the_counted_and_the_measured_metrics_and_forgets_what_is_gone() {
        let metrics = Metrics::new();
        metrics.grpc_call("/skypilot.v1.ClusterService/Launch", "OK");
        metrics.grpc_call("/skypilot.v1.ClusterService/Launch", "OK");
        metrics.log_streamed("job", 10);
        metrics
            .grpc_latency
            .get_or_create(&Method { method: "/skypilot.v1.ClusterService/Launch".into() })
            .observe(0.003);
        let snapshot = Snapshot {
            operations: vec![("sky.launch".into(), "PENDING".into(), "long".into(), 3)],
            clusters: vec![("slurm/hpc".into(), "UP".into(), 2)],
            ..Snapshot::default()
        };
        let text = metrics.render(&snapshot);
        for line in [
            "skypilot_grpc_calls_total{method=\"/skypilot.v1.ClusterService/Launch\",code=\"OK\"} 2",
            "skypilot_log_streamed_bytes_total{stream=\"job\"} 10",
            "skypilot_operations{kind=\"sky.launch\",state=\"PENDING\",queue=\"long\"} 3",
            "skypilot_clusters{infra=\"slurm/hpc\",state=\"UP\"} 2",
            "skypilot_grpc_latency_seconds_bucket{le=\"0.0032\",method=\"/skypilot.v1.ClusterService/Launch\"} 1",
        ] {
            assert!(text.contains(line), "{line} in:\n{text}");
        }
        let text = metrics.render(&Snapshot::default());
        assert!(!text.contains("skypilot_clusters{"), "a cluster gone is not reported:\n{text}");
    }
}
