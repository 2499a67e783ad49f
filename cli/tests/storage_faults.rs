//! Storage faults of the real server process: writes that fail as on a full
//! disk (a file size limit on the process) and a damaged store at start.

mod common;

use std::{fs, process::Command, time::Duration};

use common::ServerProcess;
use skypilot_api::{
    ClientError,
    proto::skypilot::v1::{LaunchRequest, ListRequestsRequest, TaskSpec},
};
use tempfile::TempDir;

/// A dry-run launch whose stored request weighs about 8 KiB.
fn heavy_request(n: usize) -> LaunchRequest {
    let padding = format!("{n:08}").repeat(1024);
    LaunchRequest {
        cluster_name: format!("disk-{n}"),
        task: Some(TaskSpec {
            num_nodes: 1,
            run: "true".into(),
            envs: [("PADDING".to_string(), padding)].into(),
            ..Default::default()
        }),
        dryrun: true,
        ..Default::default()
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_full_disk_refuses_requests_with_storage_full_and_keeps_every_accepted_one() {
    let temp = TempDir::new().unwrap();
    let (home, data_dir) = (temp.path().join("home"), temp.path().join("data"));
    fs::create_dir_all(&home).unwrap();
    // Start once without a limit so that the store exists, then with files
    // capped a little above their size.
    ServerProcess::start(&home, &data_dir, 0).stop();
    let store_size = fs::metadata(data_dir.join("db/db")).unwrap().len();
    let server = ServerProcess::start_limited(&home, &data_dir, 0, Some(store_size + 512 * 1024));
    let port = server.port;
    let limited = server.client(Duration::ZERO).await;

    let mut accepted = Vec::new();
    let refusal = loop {
        assert!(accepted.len() < 2_000, "the file size limit never stopped a write");
        match limited.launch(heavy_request(accepted.len())).await {
            Ok(operation) => accepted.push(operation.name),
            Err(err) => break err,
        }
    };
    let ClientError::Status { code, reason, message } = &refusal else { panic!("unexpected: {refusal}") };
    assert_eq!(*code, tonic::Code::ResourceExhausted, "{refusal}");
    assert_eq!(reason.as_deref(), Some("STORAGE_FULL"), "{refusal}");
    assert!(message.contains("free space"), "{message}");
    println!("disk full after {} accepted requests: {message}", accepted.len());
    // sled takes no write after a failed one until it is opened again: the
    // server stops by itself, so that its supervisor (or the next `sky`
    // command) starts it again and it recovers from what is on disk.
    let status = tokio::task::block_in_place(|| server.wait_for_exit());
    assert!(!status.success(), "the server must say it stopped on a failure: {status}");

    let server = ServerProcess::start(&home, &data_dir, port);
    let roomy = server.client(Duration::ZERO).await;
    for name in &accepted {
        let operation = roomy.wait_operation(name, Duration::from_secs(30)).await.unwrap();
        assert!(operation.done, "{name} never finished");
    }
    // Every accepted request is there, and the refused one is not.
    let everything = ListRequestsRequest { all_users: true, include_finished: true, ..Default::default() };
    let mut stored: Vec<String> =
        roomy.list_requests(everything).await.unwrap().into_iter().map(|op| op.name).collect();
    stored.sort();
    let mut expected = accepted.clone();
    expected.sort();
    assert_eq!(stored, expected, "the stored requests are exactly the accepted ones");
    let again = roomy.launch(heavy_request(9_999)).await.expect("the store takes writes again");
    // Finished before the stop, which would otherwise wait for it only a moment.
    assert!(roomy.wait_operation(&again.name, Duration::from_secs(30)).await.unwrap().done);
    assert!(server.stop());
}

#[test]
fn a_damaged_store_stops_every_start_with_a_message() {
    let temp = TempDir::new().unwrap();
    let (home, data_dir) = (temp.path().join("home"), temp.path().join("data"));
    fs::create_dir_all(&home).unwrap();
    assert!(ServerProcess::start(&home, &data_dir, 0).stop());
    fs::write(data_dir.join("db/db"), vec![0x5a; 8192]).unwrap();
    let marker = fs::read(data_dir.join("db.identity")).unwrap();
    for _ in 0..2 {
        let output = Command::new(env!("CARGO_BIN_EXE_sky"))
            .args(["api", "start", "--foreground", "--port", "0", "--data-dir"])
            .arg(&data_dir)
            .env("HOME", &home)
            .output()
            .unwrap();
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert_eq!(output.status.code(), Some(1), "{stderr}");
        assert!(stderr.contains("cannot be trusted") && stderr.contains("backup"), "{stderr}");
        assert!(!stderr.contains("panicked"), "{stderr}");
    }
    assert_eq!(fs::read(data_dir.join("db.identity")).unwrap(), marker, "the marker is kept");
}
