//! Uploads through the real `sky` binary: a team server that runs
//! elsewhere never reads the client's folders, only what the client sent.

mod common;

use std::{path::Path, process::Command};

use common::{Run, ServerProcess};

/// `sky` from `cwd`, with `home` as HOME, against the server at `port`.
fn sky(home: &Path, cwd: &Path, port: u16, args: &[&str]) -> Run {
    Command::new(env!("CARGO_BIN_EXE_sky"))
        .args(args)
        .current_dir(cwd)
        .env("HOME", home)
        .env("SKYPILOT_API_SERVER_ENDPOINT", format!("http://127.0.0.1:{port}"))
        .output()
        .unwrap()
        .into()
}

/// A project folder as a user has it: code, ignored data, a task YAML with `workdir: .`.
fn project(root: &Path) {
    std::fs::create_dir_all(root.join("data")).unwrap();
    std::fs::create_dir_all(root.join("src")).unwrap();
    std::fs::write(root.join(".gitignore"), "data/\n*.ckpt\n").unwrap();
    std::fs::write(root.join("src/train.py"), "print('training')\n").unwrap();
    std::fs::write(root.join("data/huge.bin"), vec![0u8; 4096]).unwrap();
    std::fs::write(root.join("model.ckpt"), "weights").unwrap();
    std::fs::write(root.join("run.sh"), "#!/bin/sh\necho run.sh ran\n").unwrap();
    std::fs::set_permissions(root.join("run.sh"), std::os::unix::fs::PermissionsExt::from_mode(0o755))
        .unwrap();
    std::fs::write(
        root.join("task.yaml"),
        "workdir: .\nfile_mounts:\n  ~/inputs/notes.txt: ../notes.txt\nresources:\n  cpus: 0.5\n\
         run: |\n  ./run.sh\n  cat src/train.py ~/inputs/notes.txt\n  ls data model.ckpt 2>&1 | sed 's/^/ls: /'\n",
    )
    .unwrap();
}

#[test]
fn a_team_server_runs_the_clients_workdir_and_mounts_and_a_relaunch_sends_nothing() {
    let server_home = tempfile::tempdir().unwrap();
    let server = ServerProcess::start_with_flags(
        server_home.path(),
        &server_home.path().join("data"),
        &["--deploy", "--insecure-no-auth"],
    );
    // The client's HOME and folders: the server is never told about them.
    let client_home = tempfile::tempdir().unwrap();
    let laptop = tempfile::tempdir().unwrap();
    let root = laptop.path().join("project");
    project(&root);
    std::fs::write(laptop.path().join("notes.txt"), "my notes\n").unwrap();
    let sky = |cwd: &Path, args: &[&str]| sky(client_home.path(), cwd, server.port, args);

    let first = sky(&root, &["launch", "-c", "team", "-y", "task.yaml"]).ok();
    assert!(first.stdout.contains("Uploaded workdir") && first.stdout.contains("sent"), "{}", first.stdout);
    assert!(first.stdout.contains("Uploaded file mount ~/inputs/notes.txt"), "{}", first.stdout);
    for line in ["run.sh ran", "print('training')", "my notes"] {
        assert!(first.stdout.contains(line), "{line}:\n{}", first.stdout);
    }
    let ignored = first.stdout.lines().filter(|line| line.contains("ls:")).count();
    assert!(
        ignored == 2 && first.stdout.contains("No such file"),
        "ignored files are not sent:\n{}",
        first.stdout
    );

    // The folders go away: what was sent is what runs.
    std::fs::rename(&root, laptop.path().join("moved")).unwrap();
    let logs = sky(laptop.path(), &["logs", "team", "1"]).ok();
    assert!(logs.stdout.contains("print('training')"), "{}", logs.stdout);

    // The same tree again: nothing is sent.
    std::fs::rename(laptop.path().join("moved"), &root).unwrap();
    let again = sky(&root, &["launch", "-c", "team2", "-y", "task.yaml"]).ok();
    assert!(
        again.stdout.contains("Uploaded workdir") && again.stdout.contains("unchanged, nothing sent"),
        "{}",
        again.stdout
    );
    assert!(again.stdout.contains("run.sh ran"), "{}", again.stdout);
    sky(&root, &["down", "-a", "-y"]).ok();
    assert!(server.stop(), "the server stops cleanly");
}

#[test]
fn a_workdir_that_cannot_be_read_or_is_over_the_limit_is_refused_before_anything_is_sent() {
    let server_home = tempfile::tempdir().unwrap();
    let server = ServerProcess::start_with_flags(
        server_home.path(),
        &server_home.path().join("data"),
        &["--deploy", "--insecure-no-auth", "--upload-max-mib", "1"],
    );
    let client_home = tempfile::tempdir().unwrap();
    let laptop = tempfile::tempdir().unwrap();
    std::fs::write(laptop.path().join("big.bin"), vec![1u8; 2 << 20]).unwrap();
    let sky = |args: &[&str]| sky(client_home.path(), laptop.path(), server.port, args);
    let big = sky(&["launch", "-c", "big", "-y", "--workdir", ".", "true"]).fails();
    assert!(big.stderr.contains("2.1 MB > 1.0 MB") && big.stderr.contains(".skyignore"), "{}", big.stderr);
    let missing = sky(&["launch", "-c", "gone", "-y", "--workdir", "nowhere", "true"]).fails();
    assert!(missing.stderr.contains("nowhere"), "{}", missing.stderr);
    let uploads = server_home.path().join("data/uploads");
    let held: usize = walk_files(&uploads);
    assert_eq!(held, 0, "nothing was stored");
    assert!(sky(&["status"]).ok().stdout.contains("No existing clusters."));
    assert!(server.stop(), "the server stops cleanly");
}

fn walk_files(dir: &Path) -> usize {
    std::fs::read_dir(dir)
        .into_iter()
        .flatten()
        .flatten()
        .map(|entry| if entry.path().is_dir() { walk_files(&entry.path()) } else { 1 })
        .sum()
}
