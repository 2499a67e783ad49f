//! `GET /metrics` in Prometheus's text format, answered before anything
//! gRPC sees the request: on the API server's own port (with the same
//! credentials as every call, on a server that requires them), and alone,
//! without credentials, on the port of `--metrics-port` (for a scraper
//! inside the cluster).

use std::sync::Arc;

use tokio::{net::TcpListener, sync::oneshot, task::JoinHandle};
use tokio_stream::wrappers::TcpListenerStream;

use super::answers::{Answer, AnswerLayer, ReplyFuture, ready, reply};
use crate::{
    auth::{Accounts, peer_ip},
    clusters::Clusters,
    metrics::{self, Snapshot},
    ops::Engine,
    store::Store,
};

/// Where a scrape's measured metrics come from.
#[derive(Clone)]
pub struct MetricsSource {
    pub engine: Engine,
    pub clusters: Clusters,
    pub store: Store,
}

impl MetricsSource {
    fn snapshot(&self) -> Snapshot {
        let (clusters, jobs) = self.clusters.counts().unwrap_or_else(|err| {
            tracing::warn!(error = %err, "metrics: cannot count clusters and jobs");
            Default::default()
        });
        Snapshot {
            operations: self.engine.live_summary(),
            clusters,
            jobs,
            store_bytes: self.store.size_on_disk().map_or(0, |bytes| bytes as i64),
        }
    }

    /// The metrics page.
    fn page(&self) -> String {
        metrics::global().render(&self.snapshot())
    }
}

/// Answers `GET /metrics`.
#[derive(Clone)]
pub struct MetricsEndpoint {
    source: MetricsSource,
    /// Who may read it: None for anyone.
    accounts: Option<Arc<Accounts>>,
}

/// `/metrics` in front of a service.
pub type MetricsEndpointLayer = AnswerLayer<MetricsEndpoint>;

impl MetricsEndpointLayer {
    pub fn new(source: MetricsSource, accounts: Option<Arc<Accounts>>) -> MetricsEndpointLayer {
        AnswerLayer(MetricsEndpoint { source, accounts })
    }
}

impl Answer for MetricsEndpoint {
    fn answer<B>(&self, request: &http::Request<B>) -> Option<ReplyFuture> {
        if request.uri().path() != "/metrics" {
            return None;
        }
        if request.method() != http::Method::GET {
            return Some(ready(reply(405, "use GET /metrics\n")));
        }
        let endpoint = self.clone();
        let header = request.headers().get("authorization").and_then(|v| v.to_str().ok()).map(str::to_string);
        let peer = peer_ip(request);
        Some(Box::pin(async move {
            if let Some(accounts) = &endpoint.accounts
                && let Err(err) = accounts.authenticate(header.as_deref(), peer).await
            {
                metrics::global().auth_failures.inc();
                let mut denied = reply(401, &format!("{}\n", err.message));
                denied.headers_mut().insert(
                    http::header::WWW_AUTHENTICATE,
                    http::HeaderValue::from_static("Basic realm=\"skypilot\""),
                );
                return denied;
            }
            let page = tokio::task::spawn_blocking(move || endpoint.source.page()).await.unwrap_or_default();
            let mut ok = reply(200, &page);
            ok.headers_mut().insert(
                http::header::CONTENT_TYPE,
                // What prometheus-client writes: the OpenMetrics text format.
                http::HeaderValue::from_static("application/openmetrics-text; version=1.0.0; charset=utf-8"),
            );
            ok
        }))
    }
}

/// `/metrics` alone, without credentials, on a port of its own (with
/// `grpc.health.v1`, which every tonic server needs a service for).
pub struct MetricsListener {
    local_addr: Option<std::net::SocketAddr>,
    stop: oneshot::Sender<()>,
    task: JoinHandle<Result<(), tonic::transport::Error>>,
}

impl MetricsListener {
    pub fn start<H: tonic_health::pb::health_server::Health>(
        listener: TcpListener,
        source: MetricsSource,
        health: tonic_health::pb::health_server::HealthServer<H>,
    ) -> MetricsListener {
        let local_addr = listener.local_addr().ok();
        let (stop, stopped) = oneshot::channel::<()>();
        let task = tokio::spawn(async move {
            tonic::transport::Server::builder()
                .accept_http1(true)
                .layer(MetricsEndpointLayer::new(source, None))
                .add_service(health)
                .serve_with_incoming_shutdown(TcpListenerStream::new(listener), async {
                    let _ = stopped.await;
                })
                .await
        });
        MetricsListener { local_addr, stop, task }
    }

    pub fn local_addr(&self) -> Option<std::net::SocketAddr> {
        self.local_addr
    }

    /// Stops serving; open connections get two seconds.
    pub async fn stop(self) {
        let _ = self.stop.send(());
        crate::clock::join_within(self.task, std::time::Duration::from_secs(2)).await;
    }
}
