//! A small typed client over the generated stubs: connects to an endpoint,
//! sends the caller's identity, credentials and API version on every call,
//! checks the server's API version, and turns statuses into `ClientError`.

mod managed_jobs;

use std::{fmt, time::Duration};

use prost::Message;
use tonic::{
    Code, Request, Response, Status,
    metadata::{AsciiMetadataValue, MetadataMap},
    service::{Interceptor, interceptor::InterceptedService},
    transport::{Certificate, Channel, ClientTlsConfig},
};
use tonic_health::pb::{HealthCheckRequest, health_check_response::ServingStatus, health_client};
use tonic_types::StatusExt;

use crate::{
    endpoint::Endpoint,
    identity::Identity,
    proto::{
        google::longrunning::{
            CancelOperationRequest, GetOperationRequest, Operation, WaitOperationRequest,
            operations_client::OperationsClient,
        },
        skypilot::v1::{
            AutostopRequest, CancelJobsRequest, CheckRequest, Cluster, ClusterActionRequest,
            CreateTreeRequest, CreateTreeResponse, ErrorReason, ExecRequest, FindMissingBlobsRequest,
            GetServerInfoRequest, GetServerInfoResponse, Job, LaunchRequest, ListClustersRequest,
            ListJobsRequest, ListJobsResponse, ListRequestsRequest, RequestMetadata, SshDownRequest,
            SshUpRequest, StreamLogsRequest, StreamLogsResponse, TailJobLogsRequest, TailJobLogsResponse,
            UploadBlobsRequest, UploadBlobsResponse, UserInfo, WatchOperationRequest, WatchOperationResponse,
            WhoAmIRequest, cluster_service_client::ClusterServiceClient,
            infra_service_client::InfraServiceClient, job_service_client::JobServiceClient,
            request_service_client::RequestServiceClient, server_service_client::ServerServiceClient,
            upload_service_client::UploadServiceClient, user_service_client::UserServiceClient,
        },
    },
    version::{API_VERSION, API_VERSION_HEADER, MIN_API_VERSION, USER_ID_HEADER, USER_NAME_HEADER},
};

/// Largest message the client accepts (log chunks are far smaller).
const MAX_MESSAGE_BYTES: usize = 16 * 1024 * 1024;

/// What went wrong talking to the server.
#[derive(Debug, Clone)]
pub enum ClientError {
    /// Nothing answered at the endpoint.
    Unreachable { endpoint: String, detail: String },
    /// The server answered with an error status.
    Status { code: Code, message: String, reason: Option<String> },
    /// Client and server API versions do not work together.
    Incompatible(String),
    /// A response the client could not understand.
    Protocol(String),
    /// Something on this machine failed (reading the files to upload).
    Local(String),
}

impl fmt::Display for ClientError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ClientError::Unreachable { endpoint, detail } => write!(
                f,
                "could not connect to SkyPilot API server at {endpoint} ({detail}). \
                 Check that the server is running and reachable, and that the endpoint is \
                 right (`sky api info` shows where it comes from)."
            ),
            ClientError::Status { message, .. } => write!(f, "{message}"),
            ClientError::Incompatible(message)
            | ClientError::Protocol(message)
            | ClientError::Local(message) => {
                write!(f, "{message}")
            }
        }
    }
}

impl std::error::Error for ClientError {}

impl ClientError {
    /// The gRPC code, for errors the server returned.
    pub fn code(&self) -> Option<Code> {
        match self {
            ClientError::Status { code, .. } => Some(*code),
            _ => None,
        }
    }

    /// Whether the server could not be reached or said it is unavailable
    /// (starting, shutting down): worth retrying.
    pub fn is_unavailable(&self) -> bool {
        matches!(self, ClientError::Unreachable { .. })
            || matches!(self, ClientError::Status { code: Code::Unavailable, .. })
    }

    /// The stable `ErrorInfo` reason, for errors the server returned.
    pub fn reason(&self) -> Option<&str> {
        match self {
            ClientError::Status { reason, .. } => reason.as_deref(),
            _ => None,
        }
    }

    /// The same reason as the protocol's enum, to branch on; a reason this
    /// client does not know reads as `Internal`.
    pub fn error_reason(&self) -> Option<ErrorReason> {
        self.reason().map(crate::names::parse_error_reason)
    }

    fn from_status(status: Status, endpoint: &Endpoint) -> ClientError {
        // A connection that broke mid-call surfaces as UNAVAILABLE, UNKNOWN
        // "transport error" or CANCELLED "operation was canceled": the server
        // never answered, so the call may be retried (mutating calls carry
        // idempotency keys).
        if matches!(status.code(), Code::Unavailable | Code::Unknown | Code::Cancelled)
            && is_transport_failure(&status)
        {
            return ClientError::Unreachable {
                endpoint: endpoint.display(),
                detail: status.message().to_string(),
            };
        }
        let reason = status.get_error_details().error_info().map(|info| info.reason.clone());
        ClientError::Status { code: status.code(), message: status.message().to_string(), reason }
    }
}

fn is_transport_failure(status: &Status) -> bool {
    let message = status.message();
    [
        "transport error",
        "tcp connect error",
        "h2 protocol error",
        "connection reset",
        "operation was canceled",
    ]
    .iter()
    .any(|needle| message.contains(needle))
}

/// What `Client::cluster_action` asks of a cluster.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ClusterAction {
    /// Stop it: its jobs are cancelled, its files kept.
    Stop,
    /// Start it again after a stop.
    Start,
    /// Tear it down.
    Down,
}

impl ClusterAction {
    /// The command's name: "stop", "start" or "down".
    pub fn name(self) -> &'static str {
        match self {
            ClusterAction::Stop => "stop",
            ClusterAction::Start => "start",
            ClusterAction::Down => "down",
        }
    }
}

impl fmt::Display for ClusterAction {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// Headers sent with every call.
#[derive(Clone)]
pub struct CallHeaders {
    values: Vec<(&'static str, AsciiMetadataValue)>,
}

impl Interceptor for CallHeaders {
    fn call(&mut self, mut request: Request<()>) -> Result<Request<()>, Status> {
        for (name, value) in &self.values {
            request.metadata_mut().insert(*name, value.clone());
        }
        Ok(request)
    }
}

type Transport = InterceptedService<Channel, CallHeaders>;

/// How long calls keep retrying while the server is unavailable, by default.
const DEFAULT_RETRY_FOR: Duration = Duration::from_secs(30);

/// A connection to one API server.
#[derive(Clone)]
pub struct Client {
    endpoint: Endpoint,
    channel: Channel,
    headers: CallHeaders,
    retry_for: Duration,
    notice: Option<RetryNotice>,
    revive: Option<Revive>,
}

/// Told once per outage while calls are retried.
type RetryNotice = std::sync::Arc<dyn Fn(&str) + Send + Sync>;

/// Brings the server back when nothing answers at its endpoint (the CLI
/// starts its local server again); called before each retry of such a call.
type Revive =
    std::sync::Arc<dyn Fn() -> std::pin::Pin<Box<dyn std::future::Future<Output = ()> + Send>> + Send + Sync>;

impl Client {
    /// Connects to `endpoint` as `identity`. Fails fast when nothing listens.
    pub async fn connect(endpoint: &Endpoint, identity: &Identity) -> Result<Client, ClientError> {
        let unreachable = |detail: String| ClientError::Unreachable { endpoint: endpoint.display(), detail };
        let mut channel = Channel::from_shared(endpoint.uri()).map_err(|err| unreachable(err.to_string()))?;
        if endpoint.tls {
            let mut tls = ClientTlsConfig::new().with_native_roots().domain_name(endpoint.host.clone());
            if let Some(path) = &endpoint.ca_cert {
                let pem = std::fs::read(path).map_err(|err| {
                    unreachable(format!("cannot read the CA certificate {}: {err}", path.display()))
                })?;
                tls = tls.ca_certificate(Certificate::from_pem(pem));
            }
            channel = channel.tls_config(tls).map_err(|err| unreachable(error_chain(&err)))?;
        }
        let channel = channel
            .connect_timeout(Duration::from_secs(5))
            .tcp_nodelay(true)
            .initial_stream_window_size(4 << 20)
            .initial_connection_window_size(16 << 20)
            .connect()
            .await
            .map_err(|err| unreachable(error_chain(&err)))?;
        Ok(Client {
            endpoint: endpoint.clone(),
            channel,
            headers: call_headers(endpoint, identity)?,
            retry_for: DEFAULT_RETRY_FOR,
            notice: None,
            revive: None,
        })
    }

    /// The endpoint this client talks to.
    pub fn endpoint(&self) -> &Endpoint {
        &self.endpoint
    }

    fn operations(&self) -> OperationsClient<Transport> {
        OperationsClient::with_interceptor(self.channel.clone(), self.headers.clone())
            .max_decoding_message_size(MAX_MESSAGE_BYTES)
    }

    fn requests(&self) -> RequestServiceClient<Transport> {
        RequestServiceClient::with_interceptor(self.channel.clone(), self.headers.clone())
            .max_decoding_message_size(MAX_MESSAGE_BYTES)
    }

    fn server(&self) -> ServerServiceClient<Transport> {
        ServerServiceClient::with_interceptor(self.channel.clone(), self.headers.clone())
    }

    fn uploads(&self) -> UploadServiceClient<Transport> {
        // A tree lists every file of a workdir.
        UploadServiceClient::with_interceptor(self.channel.clone(), self.headers.clone())
            .max_encoding_message_size(64 << 20)
    }

    fn infra(&self) -> InfraServiceClient<Transport> {
        InfraServiceClient::with_interceptor(self.channel.clone(), self.headers.clone())
    }

    fn clusters(&self) -> ClusterServiceClient<Transport> {
        ClusterServiceClient::with_interceptor(self.channel.clone(), self.headers.clone())
            .max_decoding_message_size(MAX_MESSAGE_BYTES)
    }

    fn jobs(&self) -> JobServiceClient<Transport> {
        JobServiceClient::with_interceptor(self.channel.clone(), self.headers.clone())
            .max_decoding_message_size(MAX_MESSAGE_BYTES)
    }

    /// The user and token management stubs; pass their results to `accept`.
    pub fn users(&self) -> UserServiceClient<Transport> {
        UserServiceClient::with_interceptor(self.channel.clone(), self.headers.clone())
    }

    /// The calling user as the server sees them, with their role.
    pub async fn who_am_i(&self) -> Result<UserInfo, ClientError> {
        let response = self.accept(self.users().who_am_i(WhoAmIRequest {}).await)?;
        response.user.ok_or_else(|| ClientError::Protocol("WhoAmI answered without a user".into()))
    }

    /// Checks the server's API version and unwraps the response.
    pub fn accept<T>(&self, result: Result<Response<T>, Status>) -> Result<T, ClientError> {
        let response = result.map_err(|status| ClientError::from_status(status, &self.endpoint))?;
        check_server_version(response.metadata(), &self.endpoint)?;
        Ok(response.into_inner())
    }

    /// `grpc.health.v1` status of the whole server.
    pub async fn health(&self) -> Result<ServingStatus, ClientError> {
        let mut health = health_client::HealthClient::new(self.channel.clone());
        let response = health.check(HealthCheckRequest { service: String::new() }).await;
        let response = response.map_err(|status| ClientError::from_status(status, &self.endpoint))?;
        Ok(response.into_inner().status())
    }

    pub async fn server_info(&self) -> Result<GetServerInfoResponse, ClientError> {
        self.retrying(|| async { self.accept(self.server().get_server_info(GetServerInfoRequest {}).await) })
            .await
    }

    pub async fn list_requests(&self, request: ListRequestsRequest) -> Result<Vec<Operation>, ClientError> {
        let response = self
            .retrying(|| async { self.accept(self.requests().list_requests(request.clone()).await) })
            .await?;
        Ok(response.operations)
    }

    pub async fn get_operation(&self, name: &str) -> Result<Operation, ClientError> {
        let request = GetOperationRequest { name: operation_name(name) };
        self.retrying(|| async { self.accept(self.operations().get_operation(request.clone()).await) }).await
    }

    pub async fn cancel_operation(&self, name: &str) -> Result<(), ClientError> {
        let request = CancelOperationRequest { name: operation_name(name) };
        self.retrying(|| async { self.accept(self.operations().cancel_operation(request.clone()).await) })
            .await
    }

    /// Waits up to `timeout` for the operation to finish; returns it either way.
    pub async fn wait_operation(&self, name: &str, timeout: Duration) -> Result<Operation, ClientError> {
        let request = WaitOperationRequest {
            name: operation_name(name),
            timeout: Some(prost_types::Duration {
                seconds: timeout.as_secs() as i64,
                nanos: timeout.subsec_nanos() as i32,
            }),
        };
        self.retrying(|| async { self.accept(self.operations().wait_operation(request.clone()).await) }).await
    }

    /// Streams snapshots of the operation until it is done.
    pub async fn watch_operation(
        &self,
        name: &str,
    ) -> Result<tonic::Streaming<WatchOperationResponse>, ClientError> {
        let request = WatchOperationRequest { name: operation_name(name) };
        self.retrying(|| async { self.accept(self.requests().watch_operation(request.clone()).await) }).await
    }

    /// Streams the operation's log.
    pub async fn stream_logs(
        &self,
        request: StreamLogsRequest,
    ) -> Result<tonic::Streaming<StreamLogsResponse>, ClientError> {
        self.retrying(|| async { self.accept(self.requests().stream_logs(request.clone()).await) }).await
    }

    /// Submits `sky check`.
    pub async fn check(&self, mut request: CheckRequest) -> Result<Operation, ClientError> {
        with_key(&mut request.idempotency_key);
        self.retrying(|| async { self.accept(self.infra().check(request.clone()).await) }).await
    }

    /// Submits `sky ssh up`.
    pub async fn ssh_up(&self, mut request: SshUpRequest) -> Result<Operation, ClientError> {
        with_key(&mut request.idempotency_key);
        self.retrying(|| async { self.accept(self.infra().ssh_up(request.clone()).await) }).await
    }

    /// Submits `sky ssh down`.
    pub async fn ssh_down(&self, mut request: SshDownRequest) -> Result<Operation, ClientError> {
        with_key(&mut request.idempotency_key);
        self.retrying(|| async { self.accept(self.infra().ssh_down(request.clone()).await) }).await
    }

    /// Submits `sky launch`.
    pub async fn launch(&self, mut request: LaunchRequest) -> Result<Operation, ClientError> {
        with_key(&mut request.idempotency_key);
        self.retrying(|| async { self.accept(self.clusters().launch(request.clone()).await) }).await
    }

    /// Submits `sky exec`.
    pub async fn exec(&self, mut request: ExecRequest) -> Result<Operation, ClientError> {
        with_key(&mut request.idempotency_key);
        self.retrying(|| async { self.accept(self.clusters().exec(request.clone()).await) }).await
    }

    /// Submits `sky stop`, `sky start` or `sky down` for one cluster.
    pub async fn cluster_action(
        &self,
        action: ClusterAction,
        cluster: &str,
    ) -> Result<Operation, ClientError> {
        self.cluster_action_with(action, cluster, false).await
    }

    /// Like `cluster_action`; `purge` (down only) forgets the cluster even
    /// where its nodes do not answer.
    pub async fn cluster_action_with(
        &self,
        action: ClusterAction,
        cluster: &str,
        purge: bool,
    ) -> Result<Operation, ClientError> {
        let mut request =
            ClusterActionRequest { cluster_name: cluster.to_string(), purge, idempotency_key: String::new() };
        with_key(&mut request.idempotency_key);
        self.retrying(|| async {
            let mut clusters = self.clusters();
            let result = match action {
                ClusterAction::Stop => clusters.stop(request.clone()).await,
                ClusterAction::Start => clusters.start(request.clone()).await,
                ClusterAction::Down => clusters.down(request.clone()).await,
            };
            self.accept(result)
        })
        .await
    }

    /// Submits `sky autostop`.
    pub async fn autostop(&self, mut request: AutostopRequest) -> Result<Operation, ClientError> {
        with_key(&mut request.idempotency_key);
        self.retrying(|| async { self.accept(self.clusters().autostop(request.clone()).await) }).await
    }

    /// Which of these contents the server lacks for the caller.
    pub async fn find_missing_blobs(
        &self,
        request: FindMissingBlobsRequest,
    ) -> Result<Vec<String>, ClientError> {
        let response = self
            .retrying(|| async { self.accept(self.uploads().find_missing_blobs(request.clone()).await) })
            .await?;
        Ok(response.missing)
    }

    /// Streams contents (not retried: the stream is consumed).
    pub async fn upload_blobs(
        &self,
        parts: impl tokio_stream::Stream<Item = UploadBlobsRequest> + Send + 'static,
    ) -> Result<UploadBlobsResponse, ClientError> {
        self.accept(self.uploads().upload_blobs(parts).await)
    }

    /// Records an uploaded tree; its reference goes in the task.
    pub async fn create_tree(&self, request: CreateTreeRequest) -> Result<CreateTreeResponse, ClientError> {
        self.retrying(|| async { self.accept(self.uploads().create_tree(request.clone()).await) }).await
    }

    /// `sky status`.
    pub async fn list_clusters(&self, request: ListClustersRequest) -> Result<Vec<Cluster>, ClientError> {
        let response = self
            .retrying(|| async { self.accept(self.clusters().list_clusters(request.clone()).await) })
            .await?;
        Ok(response.clusters)
    }

    /// `sky queue`.
    pub async fn list_jobs(&self, request: ListJobsRequest) -> Result<Vec<Job>, ClientError> {
        Ok(self.list_jobs_page(request).await?.jobs)
    }

    /// One page of `sky queue`, with the token of the next.
    pub async fn list_jobs_page(&self, request: ListJobsRequest) -> Result<ListJobsResponse, ClientError> {
        self.retrying(|| async { self.accept(self.jobs().list_jobs(request.clone()).await) }).await
    }

    /// Submits `sky cancel`.
    pub async fn cancel_jobs(&self, mut request: CancelJobsRequest) -> Result<Operation, ClientError> {
        with_key(&mut request.idempotency_key);
        self.retrying(|| async { self.accept(self.jobs().cancel_jobs(request.clone()).await) }).await
    }

    /// Streams a job's log (`sky logs`).
    pub async fn tail_job_logs(
        &self,
        request: TailJobLogsRequest,
    ) -> Result<tonic::Streaming<TailJobLogsResponse>, ClientError> {
        self.retrying(|| async { self.accept(self.jobs().tail_job_logs(request.clone()).await) }).await
    }

    /// Runs `call` again, with backoff, while the server is unavailable (for
    /// example restarting), for at most the client's retry period; says so
    /// once through the retry notice.
    pub async fn retrying<T, F, Fut>(&self, mut call: F) -> Result<T, ClientError>
    where
        F: FnMut() -> Fut,
        Fut: std::future::Future<Output = Result<T, ClientError>>,
    {
        let started = std::time::Instant::now();
        let mut pause = Duration::from_millis(50);
        let mut told = false;
        loop {
            match call().await {
                Err(err) if err.is_unavailable() && started.elapsed() < self.retry_for => {
                    if let (ClientError::Unreachable { .. }, Some(revive)) = (&err, &self.revive) {
                        revive().await;
                    }
                    if !told {
                        if let Some(notice) = &self.notice {
                            notice("API server unavailable, retrying\u{2026}");
                        }
                        told = true;
                    }
                    tokio::time::sleep(pause).await;
                    pause = (pause * 2).min(Duration::from_secs(2));
                }
                other => return other,
            }
        }
    }

    /// Keeps retrying calls for `period` while the server is unavailable.
    pub fn with_retry_for(mut self, period: Duration) -> Client {
        self.retry_for = period;
        self
    }

    /// Calls `revive` when nothing answers, before retrying.
    pub fn with_revive(
        mut self,
        revive: impl Fn() -> std::pin::Pin<Box<dyn std::future::Future<Output = ()> + Send>>
        + Send
        + Sync
        + 'static,
    ) -> Client {
        self.revive = Some(std::sync::Arc::new(revive));
        self
    }

    /// Calls `notice` once per outage while retrying.
    pub fn with_retry_notice(mut self, notice: impl Fn(&str) + Send + Sync + 'static) -> Client {
        self.notice = Some(std::sync::Arc::new(notice));
        self
    }

    /// Maps a status received mid-stream to a `ClientError`.
    pub fn stream_error(&self, status: Status) -> ClientError {
        ClientError::from_status(status, &self.endpoint)
    }
}

/// Gives a mutating request an idempotency key when it has none, so that a
/// retry after a lost reply never submits it twice.
fn with_key(key: &mut String) {
    if key.is_empty() {
        *key = crate::identity::random_hex(16).unwrap_or_default();
    }
}

/// `operations/<id>` for an id, an id prefix or a full name.
pub fn operation_name(id_or_name: &str) -> String {
    if id_or_name.starts_with("operations/") {
        id_or_name.to_string()
    } else {
        format!("operations/{id_or_name}")
    }
}

/// The request metadata packed in an operation.
pub fn request_metadata(operation: &Operation) -> Result<RequestMetadata, ClientError> {
    let any = operation
        .metadata
        .as_ref()
        .ok_or_else(|| ClientError::Protocol(format!("operation {} carries no metadata", operation.name)))?;
    RequestMetadata::decode(any.value.as_slice()).map_err(|err| {
        ClientError::Protocol(format!("operation {} has unreadable metadata: {err}", operation.name))
    })
}

fn call_headers(endpoint: &Endpoint, identity: &Identity) -> Result<CallHeaders, ClientError> {
    let ascii = |what: &str, value: &str| {
        AsciiMetadataValue::try_from(value).map_err(|_| {
            ClientError::Protocol(format!("{what} {value:?} contains characters headers cannot carry"))
        })
    };
    let mut values = vec![
        (API_VERSION_HEADER, ascii("API version", &API_VERSION.to_string())?),
        (USER_NAME_HEADER, ascii("user name", &identity.name)?),
        (USER_ID_HEADER, ascii("user id", &identity.id)?),
    ];
    if let Some(token) = &endpoint.token {
        values.push(("authorization", ascii("the service-account token", &format!("Bearer {token}"))?));
    } else if let Some((user, pass)) = &endpoint.basic_auth {
        let token = crate::base64::encode(format!("{user}:{pass}").as_bytes());
        values.push(("authorization", ascii("credentials", &format!("Basic {token}"))?));
    }
    Ok(CallHeaders { values })
}

fn check_server_version(metadata: &MetadataMap, endpoint: &Endpoint) -> Result<(), ClientError> {
    let Some(version) = metadata.get(API_VERSION_HEADER) else {
        return Ok(());
    };
    let version: i32 = version.to_str().ok().and_then(|v| v.parse().ok()).unwrap_or(0);
    if version < MIN_API_VERSION {
        return Err(ClientError::Incompatible(format!(
            "the API server at {} speaks API version {version}, but this client needs at least \
             version {MIN_API_VERSION}: upgrade the API server (or use an older client)",
            endpoint.display()
        )));
    }
    Ok(())
}

fn error_chain(err: &dyn std::error::Error) -> String {
    let mut text = err.to_string();
    let mut source = err.source();
    while let Some(inner) = source {
        text.push_str(": ");
        text.push_str(&inner.to_string());
        source = inner.source();
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn operation_names_accept_ids_and_full_names() {
        assert_eq!(operation_name("0193"), "operations/0193");
        assert_eq!(operation_name("operations/0193"), "operations/0193");
    }
}
