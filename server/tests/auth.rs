//! A deployed server: every RPC but health and reflection needs credentials
//! (basic or a service-account token); users, roles and ownership rules.

use std::time::Duration;

use skypilot_api::{
    Client, ClientError, Endpoint, EndpointSource,
    identity::Identity,
    proto::{
        google::longrunning::{GetOperationRequest, operations_client::OperationsClient},
        skypilot::v1::{
            AutostopRequest, CancelJobsRequest, CancelManagedJobsRequest, CheckRequest, ClusterStatus,
            CreateTokenRequest, CreateUserRequest, DeleteUserRequest, ExecRequest, GetServerInfoRequest,
            LaunchManagedJobRequest, LaunchRequest, ListClustersRequest, ListJobsRequest,
            ListManagedJobsRequest, ListRequestsRequest, ManagedJobStatus, Resources, RevokeTokenRequest,
            Role, SetPasswordRequest, SetRoleRequest, TaskSpec, cluster_service_client::ClusterServiceClient,
            job_service_client::JobServiceClient, request_service_client::RequestServiceClient,
            server_service_client::ServerServiceClient,
        },
    },
};
use skypilot_server::{RunningServer, Server, ServerConfig};
use tempfile::TempDir;
use tonic::{Code, transport::Channel};
use tonic_health::pb::{
    HealthCheckRequest, health_check_response::ServingStatus, health_client::HealthClient,
};

const ADMIN: &str = "root";
const ADMIN_PASSWORD: &str = "root-password-1";

async fn deployed() -> (RunningServer, TempDir) {
    let dir = tempfile::tempdir().unwrap();
    let mut config = ServerConfig::local(dir.path().join("api_server"));
    config.port = 0;
    config.require_auth = true;
    config.initial_basic_auth = Some(format!("{ADMIN}:{ADMIN_PASSWORD}"));
    config.shutdown_grace = Duration::from_millis(200);
    (Server::new(config).start().await.unwrap(), dir)
}

fn endpoint(server: &RunningServer, userinfo: &str) -> Endpoint {
    let url = format!("http://{userinfo}{}", server.local_addr());
    Endpoint::parse(&url, EndpointSource::Env).unwrap()
}

async fn client(server: &RunningServer, user: &str, password: &str) -> Client {
    let me = Identity { name: "ignored".into(), id: "ignored".into() };
    Client::connect(&endpoint(server, &format!("{user}:{password}@")), &me).await.unwrap()
}

async fn token_client(server: &RunningServer, token: &str) -> Client {
    let mut endpoint = endpoint(server, "");
    endpoint.token = Some(token.to_string());
    let me = Identity { name: "ignored".into(), id: "ignored".into() };
    Client::connect(&endpoint, &me).await.unwrap()
}

async fn channel(server: &RunningServer) -> Channel {
    Channel::from_shared(format!("http://{}", server.local_addr())).unwrap().connect().await.unwrap()
}

fn assert_unauthenticated<T: std::fmt::Debug>(result: Result<T, tonic::Status>) {
    let status = result.unwrap_err();
    assert_eq!(status.code(), Code::Unauthenticated, "{status:?}");
    assert!(status.message().contains("sky api login"), "{}", status.message());
}

fn small_task() -> TaskSpec {
    TaskSpec {
        run: "true".into(),
        num_nodes: 1,
        resources: Some(Resources { cpus: "0.5".into(), ..Default::default() }),
        ..Default::default()
    }
}

#[tokio::test]
async fn anonymous_callers_are_refused_everywhere_but_health_and_reflection() {
    let (server, _dir) = deployed().await;
    let channel = channel(&server).await;
    assert_unauthenticated(
        ServerServiceClient::new(channel.clone()).get_server_info(GetServerInfoRequest {}).await,
    );
    assert_unauthenticated(
        RequestServiceClient::new(channel.clone()).list_requests(ListRequestsRequest::default()).await,
    );
    assert_unauthenticated(
        OperationsClient::new(channel.clone())
            .get_operation(GetOperationRequest { name: "operations/01".into() })
            .await,
    );
    assert_unauthenticated(
        ClusterServiceClient::new(channel.clone()).list_clusters(ListClustersRequest::default()).await,
    );
    assert_unauthenticated(
        ClusterServiceClient::new(channel.clone())
            .launch(LaunchRequest {
                task: Some(small_task()),
                cluster_name: "x".into(),
                ..Default::default()
            })
            .await,
    );
    assert_unauthenticated(
        JobServiceClient::new(channel.clone()).list_jobs(ListJobsRequest::default()).await,
    );

    // Repeated failures from one source slow its answers down; a success resets that.
    client(&server, ADMIN, ADMIN_PASSWORD).await.who_am_i().await.unwrap();

    let health =
        HealthClient::new(channel.clone()).check(HealthCheckRequest { service: String::new() }).await;
    assert_eq!(health.unwrap().into_inner().status(), ServingStatus::Serving);

    let me = Identity { name: "x".into(), id: "x".into() };
    let bad = Client::connect(&endpoint(&server, "root:wrong-password@"), &me).await.unwrap();
    let err = bad.server_info().await.unwrap_err();
    assert_eq!(err.code(), Some(Code::Unauthenticated));
    assert!(err.to_string().contains("wrong user name or password"), "{err}");
    let unknown = token_client(&server, "sky_0000").await.who_am_i().await.unwrap_err();
    assert_eq!(unknown.code(), Some(Code::Unauthenticated));

    let mut raw = ServerServiceClient::new(channel);
    let mut request = tonic::Request::new(GetServerInfoRequest {});
    request.metadata_mut().insert("authorization", "Digest abc".parse().unwrap());
    let status = raw.get_server_info(request).await.unwrap_err();
    assert_eq!(status.code(), Code::Unauthenticated);
    assert!(status.message().contains("malformed"), "{}", status.message());
}

#[tokio::test]
async fn basic_credentials_and_tokens_work_and_a_revoked_token_stops_at_once() {
    let (server, _dir) = deployed().await;
    let admin = client(&server, ADMIN, ADMIN_PASSWORD).await;
    let me = admin.who_am_i().await.unwrap();
    assert_eq!((me.name.as_str(), me.role()), (ADMIN, Role::Admin));

    let created = admin
        .accept(
            admin.users().create_token(CreateTokenRequest { name: "ci".into(), ..Default::default() }).await,
        )
        .unwrap();
    assert!(created.secret.starts_with("sky_"));
    let by_token = token_client(&server, &created.secret).await;
    assert_eq!(by_token.who_am_i().await.unwrap().name, ADMIN);
    let op = by_token.check(CheckRequest::default()).await.unwrap();
    by_token.wait_operation(&op.name, Duration::from_secs(30)).await.unwrap();

    let token_id = created.token.unwrap().token_id;
    admin.accept(admin.users().revoke_token(RevokeTokenRequest { token_id }).await).unwrap();
    let err = by_token.who_am_i().await.unwrap_err();
    assert_eq!(err.code(), Some(Code::Unauthenticated), "{err}");
}

#[tokio::test]
async fn a_token_is_refused_once_its_lifetime_is_over() {
    let (server, _dir) = deployed().await;
    let admin = client(&server, ADMIN, ADMIN_PASSWORD).await;
    let short = CreateTokenRequest { name: "short".into(), expires_in_seconds: 1, ..Default::default() };
    let created = admin.accept(admin.users().create_token(short).await).unwrap();
    let expires = created.token.as_ref().and_then(|t| t.expires_at).expect("an expiry");
    let by_token = token_client(&server, &created.secret).await;
    assert_eq!(by_token.who_am_i().await.unwrap().name, ADMIN, "the token works within its lifetime");
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    let err = loop {
        match by_token.who_am_i().await {
            Ok(_) => assert!(std::time::Instant::now() < deadline, "the token outlived its lifetime"),
            Err(err) => break err,
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    assert_eq!(err.code(), Some(Code::Unauthenticated), "{err}");
    let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_secs() as i64;
    assert!(now >= expires.seconds, "refused before its expiry ({} < {})", now, expires.seconds);
    server.shutdown().await.unwrap();
}

#[tokio::test]
async fn only_admins_manage_users_and_the_last_admin_stays() {
    let (server, _dir) = deployed().await;
    let admin = client(&server, ADMIN, ADMIN_PASSWORD).await;
    let create = |name: &str, role: Role| CreateUserRequest {
        name: name.into(),
        password: format!("{name}-password"),
        role: role as i32,
    };
    admin.accept(admin.users().create_user(create("alice", Role::User)).await).unwrap();
    let alice = client(&server, "alice", "alice-password").await;
    assert_eq!(alice.who_am_i().await.unwrap().role(), Role::User);

    let denied = |result: Result<_, ClientError>| {
        let err = result.unwrap_err();
        assert_eq!(err.code(), Some(Code::PermissionDenied), "{err}");
    };
    denied(alice.accept(alice.users().create_user(create("mallory", Role::Admin)).await).map(|_| ()));
    denied(
        alice
            .accept(
                alice
                    .users()
                    .set_password(SetPasswordRequest { name: ADMIN.into(), password: "hijacked-1".into() })
                    .await,
            )
            .map(|_| ()),
    );
    alice
        .accept(
            alice
                .users()
                .set_password(SetPasswordRequest { name: String::new(), password: "alice-new-pass".into() })
                .await,
        )
        .unwrap();
    client(&server, "alice", "alice-new-pass").await.who_am_i().await.unwrap();
    assert_eq!(
        client(&server, "alice", "alice-password").await.who_am_i().await.unwrap_err().code(),
        Some(Code::Unauthenticated)
    );

    let last =
        admin.accept(admin.users().delete_user(DeleteUserRequest { name: ADMIN.into() }).await).unwrap_err();
    assert_eq!(last.code(), Some(Code::FailedPrecondition));
    assert!(last.to_string().contains("last admin"), "{last}");
    let demote = admin
        .accept(admin.users().set_role(SetRoleRequest { name: ADMIN.into(), role: Role::User as i32 }).await);
    assert_eq!(demote.unwrap_err().code(), Some(Code::FailedPrecondition));
    let duplicate = admin.accept(admin.users().create_user(create("alice", Role::User)).await).unwrap_err();
    assert_eq!(duplicate.code(), Some(Code::AlreadyExists));
}

#[tokio::test]
async fn only_the_owner_or_an_admin_may_change_a_cluster_but_everyone_sees_it() {
    let (server, _dir) = deployed().await;
    let admin = client(&server, ADMIN, ADMIN_PASSWORD).await;
    for name in ["alice", "bob"] {
        let request = CreateUserRequest {
            name: name.into(),
            password: format!("{name}-password"),
            role: Role::User as i32,
        };
        admin.accept(admin.users().create_user(request).await).unwrap();
    }
    let alice = client(&server, "alice", "alice-password").await;
    let bob = client(&server, "bob", "bob-password").await;

    let launch = alice
        .launch(LaunchRequest {
            task: Some(small_task()),
            cluster_name: "alices".into(),
            ..Default::default()
        })
        .await
        .unwrap();
    let launch = alice.wait_operation(&launch.name, Duration::from_secs(30)).await.unwrap();
    assert!(launch.done);

    let seen = bob
        .list_clusters(ListClustersRequest { cluster_names: vec![], all_users: true, refresh: false })
        .await
        .unwrap();
    assert_eq!(seen.len(), 1);
    assert_eq!(seen[0].user_name, "alice");
    let own = bob.list_clusters(ListClustersRequest::default()).await.unwrap();
    assert!(own.is_empty());

    let err = bob.cluster_action(skypilot_api::client::ClusterAction::Stop, "alices").await.unwrap_err();
    assert_eq!(err.code(), Some(Code::PermissionDenied));
    assert!(err.to_string().contains("belongs to alice"), "{err}");
    let err = bob.cancel_operation(&launch.name).await.unwrap_err();
    assert_eq!(err.code(), Some(Code::PermissionDenied));
    for action in [skypilot_api::client::ClusterAction::Start, skypilot_api::client::ClusterAction::Down] {
        let err = bob.cluster_action(action, "alices").await.unwrap_err();
        assert_eq!(err.code(), Some(Code::PermissionDenied), "{action}: {err}");
    }
    let exec = ExecRequest {
        cluster_name: "alices".into(),
        task: Some(small_task()),
        idempotency_key: String::new(),
    };
    assert_eq!(bob.exec(exec).await.unwrap_err().code(), Some(Code::PermissionDenied));
    let autostop = AutostopRequest { cluster_name: "alices".into(), idle_minutes: 1, ..Default::default() };
    assert_eq!(bob.autostop(autostop).await.unwrap_err().code(), Some(Code::PermissionDenied));
    let cancel = CancelJobsRequest { cluster_name: "alices".into(), all: true, ..Default::default() };
    assert_eq!(bob.cancel_jobs(cancel).await.unwrap_err().code(), Some(Code::PermissionDenied));
    let relaunch =
        LaunchRequest { task: Some(small_task()), cluster_name: "alices".into(), ..Default::default() };
    assert_eq!(bob.launch(relaunch).await.unwrap_err().code(), Some(Code::PermissionDenied));

    let refused = admin.accept(admin.users().delete_user(DeleteUserRequest { name: "alice".into() }).await);
    let refused = refused.unwrap_err();
    assert_eq!(refused.code(), Some(Code::FailedPrecondition));
    assert!(refused.to_string().contains("alices"), "{refused}");

    let stop = admin.cluster_action(skypilot_api::client::ClusterAction::Stop, "alices").await.unwrap();
    admin.wait_operation(&stop.name, Duration::from_secs(30)).await.unwrap();
    let clusters = admin
        .list_clusters(ListClustersRequest { cluster_names: vec![], all_users: true, refresh: false })
        .await
        .unwrap();
    assert_eq!(clusters[0].status(), ClusterStatus::Stopped);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn everyone_sees_every_managed_job_but_only_its_owner_or_an_admin_cancels_it() {
    let (server, _dir) = deployed().await;
    let admin = client(&server, ADMIN, ADMIN_PASSWORD).await;
    for name in ["alice", "bob"] {
        let request = CreateUserRequest {
            name: name.into(),
            password: format!("{name}-password"),
            role: Role::User as i32,
        };
        admin.accept(admin.users().create_user(request).await).unwrap();
    }
    let alice = client(&server, "alice", "alice-password").await;
    let bob = client(&server, "bob", "bob-password").await;
    let task = TaskSpec { run: "sleep 600".into(), ..small_task() };
    let request =
        LaunchManagedJobRequest { tasks: vec![task], name: "alices-job".into(), ..Default::default() };
    let launch = alice.launch_managed_job(request).await.unwrap();
    let launch = alice.wait_operation(&launch.name, Duration::from_secs(30)).await.unwrap();
    assert!(launch.done);

    let everyone = ListManagedJobsRequest { all_users: true, ..Default::default() };
    let seen = bob.list_managed_jobs(everyone.clone()).await.unwrap().jobs;
    assert_eq!(seen.len(), 1);
    assert_eq!((seen[0].user_name.as_str(), seen[0].name.as_str()), ("alice", "alices-job"));
    assert!(bob.list_managed_jobs(ListManagedJobsRequest::default()).await.unwrap().jobs.is_empty());
    let id = seen[0].job_id;

    let refused = admin.accept(admin.users().delete_user(DeleteUserRequest { name: "alice".into() }).await);
    let refused = refused.unwrap_err();
    assert_eq!(refused.code(), Some(Code::FailedPrecondition), "{refused}");
    assert!(refused.to_string().contains(&format!("managed job {id}")), "{refused}");

    let by_id = CancelManagedJobsRequest { job_ids: vec![id], ..Default::default() };
    let err = bob.cancel_managed_jobs(by_id.clone()).await.unwrap_err();
    assert_eq!(err.code(), Some(Code::PermissionDenied), "{err}");
    assert!(err.to_string().contains("belongs to alice"), "{err}");
    let by_name =
        CancelManagedJobsRequest { name: "alices-job".into(), all_users: true, ..Default::default() };
    assert_eq!(bob.cancel_managed_jobs(by_name).await.unwrap_err().code(), Some(Code::PermissionDenied));
    // Bob's "all of mine" finds none of alice's.
    let mine = CancelManagedJobsRequest { all: true, ..Default::default() };
    let op = bob.cancel_managed_jobs(mine).await.unwrap();
    bob.wait_operation(&op.name, Duration::from_secs(30)).await.unwrap();
    let job = &admin.list_managed_jobs(everyone.clone()).await.unwrap().jobs[0];
    assert!(!matches!(job.status(), ManagedJobStatus::Cancelled | ManagedJobStatus::Cancelling));

    let op = admin.cancel_managed_jobs(by_id).await.unwrap();
    let op = admin.wait_operation(&op.name, Duration::from_secs(60)).await.unwrap();
    assert!(op.done);
    let job = &alice.list_managed_jobs(everyone).await.unwrap().jobs[0];
    assert_eq!(job.status(), ManagedJobStatus::Cancelled);
    let clusters = admin
        .list_clusters(ListClustersRequest { cluster_names: vec![], all_users: true, refresh: false })
        .await
        .unwrap();
    assert!(clusters.is_empty(), "{clusters:?}");
    server.shutdown().await.unwrap();
}

#[tokio::test]
async fn a_server_beyond_loopback_without_authentication_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let mut config = ServerConfig::local(dir.path().join("api_server"));
    config.host = "0.0.0.0".into();
    config.port = 0;
    let err = Server::new(config).start().await.err().expect("refused");
    assert!(err.to_string().contains("--insecure-no-auth"), "{err}");
}

#[tokio::test]
async fn an_initial_service_account_token_belongs_to_the_first_admin() {
    let dir = tempfile::tempdir().unwrap();
    let token = format!("sky_{}", "ab".repeat(32));
    let token_file = dir.path().join("token");
    std::fs::write(&token_file, format!("{token}\n")).unwrap();
    let mut config = ServerConfig::local(dir.path().join("api_server"));
    config.port = 0;
    config.require_auth = true;
    config.initial_basic_auth = Some(format!("{ADMIN}:{ADMIN_PASSWORD}"));
    config.initial_service_account_token = Some(token_file.display().to_string());
    let server = Server::new(config).start().await.unwrap();
    let me = token_client(&server, &token).await.who_am_i().await.unwrap();
    assert_eq!(me.name, ADMIN);
    assert_eq!(me.role(), Role::Admin);
    server.shutdown().await.unwrap();
}

#[tokio::test]
async fn a_malformed_initial_token_stops_the_start_and_creates_no_user() {
    let dir = tempfile::tempdir().unwrap();
    let mut config = ServerConfig::local(dir.path().join("api_server"));
    config.port = 0;
    config.require_auth = true;
    config.initial_basic_auth = Some(format!("{ADMIN}:{ADMIN_PASSWORD}"));
    config.initial_service_account_token = Some("not-a-token".into());
    let err = Server::new(config.clone()).start().await.err().expect("a bad token is refused");
    assert!(err.to_string().contains("SKYPILOT_INITIAL_SERVICE_ACCOUNT_TOKEN"), "{err}");
    config.initial_service_account_token = None;
    let server = Server::new(config).start().await.unwrap();
    assert_eq!(client(&server, ADMIN, ADMIN_PASSWORD).await.who_am_i().await.unwrap().name, ADMIN);
    server.shutdown().await.unwrap();
}

#[tokio::test]
async fn the_health_port_answers_probes_in_plaintext_without_credentials() {
    let dir = tempfile::tempdir().unwrap();
    let mut config = ServerConfig::local(dir.path().join("api_server"));
    config.port = 0;
    config.require_auth = true;
    config.initial_basic_auth = Some(format!("{ADMIN}:{ADMIN_PASSWORD}"));
    config.health_port = Some(0);
    let server = Server::new(config).start().await.unwrap();
    let address = server.health_addr().expect("a health listener");
    assert_ne!(address, server.local_addr());
    let channel = Channel::from_shared(format!("http://{address}")).unwrap().connect().await.unwrap();
    let status =
        HealthClient::new(channel).check(HealthCheckRequest { service: String::new() }).await.unwrap();
    assert_eq!(status.into_inner().status(), ServingStatus::Serving);
    server.shutdown().await.unwrap();
}

/// Sends one GetServerInfo with `user:password` as basic credentials.
async fn try_password(channel: Channel, user: &str, password: &str) -> Code {
    let mut request = tonic::Request::new(GetServerInfoRequest {});
    let header = format!("Basic {}", skypilot_api::base64::encode(format!("{user}:{password}").as_bytes()));
    request.metadata_mut().insert("authorization", header.parse().unwrap());
    match ServerServiceClient::new(channel).get_server_info(request).await {
        Ok(_) => Code::Ok,
        Err(status) => status.code(),
    }
}

#[tokio::test]
async fn password_guesses_sent_in_parallel_are_checked_one_at_a_time_and_slowed_down() {
    let (server, _dir) = deployed().await;
    let channel = channel(&server).await;
    let started = std::time::Instant::now();
    // Known and unknown user names alike; 8 at once from one source.
    let guesses = (0..8).map(|i| {
        let user = if i % 2 == 0 { ADMIN } else { "nobody" };
        let channel = channel.clone();
        async move { try_password(channel, user, &format!("guess-{i}")).await }
    });
    let codes = futures_util::future::join_all(guesses).await;
    assert!(codes.iter().all(|code| *code == Code::Unauthenticated), "{codes:?}");
    // Attempts 4 to 8 wait 0.1, 0.2, 0.4, 0.8 and 1.6 s, one after another.
    let elapsed = started.elapsed();
    assert!(elapsed >= Duration::from_millis(3100), "8 parallel guesses took only {elapsed:?}");
    // The right password still works (after its own wait), and resets the count.
    assert_eq!(try_password(channel.clone(), ADMIN, ADMIN_PASSWORD).await, Code::Ok);
    let again = std::time::Instant::now();
    assert_eq!(try_password(channel, "nobody", "x").await, Code::Unauthenticated);
    assert!(again.elapsed() < Duration::from_millis(3100));
    server.shutdown().await.unwrap();
}

#[tokio::test]
async fn user_and_token_ids_are_128_bit_and_token_lifetimes_are_bounded() {
    let (server, _dir) = deployed().await;
    let admin = client(&server, ADMIN, ADMIN_PASSWORD).await;
    let me = admin.who_am_i().await.unwrap();
    assert_eq!(me.id.len(), 32, "{}", me.id);
    let forever =
        CreateTokenRequest { name: "ci".into(), expires_in_seconds: i64::MAX, ..Default::default() };
    let err = admin.accept(admin.users().create_token(forever).await).unwrap_err();
    assert_eq!(err.code(), Some(Code::InvalidArgument));
    assert!(err.to_string().contains("expires_in_seconds"), "{err}");
    let escape = CreateTokenRequest { name: "\u{1b}[2J".into(), ..Default::default() };
    assert_eq!(
        admin.accept(admin.users().create_token(escape).await).unwrap_err().code(),
        Some(Code::InvalidArgument)
    );
    let token = CreateTokenRequest { name: "ci".into(), expires_in_seconds: 3600, ..Default::default() };
    let created = admin.accept(admin.users().create_token(token).await).unwrap();
    assert_eq!(created.token.unwrap().token_id.len(), 32);
    server.shutdown().await.unwrap();
}

/// A plain HTTP/1.1 GET of `path` on `address`, with `authorization` when
/// given: the status code and the body.
fn http_get(address: std::net::SocketAddr, path: &str, authorization: Option<&str>) -> (u16, String) {
    use std::io::{Read, Write};
    let mut stream = std::net::TcpStream::connect(address).unwrap();
    let auth = authorization.map(|value| format!("Authorization: {value}\r\n")).unwrap_or_default();
    write!(stream, "GET {path} HTTP/1.1\r\nHost: {address}\r\n{auth}Connection: close\r\n\r\n").unwrap();
    let mut response = String::new();
    stream.read_to_string(&mut response).unwrap();
    let status = response.split(' ').nth(1).and_then(|code| code.parse().ok()).unwrap_or(0);
    let body = response.split_once("\r\n\r\n").map(|(_, body)| body.to_string()).unwrap_or_default();
    (status, body)
}

#[tokio::test]
async fn metrics_need_credentials_on_the_api_port_and_none_on_the_metrics_port() {
    let dir = tempfile::tempdir().unwrap();
    let mut config = ServerConfig::local(dir.path().join("api_server"));
    config.port = 0;
    config.require_auth = true;
    config.initial_basic_auth = Some(format!("{ADMIN}:{ADMIN_PASSWORD}"));
    config.metrics_port = Some(0);
    config.shutdown_grace = Duration::from_millis(200);
    let server = Server::new(config).start().await.unwrap();
    let admin = client(&server, ADMIN, ADMIN_PASSWORD).await;
    admin.list_clusters(Default::default()).await.unwrap();
    let (api, metrics_port) = (server.local_addr(), server.metrics_addr().expect("a metrics listener"));
    let basic =
        format!("Basic {}", skypilot_api::base64::encode(format!("{ADMIN}:{ADMIN_PASSWORD}").as_bytes()));
    let (anonymous, wrong, right, alone) = tokio::task::spawn_blocking(move || {
        (
            http_get(api, "/metrics", None),
            http_get(api, "/metrics", Some("Basic d3Jvbmc6d3Jvbmc=")),
            http_get(api, "/metrics", Some(&basic)),
            http_get(metrics_port, "/metrics", None),
        )
    })
    .await
    .unwrap();
    assert_eq!(anonymous.0, 401, "{}", anonymous.1);
    assert!(anonymous.1.contains("requires credentials"), "{}", anonymous.1);
    assert_eq!(wrong.0, 401);
    assert!(!wrong.1.contains("skypilot_"), "nothing is shown to a stranger");
    assert_eq!(right.0, 200);
    for (status, page) in [&right, &alone] {
        assert_eq!(*status, 200);
        assert!(
            page.contains(
                "skypilot_grpc_calls_total{method=\"/skypilot.v1.ClusterService/ListClusters\",code=\"OK\"}"
            ),
            "{page}"
        );
        assert!(page.contains("skypilot_auth_failures_total"), "{page}");
        assert!(page.contains("skypilot_store_size_bytes"), "{page}");
    }
    server.shutdown().await.unwrap();
}
