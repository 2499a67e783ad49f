//! Crash test: concurrent clients submit several hundred mixed requests
//! (launch, exec, cancel, down, check) while the real server process is
//! killed with SIGKILL at random moments and started again. At the end every
//! acknowledged request must be found and finished, no job may have run
//! twice, every finished job's log must be whole, and the store must open
//! cleanly. Prints the counts.

mod common;

use std::{
    collections::{BTreeMap, HashMap},
    fs,
    path::{Path, PathBuf},
    sync::{Arc, Mutex},
    time::{Duration, SystemTime, UNIX_EPOCH},
};

use common::ServerProcess;
use prost::Message;
use skypilot_api::{
    Client,
    client::request_metadata,
    proto::{
        google::longrunning::{Operation, operation::Result as OpResult},
        skypilot::v1::{
            CheckRequest, ExecRequest, ExecResponse, Job, JobStatus, LaunchRequest, LaunchResponse,
            RequestState, Resources, TailJobLogsRequest, TaskSpec,
        },
    },
};
use tempfile::TempDir;

const CLIENTS: usize = 8;
/// Each client submits at least this many requests, and goes on until the kills are over.
const MIN_REQUESTS_PER_CLIENT: usize = 30;
const KILLS: usize = 4;
/// How long clients keep retrying while the server is down.
const RIDE_THROUGH_RESTARTS: Duration = Duration::from_secs(60);
/// Clusters that only take jobs, and one that is also torn down and launched again.
const STEADY_CLUSTERS: [&str; 2] = ["crash-a", "crash-b"];
const CHURN_CLUSTER: &str = "crash-c";

/// A small deterministic generator, so that a failing run can be repeated.
struct Rng(u64);

impl Rng {
    fn next(&mut self, below: u64) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0 % below
    }
}

fn now_ms() -> i64 {
    SystemTime::now().duration_since(UNIX_EPOCH).unwrap().as_millis() as i64
}

/// A job that leaves one line in `markers/<key>` per run and brackets its output.
fn job(markers: &Path, key: &str, cpus: &str) -> TaskSpec {
    let marker = markers.join(key);
    TaskSpec {
        name: key.to_string(),
        num_nodes: 1,
        resources: Some(Resources { cpus: cpus.into(), ..Default::default() }),
        run: format!("echo 'begin {key}'; echo $$ >> '{}'; sleep 0.2; echo 'end {key}'", marker.display()),
        ..Default::default()
    }
}

#[derive(Default)]
struct Tally {
    submitted: usize,
    not_found: usize,
    refused: Vec<String>,
    /// Operation name -> job key, for requests that run a job.
    acknowledged: BTreeMap<String, Option<String>>,
}

async fn run_client(
    client: Client,
    seed: u64,
    number: usize,
    markers: PathBuf,
    tally: Arc<Mutex<Tally>>,
    kills_over: Arc<std::sync::atomic::AtomicBool>,
) {
    let mut rng = Rng(seed);
    let mut mine: Vec<String> = Vec::new();
    for i in 0.. {
        if i >= MIN_REQUESTS_PER_CLIENT && kills_over.load(std::sync::atomic::Ordering::Acquire) {
            break;
        }
        // Spread the load over the kills (pacing, not synchronisation).
        tokio::time::sleep(Duration::from_millis(20 + rng.next(100))).await;
        let key = format!("k{number}-{i}");
        let roll = rng.next(100);
        let (result, job_key) = if roll < 45 {
            let cluster = STEADY_CLUSTERS[rng.next(2) as usize].to_string();
            let request = ExecRequest {
                cluster_name: cluster,
                task: Some(job(&markers, &key, "0.1")),
                ..Default::default()
            };
            (client.exec(request).await, Some(key))
        } else if roll < 55 {
            let cluster = if rng.next(2) == 0 { CHURN_CLUSTER } else { STEADY_CLUSTERS[0] };
            let request = LaunchRequest {
                cluster_name: cluster.into(),
                task: Some(job(&markers, &key, "0.1")),
                ..Default::default()
            };
            (client.launch(request).await, Some(key))
        } else if roll < 65 && !mine.is_empty() {
            let victim = mine[rng.next(mine.len() as u64) as usize].clone();
            let _ = client.cancel_operation(&victim).await;
            continue;
        } else if roll < 72 {
            (client.cluster_action(skypilot_api::client::ClusterAction::Down, CHURN_CLUSTER).await, None)
        } else {
            (client.check(CheckRequest::default()).await, None)
        };
        let mut tally = tally.lock().unwrap();
        tally.submitted += 1;
        match result {
            Ok(operation) => {
                mine.push(operation.name.clone());
                tally.acknowledged.insert(operation.name, job_key);
            }
            // Tearing down a cluster that is already gone is refused at once.
            Err(err) if err.code() == Some(tonic::Code::NotFound) => tally.not_found += 1,
            Err(err) => tally.refused.push(err.to_string()),
        }
    }
}

fn unpack<T: Message + Default>(operation: &Operation) -> Option<T> {
    match &operation.result {
        Some(OpResult::Response(any)) => T::decode(any.value.as_slice()).ok(),
        _ => None,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn no_acknowledged_request_is_lost_and_no_job_runs_twice_across_server_kills() {
    let temp = TempDir::new().unwrap();
    let (home, data_dir, markers) =
        (temp.path().join("home"), temp.path().join("data"), temp.path().join("markers"));
    for dir in [&home, &markers] {
        fs::create_dir_all(dir).unwrap();
    }
    let seed = now_ms() as u64 | 1;
    println!("seed {seed}");
    let mut server = ServerProcess::start(&home, &data_dir, 0);
    let port = server.port;

    let setup = server.client(RIDE_THROUGH_RESTARTS).await;
    for cluster in STEADY_CLUSTERS.iter().chain([&CHURN_CLUSTER]) {
        let request = LaunchRequest {
            cluster_name: cluster.to_string(),
            task: Some(job(&markers, &format!("setup-{cluster}"), "0.1")),
            ..Default::default()
        };
        let launched = setup.launch(request).await.unwrap();
        let done = setup.wait_operation(&launched.name, Duration::from_secs(60)).await.unwrap();
        let response = unpack::<LaunchResponse>(&done).expect("the setup launch succeeds");
        assert!(
            response.summary.contains(&format!("Job 1 submitted to cluster '{cluster}'")),
            "{response:?}"
        );
    }

    let tally = Arc::new(Mutex::new(Tally::default()));
    let kills_over = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let mut clients = Vec::new();
    for n in 0..CLIENTS {
        clients.push(tokio::spawn(run_client(
            server.client(RIDE_THROUGH_RESTARTS).await,
            seed.wrapping_add(n as u64 * 7919),
            n,
            markers.clone(),
            tally.clone(),
            kills_over.clone(),
        )));
    }
    let mut rng = Rng(seed);
    let mut kills = Vec::new();
    let mut writers = Vec::new();
    let stalls = temp.path().join("stalls");
    fs::create_dir_all(&stalls).unwrap();
    for kill in 0..KILLS {
        tokio::time::sleep(Duration::from_millis(300 + rng.next(1200))).await;
        // Work surely in flight at the kill: an exec stalled reading its file
        // mount (a FIFO), written once the server is back.
        let (fifo, key) = (stalls.join(format!("{kill}.fifo")), format!("stalled-{kill}"));
        assert!(std::process::Command::new("mkfifo").arg(&fifo).status().unwrap().success());
        let mut task = job(&markers, &key, "0.1");
        task.file_mounts.insert("~/stalled".into(), fifo.display().to_string());
        let request =
            ExecRequest { cluster_name: STEADY_CLUSTERS[0].into(), task: Some(task), ..Default::default() };
        let stalled = setup.exec(request).await.unwrap();
        let deadline = std::time::Instant::now() + Duration::from_secs(60);
        while request_metadata(&setup.get_operation(&stalled.name).await.unwrap()).unwrap().state()
            != RequestState::Running
        {
            assert!(std::time::Instant::now() < deadline, "the stalled exec did not start");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        tally.lock().unwrap().acknowledged.insert(stalled.name.clone(), Some(key));
        kills.push(now_ms());
        tokio::task::block_in_place(|| server.kill_and_restart());
        // Opening the FIFO waits for the exec, run again, to read it.
        writers.push(tokio::task::spawn_blocking(move || {
            use std::io::Write as _;
            fs::OpenOptions::new().write(true).open(&fifo)?.write_all(b"released\n")
        }));
    }
    kills_over.store(true, std::sync::atomic::Ordering::Release);
    for writer in writers {
        tokio::time::timeout(RIDE_THROUGH_RESTARTS, writer)
            .await
            .expect("a stalled exec ran again")
            .unwrap()
            .unwrap();
    }
    for handle in clients {
        handle.await.unwrap();
    }

    let checker = server.client(RIDE_THROUGH_RESTARTS).await;
    let tally = std::mem::take(&mut *tally.lock().unwrap());
    let (mut lost, mut unfinished, mut recovered) = (Vec::new(), Vec::new(), 0);
    // For each kill, how many acknowledged requests were in flight when it hit.
    let mut in_flight_at_kill = vec![0usize; kills.len()];
    let mut jobs: HashMap<String, (String, i64)> = HashMap::new();
    for (name, job_key) in &tally.acknowledged {
        let operation = match checker.wait_operation(name, Duration::from_secs(60)).await {
            Ok(operation) => operation,
            Err(err) if err.code() == Some(tonic::Code::NotFound) => {
                lost.push(name.clone());
                continue;
            }
            Err(err) => panic!("waiting for {name}: {err}"),
        };
        let meta = request_metadata(&operation).unwrap();
        if !operation.done {
            unfinished.push(name.clone());
        }
        let created = meta.create_time.map(|t| t.seconds * 1000 + t.nanos as i64 / 1_000_000).unwrap_or(0);
        let finished = meta.finish_time.map(|t| t.seconds * 1000 + t.nanos as i64 / 1_000_000).unwrap_or(0);
        let mut spans_a_kill = false;
        for (i, kill) in kills.iter().enumerate() {
            if created < *kill && *kill < finished {
                in_flight_at_kill[i] += 1;
                spans_a_kill = true;
            }
        }
        if spans_a_kill {
            recovered += 1;
        }
        if meta.state() == RequestState::Succeeded
            && let Some(key) = job_key
        {
            let submitted = match meta.request_name.as_str() {
                "sky.exec" => unpack::<ExecResponse>(&operation).map(|r| (r.cluster_name, r.job_id)),
                _ => unpack::<LaunchResponse>(&operation).map(|r| (r.cluster_name, r.job_id)),
            };
            jobs.insert(key.clone(), submitted.expect("a succeeded request has its response"));
        }
    }

    // Follow every submitted job to its end; check its log and its run count.
    let (mut incomplete, mut bad_ends) = (Vec::new(), Vec::new());
    let (mut succeeded, mut replaced) = (0, 0);
    for (key, (cluster, job_id)) in &jobs {
        let request = TailJobLogsRequest {
            cluster_name: cluster.clone(),
            job_id: *job_id,
            follow: true,
            ..Default::default()
        };
        // Only a cluster torn down since (its jobs gone with it) may say NOT_FOUND.
        let gone = |err: &tonic::Status| err.code() == tonic::Code::NotFound;
        let mut stream = match checker.tail_job_logs(request).await {
            Ok(stream) => stream,
            Err(err) if err.code() == Some(tonic::Code::NotFound) => {
                replaced += 1;
                continue;
            }
            Err(err) => panic!("following {key} ({cluster} job {job_id}): {err}"),
        };
        let (mut log, mut last, mut torn_down) = (Vec::new(), None, false);
        loop {
            match stream.message().await {
                Ok(Some(chunk)) => {
                    log.extend_from_slice(&chunk.data);
                    last = chunk.job.or(last);
                }
                Ok(None) => break,
                Err(err) if gone(&err) => {
                    torn_down = true;
                    break;
                }
                Err(err) => panic!("following {key} ({cluster} job {job_id}): {err}"),
            }
        }
        if torn_down {
            replaced += 1;
            continue;
        }
        // A torn-down and relaunched cluster numbers its jobs from 1 again.
        if last.as_ref().is_some_and(|job| job.name != *key) {
            replaced += 1;
            continue;
        }
        // The churn cluster's teardown cancels its unfinished jobs.
        let torn_down = |job: &Job| {
            cluster == CHURN_CLUSTER
                && job.status() == JobStatus::Cancelled
                && job.message.contains("torn down")
        };
        if last.as_ref().is_some_and(torn_down) {
            replaced += 1;
            continue;
        }
        // Nothing else cancels a job or fails one: every other job must
        // have succeeded.
        if last.as_ref().is_none_or(|job| job.status() != JobStatus::Succeeded) {
            let end = last.map(|job| format!("{:?}: {}", job.status(), job.message));
            bad_ends.push(format!("{key} ({cluster} job {job_id}) ended {end:?}"));
            continue;
        }
        {
            succeeded += 1;
            let log = String::from_utf8_lossy(&log);
            let runs = fs::read_to_string(markers.join(key)).unwrap_or_default().lines().count();
            if log.matches(&format!("begin {key}")).count() != 1
                || log.matches(&format!("end {key}")).count() != 1
                || runs != 1
            {
                incomplete.push(format!("{key} ({cluster} job {job_id}): {runs} runs, log {log:?}"));
            }
        }
    }
    let mut ran_twice = Vec::new();
    for entry in fs::read_dir(&markers).unwrap() {
        let entry = entry.unwrap();
        let runs = fs::read_to_string(entry.path()).unwrap().lines().count();
        if runs > 1 {
            ran_twice.push(format!("{} ran {runs} times", entry.file_name().to_string_lossy()));
        }
    }

    for cluster in STEADY_CLUSTERS.iter().chain([&CHURN_CLUSTER]) {
        if let Ok(down) = checker.cluster_action(skypilot_api::client::ClusterAction::Down, cluster).await {
            checker.wait_operation(&down.name, Duration::from_secs(60)).await.unwrap();
        }
    }
    println!("crash test: requests in flight at each kill: {in_flight_at_kill:?}");
    println!(
        "crash test: submitted {}, acknowledged {}, refused (no such cluster) {}, failed {}, recovered {recovered}, lost {}, unfinished {}, \
         jobs followed {}, jobs succeeded {succeeded}, jobs gone with their cluster {replaced}, jobs run twice {}, incomplete job logs {}, kills {}",
        tally.submitted,
        tally.acknowledged.len(),
        tally.not_found,
        tally.refused.len(),
        lost.len(),
        unfinished.len(),
        jobs.len(),
        ran_twice.len(),
        incomplete.len(),
        kills.len()
    );
    assert!(lost.is_empty(), "acknowledged requests lost: {lost:?}");
    assert!(unfinished.is_empty(), "requests that never finished: {unfinished:?}");
    assert!(ran_twice.is_empty(), "{ran_twice:?}");
    assert!(incomplete.is_empty(), "{incomplete:#?}");
    assert!(tally.refused.is_empty(), "submissions that failed outright: {:?}", tally.refused);
    assert!(bad_ends.is_empty(), "jobs that did not succeed: {bad_ends:#?}");
    // The kills must have hit work in flight, and enough jobs must have been followed.
    assert!(
        recovered > 0 && in_flight_at_kill.iter().all(|n| *n > 0),
        "every kill must land on requests in flight: {in_flight_at_kill:?}"
    );
    assert!(
        jobs.len() >= CLIENTS * MIN_REQUESTS_PER_CLIENT / 3,
        "only {} jobs were followed to their end",
        jobs.len()
    );
    assert!(succeeded > 0, "the run exercised nothing: no job succeeded");

    // A clean stop, then the store opens again with everything in it.
    assert!(server.stop(), "the server did not stop cleanly");
    let server = ServerProcess::start(&home, &data_dir, port);
    let again = server.client(RIDE_THROUGH_RESTARTS).await;
    for name in tally.acknowledged.keys() {
        assert!(again.get_operation(name).await.unwrap().done, "{name} changed after a clean restart");
    }
    assert!(server.stop());
}
