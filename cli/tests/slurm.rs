//! Slurm clusters through the real `sky` binary, against a real Slurm (a
//! controller and two node daemons on this host) reached through a real
//! login node over SSH, as SkyPilot reaches Slurm.

mod common;

#[path = "../../server/tests/common/unix_user.rs"]
#[allow(dead_code)]
mod unix_user;

#[path = "../../server/tests/common/ssh_hosts.rs"]
#[allow(dead_code)]
mod ssh_hosts;

use common::ports;

#[path = "../../server/tests/common/slurm_cluster.rs"]
#[allow(dead_code)]
mod slurm_cluster;

use std::{path::Path, process::Command};

use common::{ServerProcess, sky_at};
use slurm_cluster::TestSlurm;

/// Waits up to `secs` seconds for `done`, saying `what` did not happen.
fn wait_until(what: &str, secs: u64, mut done: impl FnMut() -> bool) {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(secs);
    while !done() {
        assert!(std::time::Instant::now() < deadline, "{what} did not happen within {secs} s");
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
}

/// The line of `output` about `what`.
fn line_about<'a>(output: &'a str, what: &str) -> &'a str {
    output
        .lines()
        .find(|line| line.contains(what))
        .unwrap_or_else(|| panic!("no line about {what}:\n{output}"))
}

/// A server whose Slurm clusters are `slurm` (as `slurm/test`).
fn server_for(slurm: &TestSlurm, home: &Path) -> ServerProcess {
    let config = slurm.config_file("test");
    ServerProcess::start_with_flags(home, &home.join("data"), &["--slurm-config", config.to_str().unwrap()])
}

/// Whether `sky queue CLUSTER` shows job `id` in `status`.
fn job_is(home: &Path, port: u16, cluster: &str, id: i64, status: &str) -> bool {
    let queue = sky_at(home, port, &["queue", cluster]).ok();
    queue.stdout.lines().any(|line| line.starts_with(&format!("{id} ")) && line.contains(status))
}

#[test]
fn a_two_node_slurm_cluster_launches_runs_execs_cancels_and_goes_down_through_the_cli() {
    let slurm = TestSlurm::start(2, 4);
    let home = tempfile::tempdir().unwrap();
    let server = server_for(&slurm, home.path());
    let sky = |args: &[&str]| sky_at(home.path(), server.port, args);

    let check = sky(&["check", "slurm"]).ok();
    assert!(check.stdout.contains("slurm/test: enabled"), "{}", check.stdout);
    assert!(
        check.stdout.contains("partitions main*, debug (* default)")
            && check.stdout.contains("2 of 2 nodes usable"),
        "{}",
        check.stdout
    );
    for (node, partitions) in [("node1", "partitions main*"), ("node2", "partitions main*, debug")] {
        let line = line_about(&check.stdout, &format!("{node}: "));
        assert!(line.contains("4 CPUs") && line.contains("no GPUs") && line.ends_with(partitions), "{line}");
    }

    // Both ranks set up and run, each on its own node, with the workdir and
    // file mounts, and see both nodes.
    let work = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(work.path().join("code")).unwrap();
    std::fs::write(work.path().join("code/data.txt"), "from-the-workdir").unwrap();
    std::fs::write(work.path().join("config.txt"), "from-a-mount").unwrap();
    let task = work.path().join("task.yaml");
    std::fs::write(
        &task,
        format!(
            "name: pair\nnum_nodes: 2\nresources:\n  infra: slurm/test\n  cpus: 1\n  memory: 1\nworkdir: {}\n\
             file_mounts:\n  ~/mounted/config.txt: {}\nsetup: echo setup-on-$SLURMD_NODENAME\n\
             run: echo rank=$SKYPILOT_NODE_RANK on=$SLURMD_NODENAME nodes=$(echo $SKYPILOT_NODE_IPS) \
             data=$(cat data.txt) mount=$(cat ~/mounted/config.txt) in=$PWD\n",
            work.path().join("code").display(),
            work.path().join("config.txt").display()
        ),
    )
    .unwrap();
    let launch = sky(&["launch", "-c", "duo", "-y", task.to_str().unwrap()]).ok();
    for rank in 0..2 {
        let node = format!("node{}", rank + 1);
        assert!(launch.stdout.contains(&format!("setup-on-{node}")), "{}", launch.stdout);
        let line = line_about(&launch.stdout, &format!("rank={rank} "));
        assert!(line.contains(&format!("on={node} nodes=node1 node2")), "{line}");
        assert!(line.contains("data=from-the-workdir mount=from-a-mount"), "{line}");
        assert!(line.contains(&format!(".sky-api/clusters/duo/node-{rank}/sky_workdir")), "{line}");
    }
    let status = sky(&["status"]).ok();
    let line = line_about(&status.stdout, "duo");
    assert!(
        line.contains("UP") && line.contains("slurm/test") && line.contains("2x(cpus=1, mem=1)"),
        "{line}"
    );
    let jobs = slurm.active_jobs();
    assert!(jobs.len() == 1 && jobs[0].contains("RUNNING") && jobs[0].contains("sky-duo-"), "{jobs:?}");

    // Slurm cannot stop an allocation: stop is refused, autostop tears down.
    let stop = sky(&["stop", "duo", "-y"]).fails();
    assert!(stop.stderr.contains("cannot be stopped") && stop.stderr.contains("sky down"), "{}", stop.stderr);
    let autostop = sky(&["autostop", "duo", "-i", "30", "-y"]).ok();
    let status = sky(&["status"]).ok();
    assert!(
        line_about(&status.stdout, "duo").contains("30m (down)"),
        "{}\n{}",
        autostop.stdout,
        status.stdout
    );

    // exec, queue, cancel: the cancelled step is gone from Slurm.
    sky(&["exec", "duo", "-d", "echo waiting; sleep 300"]).ok();
    wait_until("job 2 running", 60, || job_is(home.path(), server.port, "duo", 2, "RUNNING"));
    let steps = || {
        let out = slurm.as_root(&["squeue", "-h", "-s", "-o", "%j"]);
        String::from_utf8_lossy(&out.stdout).lines().filter(|name| name.starts_with("sky-2-")).count()
    };
    wait_until("job 2's step in Slurm", 30, || steps() == 1);
    sky(&["cancel", "duo", "2", "-y"]).ok();
    wait_until("job 2 cancelled", 30, || job_is(home.path(), server.port, "duo", 2, "CANCELLED"));
    wait_until("job 2's step ending", 30, || steps() == 0);
    let exec = sky(&["exec", "duo", "echo from exec on $SLURMD_NODENAME"]).ok();
    assert!(exec.stdout.contains("from exec on node1"), "{}", exec.stdout);
    let logs = sky(&["logs", "duo", "3"]).ok();
    assert_eq!(logs.stdout.matches("from exec on node1").count(), 1, "{}", logs.stdout);
    let failing = sky(&["exec", "duo", "echo failing; exit 5"]).fails();
    assert!(
        !failing.stdout.contains("srun: error"),
        "Slurm's exit-code line stays out of the log: {}",
        failing.stdout
    );

    // Down releases the allocation and the cluster's files.
    sky(&["down", "duo", "-y"]).ok();
    // A partition is the third part of the infra name.
    let part =
        sky(&["launch", "-c", "part", "-y", "--infra", "slurm/test/debug", "echo on=$SLURMD_NODENAME"]).ok();
    assert!(part.stdout.contains("on=node2"), "the debug partition holds node2 alone: {}", part.stdout);
    assert!(line_about(&sky(&["status"]).ok().stdout, "part").contains("slurm/test/debug"));
    // Any partition satisfies the cluster's infra; another partition does not.
    let anywhere = sky(&["launch", "-c", "part", "-y", "--infra", "slurm/test", "echo again"]).ok();
    assert!(anywhere.stdout.contains("again"), "{}", anywhere.stdout);
    let elsewhere = sky(&["launch", "-c", "part", "-y", "--infra", "slurm/test/main", "true"]).fails();
    assert!(
        elsewhere.stderr.contains("runs on slurm/test/debug, not on slurm/test/main"),
        "{}",
        elsewhere.stderr
    );
    sky(&["down", "part", "-y"]).ok();
    let nowhere = sky(&["launch", "-c", "nowhere", "-y", "--infra", "slurm/test/nope", "true"]).fails();
    assert!(
        nowhere.stderr.contains("no such partition") && nowhere.stderr.contains("sky check slurm/test"),
        "{}",
        nowhere.stderr
    );
    sky(&["down", "nowhere", "-y"]).ok();
    assert!(slurm.active_jobs().is_empty(), "{:?}", slurm.active_jobs());
    assert!(sky(&["status"]).ok().stdout.contains("No existing clusters."));
    let home_of_login = slurm.login_host().user.home.clone().unwrap();
    assert!(!home_of_login.join(".sky-api/clusters/duo").exists());
    assert!(server.stop(), "the server stops cleanly");
}

#[test]
fn a_queued_allocation_shows_as_init_with_slurms_reason_and_launches_once_nodes_free_up() {
    let slurm = TestSlurm::start(2, 2);
    let home = tempfile::tempdir().unwrap();
    let mut server = server_for(&slurm, home.path());
    let port = server.port;
    let sky = |args: &[&str]| sky_at(home.path(), port, args);
    sky(&[
        "launch",
        "-c",
        "holder",
        "-y",
        "--infra",
        "slurm/test",
        "--num-nodes",
        "2",
        "--cpus",
        "2",
        "true",
    ])
    .ok();
    let waiting = sky(&[
        "launch",
        "-c",
        "waiter",
        "-y",
        "--async",
        "--infra",
        "slurm/test",
        "--cpus",
        "2",
        "echo got it",
    ])
    .ok();
    assert!(!waiting.stdout.trim().is_empty());
    wait_until("the waiting cluster showing Slurm's reason", 60, || {
        let status = sky(&["status"]).ok();
        status.stdout.contains("Cluster 'waiter' is launching: queued in Slurm: PENDING (Resources)")
            && line_about(&status.stdout, "waiter").contains("INIT")
    });
    // A server killed while the launch waits picks it up again, and asks
    // Slurm for nothing more.
    server.kill_and_restart();
    assert_eq!(server.port, port);
    let waiting: Vec<String> = slurm
        .active_jobs()
        .into_iter()
        .filter(|job| job.contains("PENDING") && job.contains("sky-waiter-"))
        .collect();
    assert_eq!(waiting.len(), 1, "{:?}", slurm.active_jobs());
    // More than Slurm has at all is refused at once, with Slurm's words.
    let huge =
        sky(&["launch", "-c", "huge", "-y", "--infra", "slurm/test", "--num-nodes", "3", "true"]).fails();
    assert!(
        huge.stderr.contains("will never start") && huge.stderr.contains("PENDING (Partition"),
        "{}",
        huge.stderr
    );
    assert_eq!(
        slurm.active_jobs().len(),
        2,
        "the impossible allocation is cancelled: {:?}",
        slurm.active_jobs()
    );
    sky(&["down", "holder", "-y"]).ok();
    wait_until("the waiting cluster coming up", 60, || {
        line_about(&sky(&["status"]).ok().stdout, "waiter").contains("UP")
    });
    let logs = sky(&["logs", "waiter", "1"]).ok();
    assert!(logs.stdout.contains("got it"), "{}", logs.stdout);
    let jobs = slurm.active_jobs();
    let first = waiting[0].split(' ').next().unwrap();
    assert!(jobs.len() == 1 && jobs[0].starts_with(&format!("{first} ")), "the same allocation: {jobs:?}");
    // Autostop releases an idle allocation.
    sky(&["autostop", "waiter", "-i", "0", "-y"]).ok();
    wait_until("autostop tearing the idle cluster down", 60, || {
        !sky(&["status"]).ok().stdout.contains("waiter")
    });
    sky(&["down", "-a", "-y"]).ok();
    assert!(slurm.active_jobs().is_empty(), "{:?}", slurm.active_jobs());
    assert!(server.stop(), "the server stops cleanly");
}

#[test]
fn a_slurm_job_outlives_a_server_restart_and_an_allocation_ended_from_outside_fails_its_job_saying_so() {
    let slurm = TestSlurm::start(2, 4);
    let home = tempfile::tempdir().unwrap();
    let mut server = server_for(&slurm, home.path());
    let sky = |port: u16, args: &[&str]| sky_at(home.path(), port, args);
    sky(server.port, &["launch", "-c", "solo", "-y", "--infra", "slurm/test", "true"]).ok();
    let node_home = slurm.login_host().user.home.clone().unwrap().join(".sky-api/clusters/solo/node-0");
    let go = node_home.join("go");
    let script = "echo started >> ~/runs; while [ ! -e ~/go ]; do sleep 0.1; done; echo finished";
    sky(server.port, &["exec", "solo", "-d", script]).ok();
    wait_until("job 2 started", 60, || std::fs::read_to_string(node_home.join("runs")).is_ok());
    server.kill_and_restart();
    assert!(job_is(home.path(), server.port, "solo", 2, "RUNNING"), "the job runs on across the restart");
    std::fs::write(&go, "").unwrap();
    wait_until("job 2 succeeding", 60, || job_is(home.path(), server.port, "solo", 2, "SUCCEEDED"));
    assert_eq!(std::fs::read_to_string(node_home.join("runs")).unwrap(), "started\n", "the run ran once");
    let logs = sky(server.port, &["logs", "solo", "2"]).ok();
    assert_eq!(logs.stdout.matches("finished").count(), 1, "{}", logs.stdout);

    // An admin cancels the allocation: the running job fails saying so.
    sky(server.port, &["exec", "solo", "-d", "sleep 300"]).ok();
    wait_until("job 3 running", 60, || job_is(home.path(), server.port, "solo", 3, "RUNNING"));
    let allocation = slurm.active_jobs()[0].split(' ').next().unwrap().to_string();
    assert!(slurm.as_root(&["scancel", &allocation]).status.success());
    wait_until("job 3 failing", 60, || job_is(home.path(), server.port, "solo", 3, "FAILED"));
    let logs = sky(server.port, &["logs", "solo", "3"]).fails();
    let said = format!("the Slurm allocation {allocation} of cluster \"solo\" ended: CANCELLED");
    assert!(logs.stderr.contains(&said), "{}", logs.stderr);
    let status = sky(server.port, &["status", "-r"]).ok();
    assert!(status.stdout.contains("the allocation ended: CANCELLED"), "{}", status.stdout);
    // A new job on the ended allocation is refused with what to do.
    let exec = sky(server.port, &["exec", "solo", "true"]);
    assert_ne!(exec.code, 0, "{}", exec.stdout);
    sky(server.port, &["down", "solo", "-y"]).ok();
    assert!(server.stop(), "the server stops cleanly");
}

#[test]
fn a_bad_slurm_configuration_stops_the_server_with_the_line_and_the_fix() {
    let home = tempfile::tempdir().unwrap();
    let config = home.path().join("slurm-config");
    std::fs::write(&config, "Host ok\n  HostName 127.0.0.1\n  Port 99999\n").unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_sky"))
        .args(["api", "start", "--foreground", "--host", "127.0.0.1", "--port", "0", "--data-dir"])
        .arg(home.path().join("data"))
        .arg("--slurm-config")
        .arg(&config)
        .env("HOME", home.path())
        .output()
        .unwrap();
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("line 3: Port \"99999\" is not a port"), "{stderr}");
}

/// A managed job whose allocation an admin cancels mid-run: the job is
/// RECOVERING, then runs again in a new allocation to the end.
#[test]
fn a_managed_job_whose_allocation_is_cancelled_recovers_in_a_new_allocation() {
    let slurm = TestSlurm::start(2, 4);
    let home = tempfile::tempdir().unwrap();
    let server = server_for(&slurm, home.path());
    let sky = |args: &[&str]| sky_at(home.path(), server.port, args);
    let gate = tempfile::tempdir().unwrap();
    std::fs::set_permissions(gate.path(), std::os::unix::fs::PermissionsExt::from_mode(0o777)).unwrap();
    let go = gate.path().join("go");
    let script = format!(
        "echo started-in-$SLURM_JOB_ID; while [ ! -e {} ]; do sleep 0.1; done; echo finished-in-$SLURM_JOB_ID",
        go.display()
    );
    sky(&["jobs", "launch", "-y", "-d", "--infra", "slurm/test", &script]).ok();
    let mut first = String::new();
    wait_until("the first attempt starting", 60, || {
        let logs = sky(&["jobs", "logs", "1", "--no-follow"]);
        first = logs
            .stdout
            .lines()
            .find_map(|line| line.split("started-in-").nth(1))
            .unwrap_or_default()
            .trim()
            .to_string();
        !first.is_empty()
    });
    assert!(slurm.as_root(&["scancel", &first]).status.success());
    wait_until("the job recovering in a new allocation", 60, || {
        slurm.active_jobs().iter().any(|job| !job.starts_with(&format!("{first} ")))
    });
    std::fs::write(&go, "").unwrap();
    let logs = sky(&["jobs", "logs", "1"]).ok();
    let recovered = logs.stdout.find("attempt 2 (recoveries so far: 1)").expect(&logs.stdout);
    let finished = logs.stdout.find("finished-in-").expect(&logs.stdout);
    assert!(recovered < finished, "{}", logs.stdout);
    assert!(!logs.stdout.contains(&format!("finished-in-{first}")), "{}", logs.stdout);
    let queue = sky(&["jobs", "queue", "-a"]).ok();
    let row = queue.stdout.lines().find(|line| line.starts_with("1 ")).expect(&queue.stdout);
    assert!(row.contains("SUCCEEDED") && row.contains("slurm/test"), "{row}");
    assert!(sky(&["status", "-u"]).ok().stdout.contains("No existing clusters."));
    assert!(slurm.active_jobs().is_empty(), "{:?}", slurm.active_jobs());
    assert!(server.stop(), "the server stops cleanly");
}
