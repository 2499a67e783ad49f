//! The operation engine over real gRPC: lifecycle, cancel, wait, watch, logs,
//! prefix lookup, idempotency and restarts.

mod common;

use std::{sync::atomic::Ordering, time::Duration};

use common::{GATE, GATE_LONG, GATE_RESUMABLE, ONE_SHOT, TestServer};
use prost::Message;
use skypilot_api::{
    client::request_metadata,
    proto::{
        google::longrunning::{
            DeleteOperationRequest, ListOperationsRequest, Operation, operation,
            operations_client::OperationsClient,
        },
        skypilot::v1::{
            CheckRequest, CheckResponse, ErrorReason, ListRequestsRequest, RequestState, StreamLogsRequest,
        },
    },
};
use tonic::Code;

fn state(op: &Operation) -> RequestState {
    request_metadata(op).unwrap().state()
}

async fn collect_logs(client: &skypilot_api::Client, request: StreamLogsRequest) -> Vec<(i64, Vec<u8>)> {
    let mut stream = client.stream_logs(request).await.unwrap();
    let mut chunks = Vec::new();
    while let Some(chunk) = stream.message().await.unwrap() {
        chunks.push((chunk.offset, chunk.data));
    }
    chunks
}

#[tokio::test]
async fn an_operation_goes_from_pending_to_succeeded_and_watchers_see_it() {
    let server = TestServer::start().await;
    let client = server.client().await;
    let record = server.submit(GATE, "").await;
    assert_eq!(record.state(), RequestState::Pending);

    let mut watch = client.watch_operation(&record.id).await.unwrap();
    let mut seen = Vec::new();
    while let Some(update) = watch.message().await.unwrap() {
        let op = update.operation.unwrap();
        let current = state(&op);
        if seen.last() != Some(&current) {
            seen.push(current);
        }
        if current == RequestState::Running {
            server.open_gate(1);
        }
        if op.done {
            assert!(matches!(op.result, Some(operation::Result::Response(_))));
        }
    }
    assert_eq!(seen.last(), Some(&RequestState::Succeeded));
    assert!(seen.contains(&RequestState::Running), "{seen:?}");

    let op = client.get_operation(&record.id).await.unwrap();
    let metadata = request_metadata(&op).unwrap();
    assert_eq!(op.name, format!("operations/{}", record.id));
    assert_eq!(metadata.request_name, GATE);
    assert_eq!(metadata.user_name, "alice");
    assert!(metadata.start_time.is_some() && metadata.finish_time.is_some());
    assert_eq!(metadata.log_size, "started\nfinished\n".len() as i64);
}

#[tokio::test]
async fn check_reports_the_local_infra_and_its_total_as_an_operation_response() {
    let server = TestServer::start().await;
    let client = server.client().await;
    let op = client.check(CheckRequest::default()).await.unwrap();
    assert_eq!(request_metadata(&op).unwrap().request_name, "sky.check");
    let op = client.wait_operation(&op.name, Duration::from_secs(30)).await.unwrap();
    assert!(op.done);
    let Some(operation::Result::Response(any)) = op.result else { panic!("no response: {op:?}") };
    assert_eq!(any.type_url, "type.googleapis.com/skypilot.v1.CheckResponse");
    let response = CheckResponse::decode(any.value.as_slice()).unwrap();
    assert_eq!(response.infras.len(), 1);
    let local = &response.infras[0];
    assert!(local.enabled && local.reason.contains("CPUs"));
    // The machine's total also comes as numbers, as in the text.
    assert!(local.cpus > 0 && local.memory_gib > 0.0, "{local:?}");
    assert!(local.reason.starts_with(&format!("{} CPUs, {:.1} GiB memory", local.cpus, local.memory_gib)));

    let logs = collect_logs(&client, StreamLogsRequest { name: op.name.clone(), ..Default::default() }).await;
    let text: String = logs.iter().map(|(_, data)| String::from_utf8_lossy(data).into_owned()).collect();
    assert!(text.contains("Local: enabled"), "{text}");
}

#[tokio::test]
async fn a_bad_check_request_is_refused_before_anything_is_stored() {
    let server = TestServer::start().await;
    let client = server.client().await;
    let err =
        client.check(CheckRequest { infras: vec!["aws".into()], ..Default::default() }).await.unwrap_err();
    assert_eq!(err.code(), Some(Code::InvalidArgument));
    assert_eq!(err.reason(), Some("INVALID_ARGUMENT"));
    assert_eq!(err.error_reason(), Some(ErrorReason::InvalidArgument));
    assert!(err.to_string().contains("`infras`"), "{err}");
    let all =
        client.list_requests(ListRequestsRequest { include_finished: true, ..Default::default() }).await;
    assert!(all.unwrap().is_empty());
}

#[tokio::test]
async fn operations_on_one_cluster_run_in_order_and_other_clusters_do_not_wait() {
    let server = TestServer::start().await;
    let first = server.submit(GATE, "c").await;
    let second = server.submit(GATE, "c").await;
    let other = server.submit(GATE, "d").await;
    server.wait_for_state(&first.id, RequestState::Running).await;
    server.wait_for_state(&other.id, RequestState::Running).await;
    let client = server.client().await;
    // The second can only start once the first is done.
    assert_eq!(state(&client.get_operation(&second.id).await.unwrap()), RequestState::Pending);
    server.open_gate(1);
    // Whichever of `first` and `other` took the permit, `second` follows `first`.
    server.open_gate(2);
    let done = client.wait_operation(&second.id, Duration::from_secs(30)).await.unwrap();
    assert_eq!(state(&done), RequestState::Succeeded);
    let first_done = client.get_operation(&first.id).await.unwrap();
    let at = |ts: Option<prost_types::Timestamp>| ts.map(|t| (t.seconds, t.nanos)).unwrap();
    let first_finish = at(request_metadata(&first_done).unwrap().finish_time);
    assert!(first_finish <= at(request_metadata(&done).unwrap().start_time));
}

#[tokio::test]
async fn short_operations_are_not_held_up_by_a_full_long_queue() {
    let server = TestServer::start().await; // 2 LONG workers
    let long: Vec<_> = [
        server.submit(GATE_LONG, "").await,
        server.submit(GATE_LONG, "").await,
        server.submit(GATE_LONG, "").await,
    ]
    .into_iter()
    .collect();
    server.wait_for_state(&long[0].id, RequestState::Running).await;
    server.wait_for_state(&long[1].id, RequestState::Running).await;
    let client = server.client().await;
    assert_eq!(state(&client.get_operation(&long[2].id).await.unwrap()), RequestState::Pending);

    let check = client.check(CheckRequest::default()).await.unwrap();
    let check = client.wait_operation(&check.name, Duration::from_secs(30)).await.unwrap();
    assert_eq!(state(&check), RequestState::Succeeded);
    server.open_gate(3);
}

#[tokio::test]
async fn cancelling_a_pending_operation_is_immediate_and_it_never_runs() {
    let server = TestServer::start().await;
    let first = server.submit(GATE, "c").await;
    let second = server.submit(GATE, "c").await;
    server.wait_for_state(&first.id, RequestState::Running).await;
    let client = server.client().await;
    client.cancel_operation(&second.id).await.unwrap();

    let op = client.get_operation(&second.id).await.unwrap();
    assert!(op.done);
    assert_eq!(state(&op), RequestState::Cancelled);
    let Some(operation::Result::Error(status)) = op.result else { panic!("no error") };
    assert_eq!(status.code, Code::Cancelled as i32);

    server.open_gate(1);
    client.wait_operation(&first.id, Duration::from_secs(30)).await.unwrap();
    assert_eq!(server.controls.runs.load(Ordering::SeqCst), 1, "the cancelled operation ran");
}

#[tokio::test]
async fn cancelling_a_running_operation_stops_it_through_its_token() {
    let server = TestServer::start().await;
    let record = server.submit(GATE, "").await;
    server.wait_for_state(&record.id, RequestState::Running).await;
    let client = server.client().await;
    client.cancel_operation(&record.id).await.unwrap();
    let op = client.wait_operation(&record.id, Duration::from_secs(30)).await.unwrap();
    assert_eq!(state(&op), RequestState::Cancelled);
    assert_eq!(server.controls.dropped.load(Ordering::SeqCst), 1, "the running work was not stopped");

    let again = client.cancel_operation(&record.id).await.unwrap_err();
    assert_eq!(again.code(), Some(Code::FailedPrecondition));
    assert_eq!(again.reason(), Some("ALREADY_DONE"));
}

#[tokio::test]
async fn wait_returns_the_unfinished_operation_when_its_timeout_passes() {
    let server = TestServer::start().await;
    let record = server.submit(GATE, "").await;
    let client = server.client().await;
    let op = client.wait_operation(&record.id, Duration::from_millis(50)).await.unwrap();
    assert!(!op.done);
    server.open_gate(1);
    let op = client.wait_operation(&record.id, Duration::from_secs(30)).await.unwrap();
    assert!(op.done);
}

#[tokio::test]
async fn logs_follow_a_running_operation_and_resume_from_an_offset() {
    let server = TestServer::start().await;
    let record = server.submit(GATE, "").await;
    let client = server.client().await;
    let name = format!("operations/{}", record.id);

    let mut stream = client
        .stream_logs(StreamLogsRequest { name: name.clone(), follow: true, ..Default::default() })
        .await
        .unwrap();
    let first = stream.message().await.unwrap().unwrap();
    assert_eq!((first.offset, first.data.as_slice()), (0, b"started\n".as_slice()));
    drop(stream); // the client goes away mid-stream

    server.open_gate(1);
    let resumed = collect_logs(
        &client,
        StreamLogsRequest { name: name.clone(), follow: true, offset: Some(8), ..Default::default() },
    )
    .await;
    let resumed_text: Vec<u8> = resumed.iter().flat_map(|(_, d)| d.clone()).collect();
    assert_eq!(resumed[0].0, 8);
    assert_eq!(resumed_text, b"finished\n");

    let tail =
        collect_logs(&client, StreamLogsRequest { name, tail_lines: Some(1), ..Default::default() }).await;
    assert_eq!(tail, vec![(8, b"finished\n".to_vec())]);
}

#[tokio::test]
async fn ids_resolve_from_unique_prefixes_and_ambiguous_ones_list_the_matches() {
    let server = TestServer::start().await;
    let a = server.submit(ONE_SHOT, "").await;
    let b = server.submit(ONE_SHOT, "").await;
    let client = server.client().await;

    let by_prefix = client.get_operation(&a.id[..a.id.len() - 1]).await.unwrap();
    assert_eq!(by_prefix.name, format!("operations/{}", a.id));

    let err = client.get_operation(&a.id[..4]).await.unwrap_err();
    assert_eq!(err.code(), Some(Code::InvalidArgument));
    assert_eq!(err.reason(), Some("AMBIGUOUS_ID"));
    assert!(err.to_string().contains(&a.id) && err.to_string().contains(&b.id), "{err}");

    let err = client.get_operation("ffffffff").await.unwrap_err();
    assert_eq!((err.code(), err.reason()), (Some(Code::NotFound), Some("NOT_FOUND")));
    let err = client.get_operation("not-an-id!").await.unwrap_err();
    assert_eq!(err.code(), Some(Code::InvalidArgument));
    assert!(err.to_string().contains("`name`"), "{err}");
}

#[tokio::test]
async fn an_idempotency_key_returns_the_same_operation_for_the_same_request() {
    let server = TestServer::start().await;
    let client = server.client().await;
    let request = CheckRequest { infras: vec!["local".into()], idempotency_key: "retry-1".into() };
    let first = client.check(request.clone()).await.unwrap();
    let again = client.check(request.clone()).await.unwrap();
    assert_eq!(first.name, again.name);

    let different = CheckRequest { infras: vec![], idempotency_key: "retry-1".into() };
    let err = client.check(different).await.unwrap_err();
    assert_eq!((err.code(), err.reason()), (Some(Code::AlreadyExists), Some("IDEMPOTENCY_KEY_REUSED")));

    // Another user's identical key is theirs alone.
    let bob = server.client_as(&common::bob()).await;
    let theirs = bob.check(request).await.unwrap();
    assert_ne!(theirs.name, first.name);
}

#[tokio::test]
async fn list_requests_shows_the_callers_active_requests_unless_asked_for_more() {
    let server = TestServer::start().await;
    let running = server.submit(GATE, "dev").await;
    let done = server.submit(ONE_SHOT, "").await;
    let alice = server.client().await;
    alice.wait_operation(&done.id, Duration::from_secs(30)).await.unwrap();
    let bob = server.client_as(&common::bob()).await;
    let bobs = bob.check(CheckRequest::default()).await.unwrap();
    bob.wait_operation(&bobs.name, Duration::from_secs(30)).await.unwrap();

    let ids = |ops: Vec<Operation>| -> Vec<String> {
        ops.iter().map(|op| request_metadata(op).unwrap().request_id).collect()
    };
    let active = alice.list_requests(ListRequestsRequest::default()).await.unwrap();
    assert_eq!(ids(active), vec![running.id.clone()]);
    let mine = alice.list_requests(ListRequestsRequest { include_finished: true, ..Default::default() });
    assert_eq!(ids(mine.await.unwrap()), [done.id.clone(), running.id.clone()]);
    let everyone = alice
        .list_requests(ListRequestsRequest { include_finished: true, all_users: true, ..Default::default() })
        .await
        .unwrap();
    assert_eq!(everyone.len(), 3);
    let on_dev = alice
        .list_requests(ListRequestsRequest {
            include_finished: true,
            cluster_name: "dev".into(),
            ..Default::default()
        })
        .await
        .unwrap();
    assert_eq!(ids(on_dev), vec![running.id.clone()]);
    let limited = alice
        .list_requests(ListRequestsRequest {
            include_finished: true,
            all_users: true,
            limit: 1,
            ..Default::default()
        })
        .await
        .unwrap();
    assert_eq!(limited.len(), 1);
    server.open_gate(1);
}

#[tokio::test]
async fn list_operations_pages_and_filters_and_delete_removes_finished_ones() {
    let server = TestServer::start().await;
    let mut ids = Vec::new();
    for _ in 0..5 {
        ids.push(server.submit(ONE_SHOT, "").await.id);
    }
    let client = server.client().await;
    for id in &ids {
        client.wait_operation(id, Duration::from_secs(30)).await.unwrap();
    }
    let mut operations = OperationsClient::new(server.channel().await);
    let mut seen = Vec::new();
    let mut token = String::new();
    loop {
        let page = operations
            .list_operations(ListOperationsRequest {
                name: "operations".into(),
                filter: "done = true".into(),
                page_size: 2,
                page_token: token.clone(),
            })
            .await
            .unwrap()
            .into_inner();
        seen.extend(page.operations.iter().map(|op| op.name.trim_start_matches("operations/").to_string()));
        if page.next_page_token.is_empty() {
            break;
        }
        token = page.next_page_token;
    }
    ids.reverse();
    assert_eq!(seen, ids);

    let bad = operations
        .list_operations(ListOperationsRequest { filter: "colour = blue".into(), ..Default::default() })
        .await
        .unwrap_err();
    assert_eq!(bad.code(), Code::InvalidArgument);

    operations
        .delete_operation(DeleteOperationRequest { name: format!("operations/{}", ids[0]) })
        .await
        .unwrap();
    let gone = client.get_operation(&ids[0]).await.unwrap_err();
    assert_eq!(gone.code(), Some(Code::NotFound));

    let running = server.submit(GATE, "").await;
    let refused = operations
        .delete_operation(DeleteOperationRequest { name: format!("operations/{}", running.id) })
        .await
        .unwrap_err();
    assert_eq!(refused.code(), Code::FailedPrecondition);
    server.open_gate(1);
}

#[tokio::test]
async fn finished_records_and_logs_survive_a_restart() {
    let server = TestServer::start().await;
    let client = server.client().await;
    let op = client.check(CheckRequest::default()).await.unwrap();
    let op = client.wait_operation(&op.name, Duration::from_secs(30)).await.unwrap();
    drop(client);

    let server = server.restart().await;
    let client = server.client().await;
    let again = client.get_operation(&op.name).await.unwrap();
    assert_eq!(again, op);
    let logs = collect_logs(&client, StreamLogsRequest { name: op.name.clone(), ..Default::default() }).await;
    assert!(!logs.is_empty());
}

#[tokio::test]
async fn after_a_restart_pending_operations_run_and_interrupted_ones_fail_retryably() {
    let server = TestServer::start().await;
    let running = server.submit(GATE, "c").await;
    let pending = server.submit(GATE, "c").await;
    server.wait_for_state(&running.id, RequestState::Running).await;

    let server = server.restart().await; // the grace period passes with the gate shut
    let client = server.client().await;
    let interrupted = client.get_operation(&running.id).await.unwrap();
    assert_eq!(state(&interrupted), RequestState::Failed);
    let metadata = request_metadata(&interrupted).unwrap();
    assert!(metadata.retryable);
    assert!(metadata.status_message.contains("interrupted by server restart"));
    let Some(operation::Result::Error(status)) = interrupted.result else { panic!("no error") };
    assert_eq!(status.code, Code::Aborted as i32);

    server.wait_for_state(&pending.id, RequestState::Running).await;
    server.open_gate(1);
    let done = client.wait_operation(&pending.id, Duration::from_secs(30)).await.unwrap();
    assert_eq!(state(&done), RequestState::Succeeded);
}

#[tokio::test]
async fn a_resumable_operation_running_at_shutdown_runs_again_after_restart() {
    let server = TestServer::start().await;
    let record = server.submit(GATE_RESUMABLE, "").await;
    server.wait_for_state(&record.id, RequestState::Running).await;
    let server = server.restart().await;
    server.open_gate(1);
    let client = server.client().await;
    let op = client.wait_operation(&record.id, Duration::from_secs(30)).await.unwrap();
    assert_eq!(state(&op), RequestState::Succeeded);
}

#[tokio::test]
async fn a_launch_interrupted_by_a_restart_runs_again_and_submits_one_job() {
    use skypilot_api::proto::skypilot::v1::{LaunchRequest, ListJobsRequest, Resources, TaskSpec};

    let server = TestServer::start().await;
    let files = tempfile::tempdir().unwrap();
    // The launch stalls copying its file mount (a FIFO nobody writes to)
    // until the server restarts; then the mount is an ordinary file.
    let mount = files.path().join("input");
    let made = std::process::Command::new("mkfifo").arg(&mount).status().unwrap();
    assert!(made.success());
    let request = LaunchRequest {
        cluster_name: "again".into(),
        task: Some(TaskSpec {
            run: "cat ~/input".into(),
            num_nodes: 1,
            resources: Some(Resources { cpus: "0.5".into(), ..Default::default() }),
            file_mounts: [("~/input".to_string(), mount.display().to_string())].into(),
            ..Default::default()
        }),
        ..Default::default()
    };
    let client = server.client().await;
    let op = client.launch(request).await.unwrap();
    let id = request_metadata(&op).unwrap().request_id;
    server.wait_for_state(&id, RequestState::Running).await;
    let cluster_up = || async {
        let clusters = client.list_clusters(Default::default()).await.unwrap();
        clusters
            .iter()
            .any(|c| c.name == "again" && c.status() == skypilot_api::proto::skypilot::v1::ClusterStatus::Up)
    };
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    while !cluster_up().await {
        assert!(std::time::Instant::now() < deadline, "the launch did not reach its file mount");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }

    let server = server
        .restart_after(|| {
            std::fs::remove_file(&mount).unwrap();
            std::fs::write(&mount, "mounted\n").unwrap();
        })
        .await;
    let client = server.client().await;
    let done = client.wait_operation(&id, Duration::from_secs(60)).await.unwrap();
    assert_eq!(state(&done), RequestState::Succeeded, "{done:?}");
    let jobs = client
        .list_jobs(ListJobsRequest { cluster_name: "again".into(), all_users: true, ..Default::default() })
        .await
        .unwrap();
    assert_eq!(jobs.len(), 1, "one job for the launch: {jobs:?}");
}

#[tokio::test]
async fn a_launch_run_again_with_its_request_id_finds_its_job_instead_of_submitting_another() {
    use skypilot_api::proto::skypilot::v1::{LaunchRequest, Resources, TaskSpec};
    use skypilot_server::Caller;

    let server = TestServer::start().await;
    let request = LaunchRequest {
        cluster_name: "again".into(),
        task: Some(TaskSpec {
            run: "true".into(),
            num_nodes: 1,
            resources: Some(Resources { cpus: "0.5".into(), ..Default::default() }),
            ..Default::default()
        }),
        ..Default::default()
    };
    let clusters = server.running().clusters();
    let caller = Caller::local("alice", "a11ce000");
    let first = clusters.launch(&request, "request-1", &caller, &|_| {}).await.unwrap();
    let again = clusters.launch(&request, "request-1", &caller, &|_| {}).await.unwrap();
    assert_eq!(first.job_id, again.job_id);
    let other = clusters.launch(&request, "request-2", &caller, &|_| {}).await.unwrap();
    assert_eq!(other.job_id, first.job_id + 1);
}

#[tokio::test]
async fn the_servers_retention_loop_removes_finished_requests_and_their_logs_and_frees_their_keys() {
    let dir = tempfile::tempdir().unwrap();
    let mut config = common::test_config(&dir);
    config.retention_hours = 1.0 / 3600.0; // one second
    config.job_logs_retention_hours = -1.0;
    let server = TestServer::start_with(dir, config, Default::default()).await;
    let client = server.client().await;
    let keyed = || CheckRequest { idempotency_key: "nightly-check".into(), ..Default::default() };
    let first = client.check(keyed()).await.unwrap();
    let id = request_metadata(&first).unwrap().request_id;
    let done = client.wait_operation(&id, Duration::from_secs(30)).await.unwrap();
    assert_eq!(state(&done), RequestState::Succeeded);
    assert!(
        !collect_logs(&client, StreamLogsRequest { name: first.name.clone(), ..Default::default() })
            .await
            .is_empty()
    );
    let again = client.check(keyed()).await.unwrap();
    assert_eq!(request_metadata(&again).unwrap().request_id, id, "kept: the key names the same request");

    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    let err = loop {
        match client.get_operation(&id).await {
            Ok(_) => {
                assert!(std::time::Instant::now() < deadline, "the finished request outlived its retention")
            }
            Err(err) => break err,
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    assert_eq!(err.code(), Some(Code::NotFound), "{err}");
    let logs = client.stream_logs(StreamLogsRequest { name: first.name.clone(), ..Default::default() }).await;
    assert_eq!(logs.err().and_then(|err| err.code()), Some(Code::NotFound), "its log went with it");
    let fresh = client.check(keyed()).await.unwrap();
    assert_ne!(request_metadata(&fresh).unwrap().request_id, id, "the key may be used again");
}
