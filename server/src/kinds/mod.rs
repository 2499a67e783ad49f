//! The operation kinds this server runs, registered with the engine at
//! start. Each is written as a typed `Kind`: it validates its request (and
//! fills in defaults), decides who may submit it, and runs it; `Registered`
//! adapts it to the engine's `OperationKind`. Also the autostop loop, which
//! submits `sky.stop` and `sky.down` for idle clusters.

mod autostop;
pub mod check;
pub mod cluster;
pub mod ssh;

use std::sync::Arc;

use prost::Message;
use skypilot_api::proto::skypilot::v1::{
    AutostopRequest, CancelJobsRequest, CancelManagedJobsRequest, CheckRequest, ClusterActionRequest,
    ExecRequest, LaunchManagedJobRequest, LaunchRequest, Schedule, SshDownRequest, SshUpRequest,
};

pub use autostop::autostop_loop;

use crate::{
    auth::Caller,
    clusters::Clusters,
    error::{Error, Result},
    ops::{Admitted, BoxFuture, OpContext, OpOutput, OperationKind},
    uploads::Uploads,
};

/// Every kind the server registers.
pub fn all(clusters: &Clusters, uploads: &Uploads) -> Vec<Arc<dyn OperationKind>> {
    use cluster::{Action, Autostop, Cancel, Exec, Launch};
    let c = || clusters.clone();
    let u = || uploads.clone();
    vec![
        register(check::NAME, Schedule::Short, check::Check(c())),
        register(cluster::LAUNCH, Schedule::Long, Launch(c(), u())),
        register(cluster::EXEC, Schedule::Long, Exec(c(), u())),
        register(cluster::STOP, Schedule::Short, Action::stop(c())),
        register(cluster::START, Schedule::Long, Action::start(c())),
        register(cluster::DOWN, Schedule::Short, Action::down(c())),
        register(cluster::AUTOSTOP, Schedule::Short, Autostop(c())),
        register(cluster::CANCEL, Schedule::Short, Cancel(c())),
        register(ssh::UP, Schedule::Long, ssh::SshUp(c())),
        register(ssh::DOWN, Schedule::Long, ssh::SshDown(c())),
    ]
}

/// A request message a kind takes.
pub(crate) trait KindRequest: Message + Default + 'static {
    /// The cluster it acts on; empty for none.
    fn cluster(&self) -> &str;
    fn idempotency_key(&self) -> &str;
}

macro_rules! cluster_requests {
    ($($request:ty),*) => {$(
        impl KindRequest for $request {
            fn cluster(&self) -> &str {
                &self.cluster_name
            }
            fn idempotency_key(&self) -> &str {
                &self.idempotency_key
            }
        }
    )*};
}

cluster_requests!(LaunchRequest, ExecRequest, ClusterActionRequest, AutostopRequest, CancelJobsRequest);

/// Requests that act on no cluster in particular.
macro_rules! clusterless_requests {
    ($($request:ty),*) => {$(
        impl KindRequest for $request {
            fn cluster(&self) -> &str {
                ""
            }
            fn idempotency_key(&self) -> &str {
                &self.idempotency_key
            }
        }
    )*};
}

clusterless_requests!(
    CheckRequest,
    SshUpRequest,
    SshDownRequest,
    LaunchManagedJobRequest,
    CancelManagedJobsRequest
);

/// What differs between kinds.
pub(crate) trait Kind: Send + Sync + 'static {
    type Request: KindRequest;
    /// Checks the request before it is accepted; may fill in defaults.
    fn validate(&self, caller: &Caller, request: &mut Self::Request) -> Result<()>;
    /// Refuses a caller who may not submit the request.
    fn authorize(&self, caller: &Caller, request: &Self::Request) -> Result<()>;
    /// Runs an accepted request.
    fn run(&self, request: Self::Request, ctx: OpContext) -> BoxFuture<Result<OpOutput>>;
}

/// A `Kind` under its request name and queue.
struct Registered<K> {
    name: &'static str,
    schedule: Schedule,
    kind: K,
}

pub(crate) fn register<K: Kind>(name: &'static str, schedule: Schedule, kind: K) -> Arc<dyn OperationKind> {
    Arc::new(Registered { name, schedule, kind })
}

fn decode<R: KindRequest>(payload: &[u8]) -> Result<R> {
    R::decode(payload).map_err(|err| Error::invalid("request", format!("cannot be decoded: {err}")))
}

impl<K: Kind> OperationKind for Registered<K> {
    fn name(&self) -> &'static str {
        self.name
    }

    fn schedule(&self) -> Schedule {
        self.schedule
    }

    fn resumable(&self) -> bool {
        // Every built-in kind converges on its wanted state, and a job that
        // a launch or exec submitted already is found, not submitted again.
        true
    }

    fn validate(&self, caller: &Caller, payload: Vec<u8>) -> Result<Admitted> {
        let mut request: K::Request = decode(&payload)?;
        self.kind.validate(caller, &mut request)?;
        Ok(Admitted {
            cluster: request.cluster().to_string(),
            idempotency_key: request.idempotency_key().to_string(),
            payload: request.encode_to_vec(),
        })
    }

    fn authorize(&self, caller: &Caller, request: &Admitted) -> Result<()> {
        self.kind.authorize(caller, &decode(&request.payload)?)
    }

    /// Authorizes the caller again before running: the cluster may have
    /// changed hands since the request was accepted (torn down, then
    /// launched by someone else).
    fn run(&self, ctx: OpContext) -> BoxFuture<Result<OpOutput>> {
        let request = ctx.request().and_then(|request| {
            self.kind.authorize(&ctx.caller, &request)?;
            Ok(request)
        });
        match request {
            Ok(request) => self.kind.run(request, ctx),
            Err(err) => Box::pin(std::future::ready(Err(err))),
        }
    }
}
