//! A real server on 127.0.0.1:0 with a temporary data dir, test operation
//! kinds the test controls, and clients for it.
#![allow(dead_code)]

pub mod unix_user;

use std::{
    sync::{
        Arc,
        atomic::{AtomicBool, AtomicUsize, Ordering},
    },
    time::Duration,
};

use prost::Message;
use skypilot_api::{
    Client, Endpoint, EndpointSource,
    identity::Identity,
    proto::skypilot::v1::{ClusterActionRequest, RequestState, Schedule},
};
use skypilot_server::{
    Admitted, BoxFuture, Caller, EngineConfig, OpContext, OpOutput, OpRecord, OperationKind, Result,
    RunningServer, Server, ServerConfig, Submission,
};
use tempfile::TempDir;
use tokio::sync::Semaphore;
use tonic::transport::Channel;

pub const GATE: &str = "test.gate";
pub const GATE_LONG: &str = "test.gate_long";
pub const GATE_RESUMABLE: &str = "test.gate_resumable";
pub const ONE_SHOT: &str = "test.one_shot";

/// Shared controls of the test kinds.
pub struct Controls {
    /// Each permit lets one waiting gate operation finish.
    pub gate: Semaphore,
    /// Gate operations whose future was dropped before finishing.
    pub dropped: AtomicUsize,
    /// How many times any test operation started running.
    pub runs: AtomicUsize,
}

impl Default for Controls {
    fn default() -> Self {
        Controls { gate: Semaphore::new(0), dropped: AtomicUsize::new(0), runs: AtomicUsize::new(0) }
    }
}

/// A kind that logs "started", waits for a gate permit (unless `waits` is
/// false), and logs "finished".
struct GateKind {
    name: &'static str,
    schedule: Schedule,
    resumable: bool,
    waits: bool,
    controls: Arc<Controls>,
}

struct DropProbe {
    controls: Arc<Controls>,
    finished: AtomicBool,
}

impl Drop for DropProbe {
    fn drop(&mut self) {
        if !self.finished.load(Ordering::SeqCst) {
            self.controls.dropped.fetch_add(1, Ordering::SeqCst);
        }
    }
}

impl OperationKind for GateKind {
    fn name(&self) -> &'static str {
        self.name
    }
    fn schedule(&self) -> Schedule {
        self.schedule
    }
    fn resumable(&self) -> bool {
        self.resumable
    }
    /// The payload is a `ClusterActionRequest`: the cluster and idempotency key.
    fn validate(&self, _caller: &Caller, payload: Vec<u8>) -> Result<Admitted> {
        let request = ClusterActionRequest::decode(payload.as_slice()).expect("a test payload");
        Ok(Admitted { payload, cluster: request.cluster_name, idempotency_key: request.idempotency_key })
    }
    fn authorize(&self, _caller: &Caller, _request: &Admitted) -> Result<()> {
        Ok(())
    }
    fn run(&self, ctx: OpContext) -> BoxFuture<Result<OpOutput>> {
        let controls = self.controls.clone();
        let waits = self.waits;
        Box::pin(async move {
            controls.runs.fetch_add(1, Ordering::SeqCst);
            let probe = DropProbe { controls: controls.clone(), finished: AtomicBool::new(false) };
            ctx.log_line("started")?;
            if waits {
                controls.gate.acquire().await.expect("gate open").forget();
            }
            ctx.log_line("finished")?;
            probe.finished.store(true, Ordering::SeqCst);
            Ok(OpOutput { type_url: "type.googleapis.com/google.protobuf.Empty".into(), value: vec![] })
        })
    }
}

pub struct TestServer {
    pub server: Option<RunningServer>,
    pub dir: TempDir,
    pub controls: Arc<Controls>,
    pub config: ServerConfig,
}

pub fn alice() -> Identity {
    Identity { name: "alice".into(), id: "a11ce000".into() }
}

pub fn bob() -> Identity {
    Identity { name: "bob".into(), id: "b0b00000".into() }
}

pub fn test_config(dir: &TempDir) -> ServerConfig {
    let mut config = ServerConfig::local(dir.path().join("api_server"));
    config.port = 0;
    config.shutdown_grace = Duration::from_millis(200);
    config.engine = EngineConfig { long_workers: 2, short_workers: 8, ..EngineConfig::default() };
    config.owner = Some(Caller::local("owner", "0000beef"));
    config
}

impl TestServer {
    pub async fn start() -> TestServer {
        let dir = tempfile::tempdir().unwrap();
        let config = test_config(&dir);
        TestServer::start_with(dir, config, Arc::default()).await
    }

    pub async fn start_with(dir: TempDir, config: ServerConfig, controls: Arc<Controls>) -> TestServer {
        let gate = |name, schedule, resumable, waits| {
            Arc::new(GateKind { name, schedule, resumable, waits, controls: controls.clone() })
        };
        let server = Server::new(config.clone())
            .with_kind(gate(GATE, Schedule::Short, false, true))
            .with_kind(gate(GATE_LONG, Schedule::Long, false, true))
            .with_kind(gate(GATE_RESUMABLE, Schedule::Short, true, true))
            .with_kind(gate(ONE_SHOT, Schedule::Short, true, false))
            .start()
            .await
            .expect("server starts");
        TestServer { server: Some(server), dir, controls, config }
    }

    /// Stops the server and starts a new one on the same data dir.
    pub async fn restart(self) -> TestServer {
        self.restart_after(|| {}).await
    }

    /// Stops the server, runs `between`, and starts a new one on the same data dir.
    pub async fn restart_after(mut self, between: impl FnOnce()) -> TestServer {
        self.server.take().unwrap().shutdown().await.unwrap();
        between();
        let mut config = self.config.clone();
        config.port = 0;
        TestServer::start_with(self.dir, config, self.controls).await
    }

    pub fn running(&self) -> &RunningServer {
        self.server.as_ref().unwrap()
    }

    pub fn endpoint(&self) -> Endpoint {
        let addr = self.running().local_addr();
        Endpoint::parse(&format!("http://{addr}"), EndpointSource::Env).unwrap()
    }

    pub async fn client(&self) -> Client {
        Client::connect(&self.endpoint(), &alice()).await.unwrap()
    }

    pub async fn client_as(&self, who: &Identity) -> Client {
        Client::connect(&self.endpoint(), who).await.unwrap()
    }

    pub async fn channel(&self) -> Channel {
        Channel::from_shared(self.endpoint().uri()).unwrap().connect().await.unwrap()
    }

    /// Submits a test operation directly to the engine as alice.
    pub async fn submit(&self, kind: &'static str, cluster: &str) -> OpRecord {
        self.submit_with(kind, cluster, "").await.unwrap()
    }

    pub async fn submit_with(&self, kind: &'static str, cluster: &str, key: &str) -> Result<OpRecord> {
        let request = ClusterActionRequest {
            cluster_name: cluster.into(),
            idempotency_key: key.into(),
            ..Default::default()
        };
        let alice = Caller::local("alice", "a11ce000");
        self.running().engine().submit(Submission::new(kind, alice, &request)).await
    }

    /// Waits (through WatchOperation) until `id` reaches `state`.
    pub async fn wait_for_state(&self, id: &str, state: RequestState) {
        let client = self.client().await;
        let mut stream = client.watch_operation(id).await.unwrap();
        while let Some(update) = stream.message().await.unwrap() {
            let op = update.operation.unwrap();
            let metadata = skypilot_api::client::request_metadata(&op).unwrap();
            if metadata.state() == state {
                return;
            }
        }
        panic!("operation {id} finished without reaching {state:?}");
    }

    pub fn open_gate(&self, permits: usize) {
        self.controls.gate.add_permits(permits);
    }
}
