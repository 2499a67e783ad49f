//! SSH node pools through the real `sky` binary, against real OpenSSH
//! servers (each on its own loopback address, with its own Unix user).

mod common;

#[path = "../../server/tests/common/unix_user.rs"]
#[allow(dead_code)]
mod unix_user;

#[path = "../../server/tests/common/ssh_hosts.rs"]
#[allow(dead_code)]
mod ssh_hosts;

use std::process::Command;

use common::{Run, ServerProcess};
use ssh_hosts::SshHosts;

/// `sky` against the server at `port`, with `home` as HOME.
fn sky(home: &std::path::Path, port: u16, args: &[&str]) -> Run {
    Command::new(env!("CARGO_BIN_EXE_sky"))
        .args(args)
        .env("HOME", home)
        .env("SKYPILOT_API_SERVER_ENDPOINT", format!("http://127.0.0.1:{port}"))
        .output()
        .unwrap()
        .into()
}

/// The line of `sky check`'s output about `host`.
fn line_about<'a>(output: &'a str, host: &str) -> &'a str {
    output
        .lines()
        .find(|line| line.contains(host))
        .unwrap_or_else(|| panic!("no line about {host}:\n{output}"))
}

#[test]
fn sky_check_reaches_every_host_of_a_pool_pins_its_key_and_refuses_a_changed_one() {
    let hosts = SshHosts::start(3);
    let home = tempfile::tempdir().unwrap();
    let data = home.path().join("data");
    let pools = hosts.pool_file("lab");
    let server =
        ServerProcess::start_with_flags(home.path(), &data, &["--ssh-node-pools", pools.to_str().unwrap()]);

    let check = sky(home.path(), server.port, &["check"]).ok();
    assert!(check.stdout.contains("ssh/lab: enabled"), "{}", check.stdout);
    assert!(check.stdout.contains("3 of 3 hosts ready"), "{}", check.stdout);
    for host in &hosts.hosts {
        let line = line_about(&check.stdout, &host.label());
        assert!(
            line.contains("ready,") && line.contains("CPUs") && line.contains("host key SHA256:"),
            "{line}"
        );
    }
    let pinned = std::fs::read_to_string(data.join("ssh/known_hosts")).unwrap();
    assert_eq!(pinned.lines().count(), 3, "one pinned key per host:\n{pinned}");

    // A host whose key changed is refused, with how to trust the new key.
    let changed = &hosts.hosts[1];
    changed.change_host_key();
    changed.kill_sessions();
    let check = sky(home.path(), server.port, &["check", "ssh/lab"]).ok();
    let line = line_about(&check.stdout, &changed.label());
    assert!(
        line.contains("host key") && line.contains("changed") && line.contains("ssh-keygen -f"),
        "{line}"
    );
    assert!(check.stdout.contains("2 of 3 hosts ready"), "{}", check.stdout);
    let forget = line[line.find("ssh-keygen -f").unwrap()..].split('`').next().unwrap();
    let forgot = Command::new("sh").args(["-c", forget]).output().unwrap();
    assert!(forgot.status.success(), "{forget}: {}", String::from_utf8_lossy(&forgot.stderr));
    let check = sky(home.path(), server.port, &["check", "ssh"]).ok();
    assert!(line_about(&check.stdout, &changed.label()).contains("ready,"), "{}", check.stdout);

    // A host that stops answering is reported, and the others carry on.
    let gone = &hosts.hosts[2];
    gone.kill();
    let check = sky(home.path(), server.port, &["check", "ssh/lab"]).ok();
    assert!(line_about(&check.stdout, &gone.label()).contains("unreachable"), "{}", check.stdout);
    assert!(check.stdout.contains("2 of 3 hosts ready"), "{}", check.stdout);
    assert!(server.stop(), "the server stops cleanly");
}

#[test]
fn a_bad_pool_file_stops_the_server_with_the_pool_host_and_field() {
    let home = tempfile::tempdir().unwrap();
    let file = home.path().join("pools.yaml");
    std::fs::write(&file, "lab:\n  hosts:\n    - 10.0.0.1\n    - ip: 10.0.0.2\n      port: 0\n").unwrap();
    let started = Command::new(env!("CARGO_BIN_EXE_sky"))
        .args(["api", "start", "--foreground", "--port", "0", "--ssh-node-pools"])
        .arg(&file)
        .arg("--data-dir")
        .arg(home.path().join("data"))
        .env("HOME", home.path())
        .output()
        .unwrap();
    let run = Run::from(started).fails();
    assert!(
        run.stderr.contains("pool \"lab\": host 2: field `port`")
            && run.stderr.contains(file.to_str().unwrap()),
        "{}",
        run.stderr
    );
    std::fs::write(&file, "lab:\n  identity_file: ~/.ssh/missing\n  hosts: [10.0.0.1]\n").unwrap();
    let started = Command::new(env!("CARGO_BIN_EXE_sky"))
        .args(["api", "start", "--foreground", "--port", "0", "--ssh-node-pools"])
        .arg(&file)
        .arg("--data-dir")
        .arg(home.path().join("data"))
        .env("HOME", home.path())
        .output()
        .unwrap();
    let run = Run::from(started).fails();
    assert!(run.stderr.contains(".ssh/missing") && run.stderr.contains("No such file"), "{}", run.stderr);
}

#[test]
fn a_two_node_cluster_on_a_pool_runs_jobs_on_both_hosts_until_it_is_torn_down() {
    let hosts = SshHosts::start(2);
    let home = tempfile::tempdir().unwrap();
    let data = home.path().join("data");
    let pools = hosts.pool_file("lab");
    let server =
        ServerProcess::start_with_flags(home.path(), &data, &["--ssh-node-pools", pools.to_str().unwrap()]);
    let work = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(work.path().join("project")).unwrap();
    std::fs::write(work.path().join("project/train.py"), "print('training')\n").unwrap();
    std::fs::write(work.path().join("input.txt"), "mounted data\n").unwrap();
    let task = work.path().join("task.yaml");
    std::fs::write(
        &task,
        format!(
            "name: pair\nnum_nodes: 2\nresources:\n  infra: ssh/lab\n  cpus: 0.5\nworkdir: {0}/project\n\
             file_mounts:\n  ~/inputs/input.txt: {0}/input.txt\nsecrets:\n  TOKEN: s3cr3t\n\
             run: |\n  echo \"rank=$SKYPILOT_NODE_RANK of $SKYPILOT_NUM_NODES as $(whoami) ips=$(echo $SKYPILOT_NODE_IPS)\"\n  \
             cat train.py ~/inputs/input.txt\n  echo token=${{#TOKEN}}\n",
            work.path().display()
        ),
    )
    .unwrap();
    let sky = |args: &[&str]| sky(home.path(), server.port, args);

    let launched = sky(&["launch", "-c", "pair", "-y", task.to_str().unwrap()]).ok();
    let ips = format!("ips={} {}", hosts.hosts[0].address, hosts.hosts[1].address);
    for (rank, host) in hosts.hosts.iter().enumerate() {
        let prefix =
            if rank == 0 { "(head, rank=0)".to_string() } else { format!("(worker{rank}, rank={rank})") };
        let line = format!("{prefix} rank={rank} of 2 as {} {ips}", host.user.name);
        assert!(launched.stdout.contains(&line), "{line}:\n{}", launched.stdout);
        for text in ["print('training')", "mounted data", "token=6"] {
            assert!(
                launched.stdout.contains(&format!("{prefix} {text}")),
                "{prefix} {text}:\n{}",
                launched.stdout
            );
        }
    }
    let status = sky(&["status"]).ok();
    let row = line_about(&status.stdout, "pair");
    assert!(row.contains("ssh/lab") && row.contains("UP"), "{}", status.stdout);

    // Exec, queue and logs, as on any cluster.
    let again = sky(&["exec", "pair", "--num-nodes", "2", "echo again-$SKYPILOT_NODE_RANK"]).ok();
    let both =
        again.stdout.contains("(head, rank=0) again-0") && again.stdout.contains("(worker1, rank=1) again-1");
    assert!(both, "{}", again.stdout);
    let logs = sky(&["logs", "pair", "1"]).ok();
    assert!(logs.stdout.contains("(worker1, rank=1) mounted data"), "{}", logs.stdout);

    // Cancel ends the job's processes on every host.
    sky(&["exec", "pair", "--num-nodes", "2", "-d", "sleep 300"]).ok();
    // This host user's own sleeps: other tests run theirs at the same time.
    let running = || {
        let sleeping = |host: &&ssh_hosts::SshHost| {
            host.run(&format!("pgrep -u {} -x sleep", host.user.name)).status.success()
        };
        hosts.hosts.iter().filter(sleeping).count()
    };
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    while running() < 2 {
        assert!(std::time::Instant::now() < deadline, "the job did not start on both hosts");
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    sky(&["cancel", "pair", "3", "-y"]).ok();
    while running() > 0 {
        assert!(
            std::time::Instant::now() < deadline + std::time::Duration::from_secs(10),
            "the job outlived its cancel"
        );
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    let queue = sky(&["queue", "pair"]).ok();
    let job = queue.stdout.lines().find(|line| line.starts_with("3 ")).unwrap_or_default();
    assert!(job.contains("CANCELLED"), "{}", queue.stdout);

    sky(&["down", "pair", "-y"]).ok();
    for host in &hosts.hosts {
        let left = host.user.home.as_ref().unwrap().join(".sky-api/clusters/pair");
        assert!(!left.exists(), "{} is still on {}", left.display(), host.label());
    }
    assert!(server.stop(), "the server stops cleanly");
}

#[test]
fn jobs_on_a_pool_outlive_server_restarts_and_cut_connections_and_a_lost_host_fails_its_job() {
    let hosts = SshHosts::start(2);
    let home = tempfile::tempdir().unwrap();
    let data = home.path().join("data");
    let pools = hosts.pool_file("lab");
    let mut server =
        ServerProcess::start_with_flags(home.path(), &data, &["--ssh-node-pools", pools.to_str().unwrap()]);
    let (home_dir, port) = (home.path().to_path_buf(), server.port);
    let sky = move |args: &[&str]| sky(&home_dir, port, args);
    let gate = tempfile::tempdir().unwrap();
    std::fs::set_permissions(gate.path(), std::os::unix::fs::PermissionsExt::from_mode(0o777)).unwrap();
    let go = gate.path().join("go");
    // Runs until the test lets it finish: each rank waits for the file `go`.
    let wait_for_go = format!(
        "echo started-$SKYPILOT_NODE_RANK; while [ ! -e {} ]; do sleep 0.1; done; echo done-$SKYPILOT_NODE_RANK",
        go.display()
    );
    sky(&[
        "launch",
        "-c",
        "pair",
        "-y",
        "--infra",
        "ssh/lab",
        "--num-nodes",
        "2",
        "--cpus",
        "0.5",
        "-d",
        &wait_for_go,
    ])
    .ok();
    let job_is = |status: &str| {
        let queue = sky(&["queue", "pair", "-u"]).ok();
        queue.stdout.lines().any(|line| line.starts_with("1 ") && line.contains(status))
    };
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
    while !job_is("RUNNING") {
        assert!(std::time::Instant::now() < deadline, "the job did not start");
        std::thread::sleep(std::time::Duration::from_millis(50));
    }

    // The server dies, and its SSH connections with it; a host's connections are cut too.
    server.kill_and_restart();
    hosts.hosts[1].kill_sessions();
    assert!(job_is("RUNNING"), "the job runs on across the restart");
    std::fs::write(&go, "").unwrap();
    while !job_is("SUCCEEDED") {
        assert!(std::time::Instant::now() < deadline, "the job did not end");
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    let logs = sky(&["logs", "pair", "1"]).ok();
    for line in ["(head, rank=0) started-0", "(head, rank=0) done-0", "(worker1, rank=1) done-1"] {
        assert_eq!(logs.stdout.matches(line).count(), 1, "{line} once:\n{}", logs.stdout);
    }

    // A host that dies mid-job: the job fails, saying which node was lost.
    std::fs::remove_file(&go).unwrap();
    sky(&["exec", "pair", "--num-nodes", "2", "-d", &wait_for_go]).ok();
    let job_2_is = |status: &str| {
        let queue = sky(&["queue", "pair", "-u"]).ok();
        queue.stdout.lines().any(|line| line.starts_with("2 ") && line.contains(status))
    };
    while !job_2_is("RUNNING") {
        assert!(std::time::Instant::now() < deadline, "the second job did not start");
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    let head = &hosts.hosts[0];
    // (The pattern does not match the shell that runs pgrep.)
    let head_runs =
        || head.run(&format!("pgrep -u {} -f 'jobs/2/ru[n]-0.sh'", head.user.name)).status.success();
    assert!(head_runs(), "the head's run is found while it runs");
    hosts.hosts[1].kill();
    let lost_deadline = std::time::Instant::now() + std::time::Duration::from_secs(90);
    while !job_2_is("FAILED") {
        assert!(
            std::time::Instant::now() < lost_deadline,
            "the lost node's job did not fail:\n{}",
            sky(&["queue", "pair", "-u"]).stdout
        );
        std::thread::sleep(std::time::Duration::from_millis(200));
    }
    let lost = format!("node 1 ({}) was lost", hosts.hosts[1].label());
    let logs = sky(&["logs", "pair", "2"]).fails();
    assert!(logs.stderr.contains(&lost), "{}", logs.stderr);
    // The head's run was ended with the job.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    while head_runs() {
        assert!(std::time::Instant::now() < deadline, "the head's run outlived its job");
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
}
