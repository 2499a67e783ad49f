//! Uploads over real gRPC: contents kept once per user and never half,
//! trees checked before they are recorded, references usable only by
//! their owner, and a launch that runs on the uploaded files.

mod common;

use std::time::Duration;

use common::{TestServer, bob};
use sha2::{Digest as _, Sha256};
use skypilot_api::{
    Client, ClientError,
    client::request_metadata,
    proto::skypilot::v1::{
        BlobHeader, CreateTreeRequest, EntryKind, FindMissingBlobsRequest, LaunchRequest, LaunchResponse,
        RequestState, Resources, TailJobLogsRequest, TaskSpec, TreeEntry, UploadBlobsRequest,
        upload_blobs_request::Part,
    },
};
use tonic::Code;

fn digest(bytes: &[u8]) -> String {
    skypilot_api::identity::hex(&Sha256::digest(bytes))
}

/// The messages that send `contents`, each whole.
fn parts(contents: &[&[u8]]) -> Vec<UploadBlobsRequest> {
    let mut parts = Vec::new();
    for content in contents {
        let header = BlobHeader { digest: digest(content), size: content.len() as i64 };
        parts.push(UploadBlobsRequest { part: Some(Part::Header(header)) });
        parts.push(UploadBlobsRequest { part: Some(Part::Data(content.to_vec())) });
    }
    parts
}

async fn send(client: &Client, parts: Vec<UploadBlobsRequest>) -> Result<(i64, i64), ClientError> {
    let response = client.upload_blobs(tokio_stream::iter(parts)).await?;
    Ok((response.blobs, response.bytes))
}

fn file(path: &str, content: &[u8], mode: u32) -> TreeEntry {
    TreeEntry {
        path: path.into(),
        kind: EntryKind::File as i32,
        mode,
        digest: digest(content),
        size: content.len() as i64,
        link_target: String::new(),
    }
}

fn code(err: ClientError) -> Option<Code> {
    err.code()
}

async fn missing(client: &Client, contents: &[&[u8]]) -> Vec<String> {
    let digests = contents.iter().map(|content| digest(content)).collect();
    client.find_missing_blobs(FindMissingBlobsRequest { digests }).await.unwrap()
}

#[tokio::test]
async fn an_uploaded_tree_is_launched_on_and_its_contents_are_sent_only_once() {
    let server = TestServer::start().await;
    let alice = server.client().await;
    let (script, data): (&[u8], &[u8]) = (b"echo from the upload\n", b"mounted data\n");
    assert_eq!(missing(&alice, &[script, data]).await.len(), 2);
    assert_eq!(send(&alice, parts(&[script, data])).await.unwrap(), (2, 34));
    assert!(missing(&alice, &[script, data]).await.is_empty(), "kept once sent");
    assert_eq!(missing(&server.client_as(&bob()).await, &[script]).await.len(), 1, "per user");

    let workdir = alice
        .create_tree(CreateTreeRequest {
            entries: vec![
                TreeEntry {
                    path: "bin".into(),
                    kind: EntryKind::Directory as i32,
                    mode: 0o755,
                    ..Default::default()
                },
                file("bin/run.sh", script, 0o755),
                TreeEntry {
                    path: "run".into(),
                    kind: EntryKind::Symlink as i32,
                    link_target: "bin/run.sh".into(),
                    ..Default::default()
                },
            ],
            single_file: false,
        })
        .await
        .unwrap();
    assert!(workdir.reference.starts_with("sky-upload://"), "{workdir:?}");
    assert_eq!((workdir.files, workdir.bytes), (1, script.len() as i64));
    let mount = alice
        .create_tree(CreateTreeRequest { entries: vec![file("input.txt", data, 0o600)], single_file: true })
        .await
        .unwrap();

    let task = TaskSpec {
        num_nodes: 1,
        run: "./run; cat ~/inputs/input.txt; stat -c %a bin/run.sh".into(),
        workdir: workdir.reference.clone(),
        file_mounts: [("~/inputs/input.txt".to_string(), mount.reference.clone())].into(),
        resources: Some(Resources { cpus: "0.5".into(), ..Default::default() }),
        ..Default::default()
    };
    let op = alice
        .launch(LaunchRequest { cluster_name: "up".into(), task: Some(task.clone()), ..Default::default() })
        .await
        .unwrap();
    let done = alice.wait_operation(&op.name, Duration::from_secs(60)).await.unwrap();
    assert_eq!(request_metadata(&done).unwrap().state(), RequestState::Succeeded, "{done:?}");
    let Some(skypilot_api::proto::google::longrunning::operation::Result::Response(any)) = done.result else {
        panic!("no response")
    };
    let launched: LaunchResponse = prost::Message::decode(any.value.as_slice()).unwrap();
    let request = TailJobLogsRequest {
        cluster_name: "up".into(),
        job_id: launched.job_id,
        follow: true,
        ..Default::default()
    };
    let mut stream = alice.tail_job_logs(request).await.unwrap();
    let mut log = Vec::new();
    while let Some(chunk) = stream.message().await.unwrap() {
        log.extend(chunk.data);
    }
    assert_eq!(String::from_utf8_lossy(&log), "from the upload\nmounted data\n755\n");

    // Someone else's reference is not found, as if it did not exist.
    let bob = server.client_as(&bob()).await;
    let err = bob
        .launch(LaunchRequest { cluster_name: "theirs".into(), task: Some(task), ..Default::default() })
        .await
        .unwrap_err();
    assert_eq!(code(err.clone()), Some(Code::NotFound), "{err}");
    assert!(err.to_string().contains("task.workdir") && err.to_string().contains("upload it again"), "{err}");
}

#[tokio::test]
async fn crafted_trees_that_lead_out_of_themselves_are_refused() {
    let server = TestServer::start().await;
    let alice = server.client().await;
    let content: &[u8] = b"x";
    send(&alice, parts(&[content])).await.unwrap();
    let link = |path: &str, target: &str| TreeEntry {
        path: path.into(),
        kind: EntryKind::Symlink as i32,
        link_target: target.into(),
        ..Default::default()
    };
    for entries in [
        vec![file("../escape", content, 0o644)],
        vec![file("/etc/cron.d/evil", content, 0o644)],
        vec![file("a/../../b", content, 0o644)],
        vec![link("out", "../../../etc")],
        vec![link("abs", "/etc/passwd")],
        vec![link("dir", "."), file("dir/through", content, 0o644)],
        vec![file("never-sent", b"other bytes", 0o644)],
    ] {
        let err = alice
            .create_tree(CreateTreeRequest { entries: entries.clone(), single_file: false })
            .await
            .unwrap_err();
        assert_eq!(code(err.clone()), Some(Code::InvalidArgument), "{entries:?}: {err}");
        assert!(err.to_string().contains("entries["), "{err}");
    }
    let err = alice
        .launch(LaunchRequest {
            cluster_name: "forged".into(),
            task: Some(TaskSpec {
                num_nodes: 1,
                run: "true".into(),
                workdir: "sky-upload://not-a-digest".into(),
                ..Default::default()
            }),
            ..Default::default()
        })
        .await
        .unwrap_err();
    assert_eq!(code(err), Some(Code::InvalidArgument));
}

#[tokio::test]
async fn contents_that_do_not_match_their_digest_or_are_cut_short_are_not_kept() {
    let server = TestServer::start().await;
    let alice = server.client().await;
    let content: &[u8] = b"the real bytes";
    let forged = vec![
        UploadBlobsRequest { part: Some(Part::Header(BlobHeader { digest: digest(content), size: 14 })) },
        UploadBlobsRequest { part: Some(Part::Data(b"other bytes!!!".to_vec())) },
    ];
    let err = send(&alice, forged).await.unwrap_err();
    assert_eq!(code(err.clone()), Some(Code::InvalidArgument), "{err}");
    assert!(err.to_string().contains("nothing was kept"), "{err}");
    let cut = vec![
        UploadBlobsRequest { part: Some(Part::Header(BlobHeader { digest: digest(content), size: 14 })) },
        UploadBlobsRequest { part: Some(Part::Data(content[..5].to_vec())) },
    ];
    let err = send(&alice, cut).await.unwrap_err();
    assert!(err.to_string().contains("cut short"), "{err}");
    let too_long = vec![
        UploadBlobsRequest { part: Some(Part::Header(BlobHeader { digest: digest(content), size: 3 })) },
        UploadBlobsRequest { part: Some(Part::Data(content.to_vec())) },
    ];
    assert_eq!(code(send(&alice, too_long).await.unwrap_err()), Some(Code::InvalidArgument));
    assert_eq!(missing(&alice, &[content]).await.len(), 1, "nothing half-kept");
    let err = alice
        .find_missing_blobs(FindMissingBlobsRequest { digests: vec!["../../x".into()] })
        .await
        .unwrap_err();
    assert_eq!(code(err), Some(Code::InvalidArgument));
}

#[tokio::test]
async fn uploads_beyond_the_users_quota_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    let mut config = common::test_config(&dir);
    config.uploads.quota_bytes = 100;
    config.uploads.max_tree_bytes = 50;
    let server = TestServer::start_with(dir, config, Default::default()).await;
    let alice = server.client().await;
    let first = vec![7u8; 60];
    send(&alice, parts(&[&first])).await.unwrap();
    let err = send(&alice, parts(&[&[8u8; 60]])).await.unwrap_err();
    assert_eq!(code(err.clone()), Some(Code::ResourceExhausted), "{err}");
    assert!(err.to_string().contains("quota"), "{err}");
    let err = alice
        .create_tree(CreateTreeRequest { entries: vec![file("big", &first, 0o644)], single_file: false })
        .await
        .unwrap_err();
    assert_eq!(code(err.clone()), Some(Code::ResourceExhausted), "{err}");
}
