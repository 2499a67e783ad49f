//! Managed jobs end to end: the real `sky` binary (`sky jobs launch|queue|
//! cancel|logs`) against a real server process, which the tests also kill
//! with SIGKILL and start again on the same data dir and port.

mod common;

use std::{
    fs,
    io::{BufRead, BufReader},
    path::{Path, PathBuf},
    process::{Command, Stdio},
    time::Duration,
};

use common::{Run, ServerProcess};
use skypilot_api::proto::skypilot::v1::{
    JobRecovery, LaunchManagedJobRequest, ListClustersRequest, ListManagedJobsRequest, ManagedJob,
    ManagedJobStatus, Resources, TaskSpec,
};
use tempfile::TempDir;

struct Env {
    server: ServerProcess,
    home: TempDir,
    /// The tests' own files: YAMLs, gates, counters.
    work: TempDir,
}

impl Env {
    fn start() -> Env {
        let home = tempfile::tempdir().unwrap();
        let data = home.path().join("data");
        let server = ServerProcess::start_with_flags(home.path(), &data, &[]);
        Env { server, home, work: tempfile::tempdir().unwrap() }
    }

    fn command(&self, args: &[&str]) -> Command {
        let mut command = Command::new(env!("CARGO_BIN_EXE_sky"));
        command
            .args(args)
            .current_dir(self.work.path())
            .env("HOME", self.home.path())
            .env("SKYPILOT_API_SERVER_ENDPOINT", format!("http://127.0.0.1:{}", self.server.port))
            .env("W", self.work.path())
            .stdin(Stdio::null());
        command
    }

    fn sky(&self, args: &[&str]) -> Run {
        Run::from(tokio::task::block_in_place(|| self.command(args).output().unwrap()))
    }

    fn path(&self, name: &str) -> PathBuf {
        self.work.path().join(name)
    }

    fn write(&self, name: &str, text: &str) -> String {
        fs::write(self.path(name), text).unwrap();
        self.path(name).to_string_lossy().into_owned()
    }

    /// Follows `sky jobs logs ARGS` until a line containing `needle`; returns it.
    fn wait_for_line(&self, args: &[&str], needle: &str) -> String {
        tokio::task::block_in_place(|| {
            let mut full = vec!["jobs", "logs"];
            full.extend_from_slice(args);
            let mut child = self.command(&full).stdout(Stdio::piped()).spawn().unwrap();
            let stdout = BufReader::new(child.stdout.take().unwrap());
            let found = stdout.lines().map(|line| line.unwrap()).find(|line| line.contains(needle));
            let _ = child.kill();
            let _ = child.wait();
            found.unwrap_or_else(|| panic!("`sky jobs logs {args:?}` ended without {needle:?}"))
        })
    }

    async fn job(&self, id: i64) -> ManagedJob {
        let client = self.server.client(Duration::from_secs(30)).await;
        let request = ListManagedJobsRequest { all_users: true, job_ids: vec![id], ..Default::default() };
        let page = client.list_managed_jobs(request).await.unwrap();
        page.jobs.into_iter().next().unwrap_or_else(|| panic!("no managed job {id}"))
    }

    async fn clusters(&self) -> Vec<String> {
        let client = self.server.client(Duration::from_secs(30)).await;
        let request = ListClustersRequest { all_users: true, ..Default::default() };
        client.list_clusters(request).await.unwrap().into_iter().map(|c| c.name).collect()
    }

    /// `sky jobs launch -y -d --cpus 0.2 --env W ARGS` (several fit on a
    /// small host at once; the job sees the test's folder as $W); returns
    /// the job's id.
    fn launch_detached(&self, args: &[&str]) -> i64 {
        let mut full = vec!["jobs", "launch", "-y", "-d", "--cpus", "0.2", "--env", "W"];
        full.extend_from_slice(args);
        let run = self.sky(&full).ok();
        job_id_in(&run.stderr)
    }
}

/// The id in "Managed job N ('name') submitted."
fn job_id_in(stderr: &str) -> i64 {
    let line = stderr
        .lines()
        .find(|l| l.contains("Managed job") && l.contains("submitted."))
        .unwrap_or_else(|| panic!("no submission line in:\n{stderr}"));
    let after = line.split("Managed job ").nth(1).unwrap();
    after.split_whitespace().next().unwrap().parse().unwrap()
}

/// Kills the process group whose id the job printed after "pgid".
fn kill_group_in(line: &str) {
    let pgid: i32 = line.split("pgid").nth(1).unwrap().trim().parse().unwrap();
    assert!(pgid > 1);
    // SAFETY: a plain kill(2) of a process group the test's job reported.
    assert_eq!(unsafe { libc::kill(-pgid, libc::SIGKILL) }, 0, "kill -{pgid}");
}

fn lines_of(path: &Path) -> usize {
    fs::read_to_string(path).map(|text| text.lines().count()).unwrap_or(0)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_managed_job_runs_to_succeeded_and_its_cluster_is_gone_after() {
    let env = Env::start();
    let run = env.sky(&["jobs", "launch", "-y", "-n", "hello", "echo hello from a managed job"]).ok();
    assert!(run.stdout.contains("hello from a managed job"), "{}", run.stdout);
    assert!(run.stdout.contains("=== Task 1/1 'hello', attempt 1 (recoveries so far: 0)"), "{}", run.stdout);
    assert!(run.stderr.contains("Managed job 1 ('hello') submitted."), "{}", run.stderr);
    assert!(run.stderr.contains("finished (status: SUCCEEDED)"), "{}", run.stderr);

    let job = env.job(1).await;
    assert_eq!(job.status(), ManagedJobStatus::Succeeded);
    assert_eq!((job.name.as_str(), job.recovery_count), ("hello", 0));
    assert!(job.cluster_name.starts_with("hello-1-"), "{}", job.cluster_name);
    assert!(env.clusters().await.is_empty(), "the job's cluster outlived it");

    let queue = env.sky(&["jobs", "queue"]).ok();
    for column in
        ["ID", "TASK", "NAME", "REQUESTED", "SUBMITTED", "TOT. DURATION", "JOB DURATION", "#RECOVERIES"]
    {
        assert!(queue.stdout.contains(column), "{column}: {}", queue.stdout);
    }
    assert!(queue.stdout.contains("SUCCEEDED"), "{}", queue.stdout);
    let controller = env.sky(&["jobs", "logs", "--controller", "--no-follow", "1"]).ok();
    for step in ["Launching cluster", "is up", "succeeded", "torn down"] {
        assert!(controller.stdout.contains(step), "{step}: {}", controller.stdout);
    }
    let again = env.sky(&["jobs", "logs", "1"]).ok();
    assert!(again.stdout.contains("hello from a managed job"), "{}", again.stdout);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_job_whose_node_is_lost_recovers_once_and_its_output_tells_the_attempts_apart() {
    let env = Env::start();
    let script = "echo task id $SKYPILOT_TASK_ID; if [ -e $W/marker ]; then echo second attempt done; \
                  else touch $W/marker; echo first attempt pgid $(cut -d' ' -f5 /proc/$$/stat); sleep 600; fi";
    let id = env.launch_detached(&[script]);
    let line = env.wait_for_line(&[&id.to_string()], "pgid");
    kill_group_in(&line); // the node's processes die, as when a node is lost

    let run = env.sky(&["jobs", "logs", &id.to_string()]).ok();
    let output = run.stdout;
    let first = output.find("attempt 1 (recoveries so far: 0)").expect(&output);
    let first_line = output.find("first attempt").expect(&output);
    let second = output.find("attempt 2 (recoveries so far: 1)").expect(&output);
    let second_line = output.find("second attempt done").expect(&output);
    assert!(first < first_line && first_line < second && second < second_line, "{output}");
    // Both attempts see the same task id (a place for checkpoints).
    let ids: Vec<&str> = output.lines().filter_map(|line| line.strip_prefix("task id ")).collect();
    assert_eq!(ids.len(), 2, "{output}");
    assert!(
        ids[0] == ids[1]
            && ids[0].starts_with("sky-managed-")
            && ids[0].ends_with(&format!("_sky-cmd_{id}-0")),
        "{ids:?}"
    );

    let job = env.job(id).await;
    assert_eq!((job.status(), job.recovery_count), (ManagedJobStatus::Succeeded, 1));
    let controller = env.sky(&["jobs", "logs", "--controller", "--no-follow", &id.to_string()]).ok();
    assert!(controller.stdout.contains("Recovering (recovery 1)"), "{}", controller.stdout);
    assert!(env.clusters().await.is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_task_that_always_fails_is_restarted_as_asked_then_fails_after_three_attempts() {
    let env = Env::start();
    let yaml = env.write(
        "fails.yaml",
        "name: flaky\nresources:\n  job_recovery:\n    max_restarts_on_errors: 2\nrun: echo try; exit 3\n",
    );
    let run = env.sky(&["jobs", "launch", "-y", &yaml]).code(100);
    assert!(run.stderr.contains("FAILED"), "{}", run.stderr);
    assert_eq!(run.stdout.matches("try").count(), 3, "{}", run.stdout);
    assert!(run.stdout.contains("attempt 3"), "{}", run.stdout);
    let job = env.job(1).await;
    assert_eq!((job.status(), job.recovery_count), (ManagedJobStatus::Failed, 2));
    assert!(job.failure_reason.contains("exited with code 3"), "{}", job.failure_reason);
    assert!(env.clusters().await.is_empty());

    // Without restarts a failure ends the job at once; a failing setup is FAILED_SETUP.
    let once = env.sky(&["jobs", "launch", "-y", "exit 4"]).code(100);
    assert_eq!(once.stdout.matches("=== Task").count(), 1, "{}", once.stdout);
    let setup = env.write("setup.yaml", "setup: exit 1\nrun: echo never\n");
    let run = env.sky(&["jobs", "launch", "-y", &setup]).code(100);
    assert!(run.stderr.contains("FAILED_SETUP"), "{}", run.stderr);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cancel_during_running_and_during_recovering_ends_cancelled_without_clusters() {
    let env = Env::start();
    let running = env.launch_detached(&["-n", "sleeper", "echo started; sleep 600"]);
    env.wait_for_line(&[&running.to_string()], "started");
    env.wait_for_line(&["--controller", &running.to_string()], "is running");
    assert_eq!(env.job(running).await.status(), ManagedJobStatus::Running);
    let cancel = env.sky(&["jobs", "cancel", "-y", &running.to_string()]).ok();
    assert!(cancel.stdout.contains("cancelled"), "{}", cancel.stdout);
    assert_eq!(env.job(running).await.status(), ManagedJobStatus::Cancelled);

    // The second attempt blocks in its setup: the job stays RECOVERING.
    let yaml = env.write(
        "recover.yaml",
        "setup: if [ -e $W/lost ]; then echo blocked in setup; sleep 600; fi\n\
         run: touch $W/lost; echo pgid $(cut -d' ' -f5 /proc/$$/stat); sleep 600\n",
    );
    let recovering = env.launch_detached(&[&yaml]);
    let line = env.wait_for_line(&[&recovering.to_string()], "pgid");
    kill_group_in(&line);
    env.wait_for_line(&[&recovering.to_string()], "blocked in setup");
    assert_eq!(env.job(recovering).await.status(), ManagedJobStatus::Recovering);
    env.sky(&["jobs", "cancel", "-y", &recovering.to_string()]).ok();
    let job = env.job(recovering).await;
    assert_eq!((job.status(), job.recovery_count), (ManagedJobStatus::Cancelled, 1));
    assert!(env.clusters().await.is_empty());
    // Following a cancelled job says so, with SkyPilot's exit code.
    let logs = env.sky(&["jobs", "logs", &recovering.to_string()]).code(103);
    assert!(logs.stderr.contains("CANCELLED"), "{}", logs.stderr);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_job_waits_for_capacity_held_by_another_and_one_that_can_never_fit_fails_at_once() {
    let env = Env::start();
    let host_cpus = std::thread::available_parallelism().unwrap().get().to_string();
    let whole_host = |script: &str| {
        let run = env.sky(&["jobs", "launch", "-y", "-d", "--cpus", &host_cpus, "--env", "W", script]).ok();
        job_id_in(&run.stderr)
    };
    let holder = whole_host("echo holding; while [ ! -e $W/free ]; do sleep 0.05; done");
    env.wait_for_line(&[&holder.to_string()], "holding");
    let waiter = whole_host("echo got the host");
    env.wait_for_line(&["--controller", &waiter.to_string()], "waiting for capacity");
    let job = env.job(waiter).await;
    assert_eq!(job.status(), ManagedJobStatus::Pending);
    assert!(job.failure_reason.contains("waiting for capacity"), "{}", job.failure_reason);
    fs::write(env.path("free"), "").unwrap();
    let run = env.sky(&["jobs", "logs", &waiter.to_string()]).ok();
    assert!(run.stdout.contains("got the host"), "{}", run.stdout);
    assert_eq!(env.job(holder).await.status(), ManagedJobStatus::Succeeded);

    let never = env.sky(&["jobs", "launch", "-y", "--cpus", "100000", "echo never"]).code(100);
    assert!(never.stderr.contains("FAILED_NO_RESOURCE"), "{}", never.stderr);
    assert!(never.stderr.contains("the host has"), "{}", never.stderr);
    assert!(env.clusters().await.is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_two_task_pipeline_runs_its_tasks_in_order_each_on_a_fresh_cluster() {
    let env = Env::start();
    let yaml = env.write(
        "pipe.yaml",
        "name: pipe\n---\nname: prepare\nrun: echo prepared > $W/step1; echo first task\n---\n\
         name: train\nrun: cat $W/step1; echo second task\n",
    );
    let run = env.sky(&["jobs", "launch", "-y", "--env", "W", &yaml]).ok();
    let output = run.stdout;
    let order = ["Task 1/2 'prepare'", "first task", "Task 2/2 'train'", "prepared", "second task"];
    let places: Vec<usize> =
        order.iter().map(|s| output.find(s).unwrap_or_else(|| panic!("{s}: {output}"))).collect();
    assert!(places.windows(2).all(|w| w[0] < w[1]), "{output}");
    let job = env.job(1).await;
    assert_eq!((job.name.as_str(), job.num_tasks, job.status()), ("pipe", 2, ManagedJobStatus::Succeeded));
    assert!(env.clusters().await.is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_requests_get_clear_errors_and_disturb_nothing() {
    let env = Env::start();
    let done = env.sky(&["jobs", "launch", "-y", "-n", "keeper", "echo kept"]).ok();
    assert!(done.stdout.contains("kept"));

    let strategy = env.write("s.yaml", "resources:\n  job_recovery: RETRY_FOREVER\nrun: echo\n");
    let run = env.sky(&["jobs", "launch", "-y", &strategy]).fails();
    assert!(
        run.stderr.contains("job_recovery.strategy") && run.stderr.contains("FAILOVER"),
        "{}",
        run.stderr
    );
    let negative =
        env.write("n.yaml", "resources:\n  job_recovery:\n    max_restarts_on_errors: -1\nrun: echo\n");
    let run = env.sky(&["jobs", "launch", "-y", &negative]).fails();
    assert!(run.stderr.contains("max_restarts_on_errors"), "{}", run.stderr);

    // The server checks too, whatever the client.
    let client = env.server.client(Duration::from_secs(30)).await;
    let task = |strategy: &str, restarts: i32| TaskSpec {
        run: "echo".into(),
        num_nodes: 1,
        resources: Some(Resources {
            job_recovery: Some(JobRecovery { strategy: strategy.into(), max_restarts_on_errors: restarts }),
            ..Default::default()
        }),
        ..Default::default()
    };
    for (bad, field) in [(task("NOPE", 0), "job_recovery.strategy"), (task("", -3), "max_restarts_on_errors")]
    {
        let request = LaunchManagedJobRequest { tasks: vec![bad], ..Default::default() };
        let err = client.launch_managed_job(request).await.unwrap_err();
        assert_eq!(err.code(), Some(tonic::Code::InvalidArgument), "{err}");
        assert!(err.to_string().contains(field), "{err}");
    }
    let empty = client.launch_managed_job(LaunchManagedJobRequest::default()).await.unwrap_err();
    assert_eq!(empty.code(), Some(tonic::Code::InvalidArgument), "{empty}");

    let finished = env.sky(&["jobs", "cancel", "-y", "1"]).fails();
    assert!(finished.stderr.contains("already finished (SUCCEEDED)"), "{}", finished.stderr);
    let unknown = env.sky(&["jobs", "cancel", "-y", "42"]).fails();
    assert!(unknown.stderr.contains("managed job 42 does not exist"), "{}", unknown.stderr);
    let unnamed = env.sky(&["jobs", "cancel", "-y", "-n", "nosuch"]).fails();
    assert!(unnamed.stderr.contains("no managed job named \"nosuch\""), "{}", unnamed.stderr);
    let nothing = env.sky(&["jobs", "cancel", "-y"]).fails();
    assert!(nothing.stderr.contains("-n/--name"), "{}", nothing.stderr);
    let logs = env.sky(&["jobs", "logs", "42"]).fails();
    assert!(logs.stderr.contains("does not exist"), "{}", logs.stderr);

    let kept = env.job(1).await;
    assert_eq!((kept.status(), kept.name.as_str()), (ManagedJobStatus::Succeeded, "keeper"));
    let queue = env.sky(&["jobs", "queue"]).ok();
    assert_eq!(queue.stdout.matches("keeper").count(), 1, "{}", queue.stdout);
}

/// Each run: a job killed (SIGKILL of the whole server) at one point of its
/// life, the server started again, and the job let go on. Every job's run
/// appends to a counter file when it completes: exactly one line each.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_server_killed_while_jobs_start_run_and_recover_ends_each_with_one_run_and_no_stray_cluster() {
    let mut env = Env::start();
    let gate = |name: &str| format!("while [ ! -e $W/{name} ]; do sleep 0.05; done");

    // STARTING: the task's setup waits for a gate.
    let starting = env.write(
        "starting.yaml",
        &format!("setup: echo in setup; {}\nrun: echo run >> $W/count-starting\n", gate("go-starting")),
    );
    let starting = env.launch_detached(&[&starting]);
    env.wait_for_line(&[&starting.to_string()], "in setup");
    assert_eq!(env.job(starting).await.status(), ManagedJobStatus::Starting);

    // RUNNING: the run waits for a gate.
    let running = env.write(
        "running.yaml",
        &format!("run: echo in run; {}; echo run >> $W/count-running\n", gate("go-running")),
    );
    let running = env.launch_detached(&[&running]);
    env.wait_for_line(&[&running.to_string()], "in run");
    env.wait_for_line(&["--controller", &running.to_string()], "is running");
    assert_eq!(env.job(running).await.status(), ManagedJobStatus::Running);

    // RECOVERING: the first attempt's node is lost; the second waits in setup.
    let recovering = env.write(
        "recovering.yaml",
        &format!(
            "setup: if [ -e $W/lost ]; then echo second setup; {}; fi\n\
             run: if [ ! -e $W/lost ]; then touch $W/lost; echo pgid $(cut -d' ' -f5 /proc/$$/stat); sleep 600; fi; \
             echo run >> $W/count-recovering\n",
            gate("go-recovering")
        ),
    );
    let recovering = env.launch_detached(&[&recovering]);
    kill_group_in(&env.wait_for_line(&[&recovering.to_string()], "pgid"));
    env.wait_for_line(&[&recovering.to_string()], "second setup");
    assert_eq!(env.job(recovering).await.status(), ManagedJobStatus::Recovering);

    tokio::task::block_in_place(|| env.server.kill_and_restart());
    for name in ["go-starting", "go-running", "go-recovering"] {
        fs::write(env.path(name), "").unwrap();
    }
    for (id, counter, recoveries) in
        [(starting, "count-starting", 0), (running, "count-running", 0), (recovering, "count-recovering", 1)]
    {
        env.sky(&["jobs", "logs", &id.to_string()]).ok();
        let job = env.job(id).await;
        assert_eq!((job.status(), job.recovery_count), (ManagedJobStatus::Succeeded, recoveries), "job {id}");
        assert_eq!(lines_of(&env.path(counter)), 1, "job {id} ran {counter} more than once");
    }
    assert!(env.clusters().await.is_empty(), "stray clusters: {:?}", env.clusters().await);
    let jobs = env.sky(&["jobs", "queue"]).ok();
    assert_eq!(jobs.stdout.matches("SUCCEEDED").count(), 3, "{}", jobs.stdout);
}

/// Managed jobs of every shape (one task, a pipeline, restarts on errors,
/// setup and run) while the server is SIGKILLed at moments spread over their
/// launches, runs and teardowns: each ends as it would have, each setup and
/// run happened exactly as often as it should, and no cluster is left.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn managed_jobs_end_as_they_should_with_every_run_once_across_random_server_kills() {
    let mut env = Env::start();
    let restart = env.write(
        "restart.yaml",
        "resources:\n  job_recovery: {max_restarts_on_errors: 1}\nrun: echo try >> $W/c3-$K; exit 1\n",
    );
    let pipeline =
        env.write("pipe.yaml", "name: pipe\n---\nresources: {cpus: 0.2}\nrun: echo a >> $W/c2a-$K\n---\nresources: {cpus: 0.2}\nrun: echo b >> $W/c2b-$K\n");
    let phases =
        env.write("phases.yaml", "setup: echo s >> $W/c5s-$K\nrun: sleep 0.3; echo r >> $W/c5r-$K\n");
    let mut jobs = Vec::new(); // (id, expected status, counter files with their expected lines)
    for copy in 0..3 {
        let key = format!("K={copy}");
        let with = |target: &str| {
            vec!["--env", key.as_str(), target].into_iter().map(String::from).collect::<Vec<_>>()
        };
        let launch = |args: Vec<String>| {
            let args: Vec<&str> = args.iter().map(String::as_str).collect();
            env.launch_detached(&args)
        };
        let counter = |name: &str| format!("{name}-{copy}");
        jobs.push((
            launch(with("echo run >> $W/c1-$K")),
            ManagedJobStatus::Succeeded,
            vec![(counter("c1"), 1)],
        ));
        let piped = env.sky(&["jobs", "launch", "-y", "-d", "--env", "W", "--env", &key, &pipeline]).ok();
        let pipe_counters = vec![(counter("c2a"), 1), (counter("c2b"), 1)];
        jobs.push((job_id_in(&piped.stderr), ManagedJobStatus::Succeeded, pipe_counters));
        jobs.push((launch(with(&restart)), ManagedJobStatus::Failed, vec![(counter("c3"), 2)]));
        let phase_counters = vec![(counter("c5s"), 1), (counter("c5r"), 1)];
        jobs.push((launch(with(&phases)), ManagedJobStatus::Succeeded, phase_counters));
    }
    // Kills spread over the jobs' lives (pauses pace the kills; nothing waits on them).
    let mut seed = std::process::id();
    for _ in 0..4 {
        seed = seed.wrapping_mul(1_103_515_245).wrapping_add(12_345);
        std::thread::sleep(Duration::from_millis(40 + u64::from(seed >> 16) % 300));
        tokio::task::block_in_place(|| env.server.kill_and_restart());
    }
    for (id, status, counters) in &jobs {
        let code = if *status == ManagedJobStatus::Succeeded { 0 } else { 100 };
        env.sky(&["jobs", "logs", &id.to_string()]).code(code);
        let job = env.job(*id).await;
        assert_eq!(job.status(), *status, "job {id}: {}", job.failure_reason);
        for (counter, lines) in counters {
            assert_eq!(lines_of(&env.path(counter)), *lines, "job {id}: {counter}");
        }
    }
    assert!(env.clusters().await.is_empty(), "stray clusters: {:?}", env.clusters().await);
}
