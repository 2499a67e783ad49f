//! The server process: health states, reflection, the data-dir lock, a busy
//! port, API version checks and oversized or malformed requests.

mod common;

use common::{TestServer, test_config};
use skypilot_api::{
    proto::skypilot::v1::{CheckRequest, GetServerInfoRequest, server_service_client::ServerServiceClient},
    version::API_VERSION_HEADER,
};
use skypilot_server::{DataDirError, Server, StartError};
use tokio_stream::StreamExt;
use tonic::{Code, Request};
use tonic_health::pb::{
    HealthCheckRequest, health_check_response::ServingStatus, health_client::HealthClient,
};
use tonic_reflection::pb::v1::{
    ServerReflectionRequest, server_reflection_client::ServerReflectionClient,
    server_reflection_request::MessageRequest, server_reflection_response::MessageResponse,
};
use tonic_types::StatusExt;

#[tokio::test]
async fn health_is_serving_once_started_and_not_serving_while_shutting_down() {
    let mut server = TestServer::start().await;
    let mut health = HealthClient::new(server.channel().await);
    let status = health.check(HealthCheckRequest { service: String::new() }).await.unwrap();
    assert_eq!(status.into_inner().status(), ServingStatus::Serving);
    let named = HealthCheckRequest { service: "skypilot.v1.RequestService".into() };
    assert_eq!(health.check(named).await.unwrap().into_inner().status(), ServingStatus::Serving);

    let mut updates = health.watch(HealthCheckRequest { service: String::new() }).await.unwrap().into_inner();
    assert_eq!(updates.message().await.unwrap().unwrap().status(), ServingStatus::Serving);
    let running = server.server.take().unwrap();
    let shutdown = tokio::spawn(running.shutdown());
    assert_eq!(updates.message().await.unwrap().unwrap().status(), ServingStatus::NotServing);
    shutdown.await.unwrap().unwrap();
}

async fn reflected_services(server: &TestServer) -> Vec<String> {
    let mut reflection = ServerReflectionClient::new(server.channel().await);
    let request = ServerReflectionRequest {
        host: String::new(),
        message_request: Some(MessageRequest::ListServices(String::new())),
    };
    let mut responses =
        reflection.server_reflection_info(tokio_stream::iter(vec![request])).await.unwrap().into_inner();
    let response = responses.next().await.unwrap().unwrap();
    let Some(MessageResponse::ListServicesResponse(list)) = response.message_response else {
        panic!("unexpected reflection answer: {response:?}")
    };
    list.service.into_iter().map(|s| s.name).collect()
}

#[tokio::test]
async fn reflection_lists_every_service_and_resolves_their_files() {
    let server = TestServer::start().await;
    let services = reflected_services(&server).await;
    for expected in [
        "google.longrunning.Operations",
        "skypilot.v1.RequestService",
        "skypilot.v1.ServerService",
        "skypilot.v1.InfraService",
        "grpc.health.v1.Health",
    ] {
        assert!(services.iter().any(|s| s == expected), "{expected} missing from {services:?}");
    }

    let mut reflection = ServerReflectionClient::new(server.channel().await);
    let request = ServerReflectionRequest {
        host: String::new(),
        message_request: Some(MessageRequest::FileContainingSymbol("skypilot.v1.InfraService".into())),
    };
    let mut responses =
        reflection.server_reflection_info(tokio_stream::iter(vec![request])).await.unwrap().into_inner();
    let response = responses.next().await.unwrap().unwrap();
    let Some(MessageResponse::FileDescriptorResponse(files)) = response.message_response else {
        panic!("unexpected reflection answer: {response:?}")
    };
    assert!(!files.file_descriptor_proto.is_empty());

    use tonic_reflection::pb::v1alpha::{
        ServerReflectionRequest as AlphaRequest,
        server_reflection_client::ServerReflectionClient as AlphaClient,
        server_reflection_request::MessageRequest as AlphaMessage,
    };
    let mut alpha = AlphaClient::new(server.channel().await);
    let request = AlphaRequest {
        host: String::new(),
        message_request: Some(AlphaMessage::ListServices(String::new())),
    };
    let mut responses =
        alpha.server_reflection_info(tokio_stream::iter(vec![request])).await.unwrap().into_inner();
    assert!(responses.next().await.unwrap().is_ok());
}

#[tokio::test]
async fn a_second_server_on_the_same_data_dir_is_refused() {
    let server = TestServer::start().await;
    let err = Server::new(server.config.clone()).start().await.err().expect("second server refused");
    assert!(matches!(err, StartError::DataDir(DataDirError::Locked { .. })), "{err}");
    assert!(err.to_string().contains("already running on data directory"), "{err}");
}

#[tokio::test]
async fn a_busy_port_is_reported_as_such() {
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let dir = tempfile::tempdir().unwrap();
    let mut config = test_config(&dir);
    config.port = taken.local_addr().unwrap().port();
    let err = Server::new(config).start().await.err().expect("busy port refused");
    assert!(matches!(err, StartError::PortInUse { .. }), "{err}");
    assert!(err.to_string().contains("already in use"), "{err}");
}

#[tokio::test]
async fn an_old_client_is_told_to_upgrade_and_responses_carry_the_api_version() {
    let server = TestServer::start().await;
    let mut raw = ServerServiceClient::new(server.channel().await);
    let response = raw.get_server_info(GetServerInfoRequest {}).await.unwrap();
    assert!(response.metadata().get(API_VERSION_HEADER).is_some());

    let mut request = Request::new(GetServerInfoRequest {});
    request.metadata_mut().insert(API_VERSION_HEADER, "0".parse().unwrap());
    let status = raw.get_server_info(request).await.unwrap_err();
    assert_eq!(status.code(), Code::FailedPrecondition);
    assert!(status.message().contains("upgrade the client"), "{}", status.message());
    assert_eq!(status.get_error_details().error_info().unwrap().reason, "CLIENT_TOO_OLD");
}

#[tokio::test]
async fn oversized_and_malformed_requests_get_clear_errors() {
    let server = TestServer::start().await;
    let client = server.client().await;
    let huge = CheckRequest { infras: vec![], idempotency_key: "k".repeat(5 * 1024 * 1024) };
    let err = client.check(huge).await.unwrap_err();
    assert_eq!(err.code(), Some(Code::OutOfRange), "{err}");

    let long_key = CheckRequest { infras: vec![], idempotency_key: "k".repeat(300) };
    let err = client.check(long_key).await.unwrap_err();
    assert_eq!(err.code(), Some(Code::InvalidArgument));
    assert!(err.to_string().contains("`idempotency_key`"), "{err}");

    let mut raw = ServerServiceClient::new(server.channel().await);
    let mut request = Request::new(GetServerInfoRequest {});
    request.metadata_mut().insert("x-skypilot-user", "two words".parse().unwrap());
    let status = raw.get_server_info(request).await.unwrap_err();
    assert_eq!(status.code(), Code::InvalidArgument);
    assert!(status.message().contains("x-skypilot-user"), "{}", status.message());
}

#[tokio::test]
async fn server_info_reports_versions_mode_and_the_caller() {
    let server = TestServer::start().await;
    let info = server.client().await.server_info().await.unwrap();
    assert_eq!(info.version, env!("CARGO_PKG_VERSION"));
    assert!(info.api_version >= info.min_api_version);
    let user = info.user.unwrap();
    assert_eq!((user.name.as_str(), user.id.as_str()), ("alice", "a11ce000"));

    // A call without identity (e.g. from grpcurl) is the server owner's.
    let mut raw = ServerServiceClient::new(server.channel().await);
    let info = raw.get_server_info(GetServerInfoRequest {}).await.unwrap().into_inner();
    assert_eq!(info.user.unwrap().name, "owner");
}

/// Sends a raw HTTP/1.1 request and returns the whole answer.
async fn http1(address: std::net::SocketAddr, request: &str) -> String {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut stream = tokio::net::TcpStream::connect(address).await.unwrap();
    stream.write_all(request.as_bytes()).await.unwrap();
    let mut answer = Vec::new();
    stream.read_to_end(&mut answer).await.unwrap();
    String::from_utf8_lossy(&answer).to_lowercase()
}

#[tokio::test]
async fn browsers_from_an_allowed_origin_may_call_over_grpc_web_and_others_may_not() {
    let dir = tempfile::tempdir().unwrap();
    let mut config = test_config(&dir);
    config.cors_allow_origins = vec!["https://app.example".into()];
    let server = TestServer::start_with(dir, config, Default::default()).await;
    let address = server.running().local_addr();
    let preflight = |origin: &str| {
        format!(
            "OPTIONS /skypilot.v1.ServerService/GetServerInfo HTTP/1.1\r\nhost: {address}\r\norigin: {origin}\r\n\
             access-control-request-method: POST\r\naccess-control-request-headers: content-type,x-grpc-web\r\n\
             connection: close\r\n\r\n"
        )
    };
    let allowed = http1(address, &preflight("https://app.example")).await;
    assert!(allowed.starts_with("http/1.1 200"), "{allowed}");
    assert!(allowed.contains("access-control-allow-origin: https://app.example"), "{allowed}");
    let other = http1(address, &preflight("https://evil.example")).await;
    assert!(!other.contains("access-control-allow-origin"), "{other}");

    let call = format!(
        "POST /skypilot.v1.ServerService/GetServerInfo HTTP/1.1\r\nhost: {address}\r\norigin: https://app.example\r\n\
         content-type: application/grpc-web+proto\r\nx-grpc-web: 1\r\ncontent-length: 5\r\nconnection: close\r\n\r\n\0\0\0\0\0"
    );
    let answer = http1(address, &call).await;
    assert!(answer.starts_with("http/1.1 200"), "{answer}");
    assert!(answer.contains("access-control-expose-headers"), "{answer}");
    assert!(answer.contains("grpc-status:0"), "{answer}");
}

#[tokio::test]
async fn an_invalid_cors_origin_stops_the_start() {
    let dir = tempfile::tempdir().unwrap();
    let mut config = test_config(&dir);
    config.cors_allow_origins = vec!["https://bad\norigin".into()];
    let err = Server::new(config).start().await.err().expect("refused");
    assert!(err.to_string().contains("invalid CORS origin"), "{err}");
}

#[tokio::test]
async fn any_origin_is_refused_on_a_server_that_requires_no_credentials() {
    let dir = tempfile::tempdir().unwrap();
    let mut config = test_config(&dir);
    config.cors_allow_origins = vec!["https://app.example.com".into(), "*".into()];
    let err = Server::new(config.clone()).start().await.err().expect("refused");
    assert!(matches!(err, StartError::Cors(_)), "{err}");
    assert!(err.to_string().contains("'*'") && err.to_string().contains("--deploy"), "{err}");
    // With credentials required, a page from any origin still needs them.
    config.require_auth = true;
    config.initial_basic_auth = Some("admin:a-long-password".into());
    let server = Server::new(config).start().await.expect("starts with credentials required");
    server.shutdown().await.unwrap();
}

#[tokio::test]
async fn a_web_page_that_reaches_a_local_server_through_dns_rebinding_is_refused() {
    let server = TestServer::start().await;
    let address = server.running().local_addr();
    let port = address.port();
    let call = |host: &str, origin: Option<&str>| {
        let origin = origin.map(|o| format!("origin: {o}\r\n")).unwrap_or_default();
        format!(
            "POST /skypilot.v1.ServerService/GetServerInfo HTTP/1.1\r\nhost: {host}\r\n{origin}\
             content-type: application/grpc-web+proto\r\nx-grpc-web: 1\r\ncontent-length: 5\r\n\
             connection: close\r\n\r\n\0\0\0\0\0"
        )
    };
    let rebound =
        http1(address, &call(&format!("rebind.evil.example:{port}"), Some("http://rebind.evil.example")))
            .await;
    assert!(rebound.contains("grpc-status: 7"), "{rebound}");
    let no_origin = http1(address, &call(&format!("rebind.evil.example:{port}"), None)).await;
    assert!(no_origin.contains("grpc-status: 7") && no_origin.contains("localhost"), "{no_origin}");
    let page = http1(address, &call(&format!("127.0.0.1:{port}"), Some("https://some.page"))).await;
    assert!(page.contains("grpc-status: 7") && page.contains("--cors-allow-origin"), "{page}");
    // A program (no Origin) on this host is served as before.
    let local = http1(address, &call(&format!("localhost:{port}"), None)).await;
    assert!(local.contains("grpc-status:0"), "{local}");
}
