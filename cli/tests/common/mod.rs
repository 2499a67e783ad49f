//! What CLI tests share: the outcome of one `sky` run and its assertions,
//! and the server as a child process (to kill it, or limit what it may write).
#![allow(dead_code)]

use std::{
    io::{BufRead, BufReader},
    os::unix::process::CommandExt,
    path::{Path, PathBuf},
    process::{Child, Command, Output, Stdio},
};

#[path = "../../../server/tests/common/ports.rs"]
pub mod ports;
pub use ports::quiet_port;

/// A finished `sky` run.
pub struct Run {
    pub code: i32,
    pub stdout: String,
    pub stderr: String,
}

impl From<Output> for Run {
    fn from(output: Output) -> Run {
        Run {
            code: output.status.code().unwrap_or(-1),
            stdout: String::from_utf8_lossy(&output.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&output.stderr).into_owned(),
        }
    }
}

impl Run {
    #[track_caller]
    pub fn ok(self) -> Run {
        self.code(0)
    }

    #[track_caller]
    pub fn code(self, expected: i32) -> Run {
        assert_eq!(self.code, expected, "stdout:\n{}\nstderr:\n{}", self.stdout, self.stderr);
        self
    }

    /// Failed, and said why on stderr.
    #[track_caller]
    pub fn fails(self) -> Run {
        assert_ne!(self.code, 0, "unexpected success; stdout:\n{}", self.stdout);
        assert!(!self.stderr.trim().is_empty(), "a failure must say why");
        self
    }
}

/// The server as a child process on a fixed data dir and port; port 0 means a
/// [`quiet_port`], which a restart after a kill binds again.
pub struct ServerProcess {
    child: Child,
    home: PathBuf,
    data_dir: PathBuf,
    pub port: u16,
    /// The extra `sky api start` flags it was started with.
    flags: Vec<String>,
}

impl ServerProcess {
    pub fn start(home: &Path, data_dir: &Path, port: u16) -> ServerProcess {
        ServerProcess::start_limited(home, data_dir, port, None)
    }

    /// Starts the server; with `file_size_limit`, no file it writes may grow
    /// beyond that many bytes (writes past it fail as on a full disk).
    pub fn start_limited(
        home: &Path,
        data_dir: &Path,
        port: u16,
        file_size_limit: Option<u64>,
    ) -> ServerProcess {
        ServerProcess::start_with(home, data_dir, port, file_size_limit, &[])
    }

    /// Starts the server with more `sky api start` flags, on a port of its own.
    pub fn start_with_flags(home: &Path, data_dir: &Path, flags: &[&str]) -> ServerProcess {
        ServerProcess::start_with(home, data_dir, 0, None, flags)
    }

    fn start_with(
        home: &Path,
        data_dir: &Path,
        port: u16,
        file_size_limit: Option<u64>,
        flags: &[&str],
    ) -> ServerProcess {
        let port = if port == 0 { quiet_port() } else { port };
        let mut command = Command::new(env!("CARGO_BIN_EXE_sky"));
        if let Some(limit) = file_size_limit {
            // SAFETY: only async-signal-safe calls between fork and exec.
            unsafe {
                command.pre_exec(move || {
                    libc::signal(libc::SIGXFSZ, libc::SIG_IGN);
                    let rlimit = libc::rlimit { rlim_cur: limit, rlim_max: limit };
                    if libc::setrlimit(libc::RLIMIT_FSIZE, &rlimit) != 0 {
                        return Err(std::io::Error::last_os_error());
                    }
                    Ok(())
                });
            }
        }
        let mut child = command
            .args(["api", "start", "--foreground", "--host", "127.0.0.1", "--port", &port.to_string()])
            .arg("--data-dir")
            .arg(data_dir)
            .args(["--shutdown-grace-seconds", "1"])
            .args(flags)
            .env("HOME", home)
            .env("RUST_LOG", "info")
            .env_remove("SKYPILOT_API_SERVER_ENDPOINT")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("start the server");
        let mut lines = BufReader::new(child.stderr.take().unwrap()).lines();
        let mut seen = Vec::new();
        loop {
            match lines.next() {
                Some(Ok(line)) if line.contains("API server is serving") => break,
                Some(Ok(line)) => seen.push(line),
                _ => panic!("the server exited before serving:\n{}", seen.join("\n")),
            }
        }
        // Keep draining the log so that the server never blocks on a full pipe.
        std::thread::spawn(move || for _ in lines.by_ref() {});
        let pid_file = std::fs::read_to_string(data_dir.join("server.pid")).unwrap();
        let address = pid_file.lines().nth(1).unwrap().to_string();
        let port = address.rsplit_once(':').unwrap().1.parse().unwrap();
        let flags = flags.iter().map(|flag| flag.to_string()).collect();
        ServerProcess { child, home: home.to_path_buf(), data_dir: data_dir.to_path_buf(), port, flags }
    }

    pub fn kill_and_restart(&mut self) {
        self.child.kill().unwrap();
        self.child.wait().unwrap();
        let flags: Vec<&str> = self.flags.iter().map(String::as_str).collect();
        *self = ServerProcess::start_with(&self.home, &self.data_dir, self.port, None, &flags);
    }

    /// A typed client of this server that retries an unavailable server for `retry_for`.
    pub async fn client(&self, retry_for: std::time::Duration) -> skypilot_api::Client {
        let url = format!("http://127.0.0.1:{}", self.port);
        let endpoint = skypilot_api::Endpoint::parse(&url, skypilot_api::EndpointSource::Env).unwrap();
        let me = skypilot_api::identity::Identity { name: "tester".into(), id: "7e57e700".into() };
        skypilot_api::Client::connect(&endpoint, &me).await.unwrap().with_retry_for(retry_for)
    }

    /// Waits until the server exits by itself.
    pub fn wait_for_exit(mut self) -> std::process::ExitStatus {
        self.child.wait().unwrap()
    }

    /// SIGTERM; returns whether it exited cleanly.
    pub fn stop(mut self) -> bool {
        unsafe { libc::kill(self.child.id() as i32, libc::SIGTERM) };
        self.child.wait().unwrap().success()
    }
}

impl Drop for ServerProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// `sky args` with `home` as HOME, against the server on loopback `port`.
pub fn sky_at(home: &Path, port: u16, args: &[&str]) -> Run {
    Command::new(env!("CARGO_BIN_EXE_sky"))
        .args(args)
        .env("HOME", home)
        .env("SKYPILOT_API_SERVER_ENDPOINT", format!("http://127.0.0.1:{port}"))
        .output()
        .unwrap()
        .into()
}

/// A temporary HOME whose local default server listens on its own port.
pub struct Home {
    dir: tempfile::TempDir,
    pub port: u16,
}

impl Home {
    pub fn new() -> Home {
        Home { dir: tempfile::tempdir().unwrap(), port: quiet_port() }
    }

    pub fn path(&self) -> &Path {
        self.dir.path()
    }

    pub fn config_path(&self) -> PathBuf {
        self.path().join(".sky/skyconfig.yaml")
    }

    pub fn data_dir(&self) -> PathBuf {
        self.path().join(".sky/api_server")
    }

    pub fn command(&self, args: &[&str]) -> Command {
        let mut command = Command::new(env!("CARGO_BIN_EXE_sky"));
        command
            .args(args)
            .env("HOME", self.path())
            .env("USER", "tester")
            .env("SKYPILOT_API_SERVER_LOCAL_PORT", self.port.to_string())
            .env_remove("SKYPILOT_API_SERVER_ENDPOINT")
            .env_remove("SKYPILOT_API_SERVER_DATA_DIR")
            .env_remove("RUST_LOG");
        command
    }

    pub fn sky(&self, args: &[&str]) -> Run {
        Run::from(self.command(args).output().unwrap())
    }

    pub fn sky_with_env(&self, args: &[&str], key: &str, value: &str) -> Run {
        Run::from(self.command(args).env(key, value).output().unwrap())
    }

    pub fn local_server_running(&self) -> bool {
        self.data_dir().join("server.pid").exists()
    }
}

impl Drop for Home {
    fn drop(&mut self) {
        if self.local_server_running() {
            let _ = self.command(&["api", "stop"]).output();
        }
    }
}
