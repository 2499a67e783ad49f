//! The real `sky` binary with a temporary HOME: auto-start, `sky api
//! info|status|logs|cancel|stop|login|logout`, `sky check`, and endpoint
//! resolution (environment > config file > local default).

mod common;

use std::{fs, os::unix::fs::PermissionsExt, process::Command};

use common::{Home, Run};

use skypilot_server::{RunningServer, Server, ServerConfig};
use tempfile::TempDir;

/// A server started in this test process (not the local default).
async fn remote_server() -> (RunningServer, TempDir) {
    let dir = tempfile::tempdir().unwrap();
    let mut config = ServerConfig::local(dir.path().join("data"));
    config.port = 0;
    let server = Server::new(config).start().await.unwrap();
    (server, dir)
}

#[test]
fn the_first_command_starts_a_local_server_that_api_info_describes() {
    let home = Home::new();
    let first = home.sky(&["api", "info"]).ok();
    assert!(first.stderr.contains("SkyPilot API server started"), "{}", first.stderr);
    let endpoint = format!("http://127.0.0.1:{}", home.port);
    assert!(
        first.stdout.contains(&format!("Using SkyPilot API server: {endpoint} (local default)")),
        "{}",
        first.stdout
    );
    assert!(first.stdout.contains("\u{251c}\u{2500}\u{2500} Status: healthy, commit: "), "{}", first.stdout);
    let user_hash = fs::read_to_string(home.path().join(".sky/user_hash")).unwrap();
    assert!(first.stdout.contains(&format!("\u{2514}\u{2500}\u{2500} User: tester ({})", user_hash.trim())));

    let second = home.sky(&["api", "info", "-o", "json"]).ok();
    assert!(!second.stderr.contains("Starting"), "started twice: {}", second.stderr);
    let info: serde_json::Value = serde_json::from_str(&second.stdout).unwrap();
    assert_eq!(info["endpoint"], endpoint);
    assert_eq!(info["endpoint_source"], "local default");
    assert_eq!(info["user"]["name"], "tester");
}

#[test]
fn check_runs_through_the_local_server_and_shows_in_status_and_logs() {
    let home = Home::new();
    let check = home.sky(&["check"]).ok();
    assert!(check.stdout.contains("Local: enabled"), "{}", check.stdout);

    let status = home.sky(&["api", "status", "-a"]).ok();
    let header = status.stdout.lines().next().unwrap();
    for column in ["ID", "User", "Name", "Created", "Status"] {
        assert!(header.contains(column), "{header}");
    }
    let row = status.stdout.lines().find(|l| l.contains("sky.check")).expect("check listed");
    assert!(row.contains("tester") && row.contains("SUCCEEDED"), "{row}");
    let id = row.split_whitespace().next().unwrap().to_string();

    // Active-only by default: the finished check is not listed.
    let active = home.sky(&["api", "status"]).ok();
    assert!(!active.stdout.contains(&id), "{}", active.stdout);

    let json = home.sky(&["api", "status", "-a", "-o", "json"]).ok();
    let rows: serde_json::Value = serde_json::from_str(&json.stdout).unwrap();
    assert_eq!(rows[0]["request_id"], id.as_str());
    assert_eq!(rows[0]["status"], "SUCCEEDED");

    let logs = home.sky(&["api", "logs", &id[..13], "--no-follow"]).ok();
    assert!(logs.stdout.contains("Enabled infra"), "{}", logs.stdout);
    let tail = home.sky(&["api", "logs", &id, "--tail", "1"]).ok();
    assert_eq!(tail.stdout.lines().count(), 1, "{}", tail.stdout);
    let latest = home.sky(&["api", "logs"]).ok();
    assert!(latest.stdout.contains("Checking credentials"), "{}", latest.stdout);

    let server_log = home.sky(&["api", "logs", "--server-logs", "--no-follow"]).ok();
    assert!(server_log.stdout.contains("API server is serving"), "{}", server_log.stdout);

    let submitted = home.sky(&["check", "--async"]).ok();
    assert!(submitted.stdout.starts_with("Submitted sky.check request: "), "{}", submitted.stdout);
}

#[test]
fn unknown_ids_and_missing_arguments_fail_with_a_reason() {
    let home = Home::new();
    let logs = home.sky(&["api", "logs", "ffffffff"]).fails();
    assert!(logs.stderr.contains("no request with id"), "{}", logs.stderr);
    home.sky(&["api", "cancel", "ffffffff"]).fails();
    let bad = home.sky(&["api", "status", "zz!"]).fails();
    assert!(bad.stderr.contains("not a request id"), "{}", bad.stderr);
    let none = home.sky(&["api", "cancel"]).fails();
    assert!(none.stderr.contains("-a/--all"), "{}", none.stderr);
    let nothing = home.sky(&["api", "cancel", "-a", "-y"]).ok();
    assert!(nothing.stdout.contains("No requests need to be cancelled."), "{}", nothing.stdout);
}

#[test]
fn api_stop_stops_the_local_server() {
    let home = Home::new();
    home.sky(&["api", "start"]).ok();
    assert!(home.local_server_running());
    let again = home.sky(&["api", "start"]).ok();
    assert!(again.stdout.contains("already running"), "{}", again.stdout);
    let stop = home.sky(&["api", "stop"]).ok();
    assert!(stop.stdout.contains("SkyPilot API server stopped."), "{}", stop.stdout);
    assert!(!home.local_server_running());
    let twice = home.sky(&["api", "stop"]).ok();
    assert!(twice.stdout.contains("not running"), "{}", twice.stdout);
}

#[test]
fn concurrent_first_commands_start_one_server() {
    let home = Home::new();
    let children: Vec<_> = (0..4)
        .map(|_| {
            home.command(&["api", "info"])
                .stdout(std::process::Stdio::piped())
                .stderr(std::process::Stdio::piped())
                .spawn()
                .unwrap()
        })
        .collect();
    let runs: Vec<Run> = children.into_iter().map(|c| Run::from(c.wait_with_output().unwrap())).collect();
    let starts = runs.iter().filter(|r| r.stderr.contains("Starting SkyPilot API server")).count();
    for run in runs {
        run.ok();
    }
    assert_eq!(starts, 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_endpoint_comes_from_the_environment_then_the_config_file_then_the_default() {
    let (server, _data) = remote_server().await;
    let url = format!("http://{}", server.local_addr());
    let home = Home::new();
    fs::create_dir_all(home.config_path().parent().unwrap()).unwrap();
    fs::write(home.config_path(), format!("api_server:\n  endpoint: {url}\n")).unwrap();

    let from_env = tokio::task::block_in_place(|| {
        home.sky_with_env(&["api", "info", "-o", "json"], "SKYPILOT_API_SERVER_ENDPOINT", &url)
    })
    .ok();
    let info: serde_json::Value = serde_json::from_str(&from_env.stdout).unwrap();
    assert_eq!(info["endpoint_source"], "from SKYPILOT_API_SERVER_ENDPOINT");

    let from_file = tokio::task::block_in_place(|| home.sky(&["api", "info", "-o", "json"])).ok();
    let info: serde_json::Value = serde_json::from_str(&from_file.stdout).unwrap();
    assert_eq!(info["endpoint"], url.as_str());
    assert_eq!(info["endpoint_source"], format!("from {}", home.config_path().display()));
    assert!(!home.local_server_running(), "a configured endpoint must not start a local server");

    fs::remove_file(home.config_path()).unwrap();
    let default = tokio::task::block_in_place(|| home.sky(&["api", "info", "-o", "json"])).ok();
    let info: serde_json::Value = serde_json::from_str(&default.stdout).unwrap();
    assert_eq!(info["endpoint_source"], "local default");
    server.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn login_checks_the_server_and_saves_the_endpoint_and_logout_removes_it() {
    let (server, _data) = remote_server().await;
    let url = format!("http://{}", server.local_addr());
    let home = Home::new();
    fs::create_dir_all(home.config_path().parent().unwrap()).unwrap();
    fs::write(home.config_path(), "kubernetes:\n  allowed_contexts: [dev]\n").unwrap();

    let login = tokio::task::block_in_place(|| home.sky(&["api", "login", "-e", &url])).ok();
    assert!(login.stdout.contains(&format!("Logged into SkyPilot API server at: {url}")), "{}", login.stdout);
    assert!(login.stdout.contains("User: tester"), "{}", login.stdout);
    let text = fs::read_to_string(home.config_path()).unwrap();
    assert!(text.contains("allowed_contexts") && text.contains(&url), "{text}");
    let mode = fs::metadata(home.config_path()).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode, 0o600);

    let logout = tokio::task::block_in_place(|| home.sky(&["api", "logout"])).ok();
    assert!(logout.stdout.contains("Logged out of SkyPilot API server at: "), "{}", logout.stdout);
    let text = fs::read_to_string(home.config_path()).unwrap();
    assert!(text.contains("allowed_contexts") && !text.contains("api_server"), "{text}");
    server.shutdown().await.unwrap();
}

#[test]
fn login_to_an_unreachable_endpoint_fails_and_changes_nothing() {
    let home = Home::new();
    fs::create_dir_all(home.config_path().parent().unwrap()).unwrap();
    fs::write(home.config_path(), "foo: bar\n").unwrap();
    let url = format!("http://127.0.0.1:{}", common::quiet_port());
    let login = home.sky(&["api", "login", "-e", &url]).fails();
    assert!(login.stderr.contains("could not connect") && login.stderr.contains(&url), "{}", login.stderr);
    assert_eq!(fs::read_to_string(home.config_path()).unwrap(), "foo: bar\n");
    assert!(!home.local_server_running());
}

#[test]
fn an_unreachable_configured_endpoint_is_never_started() {
    let home = Home::new();
    let url = format!("http://user:secret@127.0.0.1:{}", common::quiet_port());
    let info = home.sky_with_env(&["api", "info"], "SKYPILOT_API_SERVER_ENDPOINT", &url).fails();
    assert!(info.stderr.contains("could not connect"), "{}", info.stderr);
    assert!(info.stderr.contains("user:****@127.0.0.1"), "{}", info.stderr);
    assert!(!info.stderr.contains("secret"), "password printed: {}", info.stderr);
    assert!(!home.local_server_running());
}

#[test]
fn malformed_endpoints_and_config_files_name_their_source() {
    let home = Home::new();
    let env = home.sky_with_env(&["api", "info"], "SKYPILOT_API_SERVER_ENDPOINT", "127.0.0.1:46580").fails();
    assert!(env.stderr.contains("SKYPILOT_API_SERVER_ENDPOINT"), "{}", env.stderr);

    fs::create_dir_all(home.config_path().parent().unwrap()).unwrap();
    fs::write(home.config_path(), "api_server:\n  endpoint: ftp://host\n").unwrap();
    let file = home.sky(&["api", "status"]).fails();
    assert!(
        file.stderr.contains("api_server.endpoint") && file.stderr.contains("skyconfig.yaml"),
        "{}",
        file.stderr
    );

    fs::write(home.config_path(), "api_server: [oops\n").unwrap();
    let yaml = home.sky(&["api", "info"]).fails();
    assert!(
        yaml.stderr.contains("skyconfig.yaml") && yaml.stderr.contains("not valid YAML"),
        "{}",
        yaml.stderr
    );

    fs::remove_file(home.config_path()).unwrap();
    let port = home.sky_with_env(&["api", "info"], "SKYPILOT_API_SERVER_LOCAL_PORT", "99999").fails();
    assert!(port.stderr.contains("SKYPILOT_API_SERVER_LOCAL_PORT"), "{}", port.stderr);
    assert!(!home.local_server_running());
}

#[test]
fn a_server_that_fails_to_start_shows_the_end_of_its_log() {
    let home = Home::new();
    // A file where the store's directory should be: the server refuses the directory.
    fs::create_dir_all(home.data_dir()).unwrap();
    fs::write(home.data_dir().join("db"), "not a database").unwrap();
    let run = home.sky(&["api", "info"]).fails();
    assert!(run.stderr.contains("failed to start the SkyPilot API server"), "{}", run.stderr);
    assert!(
        run.stderr.contains("Last lines of") && run.stderr.contains("not the API server's (db)"),
        "{}",
        run.stderr
    );
}

#[test]
fn a_deployed_server_takes_basic_and_token_logins_and_keeps_secrets_out_of_its_log() {
    let home = Home::new();
    let admin_password = "deploy-admin-password-9";
    let start = home
        .command(&["api", "start", "--deploy", "--host", "127.0.0.1"])
        .env("SKYPILOT_INITIAL_BASIC_AUTH", format!("admin:{admin_password}"))
        .output()
        .unwrap();
    Run::from(start).ok();
    let endpoint = format!("http://127.0.0.1:{}", home.port);

    let anonymous = home.sky(&["api", "status"]).fails();
    assert!(anonymous.stderr.contains("sky api login"), "{}", anonymous.stderr);

    let with_password = format!("http://admin:{admin_password}@127.0.0.1:{}", home.port);
    let login = home.sky(&["api", "login", "-e", &with_password]).ok();
    assert!(
        login.stdout.contains("Logged into SkyPilot API server at: http://admin:****@127.0.0.1"),
        "{}",
        login.stdout
    );
    assert!(!login.stdout.contains(admin_password));
    let info = home.sky(&["api", "info"]).ok();
    assert!(info.stdout.contains("User: admin (") && info.stdout.contains("role: admin"), "{}", info.stdout);
    assert!(!info.stdout.contains(admin_password), "{}", info.stdout);

    let bob_password = "bob-password-77";
    home.sky(&["users", "create", "bob", "--password", bob_password]).ok();
    let users = home.sky(&["users", "list"]).ok();
    assert!(users.stdout.contains("bob") && users.stdout.contains("admin"), "{}", users.stdout);
    let token = home.sky(&["tokens", "create", "--name", "ci"]).ok().stdout.trim().to_string();
    assert!(token.starts_with("sky_"), "{token}");
    home.sky(&["api", "logout"]).ok();
    assert!(!fs::read_to_string(home.config_path()).unwrap_or_default().contains("api_server"));

    let login = home.sky(&["api", "login", "-e", &endpoint, "--token", &token]).ok();
    assert!(login.stdout.contains("User: admin"), "{}", login.stdout);
    let saved = fs::read_to_string(home.config_path()).unwrap();
    assert!(saved.contains("service_account_token"), "{saved}");
    home.sky(&["api", "status"]).ok();
    let by_env =
        home.sky_with_env(&["api", "info"], "SKYPILOT_SERVICE_ACCOUNT_TOKEN", "sky_not_a_real_token").fails();
    assert!(by_env.stderr.contains("unknown or revoked token"), "{}", by_env.stderr);
    home.sky(&["api", "logout"]).ok();

    let bob = format!("http://bob:{bob_password}@127.0.0.1:{}", home.port);
    let denied = home
        .sky_with_env(
            &["users", "create", "eve", "--password", "eve-password-1"],
            "SKYPILOT_API_SERVER_ENDPOINT",
            &bob,
        )
        .fails();
    assert!(denied.stderr.contains("only admins"), "{}", denied.stderr);

    home.sky(&["api", "stop"]).ok();
    let log = fs::read_to_string(home.data_dir().join("server.log")).unwrap();
    for secret in [admin_password, bob_password, token.as_str()] {
        assert!(!log.contains(secret), "{secret} found in the server log");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_https_endpoint_is_verified_against_the_configured_ca() {
    let certs = tempfile::tempdir().unwrap();
    let issued = rcgen::generate_simple_self_signed(vec!["localhost".to_string()]).unwrap();
    let cert = certs.path().join("server.pem");
    let key = certs.path().join("server.key");
    fs::write(&cert, issued.cert.pem()).unwrap();
    fs::write(&key, issued.signing_key.serialize_pem()).unwrap();

    let data = tempfile::tempdir().unwrap();
    let mut config = ServerConfig::local(data.path().join("data"));
    config.port = 0;
    config.require_auth = true;
    config.initial_basic_auth = Some("admin:tls-admin-password".into());
    config.tls = Some(skypilot_server::TlsFiles { cert: cert.clone(), key });
    let server = Server::new(config).start().await.unwrap();
    let url = format!("https://admin:tls-admin-password@localhost:{}", server.local_addr().port());

    let home = Home::new();
    let untrusted = tokio::task::block_in_place(|| {
        home.sky_with_env(&["api", "info"], "SKYPILOT_API_SERVER_ENDPOINT", &url)
    })
    .fails();
    assert!(untrusted.stderr.contains("could not connect"), "{}", untrusted.stderr);

    fs::create_dir_all(home.config_path().parent().unwrap()).unwrap();
    fs::write(home.config_path(), format!("api_server:\n  ca_cert: {}\n", cert.display())).unwrap();
    let trusted = tokio::task::block_in_place(|| {
        home.sky_with_env(&["api", "info"], "SKYPILOT_API_SERVER_ENDPOINT", &url)
    })
    .ok();
    assert!(trusted.stdout.contains("https://admin:****@localhost"), "{}", trusted.stdout);
    assert!(trusted.stdout.contains("role: admin"), "{}", trusted.stdout);

    let plain = url.replacen("https://", "http://", 1);
    tokio::task::block_in_place(|| {
        home.sky_with_env(&["api", "info"], "SKYPILOT_API_SERVER_ENDPOINT", &plain)
    })
    .fails();
    server.shutdown().await.unwrap();
}

#[test]
fn a_generated_admin_password_goes_to_a_private_file_not_to_the_log() {
    use std::os::unix::fs::PermissionsExt as _;
    let home = Home::new();
    let start = home.command(&["api", "start", "--deploy", "--host", "127.0.0.1"]).output().unwrap();
    Run::from(start).ok();
    let file = home.data_dir().join("initial-admin-password");
    let password = fs::read_to_string(&file).unwrap().trim().to_string();
    assert!(password.len() >= 16, "{password:?}");
    assert_eq!(fs::metadata(&file).unwrap().permissions().mode() & 0o777, 0o600);
    // Closed to others: at most searchable, for jobs under uids of their own.
    assert_eq!(fs::metadata(home.data_dir()).unwrap().permissions().mode() & 0o066, 0);
    let with_password = format!("http://admin:{password}@127.0.0.1:{}", home.port);
    home.sky(&["api", "login", "-e", &with_password]).ok();
    home.sky(&["api", "logout"]).ok();
    home.sky(&["api", "stop"]).ok();
    let log = fs::read_to_string(home.data_dir().join("server.log")).unwrap();
    assert!(!log.contains(&password), "the generated password is in the log");
    assert!(log.contains("initial-admin-password"), "the log names the file: {log}");
}

#[path = "../../server/tests/common/unix_user.rs"]
#[allow(dead_code)]
mod unix_user;

#[test]
fn the_cli_refuses_a_local_server_another_unix_user_started_on_its_port() {
    use skypilot_api::peer::listener_owner;
    let home = Home::new();
    let mallory = unix_user::UnixUser::create();
    let theirs = tempfile::tempdir().unwrap();
    std::os::unix::fs::chown(theirs.path(), Some(mallory.uid()), None).unwrap();
    let server = Command::new("runuser")
        .args(["-u", &mallory.name, "--", "env", &format!("HOME={}", theirs.path().display())])
        .args([env!("CARGO_BIN_EXE_sky"), "api", "start", "--foreground"])
        .args(["--host", "127.0.0.1", "--port", &home.port.to_string()])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    // The server binds its port before it writes its pid file: wait for both,
    // so that the pid is there to stop it with whatever the test finds.
    let pid_file = theirs.path().join(".sky/api_server/server.pid");
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    let written_pid = || -> Option<i32> { fs::read_to_string(&pid_file).ok()?.lines().next()?.parse().ok() };
    let pid = loop {
        match written_pid() {
            Some(pid) if listener_owner(home.port) == Some(mallory.uid()) => break pid,
            _ => {
                assert!(std::time::Instant::now() < deadline, "mallory's server did not start");
                std::thread::sleep(std::time::Duration::from_millis(20));
            }
        }
    };
    // Mallory's server stops when the test ends, whether it passes or fails.
    struct StopsOnDrop(i32, std::process::Child);
    impl Drop for StopsOnDrop {
        fn drop(&mut self) {
            // SAFETY: kill(2) on the server this test started, by its pid.
            unsafe { libc::kill(self.0, libc::SIGTERM) };
            let _ = self.1.wait();
        }
    }
    let _stops = StopsOnDrop(pid, server);
    let refused = home.sky(&["status"]).fails();
    assert!(
        refused.stderr.contains("another user") && refused.stderr.contains(&home.port.to_string()),
        "{}",
        refused.stderr
    );
    assert!(!home.data_dir().join("server.pid").exists(), "no server of ours was started");
}

/// The local server's pid, from its pid file.
fn server_pid(home: &Home) -> i32 {
    let text = fs::read_to_string(home.data_dir().join("server.pid")).unwrap();
    text.lines().next().unwrap().trim().parse().unwrap()
}

#[test]
fn a_command_in_flight_starts_the_local_server_again_when_it_dies() {
    use std::io::{BufRead as _, BufReader};

    let home = Home::new();
    home.sky(&["api", "start"]).ok();
    let release = home.path().join("release");
    // (It also ends when the test's HOME is gone, should the test fail.)
    let script = format!(
        "echo started; while [ ! -e {} ] && [ -d {} ]; do sleep 0.05; done; echo finished",
        release.display(),
        home.path().display()
    );
    // Follows the job's output until the job ends: in flight across the kills.
    let mut launch = home
        .command(&["launch", "-c", "crashy", "-y", "--cpus", "0.5", &script])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(launch.stdout.take().unwrap()).lines();
    assert!(lines.by_ref().any(|line| line.unwrap() == "started"), "the job started");
    for _ in 0..2 {
        let pid = server_pid(&home);
        // SAFETY: kill(2) on the server this test started, by its pid.
        assert_eq!(unsafe { libc::kill(pid, libc::SIGKILL) }, 0);
        // Nothing but the command in flight can start it again.
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
        while !home.data_dir().join("server.pid").exists() || server_pid(&home) == pid {
            assert!(std::time::Instant::now() < deadline, "no new server was started");
            std::thread::sleep(std::time::Duration::from_millis(50));
        }
    }
    fs::write(&release, "").unwrap();
    let rest: Vec<String> = lines.map(Result::unwrap).collect();
    let output = launch.wait_with_output().unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(output.status.success(), "{stderr}");
    assert_eq!(rest.iter().filter(|line| *line == "finished").count(), 1, "{rest:?}");
    assert!(!stderr.contains("could not connect"), "{stderr}");
    home.sky(&["down", "crashy", "-y"]).ok();
}

/// The local server is killed (SIGKILL) three times while four users' worth
/// of commands are in flight: each command rides through (it starts the
/// server again, or waits for the one another command started), none fails
/// with a connection error, and every `sky exec` made exactly one job.
#[test]
fn commands_in_flight_ride_through_local_server_kills() {
    use std::sync::{
        Arc,
        atomic::{AtomicBool, Ordering},
    };
    let home = Arc::new(Home::new());
    home.sky(&["launch", "-c", "crash", "-y", "--cpus", "0.5", "-d", "true"]).ok();
    let done = Arc::new(AtomicBool::new(false));
    let killer = {
        let (home, done) = (home.clone(), done.clone());
        std::thread::spawn(move || {
            let (mut kills, mut last) = (0, 0);
            // Each time a new server serves, let the commands go on a moment
            // (pacing, not synchronisation), then kill it.
            while kills < 3 && !done.load(Ordering::SeqCst) {
                std::thread::sleep(std::time::Duration::from_millis(100 + 150 * kills));
                let Ok(text) = fs::read_to_string(home.data_dir().join("server.pid")) else { continue };
                let Some(pid) = text.lines().next().and_then(|l| l.trim().parse::<i32>().ok()) else {
                    continue;
                };
                // Only a server this test's commands started, and not the one already killed.
                let cmdline = fs::read(format!("/proc/{pid}/cmdline")).unwrap_or_default();
                if pid == last
                    || !String::from_utf8_lossy(&cmdline).contains(&home.data_dir().display().to_string())
                {
                    continue;
                }
                // SAFETY: a plain kill(2) of that server's pid.
                if unsafe { libc::kill(pid, libc::SIGKILL) } == 0 {
                    kills += 1;
                    last = pid;
                }
            }
            kills
        })
    };
    let workers: Vec<_> = (0..4)
        .map(|worker| {
            let home = home.clone();
            std::thread::spawn(move || {
                let mut runs = Vec::new();
                for i in 0..20 {
                    let args: &[&str] = match (worker + i) % 4 {
                        0 | 1 => &["exec", "crash", "-d", "--cpus", "0.1", "true"],
                        2 => &["status"],
                        _ => &["queue", "crash", "--limit", "0"],
                    };
                    runs.push((args.join(" "), home.sky(args)));
                }
                runs
            })
        })
        .collect();
    let runs: Vec<(String, Run)> = workers.into_iter().flat_map(|w| w.join().unwrap()).collect();
    done.store(true, Ordering::SeqCst);
    let kills = killer.join().unwrap();
    assert!(kills >= 1, "the server was never killed");
    for (command, run) in &runs {
        assert_eq!(run.code, 0, "`sky {command}` failed:\n{}\n{}", run.stdout, run.stderr);
        assert!(!run.stderr.contains("could not connect"), "`sky {command}`: {}", run.stderr);
    }
    let execs = runs.iter().filter(|(command, _)| command.starts_with("exec")).count();
    let queue = home.sky(&["queue", "crash", "--limit", "0"]).ok();
    let jobs = queue.stdout.lines().filter(|line| line.starts_with(|c: char| c.is_ascii_digit())).count();
    assert_eq!(jobs, execs + 1, "one job per exec (and the launch's):\n{}", queue.stdout);
    println!("{} commands, {kills} server kills, {jobs} jobs", runs.len());
    home.sky(&["down", "crash", "-y"]).ok();
}
