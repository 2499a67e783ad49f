//! Running the `sky` binary in a temporary HOME and measuring its wall time,
//! its peak RSS (from wait4) and the server's RSS (from /proc).

use std::{
    fs,
    os::unix::process::ExitStatusExt,
    path::PathBuf,
    process::{Command, ExitStatus, Stdio},
    time::{Duration, Instant},
};

use tempfile::TempDir;

use crate::ports::quiet_port;

/// The `sky` binary with a private HOME and local server port.
pub struct Sky {
    binary: PathBuf,
    home: TempDir,
    port: u16,
}

pub struct Run {
    pub wall: Duration,
    pub max_rss_mb: f64,
}

impl Sky {
    pub fn new(binary: PathBuf) -> Sky {
        let port = quiet_port();
        Sky { binary, home: tempfile::tempdir().expect("temporary HOME"), port }
    }

    /// Its HOME.
    pub fn home(&self) -> &std::path::Path {
        self.home.path()
    }

    pub fn endpoint(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// Runs `sky ARGS` to completion; panics if it fails.
    pub fn run(&self, args: &[&str]) -> Run {
        let stderr_path = self.home.path().join("sky-stderr.log");
        let stderr = fs::File::create(&stderr_path).expect("stderr file");
        let started = Instant::now();
        #[expect(clippy::zombie_processes, reason = "reaped by wait4 below, which also reports its rusage")]
        let child = Command::new(&self.binary)
            .args(args)
            .env("HOME", self.home.path())
            .env("SKYPILOT_API_SERVER_LOCAL_PORT", self.port.to_string())
            .env_remove("SKYPILOT_API_SERVER_ENDPOINT")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(stderr)
            .spawn()
            .expect("spawn sky");
        let pid = child.id() as libc::pid_t;
        let mut status = 0;
        // SAFETY: an all-zero rusage is a valid value for wait4 to fill in.
        let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
        // SAFETY: waits for our own child, with valid out-pointers.
        let waited = unsafe { libc::wait4(pid, &mut status, 0, &mut usage) };
        let wall = started.elapsed();
        assert_eq!(waited, pid, "wait4 failed: {}", std::io::Error::last_os_error());
        let exit = ExitStatus::from_raw(status);
        if !exit.success() {
            let said = fs::read_to_string(&stderr_path).unwrap_or_default();
            panic!("sky {args:?} failed ({exit}):\n{said}");
        }
        Run { wall, max_rss_mb: usage.ru_maxrss as f64 / 1024.0 }
    }

    /// The pid of the running local server.
    pub fn server_pid(&self) -> u32 {
        let text = fs::read_to_string(self.home.path().join(".sky/api_server/server.pid")).expect("pid file");
        text.lines().next().and_then(|l| l.trim().parse().ok()).expect("pid")
    }
}

/// Resident set size of process `pid`, in MB.
pub fn rss_mb(pid: u32) -> f64 {
    let status = fs::read_to_string(format!("/proc/{pid}/status")).expect("/proc status");
    let kib: f64 = status
        .lines()
        .find_map(|line| line.strip_prefix("VmRSS:"))
        .and_then(|rest| rest.trim().trim_end_matches("kB").trim().parse().ok())
        .expect("VmRSS");
    kib / 1024.0
}

/// CPU time (user and system) process `pid` has used, in seconds.
pub fn cpu_seconds(pid: u32) -> f64 {
    let stat = fs::read_to_string(format!("/proc/{pid}/stat")).expect("/proc stat");
    let fields: Vec<&str> = stat[stat.rfind(')').expect("comm") + 2..].split_whitespace().collect();
    let ticks: f64 = fields[11].parse::<f64>().expect("utime") + fields[12].parse::<f64>().expect("stime");
    // SAFETY: sysconf has no preconditions.
    ticks / unsafe { libc::sysconf(libc::_SC_CLK_TCK) } as f64
}

/// The median of `values` (sorted in place).
pub fn median(values: &mut [Duration]) -> Duration {
    values.sort();
    values[values.len() / 2]
}
