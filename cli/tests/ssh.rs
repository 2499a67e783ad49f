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
