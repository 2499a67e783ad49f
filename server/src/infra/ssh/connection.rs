//! The system OpenSSH client, as the server drives SSH hosts. OpenSSH rather
//! than a library: it is on every host that has SSH at all, it reads the
//! server user's own SSH configuration (aliases, jump hosts, agents), and its
//! connection multiplexing lets every command, file copy and log read to a
//! host share one authenticated connection.
//!
//! Each host gets one master connection (`ssh -M -N`), a child of the server
//! that dies with it; commands then run over the master's control socket in
//! milliseconds. Keepalives end a master whose host stopped answering, and the
//! next command starts a new one. Host keys are pinned on first use in the
//! server's own `known_hosts` (`StrictHostKeyChecking=accept-new`): a key that
//! changes afterwards is refused with what to do about it. Private keys stay
//! where they are: only their paths reach `ssh`, and never a log or a client.

use std::{
    collections::HashMap, fmt, os::unix::fs::DirBuilderExt as _, path::PathBuf, process::Stdio, sync::Arc,
    time::Duration,
};

use sha2::{Digest as _, Sha256};
use tokio::{io::AsyncWriteExt as _, process::Command, sync::Mutex};

use super::pools::Host;

/// How long connecting (and authenticating) to a host may take.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);
/// Keepalives: a host that misses this many in a row is taken for gone.
const KEEPALIVE_SECS: u32 = 5;
const KEEPALIVE_MISSES: u32 = 3;

/// Why a command on a host did not run or did not succeed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SshError {
    /// No connection: the host is down, unreachable or refuses SSH.
    Unreachable { host: String, why: String },
    /// The host's key is not the one pinned when it was first reached.
    HostKeyChanged { host: String, forget: String },
    /// The host refused the key (or the user).
    Denied { host: String, why: String },
    /// The command ran and failed.
    Failed { host: String, code: Option<i32>, stderr: String },
    /// The command took longer than it was given.
    TimedOut { host: String, after: Duration },
}

impl fmt::Display for SshError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            SshError::Unreachable { host, why } => write!(f, "{host} is unreachable: {why}"),
            SshError::HostKeyChanged { host, forget } => write!(
                f,
                "the host key of {host} changed since it was first trusted (the host was reinstalled, \
                 or someone is in the way); if the change is expected, forget the old key with \
                 `{forget}` and check again"
            ),
            SshError::Denied { host, why } => write!(
                f,
                "{host} refused the login ({why}): check the pool's user and identity_file, and that \
                 the key is in the user's ~/.ssh/authorized_keys on the host"
            ),
            SshError::Failed { host, code, stderr } => {
                let code = code.map_or("a signal".to_string(), |code| format!("exit code {code}"));
                write!(f, "a command on {host} failed ({code}): {}", stderr.trim())
            }
            SshError::TimedOut { host, after } => {
                write!(f, "a command on {host} did not finish within {} s", after.as_secs())
            }
        }
    }
}

impl std::error::Error for SshError {}

/// Connections to SSH hosts, with their state in `dir` (the server's own
/// `known_hosts`, and control sockets).
pub struct Ssh {
    dir: PathBuf,
    /// Each host's master connection, by control path.
    masters: Mutex<HashMap<PathBuf, Arc<Mutex<Option<tokio::process::Child>>>>>,
}

impl Ssh {
    /// Keeps its state in `dir` (created 0700).
    pub fn new(dir: PathBuf) -> std::io::Result<Ssh> {
        std::fs::DirBuilder::new().recursive(true).mode(0o700).create(dir.join("cm"))?;
        Ok(Ssh { dir, masters: Mutex::default() })
    }

    /// The server's pinned host keys.
    pub fn known_hosts(&self) -> PathBuf {
        self.dir.join("known_hosts")
    }

    /// The control socket of `host`'s master: short (socket paths are
    /// bounded), and one per user, address and port.
    fn control_path(&self, host: &Host) -> PathBuf {
        let id = Sha256::digest(host.label().as_bytes());
        self.dir.join("cm").join(skypilot_api::identity::hex(&id[..8]))
    }

    /// `ssh` with the options every use shares.
    fn ssh(&self, host: &Host) -> Command {
        let mut ssh = Command::new("ssh");
        let known_hosts = self.known_hosts();
        ssh.args([
            "-o",
            "BatchMode=yes",
            "-o",
            "StrictHostKeyChecking=accept-new",
            "-o",
            "HashKnownHosts=no",
        ])
        .arg("-o")
        .arg(format!("UserKnownHostsFile={}", known_hosts.display()))
        .args(["-o", "GlobalKnownHostsFile=/dev/null", "-o", "LogLevel=ERROR"])
        .arg("-o")
        .arg(format!("ConnectTimeout={}", CONNECT_TIMEOUT.as_secs()))
        .arg("-o")
        .arg(format!("ServerAliveInterval={KEEPALIVE_SECS}"))
        .arg("-o")
        .arg(format!("ServerAliveCountMax={KEEPALIVE_MISSES}"))
        .arg("-o")
        .arg(format!("ControlPath={}", self.control_path(host).display()))
        .args(["-p", &host.port.to_string(), "-l", &host.user]);
        if let Some(key) = &host.identity_file {
            ssh.args(["-o", "IdentitiesOnly=yes", "-i"]).arg(key);
        }
        ssh.stdin(Stdio::null()).kill_on_drop(true);
        ssh
    }

    /// Makes sure `host` has a live master connection, starting one if needed.
    async fn connect(&self, host: &Host) -> Result<(), SshError> {
        let path = self.control_path(host);
        let slot = self.masters.lock().await.entry(path.clone()).or_default().clone();
        let mut master = slot.lock().await;
        if let Some(child) = master.as_mut()
            && child.try_wait().ok().flatten().is_none()
            && path.exists()
        {
            return Ok(());
        }
        *master = None;
        let _ = std::fs::remove_file(&path);
        let errors = path.with_extension("log");
        let log = std::fs::File::create(&errors).map_err(|err| unreachable(host, err.to_string()))?;
        let mut child = self
            .ssh(host)
            .args(["-M", "-N", "-o", "ControlMaster=yes", "-o", "ControlPersist=no"])
            .arg(&host.address)
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .map_err(|err| unreachable(host, format!("cannot run ssh: {err}")))?;
        // Up once its control socket answers; failed if it exits first.
        let deadline = tokio::time::Instant::now() + CONNECT_TIMEOUT + Duration::from_secs(5);
        loop {
            if let Ok(Some(_)) = child.try_wait() {
                let stderr = std::fs::read_to_string(&errors).unwrap_or_default();
                return Err(classify(self, host, &stderr));
            }
            if path.exists() && self.check_master(host).await {
                *master = Some(child);
                return Ok(());
            }
            if tokio::time::Instant::now() > deadline {
                return Err(SshError::TimedOut { host: host.label(), after: CONNECT_TIMEOUT });
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }

    async fn check_master(&self, host: &Host) -> bool {
        let mut check = self.ssh(host);
        check.args(["-O", "check"]).arg(&host.address).stdout(Stdio::null()).stderr(Stdio::null());
        check.status().await.is_ok_and(|status| status.success())
    }

    /// Runs `script` with bash on `host` (over its master connection), with
    /// `input` after the script on standard input when given; its standard
    /// output, or why it failed.
    pub async fn run(&self, host: &Host, script: &str, timeout: Duration) -> Result<Vec<u8>, SshError> {
        self.connect(host).await?;
        match self.run_over_master(host, script, timeout).await {
            // The master died with its connection (the host restarted, the
            // network dropped): connect again, once, and say why if that fails.
            Err(SshError::Unreachable { .. }) => {
                self.disconnect(host).await;
                self.connect(host).await?;
                self.run_over_master(host, script, timeout).await
            }
            result => result,
        }
    }

    /// Runs `script` with bash on `host` with `input` on its standard input;
    /// its standard output, or why it failed.
    pub async fn run_with_input(
        &self,
        host: &Host,
        script: &str,
        input: &[u8],
        timeout: Duration,
    ) -> Result<Vec<u8>, SshError> {
        self.connect(host).await?;
        let mut command = self.command(host, &format!("bash -c {}", super::remote::quote(script)));
        command.stdin(Stdio::piped()).stdout(Stdio::piped()).stderr(Stdio::piped());
        let mut child = command.spawn().map_err(|err| unreachable(host, format!("cannot run ssh: {err}")))?;
        let mut stdin = child.stdin.take().expect("piped");
        let input = input.to_vec();
        let fed = tokio::spawn(async move { stdin.write_all(&input).await });
        let output = match tokio::time::timeout(timeout, child.wait_with_output()).await {
            Ok(output) => output.map_err(|err| unreachable(host, err.to_string()))?,
            Err(_) => return Err(SshError::TimedOut { host: host.label(), after: timeout }),
        };
        let _ = fed.await;
        match output.status.success() {
            true => Ok(output.stdout),
            false => Err(self.failure(host, output.status.code(), &output.stderr)),
        }
    }

    /// Ends `host`'s master connection, if it has one.
    async fn disconnect(&self, host: &Host) {
        let slot = self.masters.lock().await.get(&self.control_path(host)).cloned();
        if let Some(slot) = slot
            && let Some(mut child) = slot.lock().await.take()
        {
            let _ = child.kill().await;
        }
    }

    /// `ssh` running `remote` (a shell command line) on `host` over its
    /// master connection, for callers that stream its input or output; call
    /// `ready` first. Its standard streams are the caller's to set.
    pub fn command(&self, host: &Host, remote: &str) -> Command {
        let mut command = self.ssh(host);
        command.args(["-o", "ControlMaster=no"]).arg(&host.address).arg("--").arg(remote);
        command
    }

    /// Makes sure `host` is connected (see `command`).
    pub async fn ready(&self, host: &Host) -> Result<(), SshError> {
        self.connect(host).await
    }

    /// The error of an `ssh` that exited with `code` and wrote `stderr`.
    pub fn failure(&self, host: &Host, code: Option<i32>, stderr: &[u8]) -> SshError {
        let stderr = String::from_utf8_lossy(stderr).into_owned();
        match code {
            // ssh's own failure (the connection), not the command's.
            Some(255) => classify(self, host, &stderr),
            code => SshError::Failed { host: host.label(), code, stderr },
        }
    }

    async fn run_over_master(
        &self,
        host: &Host,
        script: &str,
        timeout: Duration,
    ) -> Result<Vec<u8>, SshError> {
        let mut command = self.command(host, "bash -s");
        command.stdin(Stdio::piped()).stdout(Stdio::piped()).stderr(Stdio::piped());
        let mut child = command.spawn().map_err(|err| unreachable(host, format!("cannot run ssh: {err}")))?;
        let mut stdin = child.stdin.take().expect("piped");
        let script = script.to_string();
        let fed = tokio::spawn(async move { stdin.write_all(script.as_bytes()).await });
        let output = match tokio::time::timeout(timeout, child.wait_with_output()).await {
            Ok(output) => output.map_err(|err| unreachable(host, err.to_string()))?,
            Err(_) => return Err(SshError::TimedOut { host: host.label(), after: timeout }),
        };
        let _ = fed.await;
        if output.status.success() {
            return Ok(output.stdout);
        }
        Err(self.failure(host, output.status.code(), &output.stderr))
    }

    /// The SHA-256 fingerprint of `host`'s pinned key, once it has one.
    pub async fn fingerprint(&self, host: &Host) -> Option<String> {
        let output = Command::new("ssh-keygen")
            .arg("-l")
            .arg("-F")
            .arg(known_hosts_name(host))
            .arg("-f")
            .arg(self.known_hosts())
            .output()
            .await
            .ok()?;
        String::from_utf8_lossy(&output.stdout).lines().filter(|line| !line.starts_with('#')).find_map(
            |line| line.split_whitespace().find(|word| word.starts_with("SHA256:")).map(str::to_string),
        )
    }

    /// Ends `host`'s connection and forgets its pinned key: the next
    /// connection trusts the key it finds, as on first use.
    pub async fn forget(&self, host: &Host) -> Result<(), String> {
        self.disconnect(host).await;
        if self.fingerprint(host).await.is_none() {
            return Ok(());
        }
        let output = Command::new("ssh-keygen")
            .arg("-f")
            .arg(self.known_hosts())
            .arg("-R")
            .arg(known_hosts_name(host))
            .output()
            .await
            .map_err(|err| format!("cannot run ssh-keygen: {err}"))?;
        match output.status.success() {
            true => Ok(()),
            false => {
                Err(format!("cannot forget its host key: {}", String::from_utf8_lossy(&output.stderr).trim()))
            }
        }
    }

    /// Ends every master connection (at shutdown).
    pub async fn close(&self) {
        for slot in self.masters.lock().await.values() {
            if let Some(mut child) = slot.lock().await.take() {
                let _ = child.kill().await;
            }
        }
    }
}

/// How `host` appears in a known_hosts file.
fn known_hosts_name(host: &Host) -> String {
    match host.port {
        22 => host.address.clone(),
        port => format!("[{}]:{port}", host.address),
    }
}

fn unreachable(host: &Host, why: String) -> SshError {
    SshError::Unreachable { host: host.label(), why }
}

/// What ssh's own error output says went wrong.
fn classify(ssh: &Ssh, host: &Host, stderr: &str) -> SshError {
    let last_line = stderr.lines().rev().find(|line| !line.trim().is_empty()).unwrap_or("no answer").trim();
    if stderr.contains("REMOTE HOST IDENTIFICATION HAS CHANGED")
        || stderr.contains("Host key verification failed")
    {
        let forget = format!("ssh-keygen -f {} -R '{}'", ssh.known_hosts().display(), known_hosts_name(host));
        return SshError::HostKeyChanged { host: host.label(), forget };
    }
    if stderr.contains("Permission denied") || stderr.contains("Too many authentication failures") {
        return SshError::Denied { host: host.label(), why: last_line.to_string() };
    }
    if let Some(file) =
        stderr.lines().find(|line| line.contains("no such identity") || line.contains("Load key"))
    {
        return SshError::Denied { host: host.label(), why: file.trim().to_string() };
    }
    unreachable(host, last_line.trim_start_matches("ssh: ").to_string())
}

/// The identity file of a host, checked before it is handed to ssh.
pub fn check_identity_file(host: &Host) -> Result<(), String> {
    let Some(key) = &host.identity_file else { return Ok(()) };
    std::fs::File::open(key)
        .map(|_| ())
        .map_err(|err| format!("identity_file {} of {}: {err}", key.display(), host.label()))
}
