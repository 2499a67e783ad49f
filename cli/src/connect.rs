//! Finding the API server: resolve the endpoint, connect, and start the local
//! default server in the background when it is not answering (only that one;
//! a configured endpoint is never started).

use std::{
    fs::{self, File, OpenOptions},
    io::{Read, Seek, SeekFrom},
    os::unix::fs::{DirBuilderExt as _, OpenOptionsExt as _},
    os::unix::process::CommandExt,
    path::{Path, PathBuf},
    process::{Child, Command, Stdio},
    time::{Duration, Instant},
};

use skypilot_api::{Client, ClientError, Endpoint, identity::Identity};
use skypilot_server::ServerConfig;
use tonic_health::pb::health_check_response::ServingStatus;

use crate::error::{CliError, CliResult};

/// How long a started server gets to become healthy.
const START_TIMEOUT: Duration = Duration::from_secs(30);
/// Lines of the server log shown when a start fails.
const LOG_TAIL_LINES: usize = 20;

/// The calling user.
pub fn identity() -> CliResult<Identity> {
    Identity::current().map_err(|err| CliError::new(format!("cannot read or create ~/.sky/user_hash: {err}")))
}

/// Connects to the configured server, starting the local default if needed.
pub async fn connect() -> CliResult<Client> {
    let endpoint = Endpoint::resolve()?;
    connect_to(&endpoint, true).await
}

/// Connects to `endpoint`; with `autostart`, starts it if it is the local default.
pub async fn connect_to(endpoint: &Endpoint, autostart: bool) -> CliResult<Client> {
    let identity = identity()?;
    if endpoint.is_local_default() {
        ensure_own_local_server(endpoint.port)?;
    }
    let client = match Client::connect(endpoint, &identity).await {
        Err(ClientError::Unreachable { .. }) if autostart && endpoint.is_local_default() => {
            start_background(endpoint, &BackgroundStart::local_default(endpoint)).await?;
            Client::connect(endpoint, &identity).await?
        }
        other => other?,
    };
    let client = client.with_retry_notice(|notice| eprintln!("{notice}"));
    if !(autostart && endpoint.is_local_default()) {
        return Ok(client);
    }
    // The local server went away mid-command (it crashed, or was stopped):
    // start it again, as a new command would (one start for many commands).
    let endpoint = endpoint.clone();
    Ok(client.with_revive(move || {
        let endpoint = endpoint.clone();
        Box::pin(async move {
            if ensure_own_local_server(endpoint.port).is_ok() {
                let start = BackgroundStart::local_default(&endpoint);
                if let Err(err) = start_background(&endpoint, &start).await {
                    eprintln!("{err}");
                }
            }
        })
    }))
}

/// Refuses a local server that another Unix user started on our port: it
/// would receive our requests and their secrets.
fn ensure_own_local_server(port: u16) -> CliResult {
    use skypilot_api::peer::{listener_owner, own_uid};
    match (listener_owner(port), own_uid()) {
        (Some(owner), Some(me)) if owner != me => Err(CliError::new(format!(
            "the program listening on 127.0.0.1:{port}, where your local API server belongs, runs as \
             another user (uid {owner}): refusing to send it your requests. Ask them to stop it, or \
             use another port for yours with SKYPILOT_API_SERVER_LOCAL_PORT"
        ))),
        _ => Ok(()),
    }
}

/// How to start a server in the background.
pub struct BackgroundStart {
    pub host: String,
    pub port: u16,
    pub deploy: bool,
    pub insecure_no_auth: bool,
    /// Certificate and key for a TLS server.
    pub tls: Option<(PathBuf, PathBuf)>,
    pub data_dir: PathBuf,
    /// Further `sky api start` flags, passed on as given.
    pub settings: Vec<String>,
}

impl BackgroundStart {
    pub fn local_default(endpoint: &Endpoint) -> BackgroundStart {
        BackgroundStart {
            host: endpoint.host.clone(),
            port: endpoint.port,
            deploy: false,
            insecure_no_auth: false,
            tls: None,
            data_dir: ServerConfig::default_data_dir(),
            settings: Vec::new(),
        }
    }
}

/// `~/.sky/api_server/server.log`: where a background server writes its log.
pub fn server_log_path(data_dir: &Path) -> PathBuf {
    data_dir.join("server.log")
}

/// Starts `sky api start --foreground` detached, unless one is already
/// answering at `endpoint`, and waits until it is healthy. A lock file keeps
/// two CLIs from starting two servers at once.
pub async fn start_background(endpoint: &Endpoint, start: &BackgroundStart) -> CliResult {
    // Only its owner may enter the data dir (the server repairs the modes of
    // an older one when it starts).
    fs::DirBuilder::new().recursive(true).mode(0o700).create(&start.data_dir)?;
    let lock = OpenOptions::new()
        .create(true)
        .truncate(true)
        .write(true)
        .mode(0o600)
        .open(start.data_dir.join(".start.lock"))?;
    let lock = tokio::task::spawn_blocking(move || lock.lock().map(|()| lock))
        .await
        .map_err(|err| CliError::new(format!("start lock: {err}")))??;
    let identity = identity()?;
    if healthy(endpoint, &identity).await {
        return Ok(()); // another CLI started it meanwhile
    }

    let log_path = server_log_path(&start.data_dir);
    eprintln!("Starting SkyPilot API server, view logs at {}", log_path.display());
    let log = OpenOptions::new().create(true).append(true).mode(0o600).open(&log_path)?;
    let log_start = log.metadata()?.len();
    let exe = std::env::current_exe()?;
    let mut command = Command::new(exe);
    command
        .args(["api", "start", "--foreground", "--host", &start.host, "--port", &start.port.to_string()])
        .arg("--data-dir")
        .arg(&start.data_dir);
    if start.deploy {
        command.arg("--deploy");
    }
    if start.insecure_no_auth {
        command.arg("--insecure-no-auth");
    }
    if let Some((cert, key)) = &start.tls {
        command.arg("--tls-cert").arg(cert).arg("--tls-key").arg(key);
    }
    command.args(&start.settings);
    let mut child = command
        .stdin(Stdio::null())
        .stdout(log.try_clone()?)
        .stderr(log)
        .process_group(0)
        .spawn()
        .map_err(|err| CliError::new(format!("cannot start the API server: {err}")))?;

    let started = Instant::now();
    let mut pause = Duration::from_millis(2);
    loop {
        if let Some(status) = child.try_wait()? {
            return Err(start_failed(&log_path, log_start, &format!("the server exited ({status})")));
        }
        if healthy(endpoint, &identity).await {
            break;
        }
        if started.elapsed() > START_TIMEOUT {
            stop_child(&mut child);
            return Err(start_failed(&log_path, log_start, "the server did not become healthy in time"));
        }
        tokio::time::sleep(pause).await;
        pause = (pause * 2).min(Duration::from_millis(50));
    }
    drop(lock);
    eprintln!("\u{2713} SkyPilot API server started at {}", endpoint.display());
    Ok(())
}

async fn healthy(endpoint: &Endpoint, identity: &Identity) -> bool {
    match Client::connect(endpoint, identity).await {
        Ok(client) => matches!(client.health().await, Ok(ServingStatus::Serving)),
        Err(_) => false,
    }
}

fn stop_child(child: &mut Child) {
    let _ = child.kill();
    let _ = child.wait();
}

fn start_failed(log_path: &Path, from: u64, what: &str) -> CliError {
    let tail = read_tail(log_path, from, LOG_TAIL_LINES).unwrap_or_default();
    let mut message = format!("failed to start the SkyPilot API server: {what}.");
    if !tail.trim().is_empty() {
        message.push_str(&format!("\nLast lines of {}:\n{}", log_path.display(), tail.trim_end()));
    }
    CliError::new(message)
}

/// The last `lines` lines written to `path` after byte `from`.
fn read_tail(path: &Path, from: u64, lines: usize) -> std::io::Result<String> {
    let mut file = File::open(path)?;
    file.seek(SeekFrom::Start(from))?;
    let mut text = String::new();
    file.read_to_string(&mut text)?;
    let all: Vec<&str> = text.lines().collect();
    Ok(all[all.len().saturating_sub(lines)..].join("\n"))
}
