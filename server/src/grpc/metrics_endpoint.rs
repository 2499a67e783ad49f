//! `GET /metrics` in Prometheus's text format, answered before anything
//! gRPC sees the request: on the API server's own port (with the same
//! credentials as every call, on a server that requires them), and alone,
//! without credentials, on the port of `--metrics-port` (for a scraper
//! inside the cluster).

use std::{
    future::Future,
    pin::Pin,
    sync::Arc,
    task::{Context, Poll},
};

use tokio::{net::TcpListener, sync::oneshot, task::JoinHandle};
use tokio_stream::wrappers::TcpListenerStream;

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

#[derive(Clone)]
pub struct MetricsEndpointLayer {
    source: MetricsSource,
    /// Who may read it: None for anyone.
    accounts: Option<Arc<Accounts>>,
}

impl MetricsEndpointLayer {
    pub fn new(source: MetricsSource, accounts: Option<Arc<Accounts>>) -> MetricsEndpointLayer {
        MetricsEndpointLayer { source, accounts }
    }
}

impl<S> tower::Layer<S> for MetricsEndpointLayer {
    type Service = MetricsEndpoint<S>;

    fn layer(&self, inner: S) -> MetricsEndpoint<S> {
        MetricsEndpoint { inner, layer: self.clone() }
    }
}

#[derive(Clone)]
pub struct MetricsEndpoint<S> {
    inner: S,
    layer: MetricsEndpointLayer,
}

pub(super) type Reply = http::Response<tonic::body::Body>;

impl<S, ReqBody> tower::Service<http::Request<ReqBody>> for MetricsEndpoint<S>
where
    S: tower::Service<http::Request<ReqBody>, Response = Reply>,
    S::Future: Send + 'static,
    S::Error: Send + 'static,
{
    type Response = Reply;
    type Error = S::Error;
    type Future = Pin<Box<dyn Future<Output = Result<Reply, S::Error>> + Send>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: http::Request<ReqBody>) -> Self::Future {
        if request.uri().path() != "/metrics" {
            return Box::pin(self.inner.call(request));
        }
        if request.method() != http::Method::GET {
            return Box::pin(std::future::ready(Ok(reply(405, "use GET /metrics\n"))));
        }
        let layer = self.layer.clone();
        let header = request.headers().get("authorization").and_then(|v| v.to_str().ok()).map(str::to_string);
        let peer = peer_ip(&request);
        Box::pin(async move {
            if let Some(accounts) = &layer.accounts
                && let Err(err) = accounts.authenticate(header.as_deref(), peer).await
            {
                metrics::global().auth_failures.inc();
                let mut denied = reply(401, &format!("{}\n", err.message));
                denied.headers_mut().insert(
                    http::header::WWW_AUTHENTICATE,
                    http::HeaderValue::from_static("Basic realm=\"skypilot\""),
                );
                return Ok(denied);
            }
            let page = tokio::task::spawn_blocking(move || layer.source.page()).await.unwrap_or_default();
            let mut ok = reply(200, &page);
            ok.headers_mut().insert(
                http::header::CONTENT_TYPE,
                // What prometheus-client writes: the OpenMetrics text format.
                http::HeaderValue::from_static("application/openmetrics-text; version=1.0.0; charset=utf-8"),
            );
            Ok(ok)
        })
    }
}

pub(super) fn reply(status: u16, text: &str) -> Reply {
    let mut response = http::Response::new(tonic::body::Body::new(text.to_string()));
    *response.status_mut() = http::StatusCode::from_u16(status).unwrap_or(http::StatusCode::OK);
    response
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
