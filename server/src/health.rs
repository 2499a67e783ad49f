//! `grpc.health.v1`: which services are reported, and an optional plaintext
//! listener that serves health alone (Kubernetes gRPC probes cannot speak TLS).

use tokio::{net::TcpListener, sync::oneshot, task::JoinHandle};
use tokio_stream::wrappers::TcpListenerStream;
use tonic_health::{
    ServingStatus,
    pb::health_server::{Health, HealthServer},
    server::HealthReporter,
};

/// Services whose health is reported besides the whole server ("").
const HEALTH_SERVICES: &[&str] = &[
    "",
    "google.longrunning.Operations",
    "skypilot.v1.RequestService",
    "skypilot.v1.ServerService",
    "skypilot.v1.InfraService",
    "skypilot.v1.ClusterService",
    "skypilot.v1.JobService",
    "skypilot.v1.UserService",
];

/// Reports `status` for the whole server and every service.
pub async fn set_health(health: &HealthReporter, status: ServingStatus) {
    for service in HEALTH_SERVICES {
        health.set_service_status(*service, status).await;
    }
}

/// A plaintext listener serving only the health service.
pub struct HealthListener {
    local_addr: Option<std::net::SocketAddr>,
    stop: oneshot::Sender<()>,
    task: JoinHandle<Result<(), tonic::transport::Error>>,
}

impl HealthListener {
    /// Serves `service` on `listener` until stopped.
    pub fn start<S: Health>(listener: TcpListener, service: HealthServer<S>) -> HealthListener {
        let local_addr = listener.local_addr().ok();
        let (stop, stopped) = oneshot::channel::<()>();
        let task = tokio::spawn(async move {
            tonic::transport::Server::builder()
                .add_service(service)
                .serve_with_incoming_shutdown(TcpListenerStream::new(listener), async {
                    let _ = stopped.await;
                })
                .await
        });
        HealthListener { local_addr, stop, task }
    }

    /// The address it listens on.
    pub fn local_addr(&self) -> Option<std::net::SocketAddr> {
        self.local_addr
    }

    /// Stops serving; open connections (a Watch stream, a client that never
    /// spoke) get two seconds, then are dropped.
    pub async fn stop(self) {
        let _ = self.stop.send(());
        crate::clock::join_within(self.task, std::time::Duration::from_secs(2)).await;
    }
}
