//! Attacks on a server by other users, each checked to do no harm: another
//! Unix user on the server's host, and (for a deployed server) an ordinary
//! user of the API.

mod common;

use std::{os::unix::fs::PermissionsExt as _, sync::Arc, time::Duration};

use common::{GATE, TestServer, test_config, unix_user::UnixUser};
use prost::Message;
use skypilot_api::{
    client::ClusterAction,
    proto::{
        google::longrunning::operation::Result,
        skypilot::v1::{
            CheckRequest, CheckResponse, ExecRequest, LaunchRequest, ListClustersRequest, RequestState,
            Resources, ServerMode, TaskSpec,
        },
    },
};
use skypilot_server::{Caller, ErrorReason, FIRST_CLUSTER_UID, LocalInfraMode, Submission};

const LAUNCH: &str = "sky.launch";

#[tokio::test]
async fn another_unix_user_reads_nothing_of_a_local_servers_data_dir() {
    let dir = tempfile::tempdir().unwrap();
    // Open the parent, so that only the data dir's own modes stand in the way.
    std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
    let config = test_config(&dir);
    let data = config.data_dir.clone();
    let server = TestServer::start_with(dir, config, Arc::default()).await;
    let client = server.client().await;
    let check = client.check(CheckRequest::default()).await.unwrap();
    client.wait_operation(&check.name, Duration::from_secs(30)).await.unwrap();
    let id = check.name.trim_start_matches("operations/");

    let mallory = UnixUser::create();
    for path in [
        data.clone(),
        data.join("db"),
        data.join("db/db"),
        data.join("db.identity"),
        data.join("logs"),
        data.join(format!("logs/{id}.log")),
        data.join("server.pid"),
    ] {
        assert!(path.exists(), "{} exists", path.display());
        let path = path.display();
        let out = mallory.run(&format!("cat '{path}' 2>&1 || ls '{path}' 2>&1"));
        assert!(
            !out.status.success(),
            "{} read {path}: {}",
            mallory.name,
            String::from_utf8_lossy(&out.stdout)
        );
        assert!(String::from_utf8_lossy(&out.stdout).contains("Permission denied"), "{path}");
    }
}

fn small_task(name: &str) -> TaskSpec {
    TaskSpec {
        name: name.into(),
        run: "true".into(),
        num_nodes: 1,
        resources: Some(Resources { cpus: "0.5".into(), ..Default::default() }),
        ..Default::default()
    }
}

fn launch(cluster: &str, task: TaskSpec) -> LaunchRequest {
    LaunchRequest { cluster_name: cluster.into(), task: Some(task), ..Default::default() }
}

#[tokio::test]
async fn a_launch_accepted_before_someone_else_made_the_cluster_does_not_run_on_it() {
    let server = TestServer::start().await;
    let engine = server.running().engine();
    let (alice, bob) = (Caller::owner("alice", "a11ce"), Caller::owner("bob", "b0b"));
    // Hold the cluster's queue, so that both launches are accepted before either runs.
    let hold = server.submit(GATE, "victim").await;
    let victims =
        engine.submit(Submission::new(LAUNCH, alice, &launch("victim", small_task("mine")))).await.unwrap();
    let attackers =
        engine.submit(Submission::new(LAUNCH, bob, &launch("victim", small_task("theirs")))).await.unwrap();
    server.open_gate(1);
    engine.wait(&hold.id, Duration::from_secs(30)).await.unwrap();
    let victims = engine.wait(&victims.id, Duration::from_secs(30)).await.unwrap();
    let attackers = engine.wait(&attackers.id, Duration::from_secs(30)).await.unwrap();
    assert_eq!(victims.state(), RequestState::Succeeded, "{}", victims.status_message);
    assert_eq!(attackers.state(), RequestState::Failed);
    assert_eq!(attackers.error.unwrap().reason, "PERMISSION_DENIED");
    let (jobs, _) =
        server.running().clusters().jobs("victim", false, None, &skypilot_server::Page::default()).unwrap();
    assert_eq!(jobs.iter().map(|job| job.name.as_str()).collect::<Vec<_>>(), ["mine"]);
}

#[tokio::test]
async fn a_remote_caller_cannot_probe_paths_on_the_servers_host() {
    let server = TestServer::start().await;
    let mut task = small_task("probe");
    task.workdir = "/etc".into();
    // As a caller from another host presents itself to the engine.
    let remote = Caller::owner("mallory", "ma11");
    let err = server
        .running()
        .engine()
        .submit(Submission::new(LAUNCH, remote, &launch("probe", task.clone())))
        .await
        .unwrap_err();
    assert_eq!(err.reason, ErrorReason::InvalidArgument);
    assert!(err.message.contains("`task.workdir`") && err.message.contains("your machine"), "{err}");
    task.workdir = "/no/such/dir".into();
    let missing = server
        .running()
        .engine()
        .submit(Submission::new(LAUNCH, Caller::owner("mallory", "ma11"), &launch("probe", task)))
        .await
        .unwrap_err();
    assert_eq!(
        missing.message,
        err.message.replace("/etc", "/no/such/dir"),
        "an existing and a missing path answer alike"
    );
}

#[tokio::test]
async fn cluster_patterns_cannot_crash_or_freeze_the_server() {
    let server = TestServer::start().await;
    let client = server.client().await;
    let huge =
        ListClustersRequest { cluster_names: vec!["*".repeat(200_000)], all_users: true, refresh: false };
    let err = client.list_clusters(huge).await.unwrap_err();
    assert_eq!(err.error_reason(), Some(ErrorReason::InvalidArgument));
    assert!(err.to_string().contains("`cluster_names`"), "{err}");
    let many =
        ListClustersRequest { cluster_names: vec!["a".into(); 10_000], all_users: true, refresh: false };
    assert_eq!(
        client.list_clusters(many).await.unwrap_err().error_reason(),
        Some(ErrorReason::InvalidArgument)
    );
    // The pattern that pinned both workers before, against a 63-character name.
    let name = format!("a{}", "a".repeat(62));
    let create = client.launch(launch(&name, small_task("t"))).await.unwrap();
    client.wait_operation(&create.name, Duration::from_secs(30)).await.unwrap();
    let evil = ListClustersRequest {
        cluster_names: vec![format!("{}*c", "*a".repeat(10))],
        all_users: true,
        refresh: false,
    };
    assert!(client.list_clusters(evil).await.unwrap().is_empty());
    let health = client.server_info().await;
    assert!(health.is_ok());
}

#[tokio::test]
async fn names_with_control_characters_are_refused() {
    let server = TestServer::start().await;
    let client = server.client().await;
    let err = client.launch(launch("fine", small_task("x\u{1b}]0;pwned\u{7}"))).await.unwrap_err();
    assert_eq!(err.error_reason(), Some(ErrorReason::InvalidArgument));
    assert!(err.to_string().contains("`name`"), "{err}");
}

#[tokio::test]
async fn one_user_cannot_queue_requests_without_bound() {
    let dir = tempfile::tempdir().unwrap();
    let mut config = test_config(&dir);
    config.engine.max_requests_per_user = 3;
    config.engine.max_request_bytes_per_user = 1 << 20;
    let server = TestServer::start_with(dir, config, Arc::default()).await;
    // alice's three held requests fill her share; the fourth is refused.
    let held: Vec<_> =
        futures_util::future::join_all((0..3).map(|i| server.submit(GATE, ["a", "b", "c"][i]))).await;
    let err = server.submit_with(GATE, "d", "").await.unwrap_err();
    assert_eq!(err.reason, ErrorReason::ResourceExhausted);
    assert!(err.message.contains("3 unfinished requests"), "{err}");
    // Others are not held up; nothing was stored for the refused request.
    let engine = server.running().engine();
    let bobs = engine.submit(Submission::new(GATE, Caller::owner("bob", "b0b"), &cluster_request("e"))).await;
    assert!(bobs.is_ok());
    // A large request counts by its bytes.
    let mut big = small_task("big");
    big.envs.insert("DATA".into(), "x".repeat(2 << 20));
    let carol = Caller::owner("carol", "ca201");
    let too_big = engine.submit(Submission::new(LAUNCH, carol, &launch("big", big))).await.unwrap_err();
    assert!(too_big.message.contains("MiB"), "{too_big}");
    // Finished requests give their share back.
    server.open_gate(4);
    for op in &held {
        engine.wait(&op.id, Duration::from_secs(30)).await.unwrap();
    }
    assert!(server.submit_with(GATE, "d", "").await.is_ok());
    server.open_gate(1);
}

fn cluster_request(cluster: &str) -> skypilot_api::proto::skypilot::v1::ClusterActionRequest {
    skypilot_api::proto::skypilot::v1::ClusterActionRequest {
        cluster_name: cluster.into(),
        ..Default::default()
    }
}

#[tokio::test]
async fn a_deployed_server_runs_no_jobs_as_itself_unless_its_admin_says_so() {
    let dir = tempfile::tempdir().unwrap();
    let mut config = test_config(&dir);
    config.mode = ServerMode::Deploy;
    config.local_infra = LocalInfraMode::SharedServerIdentity;
    let mut server = TestServer::start_with(dir, config, Arc::default()).await;
    let client = server.client().await;
    let op = client.launch(launch("mine", small_task("t"))).await.unwrap();
    let done = client.wait_operation(&op.name, Duration::from_secs(30)).await.unwrap();
    assert!(matches!(done.result, Some(Result::Response(_))), "{done:?}");
    drop(client);

    // The same server with the default setting, where jobs under uids of
    // their own could not reach their folders: nothing new runs, not even on
    // the cluster launched before; what exists can still be cleaned up.
    server.config.local_infra = LocalInfraMode::Auto;
    let parent = server.config.data_dir.parent().unwrap().to_path_buf();
    std::fs::set_permissions(&parent, std::fs::Permissions::from_mode(0o700)).unwrap();
    let server = server.restart().await;
    let client = server.client().await;
    for request in [launch("other", small_task("t")), launch("mine", small_task("again"))] {
        let err = client.launch(request).await.unwrap_err();
        assert_eq!(err.error_reason(), Some(ErrorReason::FailedPrecondition));
        assert!(err.to_string().contains("--local-infra shared-server-identity"), "{err}");
    }
    let exec = ExecRequest { cluster_name: "mine".into(), task: Some(small_task("e")), ..Default::default() };
    assert_eq!(client.exec(exec).await.unwrap_err().error_reason(), Some(ErrorReason::FailedPrecondition));
    let check = client.check(CheckRequest::default()).await.unwrap();
    let check = client.wait_operation(&check.name, Duration::from_secs(30)).await.unwrap();
    let Some(Result::Response(any)) = check.result else { panic!("{check:?}") };
    let local = &CheckResponse::decode(any.value.as_slice()).unwrap().infras[0];
    assert!(!local.enabled && local.reason.contains("server's own user"), "{local:?}");
    assert!(local.reason.contains("closed to other users"), "{local:?}");
    let down = client.cluster_action(ClusterAction::Down, "mine").await.unwrap();
    let down = client.wait_operation(&down.name, Duration::from_secs(30)).await.unwrap();
    assert!(matches!(down.result, Some(Result::Response(_))), "{down:?}");
    drop(client);

    // Where they can (the server runs as root, as here), the default runs
    // each cluster under a uid of its own.
    std::fs::set_permissions(&parent, std::fs::Permissions::from_mode(0o755)).unwrap();
    let server = server.restart().await;
    let mut task = small_task("whoami");
    task.run = "id -u".into();
    let op = server
        .running()
        .engine()
        .submit(Submission::new(LAUNCH, Caller::owner("alice", "a11ce"), &launch("own", task)))
        .await
        .unwrap();
    let done = server.running().engine().wait(&op.id, Duration::from_secs(30)).await.unwrap();
    assert_eq!(done.state(), RequestState::Succeeded, "{}", done.status_message);
    let log = data_file(&server, "clusters/own/jobs/1/run.log").await;
    assert!(log.trim().parse::<u32>().unwrap() >= FIRST_CLUSTER_UID, "{log}");
    server.running().clusters().down("own", false).await.unwrap();
}

/// A file of the server's data dir once it exists and is not empty.
async fn data_file(server: &TestServer, path: &str) -> String {
    let path = server.config.data_dir.join(path);
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    loop {
        match std::fs::read_to_string(&path) {
            Ok(text) if !text.is_empty() => return text,
            _ => {
                assert!(std::time::Instant::now() < deadline, "{} stayed empty", path.display());
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        }
    }
}

#[tokio::test]
async fn a_local_server_answers_only_its_own_unix_user() {
    let server = TestServer::start().await;
    let port = server.running().local_addr().port();
    // The HTTP/2 preface and an empty SETTINGS frame; a server that answers
    // sends its own SETTINGS frame (9 bytes and more).
    let hello = r"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n\x00\x00\x00\x04\x00\x00\x00\x00\x00";
    let probe = format!(
        "bash -c 'exec 3<>/dev/tcp/127.0.0.1/{port} && printf \"{hello}\" >&3 && timeout 10 head -c 9 <&3 | wc -c'"
    );
    // Blocking calls, off the test's runtime, which serves the server.
    let mallorys = probe.clone();
    let mallory = UnixUser::create();
    // A probe that printed nothing did not run to its end (another test's
    // clean-up may kill what it finds): probe again.
    let theirs = tokio::task::spawn_blocking(move || {
        let mut output = mallory.run(&mallorys);
        for _ in 0..3 {
            if !output.stdout.is_empty() {
                break;
            }
            output = mallory.run(&mallorys);
        }
        output
    })
    .await
    .unwrap();
    assert!(
        !theirs.stdout.is_empty(),
        "the other user's probe never ran to its end: {:?} {}",
        theirs.status,
        String::from_utf8_lossy(&theirs.stderr)
    );
    assert_eq!(
        String::from_utf8_lossy(&theirs.stdout).trim(),
        "0",
        "another user got an answer ({})",
        String::from_utf8_lossy(&theirs.stderr)
    );
    let ours =
        tokio::task::spawn_blocking(move || std::process::Command::new("sh").args(["-c", &probe]).output())
            .await
            .unwrap()
            .unwrap();
    assert_eq!(
        String::from_utf8_lossy(&ours.stdout).trim(),
        "9",
        "the owner gets an answer ({})",
        String::from_utf8_lossy(&ours.stderr)
    );
}

/// A deployed server running as root runs each cluster's jobs under a uid of
/// its own: one user's job reads and signals nothing of another's, nor of
/// the server's.
#[tokio::test]
async fn each_clusters_jobs_run_under_a_uid_of_their_own_and_reach_nothing_else() {
    use futures_util::StreamExt as _;
    let dir = tempfile::tempdir().unwrap();
    std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
    let mut config = test_config(&dir);
    config.local_infra = LocalInfraMode::UidPerCluster;
    let data = config.data_dir.clone();
    let server = TestServer::start_with(dir, config, Arc::default()).await;
    let (engine, clusters) = (server.running().engine(), server.running().clusters());
    let (alice, bob) = (Caller::owner("alice", "a11ce"), Caller::owner("bob", "b0b"));
    let launch_as = |caller: Caller, cluster: &str, task: TaskSpec| {
        Submission::new(LAUNCH, caller, &launch(cluster, task))
    };
    let log_of = |cluster: &'static str| async move {
        let mut chunks = Box::pin(clusters.job_logs(cluster, 1, true, None, None).await.unwrap());
        let mut log = Vec::new();
        while let Some(chunk) = chunks.next().await {
            log.extend(chunk.unwrap().data);
        }
        String::from_utf8(log).unwrap()
    };

    let mut victim = small_task("victim");
    victim.secrets.insert("ALICE_TOKEN".into(), "alice-secret-value".into());
    victim.run = "echo uid=$(id -u); echo alice-private > ~/secret.txt; touch ~/ready; sleep 120".into();
    let op = engine.submit(launch_as(alice, "alices", victim)).await.unwrap();
    assert_eq!(engine.wait(&op.id, Duration::from_secs(30)).await.unwrap().state(), RequestState::Succeeded);
    let alices = data.join("clusters/alices");
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    while !alices.join("node-0/ready").exists() || !alices.join("jobs/1/run-0.pid").exists() {
        assert!(std::time::Instant::now() < deadline, "alice's job did not start");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let alices_pid = std::fs::read_to_string(alices.join("jobs/1/run-0.pid")).unwrap().trim().to_string();

    let mut attack = small_task("attack");
    let targets = [
        ("alices-file", format!("cat {}/node-0/secret.txt", alices.display())),
        ("alices-log", format!("cat {}/jobs/1/run.log", alices.display())),
        ("alices-script", format!("cat {}/jobs/1/run-0.sh", alices.display())),
        ("alices-environ", format!("grep -a alice-secret /proc/{alices_pid}/environ")),
        ("signal-alices-job", format!("kill -0 -{alices_pid}")),
        ("signal-server", format!("kill -0 {}", std::process::id())),
        ("server-environ", format!("cat /proc/{}/environ", std::process::id())),
        ("list-data-dir", format!("ls {}", data.display())),
        ("list-clusters", format!("ls {}/clusters", data.display())),
        ("store", format!("cat {}/db/db", data.display())),
        ("store-identity", format!("cat {}/db.identity", data.display())),
        ("request-logs", format!("ls {}/logs", data.display())),
    ];
    attack.run = String::from("echo uid=$(id -u)\n");
    for (name, command) in &targets {
        attack.run +=
            &format!("if {command} >/dev/null 2>&1; then echo HARM {name}; else echo safe {name}; fi\n");
    }
    let op = engine.submit(launch_as(bob, "bobs", attack)).await.unwrap();
    assert_eq!(engine.wait(&op.id, Duration::from_secs(30)).await.unwrap().state(), RequestState::Succeeded);
    let bobs_log = log_of("bobs").await;
    for (name, _) in &targets {
        assert!(bobs_log.contains(&format!("safe {name}\n")), "{name}: {bobs_log}");
    }
    assert!(!bobs_log.contains("HARM"), "{bobs_log}");

    // Alice's job ran under a uid of its own, which is neither the server's
    // nor bob's, and can be cancelled by the server.
    clusters.cancel_jobs("alices", &[1], false).await.unwrap();
    let alices_log = log_of("alices").await;
    let uid_of =
        |log: &str| log.lines().find_map(|line| line.strip_prefix("uid=")).unwrap().parse::<u32>().unwrap();
    let (alices_uid, bobs_uid) = (uid_of(&alices_log), uid_of(&bobs_log));
    assert!(alices_uid >= FIRST_CLUSTER_UID && bobs_uid >= FIRST_CLUSTER_UID, "{alices_uid} {bobs_uid}");
    assert_ne!(alices_uid, bobs_uid);
    use std::os::unix::fs::MetadataExt as _;
    assert_eq!(std::fs::metadata(&alices).unwrap().uid(), alices_uid, "the cluster's folder is its uid's");
    assert_eq!(std::fs::metadata(alices.join("node-0/secret.txt")).unwrap().uid(), alices_uid);

    // A job that swaps its log for a link to a server file, or for a FIFO,
    // gets its reader an error, neither the file nor a reader that hangs.
    let links = data.join("clusters/links");
    let mut swap = small_task("swap");
    swap.run = format!("ln -sf {}/db.identity {}/jobs/1/run.log", data.display(), links.display());
    let op = engine.submit(launch_as(Caller::owner("bob", "b0b"), "links", swap.clone())).await.unwrap();
    assert_eq!(engine.wait(&op.id, Duration::from_secs(30)).await.unwrap().state(), RequestState::Succeeded);
    swap.run = format!("rm {0}/jobs/2/run.log; mkfifo {0}/jobs/2/run.log", links.display());
    let exec = ExecRequest { cluster_name: "links".into(), task: Some(swap), ..Default::default() };
    let op = engine.submit(Submission::new("sky.exec", Caller::owner("bob", "b0b"), &exec)).await.unwrap();
    assert_eq!(engine.wait(&op.id, Duration::from_secs(30)).await.unwrap().state(), RequestState::Succeeded);
    let identity = std::fs::read(data.join("db.identity")).unwrap();
    for job in [1, 2] {
        let mut chunks = Box::pin(clusters.job_logs("links", job, true, None, None).await.unwrap());
        let read = tokio::time::timeout(Duration::from_secs(20), async {
            let mut data = Vec::new();
            while let Some(Ok(chunk)) = chunks.next().await {
                data.extend(chunk.data);
            }
            data
        });
        let data = read.await.expect("the log read ends");
        assert!(
            data.windows(identity.len()).all(|window| window != identity),
            "job {job} read a server file"
        );
    }

    for cluster in ["alices", "bobs", "links"] {
        clusters.down(cluster, false).await.unwrap();
    }
    assert!(!alices.exists());
}

/// Task secrets and envs reach the job but never the store's files in
/// plaintext; a large request lives in a file of its own, which deleting the
/// request removes (its space is given back at once).
#[tokio::test]
async fn secrets_are_sealed_in_the_store_and_large_requests_give_their_space_back() {
    let server = TestServer::start().await;
    let engine = server.running().engine();
    let owner = Caller::owner("alice", "a11ce");
    let mut task = small_task("sealed");
    task.secrets.insert("API_TOKEN".into(), "secret-marker-5f1c9a".into());
    for i in 0..10 {
        // Each under the kernel's bound on one environment string (128 KiB).
        task.envs.insert(format!("PADDING{i}"), "env-marker-".repeat(10_000));
    }
    task.run = "echo ${#PADDING9} ${API_TOKEN:0:6}".into();
    let op = engine.submit(Submission::new(LAUNCH, owner.clone(), &launch("sealed", task))).await.unwrap();
    let done = engine.wait(&op.id, Duration::from_secs(30)).await.unwrap();
    assert_eq!(done.state(), RequestState::Succeeded, "{}", done.status_message);
    let log = data_file(&server, "clusters/sealed/jobs/1/run.log").await;
    assert_eq!(log, "110000 secret\n", "the job sees its envs and secrets");

    let data = server.config.data_dir.clone();
    let payload_file = data.join("db.payloads").join(&op.id);
    assert!(payload_file.metadata().unwrap().len() > 1_100_000, "the large request is in its own file");
    let mut files = vec![data.clone()];
    let mut read = 0;
    while let Some(path) = files.pop() {
        if path.is_dir() {
            if path != data.join("clusters") {
                files.extend(std::fs::read_dir(&path).unwrap().map(|entry| entry.unwrap().path()));
            }
            continue;
        }
        let bytes = std::fs::read(&path).unwrap();
        read += bytes.len();
        for marker in [&b"secret-marker-5f1c9a"[..], b"env-marker-env-marker-"] {
            assert!(
                !bytes.windows(marker.len()).any(|w| w == marker),
                "{} holds a task's secret or env",
                path.display()
            );
        }
    }
    assert!(read > 1_100_000, "the store's files were read ({read} bytes)");

    engine.delete(&owner, &op.id).await.unwrap();
    assert!(!payload_file.exists(), "deleting the request removes its file");
}

/// Launches whose file mount is a FIFO that nobody writes to hold the
/// workers only until they are cancelled: then the copy stops and the
/// workers take other requests.
#[tokio::test]
async fn a_fifo_file_mount_holds_no_worker_once_its_launch_is_cancelled() {
    let server = TestServer::start().await;
    let engine = server.running().engine();
    // On the server's host, where paths in a task are read.
    let owner = Caller { on_server_host: true, ..Caller::owner("alice", "a11ce") };
    let dir = tempfile::tempdir().unwrap();
    let fifo = dir.path().join("never-written.fifo");
    let name = std::ffi::CString::new(fifo.as_os_str().as_encoded_bytes()).unwrap();
    // SAFETY: mkfifo with a NUL-terminated path.
    assert_eq!(unsafe { libc::mkfifo(name.as_ptr(), 0o600) }, 0);
    // As many as the test server has long workers (2).
    let mut held = Vec::new();
    for cluster in ["fifo-a", "fifo-b"] {
        let mut task = small_task("held");
        task.file_mounts.insert("~/gate".into(), fifo.display().to_string());
        let op = engine.submit(Submission::new(LAUNCH, owner.clone(), &launch(cluster, task))).await.unwrap();
        server.wait_for_state(&op.id, RequestState::Running).await;
        held.push(op.id);
    }
    for id in &held {
        engine.cancel(&owner, id).await.unwrap();
        let done = engine.wait(id, Duration::from_secs(30)).await.unwrap();
        assert_eq!(done.state(), RequestState::Cancelled);
    }
    let op = engine
        .submit(Submission::new(LAUNCH, owner.clone(), &launch("after", small_task("t"))))
        .await
        .unwrap();
    let done = engine.wait(&op.id, Duration::from_secs(30)).await.unwrap();
    assert_eq!(done.state(), RequestState::Succeeded, "{}", done.status_message);
    for cluster in ["fifo-a", "fifo-b", "after"] {
        let _ = server.running().clusters().down(cluster, false).await;
    }
}
