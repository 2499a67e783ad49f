//! Clusters and jobs end to end: the real `sky` binary against a server
//! started in this test process (port 0, temporary data dir, a short autostop
//! check interval), with a temporary HOME.

mod common;

use std::{
    fs,
    io::{BufRead, BufReader},
    path::{Path, PathBuf},
    process::{Command, Stdio},
    time::Duration,
};

use common::{Run, ServerProcess};
use skypilot_api::proto::skypilot::v1::ClusterStatus;
use skypilot_server::{RunningServer, Server, ServerConfig};
use tempfile::TempDir;

struct Env {
    server: Option<RunningServer>,
    data: TempDir,
    home: TempDir,
    work: TempDir,
    endpoint: String,
}

fn config(data: &Path) -> ServerConfig {
    let mut config = ServerConfig::local(data.join("api_server"));
    config.port = 0;
    config.autostop_check_interval = Duration::from_millis(50);
    config.shutdown_grace = Duration::from_millis(200);
    config
}

impl Env {
    async fn start() -> Env {
        let data = tempfile::tempdir().unwrap();
        let server = Server::new(config(data.path())).start().await.unwrap();
        let endpoint = format!("http://{}", server.local_addr());
        Env {
            server: Some(server),
            data,
            home: tempfile::tempdir().unwrap(),
            work: tempfile::tempdir().unwrap(),
            endpoint,
        }
    }

    /// Stops the server (job processes keep running) and starts a new one on
    /// the same data dir.
    async fn restart(&mut self) {
        self.restart_editing(|_| {}).await;
    }

    /// Stops the server, lets `edit` change its store (as a crash at an
    /// awkward moment would leave it), and starts it again on the same port.
    async fn restart_editing(&mut self, edit: impl FnOnce(&skypilot_server::Store)) {
        let port = self.server().local_addr().port();
        self.server.take().unwrap().shutdown().await.unwrap();
        let store = skypilot_server::Store::open(&self.data.path().join("api_server/db")).unwrap();
        edit(&store);
        store.durable().await.unwrap();
        store.close().unwrap();
        let mut config = config(self.data.path());
        config.port = port; // clients find it where it was
        let server = Server::new(config).start().await.unwrap();
        self.endpoint = format!("http://{}", server.local_addr());
        self.server = Some(server);
    }

    fn server(&self) -> &RunningServer {
        self.server.as_ref().unwrap()
    }

    fn command(&self, args: &[&str]) -> Command {
        let mut command = Command::new(env!("CARGO_BIN_EXE_sky"));
        command
            .args(args)
            .current_dir(self.work.path())
            .env("HOME", self.home.path())
            .env("USER", "tester")
            .env("SKYPILOT_API_SERVER_ENDPOINT", &self.endpoint)
            .stdin(Stdio::null());
        command
    }

    fn sky(&self, args: &[&str]) -> Run {
        Run::from(tokio::task::block_in_place(|| self.command(args).output().unwrap()))
    }

    fn write(&self, name: &str, text: &str) -> PathBuf {
        let path = self.work.path().join(name);
        if let Some(parent) = path.parent() {
            fs::create_dir_all(parent).unwrap();
        }
        fs::write(&path, text).unwrap();
        path
    }

    /// Follows a job's log until a line containing `needle` appears.
    fn wait_for_line(&self, cluster: &str, job: &str, needle: &str) {
        tokio::task::block_in_place(|| {
            let mut child = self.command(&["logs", cluster, job]).stdout(Stdio::piped()).spawn().unwrap();
            let stdout = BufReader::new(child.stdout.take().unwrap());
            let found = stdout.lines().any(|line| line.unwrap().contains(needle));
            let _ = child.kill();
            let _ = child.wait();
            assert!(found, "job {job} on {cluster} ended without printing {needle:?}");
        });
    }

    /// Waits (on cluster change events) until `check` holds for the cluster's status.
    async fn wait_for_cluster(&self, name: &str, check: impl Fn(Option<ClusterStatus>) -> bool) {
        let clusters = self.server().clusters();
        let mut changes = clusters.subscribe_cluster_changes();
        let wait = async {
            loop {
                let status = clusters.get(name).ok().map(|c| c.status());
                if check(status) {
                    return;
                }
                changes.changed().await.unwrap();
            }
        };
        tokio::time::timeout(Duration::from_secs(30), wait).await.expect("cluster state reached");
    }
}

impl Drop for Env {
    /// Tears down what a test left behind (a failed test may leave jobs running).
    fn drop(&mut self) {
        if self.server.is_some() {
            let _ = tokio::task::block_in_place(|| self.command(&["down", "-a", "-y"]).output());
        }
    }
}

/// Waits until process `pid` has exited, through a pidfd (no polling).
fn wait_for_exit(pid: i32) -> bool {
    // SAFETY: pidfd_open on a pid; the returned descriptor is closed below.
    let fd = unsafe { libc::syscall(libc::SYS_pidfd_open, pid, 0) } as i32;
    if fd < 0 {
        return true; // already gone
    }
    let mut poll = libc::pollfd { fd, events: libc::POLLIN, revents: 0 };
    // SAFETY: one valid pollfd.
    let ready = unsafe { libc::poll(&mut poll, 1, 10_000) };
    // SAFETY: closing the descriptor opened above.
    unsafe { libc::close(fd) };
    ready == 1
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn launch_streams_the_output_and_exits_with_the_jobs_exit_code() {
    let env = Env::start().await;
    let run = env
        .sky(&["launch", "-c", "hello", "-y", "--cpus", "0.5", "echo hello from $SKYPILOT_NODE_RANK"])
        .ok();
    assert!(run.stdout.contains("hello from 0"), "{}", run.stdout);
    assert!(run.stderr.contains("Job finished (status: SUCCEEDED)"), "{}", run.stderr);

    let failed = env.sky(&["exec", "hello", "echo before; exit 3"]).code(3);
    assert!(failed.stdout.contains("before"), "{}", failed.stdout);
    let status = env.sky(&["logs", "hello", "2", "--status"]).code(100);
    assert!(status.stdout.contains("Job 2: FAILED"), "{}", status.stdout);
    env.sky(&["logs", "hello", "1", "--status"]).ok();

    let queue = env.sky(&["queue", "hello"]).ok();
    let header = queue.stdout.lines().nth(1).unwrap();
    for column in ["ID", "NAME", "USER", "SUBMITTED", "STARTED", "DURATION", "RESOURCES", "STATUS"] {
        assert!(header.contains(column), "{header}");
    }
    let status = env.sky(&["status"]).ok();
    let header = status.stdout.lines().nth(1).unwrap();
    for column in ["NAME", "INFRA", "RESOURCES", "STATUS", "AUTOSTOP", "LAUNCHED"] {
        assert!(header.contains(column), "{header}");
    }
    let row = status.stdout.lines().find(|l| l.starts_with("hello")).unwrap();
    assert!(row.contains("local") && row.contains("UP"), "{row}");

    let detached = env.sky(&["exec", "hello", "-d", "echo detached"]).ok();
    assert!(detached.stderr.contains("sky logs hello 3"), "{}", detached.stderr);
    let logs = env.sky(&["logs", "hello", "3"]).ok();
    assert!(logs.stdout.contains("detached"), "{}", logs.stdout);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_node_of_a_multi_node_task_knows_its_rank_and_the_node_ips() {
    let env = Env::start().await;
    env.write(
        "mn.yaml",
        "num_nodes: 2\nresources:\n  cpus: 0.5\nrun: echo \"rank=$SKYPILOT_NODE_RANK of $SKYPILOT_NUM_NODES ips=$(echo $SKYPILOT_NODE_IPS)\"\n",
    );
    let run = env.sky(&["launch", "-c", "mn", "-y", "mn.yaml"]).ok();
    assert!(run.stdout.contains("(head, rank=0) rank=0 of 2 ips=127.0.0.1 127.0.0.1"), "{}", run.stdout);
    assert!(run.stdout.contains("(worker1, rank=1) rank=1 of 2"), "{}", run.stdout);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn envs_secrets_workdir_and_file_mounts_reach_the_job_and_secrets_are_not_shown() {
    let env = Env::start().await;
    env.write("project/train.py", "print('training')\n");
    env.write("data/input.txt", "mounted data\n");
    env.write(
        "task.yaml",
        "name: envs\nworkdir: project\nresources:\n  cpus: 0.5\nenvs:\n  LR: 0.1\n  MODEL: null\n\
         secrets:\n  TOKEN: null\nfile_mounts:\n  ~/inputs/input.txt: data/input.txt\n\
         run: |\n  echo lr=$LR model=$MODEL\n  echo token-length=${#TOKEN}\n  cat train.py\n  cat ~/inputs/input.txt\n",
    );
    let missing = env.sky(&["launch", "-c", "envs", "-y", "task.yaml"]).code(1);
    assert!(missing.stderr.contains("envs.MODEL"), "{}", missing.stderr);

    let secret = "s3cr3t-value-123";
    let run = env
        .sky(&[
            "launch",
            "-c",
            "envs",
            "-y",
            "task.yaml",
            "--env",
            "MODEL=tiny",
            "--secret",
            &format!("TOKEN={secret}"),
        ])
        .ok();
    for expected in
        ["lr=0.1 model=tiny", &format!("token-length={}", secret.len()), "print('training')", "mounted data"]
    {
        assert!(run.stdout.contains(expected), "missing {expected:?} in {}", run.stdout);
    }
    for listing in [
        env.sky(&["queue", "envs"]).ok(),
        env.sky(&["status", "-v"]).ok(),
        env.sky(&["api", "status", "-a", "-v"]).ok(),
        env.sky(&["api", "status", "-a", "-o", "json"]).ok(),
    ] {
        assert!(!listing.stdout.contains(secret), "secret shown: {}", listing.stdout);
    }
    assert!(!run.stderr.contains(secret), "secret in the request log: {}", run.stderr);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failing_setup_ends_the_job_failed_setup_without_running_it() {
    let env = Env::start().await;
    env.write("setup.yaml", "resources:\n  cpus: 0.5\nsetup: echo installing; exit 7\nrun: echo never\n");
    let run = env.sky(&["launch", "-c", "fs", "-y", "setup.yaml"]).code(7);
    assert!(run.stdout.contains("installing") && !run.stdout.contains("never"), "{}", run.stdout);
    assert!(run.stderr.contains("FAILED_SETUP"), "{}", run.stderr);
    let queue = env.sky(&["queue", "fs"]).ok();
    assert!(queue.stdout.contains("FAILED_SETUP"), "{}", queue.stdout);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn jobs_wait_in_fifo_order_for_the_cpus_they_ask_for() {
    let env = Env::start().await;
    let order = env.work.path().join("order.txt");
    let release = env.work.path().join("release");
    env.sky(&["launch", "-c", "q", "-y", "--cpus", "1", "-d", "true"]).ok();
    let first = format!(
        "echo 1 >> {o}; echo started; while [ ! -f {r} ]; do sleep 0.05; done",
        o = order.display(),
        r = release.display()
    );
    env.sky(&["exec", "q", "-d", "--cpus", "1", &first]).ok();
    env.sky(&["exec", "q", "-d", "--cpus", "1", &format!("echo 2 >> {}", order.display())]).ok();
    env.sky(&["exec", "q", "-d", "--cpus", "1", &format!("echo 3 >> {}", order.display())]).ok();
    env.wait_for_line("q", "2", "started");

    let queue = env.sky(&["queue", "q"]).ok();
    let status_of = |id: &str| {
        queue.stdout.lines().find(|l| l.split_whitespace().next() == Some(id)).unwrap().to_string()
    };
    assert!(status_of("2").contains("RUNNING"), "{}", queue.stdout);
    assert!(status_of("3").contains("PENDING") && status_of("4").contains("PENDING"), "{}", queue.stdout);

    fs::write(&release, "").unwrap();
    env.sky(&["logs", "q", "4"]).ok();
    assert_eq!(fs::read_to_string(&order).unwrap(), "1\n2\n3\n");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cancelling_a_running_job_kills_its_process_group() {
    let env = Env::start().await;
    let pid_file = env.work.path().join("pid");
    env.sky(&[
        "launch",
        "-c",
        "c",
        "-y",
        "--cpus",
        "0.5",
        "-d",
        &format!("echo $$ > {}; echo started; sleep 300", pid_file.display()),
    ])
    .ok();
    env.wait_for_line("c", "1", "started");
    let pid: i32 = fs::read_to_string(&pid_file).unwrap().trim().parse().unwrap();

    let cancel = env.sky(&["cancel", "c", "1", "-y"]).ok();
    assert!(cancel.stdout.contains("Cancelled job(s) 1"), "{}", cancel.stdout);
    assert!(tokio::task::block_in_place(|| wait_for_exit(pid)), "job process {pid} still running");
    let queue = env.sky(&["queue", "c"]).ok();
    assert!(queue.stdout.contains("CANCELLED"), "{}", queue.stdout);

    let again = env.sky(&["cancel", "c", "1", "-y"]).code(1);
    assert!(again.stderr.contains("already finished"), "{}", again.stderr);
    let none = env.sky(&["cancel", "c"]).code(1);
    assert!(none.stderr.contains("-a/--all"), "{}", none.stderr);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stop_start_and_down_change_the_cluster_and_bad_requests_say_why() {
    let env = Env::start().await;
    env.sky(&["launch", "-c", "dev-1", "-y", "--cpus", "0.5", "true"]).ok();
    env.sky(&["launch", "-c", "dev-2", "-y", "--cpus", "0.5", "true"]).ok();

    let bigger = env.sky(&["launch", "-c", "dev-1", "-y", "--cpus", "1", "true"]).code(1);
    assert!(bigger.stderr.contains("does not fit cluster"), "{}", bigger.stderr);

    env.sky(&["stop", "dev-*", "-y"]).ok();
    let status = env.sky(&["status"]).ok();
    assert_eq!(status.stdout.matches("STOPPED").count(), 2, "{}", status.stdout);
    let exec = env.sky(&["exec", "dev-1", "echo hi"]).code(1);
    assert!(exec.stderr.contains("sky start dev-1"), "{}", exec.stderr);

    env.sky(&["start", "dev-1", "-y"]).ok();
    env.sky(&["exec", "dev-1", "echo back"]).ok();
    env.sky(&["down", "dev-1", "dev-2", "-y"]).ok();
    assert!(env.sky(&["status"]).ok().stdout.contains("No existing clusters."));
    assert!(!env.data.path().join("api_server/clusters/dev-1").exists());

    let unknown = env.sky(&["exec", "nope", "echo"]).code(1);
    assert!(unknown.stderr.contains("does not exist"), "{}", unknown.stderr);
    let down = env.sky(&["down", "nope", "-y"]).code(1);
    assert!(down.stderr.contains("not found"), "{}", down.stderr);
    let big = env.sky(&["launch", "-c", "big", "-y", "--cpus", "1000", "true"]).code(1);
    assert!(big.stderr.contains("asked for 1000 CPU(s)"), "{}", big.stderr);
    env.write("bad.yaml", "name: x\nresources:\n  region: us-east-1\n");
    let bad = env.sky(&["launch", "-c", "bad", "-y", "bad.yaml"]).code(1);
    assert!(bad.stderr.contains("resources.region"), "{}", bad.stderr);
    env.write("broken.yaml", "run: [unclosed\n");
    let broken = env.sky(&["launch", "-c", "bad", "-y", "broken.yaml"]).code(1);
    assert!(broken.stderr.contains("line 2"), "{}", broken.stderr);
    assert!(env.sky(&["status"]).ok().stdout.contains("No existing clusters."));
}

#[test]
fn a_job_that_ignores_sigterm_is_killed_even_when_the_server_stops_right_after_cancelling_it() {
    let temp = tempfile::tempdir().unwrap();
    let (home, data) = (temp.path().join("home"), temp.path().join("data"));
    fs::create_dir_all(&home).unwrap();
    let server = ServerProcess::start(&home, &data, 0);
    let command = |args: &[&str]| {
        let mut command = Command::new(env!("CARGO_BIN_EXE_sky"));
        command
            .args(args)
            .env("HOME", &home)
            .env("SKYPILOT_API_SERVER_ENDPOINT", format!("http://127.0.0.1:{}", server.port))
            .stdin(Stdio::null());
        command
    };
    let sky = |args: &[&str]| Run::from(command(args).output().unwrap());
    let pid_file = temp.path().join("pid");
    let script = format!("trap '' TERM; echo $$ > {}; echo started; sleep 300", pid_file.display());
    sky(&["launch", "-c", "stubborn", "-y", "--cpus", "0.5", "-d", &script]).ok();
    let mut follow = command(&["logs", "stubborn", "1"]).stdout(Stdio::piped()).spawn().unwrap();
    let started =
        BufReader::new(follow.stdout.take().unwrap()).lines().any(|line| line.unwrap() == "started");
    let _ = follow.kill();
    let _ = follow.wait();
    assert!(started, "the job never started");
    let pid: i32 = fs::read_to_string(&pid_file).unwrap().trim().parse().unwrap();

    sky(&["cancel", "stubborn", "1", "-y"]).ok();
    assert!(server.stop(), "the server did not stop cleanly");
    assert!(wait_for_exit(pid), "job process {pid} outlived its cancellation and the server");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn down_keeps_the_job_logs_for_the_retention_period_and_retention_removes_them() {
    let env = Env::start().await;
    env.sky(&["launch", "-c", "kept", "-y", "--cpus", "0.5", "echo first job"]).ok();
    env.sky(&["exec", "kept", "echo second job"]).ok();
    env.sky(&["down", "kept", "-y"]).ok();
    let archive = env.data.path().join("api_server/job_logs");
    let folders: Vec<_> = fs::read_dir(&archive).unwrap().map(|e| e.unwrap().path()).collect();
    assert_eq!(folders.len(), 1, "{folders:?}");
    assert!(folders[0].file_name().unwrap().to_string_lossy().starts_with("kept-"));
    assert!(fs::read_to_string(folders[0].join("1.log")).unwrap().contains("first job"));
    assert!(fs::read_to_string(folders[0].join("2.log")).unwrap().contains("second job"));

    let retention = skypilot_server::Retention {
        request_hours: -1.0,
        job_log_hours: 0.0,
        job_log_archive: archive.clone(),
        uploads: None,
    };
    retention.sweep(env.server().engine()).await;
    assert_eq!(fs::read_dir(&archive).unwrap().count(), 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn autostop_stops_an_idle_cluster_and_autodown_tears_one_down() {
    let env = Env::start().await;
    env.sky(&["launch", "-c", "idle", "-y", "--cpus", "0.5", "true"]).ok();
    env.sky(&["autostop", "idle", "-i", "0"]).ok();
    env.wait_for_cluster("idle", |s| s == Some(ClusterStatus::Stopped)).await;

    env.sky(&["launch", "-c", "once", "-y", "--cpus", "0.5", "--down", "echo done"]).ok();
    env.wait_for_cluster("once", |s| s.is_none()).await;
}

/// Lets `rounds` autostop checks pass (the server checks every 50 ms):
/// what must not happen would have happened by then.
async fn let_autostop_checks_pass(rounds: u32) {
    tokio::time::sleep(Duration::from_millis(50) * rounds).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn autostop_waits_for_a_busy_cluster_and_a_cancelled_autostop_keeps_it_up() {
    let env = Env::start().await;
    let release = env.work.path().join("release");
    let wait = format!("while [ ! -f {} ]; do sleep 0.05; done", release.display());
    env.sky(&["launch", "-c", "busy", "-y", "--cpus", "0.5", "-d", &wait]).ok();
    env.sky(&["autostop", "busy", "-i", "0"]).ok();
    let_autostop_checks_pass(10).await;
    let status = env.sky(&["status", "busy"]).ok();
    assert!(status.stdout.contains("UP"), "a cluster with a running job is busy:\n{}", status.stdout);
    fs::write(&release, "").unwrap();
    env.wait_for_cluster("busy", |s| s == Some(ClusterStatus::Stopped)).await;

    fs::remove_file(&release).unwrap();
    env.sky(&["launch", "-c", "kept", "-y", "--cpus", "0.5", "-d", &wait]).ok();
    env.sky(&["autostop", "kept", "-i", "0"]).ok();
    env.sky(&["autostop", "kept", "--cancel"]).ok();
    fs::write(&release, "").unwrap();
    env.sky(&["logs", "kept", "1"]).ok(); // follows the job to its end
    let_autostop_checks_pass(10).await;
    let status = env.sky(&["status", "kept"]).ok();
    let row = status.stdout.lines().find(|line| line.starts_with("kept")).unwrap_or_default().to_string();
    assert!(row.contains("UP") && !row.contains("STOPPED"), "{}", status.stdout);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn jobs_keep_running_across_a_server_restart_and_end_right_afterwards() {
    let mut env = Env::start().await;
    let release = env.work.path().join("release");
    env.sky(&[
        "launch",
        "-c",
        "r",
        "-y",
        "--cpus",
        "0.5",
        "-d",
        &format!("echo before; while [ ! -f {} ]; do sleep 0.05; done; echo after", release.display()),
    ])
    .ok();
    env.wait_for_line("r", "1", "before");

    env.restart().await;
    fs::write(&release, "").unwrap();
    let logs = env.sky(&["logs", "r", "1"]).ok();
    assert_eq!(logs.stdout, "before\nafter\n");
    let queue = env.sky(&["queue", "r"]).ok();
    assert!(queue.stdout.contains("SUCCEEDED"), "{}", queue.stdout);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_log_follow_rides_through_a_server_restart_and_prints_every_line_once() {
    let mut env = Env::start().await;
    let release = env.work.path().join("release");
    let script =
        format!("echo before; while [ ! -f {} ]; do sleep 0.05; done; echo after", release.display());
    env.sky(&["launch", "-c", "f", "-y", "--cpus", "0.5", "-d", &script]).ok();

    let mut follower =
        env.command(&["logs", "f", "1"]).stdout(Stdio::piped()).stderr(Stdio::piped()).spawn().unwrap();
    let mut lines = BufReader::new(follower.stdout.take().unwrap()).lines();
    let first = tokio::task::block_in_place(|| lines.next().unwrap().unwrap());
    assert_eq!(first, "before");

    env.restart().await;
    fs::write(&release, "").unwrap();
    let rest: Vec<String> = tokio::task::block_in_place(|| lines.map(|l| l.unwrap()).collect());
    assert_eq!(rest, ["after"]);
    let output = tokio::task::block_in_place(|| follower.wait_with_output().unwrap());
    assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_job_whose_processes_were_not_recorded_before_a_crash_is_adopted_not_run_again() {
    use skypilot_server::{JobRecord, Table};

    let mut env = Env::start().await;
    let starts = env.work.path().join("starts");
    let release = env.work.path().join("release");
    let script = format!(
        "echo started >> {}; echo running; while [ ! -f {} ]; do sleep 0.05; done",
        starts.display(),
        release.display()
    );
    env.sky(&["launch", "-c", "gap", "-y", "--cpus", "0.5", "-d", &script]).ok();
    env.wait_for_line("gap", "1", "running");

    // As if the server died after starting the job's process but before
    // recording it: the job is RUNNING with no process on record.
    env.restart_editing(|store| {
        let mut key = b"gap\0".to_vec();
        key.extend_from_slice(&1i64.to_be_bytes());
        let mut job: JobRecord = store.get(Table::Jobs, &key).unwrap().unwrap();
        // (The server may not have recorded the process yet either: the job
        // prints before its record is updated. Both lead to the same recovery.)
        job.processes.clear();
        store.put(Table::Jobs, &key, &job).unwrap();
    })
    .await;

    let adopted = env.sky(&["queue", "gap"]).ok();
    assert!(adopted.stdout.contains("RUNNING"), "the running job was not adopted: {}", adopted.stdout);
    fs::write(&release, "").unwrap();
    env.sky(&["logs", "gap", "1"]).ok();
    assert_eq!(fs::read_to_string(&starts).unwrap(), "started\n", "the job ran twice");
    let queue = env.sky(&["queue", "gap"]).ok();
    assert!(queue.stdout.contains("SUCCEEDED"), "{}", queue.stdout);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn work_on_a_cluster_reads_as_many_records_whatever_its_history() {
    use skypilot_api::proto::skypilot::v1::JobStatus;
    use skypilot_server::{ClusterRecord, JobRecord, Store, Table};

    const HISTORY: i64 = 20_000;
    let mut env = Env::start().await;
    for cluster in ["old", "new"] {
        env.sky(&["launch", "-c", cluster, "-y", "--cpus", "0.5", "true"]).ok();
    }
    // `old` has run many jobs before, all of this user's.
    env.restart_editing(|store| {
        let first: JobRecord = store.get(Table::Jobs, b"old\0\0\0\0\0\0\0\0\x01").unwrap().unwrap();
        for job_id in 2..=HISTORY + 1 {
            let mut key = b"old\0".to_vec();
            key.extend_from_slice(&job_id.to_be_bytes());
            let job = JobRecord {
                job_id,
                cluster: "old".into(),
                status: JobStatus::Succeeded as i32,
                cpus: 0.5,
                user_id: first.user_id.clone(),
                user_name: first.user_name.clone(),
                ..Default::default()
            };
            store.put(Table::Jobs, &key, &job).unwrap();
        }
        let mut cluster: ClusterRecord = store.get(Table::Clusters, b"old").unwrap().unwrap();
        cluster.next_job_id = HISTORY + 2;
        store.put(Table::Clusters, b"old", &cluster).unwrap();
    })
    .await;

    // The same work on each: a job run to its end, its status, the queue.
    let mut reads = Vec::new();
    for cluster in ["old", "new"] {
        let before = Store::records_decoded();
        env.sky(&["exec", cluster, "echo done"]).ok();
        env.sky(&["logs", cluster, "--status"]).ok();
        let job_work = Store::records_decoded() - before;
        let before = Store::records_decoded();
        let queue = env.sky(&["queue", cluster]).ok();
        reads.push((job_work, Store::records_decoded() - before, queue.stdout));
    }
    let ((old_job, old_queue, old_table), (new_job, new_queue, _)) = (&reads[0], &reads[1]);
    // (Background work, such as the autostop checks, reads a few records
    // too; reading the history would be 20,000 more.)
    assert!(
        *old_job <= new_job + 1000,
        "a job on a cluster with history read {old_job} records, {new_job} without"
    );
    // The queue shows the 100 most recent jobs: about 100 more records.
    assert!(*old_queue <= new_queue + 1000, "sky queue read {old_queue} records, {new_queue} without");
    assert!(old_table.contains("Showing the 100 most recent jobs"), "{old_table}");
    let all = env.sky(&["queue", "old", "--limit", "0"]).ok();
    assert_eq!(all.stdout.lines().filter(|line| line.contains("SUCCEEDED")).count() as i64, HISTORY + 2);
}
