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

use common::{Run, ServerProcess, sky_at};
use ssh_hosts::SshHosts;

/// The line of `sky check`'s output about `host`.
fn line_about<'a>(output: &'a str, host: &str) -> &'a str {
    output
        .lines()
        .find(|line| line.contains(host))
        .unwrap_or_else(|| panic!("no line about {host}:\n{output}"))
}

/// Waits up to `secs` seconds for `done`, saying `what` did not happen.
fn wait_until(what: &str, secs: u64, mut done: impl FnMut() -> bool) {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(secs);
    while !done() {
        assert!(std::time::Instant::now() < deadline, "{what} did not happen within {secs} s");
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
}

#[test]
fn sky_ssh_up_pins_and_probes_every_host_and_sky_ssh_down_tears_down_its_clusters_and_forgets_it() {
    let hosts = SshHosts::start(3);
    let home = tempfile::tempdir().unwrap();
    let data = home.path().join("data");
    let pools = hosts.pool_file("lab");
    let server =
        ServerProcess::start_with_flags(home.path(), &data, &["--ssh-node-pools", pools.to_str().unwrap()]);
    let sky = |args: &[&str]| sky_at(home.path(), server.port, args);

    // A pool that is not up is listed, reaches no host and takes no cluster.
    let check = sky(&["check", "ssh/lab"]).ok();
    assert!(
        check.stdout.contains("ssh/lab: disabled") && check.stdout.contains("sky ssh up"),
        "{}",
        check.stdout
    );
    assert!(!data.join("ssh/known_hosts").exists(), "no host was reached");
    let refused = sky(&["launch", "-c", "early", "-y", "--infra", "ssh/lab", "true"]).fails();
    assert!(refused.stderr.contains("not up") && refused.stderr.contains("sky ssh up"), "{}", refused.stderr);

    let up = sky(&["ssh", "up", "--infra", "lab"]).ok();
    for host in &hosts.hosts {
        let line = line_about(&up.stdout, &host.label());
        assert!(
            line.contains('\u{2713}')
                && line.contains("ready,")
                && line.contains("CPUs")
                && line.contains("host key SHA256:"),
            "{line}"
        );
    }
    assert!(up.stdout.contains("SSH node pool lab is up: 3 of 3 hosts ready"), "{}", up.stdout);
    let pinned = std::fs::read_to_string(data.join("ssh/known_hosts")).unwrap();
    assert_eq!(pinned.lines().count(), 3, "one pinned key per host:\n{pinned}");
    let check = sky(&["check"]).ok();
    assert!(
        check.stdout.contains("ssh/lab: enabled") && check.stdout.contains("3 of 3 hosts ready"),
        "{}",
        check.stdout
    );

    // A host whose key changed is refused, with how to trust the new key.
    let changed = &hosts.hosts[1];
    changed.change_host_key();
    changed.kill_sessions();
    let check = sky(&["check", "ssh/lab"]).ok();
    let line = line_about(&check.stdout, &changed.label());
    assert!(
        line.contains("host key") && line.contains("changed") && line.contains("ssh-keygen -f"),
        "{line}"
    );
    assert!(check.stdout.contains("2 of 3 hosts ready"), "{}", check.stdout);
    let up = sky(&["ssh", "up"]).ok();
    assert!(line_about(&up.stdout, &changed.label()).contains('\u{2717}'), "{}", up.stdout);
    let forget = line[line.find("ssh-keygen -f").unwrap()..].split('`').next().unwrap();
    let forgot = Command::new("sh").args(["-c", forget]).output().unwrap();
    assert!(forgot.status.success(), "{forget}: {}", String::from_utf8_lossy(&forgot.stderr));
    let check = sky(&["check", "ssh"]).ok();
    assert!(line_about(&check.stdout, &changed.label()).contains("ready,"), "{}", check.stdout);

    // A host that stops answering is reported, and the others carry on.
    let gone = &hosts.hosts[2];
    gone.kill();
    let check = sky(&["check", "ssh/lab"]).ok();
    assert!(line_about(&check.stdout, &gone.label()).contains("unreachable"), "{}", check.stdout);
    assert!(check.stdout.contains("2 of 3 hosts ready"), "{}", check.stdout);

    // Down tears down the pool's clusters and forgets its hosts.
    sky(&["launch", "-c", "tiny", "-y", "--infra", "ssh/lab", "--cpus", "0.5", "echo hi"]).ok();
    let down = sky(&["ssh", "down", "--infra", "ssh/lab", "-y"]).ok();
    assert!(
        down.stdout.contains("Terminated cluster 'tiny'")
            && down.stdout.contains("SSH node pool lab is down"),
        "{}",
        down.stdout
    );
    assert!(sky(&["status"]).ok().stdout.contains("No existing clusters."));
    for host in &hosts.hosts[..2] {
        let left = host.user.home.as_ref().unwrap().join(".sky-api");
        assert!(!left.exists(), "{} is still on {}", left.display(), host.label());
    }
    let pinned = std::fs::read_to_string(data.join("ssh/known_hosts")).unwrap_or_default();
    assert!(!pinned.lines().any(|line| line.contains("127.0.0.3") || line.contains("127.0.0.2")), "{pinned}");
    let check = sky(&["check", "ssh/lab"]).ok();
    assert!(check.stdout.contains("ssh/lab: disabled"), "{}", check.stdout);
    assert!(server.stop(), "the server stops cleanly");
}

#[test]
fn ssh_up_and_down_are_for_admins_and_name_a_known_pool() {
    let home = tempfile::tempdir().unwrap();
    let server = ServerProcess::start_with_flags(home.path(), &home.path().join("data"), &[]);
    let none = sky_at(home.path(), server.port, &["ssh", "up"]).fails();
    assert!(
        none.stderr.contains("no SSH node pools") && none.stderr.contains("ssh_node_pools.yaml"),
        "{}",
        none.stderr
    );
    assert!(server.stop(), "the server stops cleanly");

    let hosts = SshHosts::start(1);
    let home = tempfile::tempdir().unwrap();
    let pools = hosts.pool_file("lab");
    let server = ServerProcess::start_with_flags(
        home.path(),
        &home.path().join("data"),
        &["--ssh-node-pools", pools.to_str().unwrap()],
    );
    let unknown = sky_at(home.path(), server.port, &["ssh", "down", "--infra", "gpus", "-y"]).fails();
    assert!(
        unknown.stderr.contains("\"gpus\" is not an SSH node pool") && unknown.stderr.contains("ssh/lab"),
        "{}",
        unknown.stderr
    );
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
    let sky = |args: &[&str]| sky_at(home.path(), server.port, args);
    sky(&["ssh", "up"]).ok();

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
    for status in [sky(&["status"]).ok(), sky(&["status", "-r"]).ok()] {
        let row = line_about(&status.stdout, "pair");
        let both = format!("{}, {}", hosts.hosts[0].label(), hosts.hosts[1].label());
        assert!(row.contains("ssh/lab") && row.contains("UP") && row.contains(&both), "{}", status.stdout);
        assert!(
            status.stdout.contains("HOSTS") && !status.stdout.contains("unreachable"),
            "{}",
            status.stdout
        );
    }

    // Exec, queue and logs, as on any cluster.
    let again = sky(&["exec", "pair", "--num-nodes", "2", "echo again-$SKYPILOT_NODE_RANK"]).ok();
    let both =
        again.stdout.contains("(head, rank=0) again-0") && again.stdout.contains("(worker1, rank=1) again-1");
    assert!(both, "{}", again.stdout);
    let logs = sky(&["logs", "pair", "1"]).ok();
    assert!(logs.stdout.contains("(worker1, rank=1) mounted data"), "{}", logs.stdout);

    // A worker's output reaches the job's log while the job runs.
    let gate = tempfile::tempdir().unwrap();
    std::fs::set_permissions(gate.path(), std::os::unix::fs::PermissionsExt::from_mode(0o777)).unwrap();
    let go = gate.path().join("go");
    let script = format!(
        "echo early-$SKYPILOT_NODE_RANK; while [ ! -e {} ]; do sleep 0.05; done; echo late-$SKYPILOT_NODE_RANK",
        go.display()
    );
    sky(&["exec", "pair", "--num-nodes", "2", "-d", &script]).ok();
    let mut follow = Command::new(env!("CARGO_BIN_EXE_sky"))
        .args(["logs", "pair", "3"])
        .env("HOME", home.path())
        .env("SKYPILOT_API_SERVER_ENDPOINT", format!("http://127.0.0.1:{}", server.port))
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let mut lines = std::io::BufRead::lines(std::io::BufReader::new(follow.stdout.take().unwrap()));
    let mut seen = Vec::new();
    while !seen.iter().any(|line: &String| line.contains("(worker1, rank=1) early-1")) {
        seen.push(lines.next().expect("the log ended before the worker's output").unwrap());
    }
    std::fs::write(&go, "").unwrap();
    let rest: Vec<String> = lines.map(Result::unwrap).collect();
    assert!(follow.wait().unwrap().success());
    let all = [seen, rest].concat().join("\n");
    for line in ["(head, rank=0) early-0", "(head, rank=0) late-0", "(worker1, rank=1) late-1"] {
        assert_eq!(all.matches(line).count(), 1, "{line} once:\n{all}");
    }

    // Cancel ends the job's processes on every host.
    sky(&["exec", "pair", "--num-nodes", "2", "-d", "sleep 300"]).ok();
    // This host user's own sleeps: other tests run theirs at the same time.
    let running = || {
        let sleeping = |host: &&ssh_hosts::SshHost| {
            host.run(&format!("pgrep -u {} -x sleep", host.user.name)).status.success()
        };
        hosts.hosts.iter().filter(sleeping).count()
    };
    wait_until("the job starting on both hosts", 30, || running() == 2);
    sky(&["cancel", "pair", "4", "-y"]).ok();
    wait_until("the job ending on both hosts after its cancel", 30, || running() == 0);
    let queue = sky(&["queue", "pair"]).ok();
    let job = queue.stdout.lines().find(|line| line.starts_with("4 ")).unwrap_or_default();
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
    let sky = move |args: &[&str]| sky_at(&home_dir, port, args);
    sky(&["ssh", "up", "--infra", "ssh/lab"]).ok();
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
    wait_until("job 1 running", 60, || job_is("RUNNING"));

    // The server dies, and its SSH connections with it; a host's connections are cut too.
    server.kill_and_restart();
    hosts.hosts[1].kill_sessions();
    assert!(job_is("RUNNING"), "the job runs on across the restart");
    std::fs::write(&go, "").unwrap();
    wait_until("job 1 succeeding", 60, || job_is("SUCCEEDED"));
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
    wait_until("job 2 running", 60, || job_2_is("RUNNING"));
    let head = &hosts.hosts[0];
    // (The pattern does not match the shell that runs pgrep.)
    let head_runs =
        || head.run(&format!("pgrep -u {} -f 'jobs/2/ru[n]-0.sh'", head.user.name)).status.success();
    assert!(head_runs(), "the head's run is found while it runs");
    hosts.hosts[1].kill();
    wait_until("the lost node's job failing", 90, || job_2_is("FAILED"));
    let lost = format!("node 1 ({}) was lost", hosts.hosts[1].label());
    let logs = sky(&["logs", "pair", "2"]).fails();
    assert!(logs.stderr.contains(&lost), "{}", logs.stderr);
    // The head's run was ended with the job.
    wait_until("the head's run ending with its job", 30, || !head_runs());
    // The lost host shows in `sky status`, probed now or as last seen.
    for args in [&["status", "-u", "-r"][..], &["status", "-u"][..]] {
        let status = sky(args).ok();
        let unreachable = format!("node 1 on {} is unreachable", hosts.hosts[1].label());
        assert!(status.stdout.contains(&unreachable), "{}", status.stdout);
        assert!(line_about(&status.stdout, "pair").contains("(unreachable)"), "{}", status.stdout);
    }
}

#[test]
fn each_node_on_a_pool_holds_gpus_of_its_own_and_jobs_see_them_as_cuda_visible_devices() {
    let hosts = SshHosts::start(2);
    for host in &hosts.hosts {
        host.give_gpus("NVIDIA H100 80GB HBM3", 2);
    }
    let home = tempfile::tempdir().unwrap();
    let pools = hosts.pool_file("lab");
    let server = ServerProcess::start_with_flags(
        home.path(),
        &home.path().join("data"),
        &["--ssh-node-pools", pools.to_str().unwrap()],
    );
    let sky = |args: &[&str]| sky_at(home.path(), server.port, args);
    let up = sky(&["ssh", "up"]).ok();
    for host in &hosts.hosts {
        assert!(
            line_about(&up.stdout, &host.label()).contains("2 GPU(s): NVIDIA H100 80GB HBM3"),
            "{}",
            up.stdout
        );
    }
    let show = "echo rank=$SKYPILOT_NODE_RANK gpus=$SKYPILOT_NUM_GPUS_PER_NODE visible=$CUDA_VISIBLE_DEVICES";
    let launch = |name: &str| {
        sky(&[
            "launch",
            "-c",
            name,
            "-y",
            "--infra",
            "ssh/lab",
            "--num-nodes",
            "2",
            "--cpus",
            "0.5",
            "--gpus",
            "H100:1",
            show,
        ])
    };
    let first = launch("first").ok();
    let second = launch("second").ok();
    for rank in 0..2 {
        assert!(first.stdout.contains(&format!("rank={rank} gpus=1 visible=0")), "{}", first.stdout);
        assert!(second.stdout.contains(&format!("rank={rank} gpus=1 visible=1")), "{}", second.stdout);
    }
    let full = launch("third").fails();
    assert!(full.stderr.contains("no room") && full.stderr.contains("0 of 2 GPU(s) free"), "{}", full.stderr);
    sky(&["down", "first", "-y"]).ok();
    let third = launch("third").ok();
    assert!(third.stdout.contains("rank=1 gpus=1 visible=0"), "{}", third.stdout);
    sky(&["down", "-a", "-y"]).ok();
    assert!(server.stop(), "the server stops cleanly");
}

/// A managed job on a pool whose host dies mid-run: the job is RECOVERING,
/// its cluster is purged (the dead host cannot be reached) and launched
/// again on the host that answers, where it runs to the end.
#[test]
fn a_managed_job_whose_host_dies_is_relaunched_on_another_host_of_the_pool() {
    let hosts = SshHosts::start(2);
    let home = tempfile::tempdir().unwrap();
    let pools = hosts.pool_file("lab");
    let server = ServerProcess::start_with_flags(
        home.path(),
        &home.path().join("data"),
        &["--ssh-node-pools", pools.to_str().unwrap()],
    );
    let sky = |args: &[&str]| sky_at(home.path(), server.port, args);
    sky(&["ssh", "up", "--infra", "ssh/lab"]).ok();
    let gate = tempfile::tempdir().unwrap();
    std::fs::set_permissions(gate.path(), std::os::unix::fs::PermissionsExt::from_mode(0o777)).unwrap();
    let go = gate.path().join("go");
    let script = format!(
        "echo started-on-$USER; while [ ! -e {} ]; do sleep 0.1; done; echo finished-on-$USER",
        go.display()
    );
    sky(&["jobs", "launch", "-y", "-d", "--infra", "ssh/lab", "--cpus", "0.5", &script]).ok();

    // Follow the output until the first attempt says where it runs.
    let mut follow = Command::new(env!("CARGO_BIN_EXE_sky"))
        .args(["jobs", "logs", "1"])
        .env("HOME", home.path())
        .env("SKYPILOT_API_SERVER_ENDPOINT", format!("http://127.0.0.1:{}", server.port))
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let stdout = std::io::BufReader::new(follow.stdout.take().unwrap());
    let started =
        std::io::BufRead::lines(stdout).map(Result::unwrap).find(|line| line.contains("started-on-"));
    let _ = follow.kill();
    let _ = follow.wait();
    let started = started.expect("the first attempt started");
    let first = hosts.hosts.iter().position(|host| started.ends_with(&host.user.name)).expect(&started);
    let other = &hosts.hosts[1 - first].user.name;

    hosts.hosts[first].kill();
    std::fs::write(&go, "").unwrap();
    let logs = sky(&["jobs", "logs", "1"]).ok();
    let recovered = logs.stdout.find("attempt 2 (recoveries so far: 1)").expect(&logs.stdout);
    let finished = logs.stdout.find(&format!("finished-on-{other}")).expect(&logs.stdout);
    assert!(recovered < finished, "{}", logs.stdout);
    let queue = sky(&["jobs", "queue", "-a"]).ok();
    let row = queue.stdout.lines().find(|line| line.starts_with("1 ")).expect(&queue.stdout);
    assert!(row.contains("SUCCEEDED") && row.contains("ssh/lab"), "{row}");
    let status = sky(&["status", "-u"]).ok();
    assert!(status.stdout.contains("No existing clusters."), "{}", status.stdout);
}
