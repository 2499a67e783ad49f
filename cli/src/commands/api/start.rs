//! `sky api start`: running the API server in this process (`--foreground`)
//! or in the background.

use std::path::PathBuf;

use skypilot_api::{Endpoint, EndpointSource, proto::skypilot::v1::ServerMode};
use skypilot_server::{LocalInfraMode, Server, ServerConfig, TlsFiles};

use crate::{
    connect::{BackgroundStart, server_log_path, start_background},
    error::{CliError, CliResult},
};

/// Options of `sky api start`.
#[derive(Debug, clap::Args)]
pub struct StartArgs {
    /// Address to listen on (default 127.0.0.1; 0.0.0.0 with --deploy).
    #[arg(long)]
    host: Option<String>,
    /// Port to listen on (default 46580).
    #[arg(long)]
    port: Option<u16>,
    /// Run in this process instead of in the background.
    #[arg(long)]
    pub foreground: bool,
    /// Run as a team deployment: credentials required, listens on all interfaces by default.
    #[arg(long)]
    deploy: bool,
    /// Serve TLS with this certificate chain (PEM); needs --tls-key.
    #[arg(long, requires = "tls_key")]
    tls_cert: Option<PathBuf>,
    /// The TLS private key (PEM); needs --tls-cert.
    #[arg(long, requires = "tls_cert")]
    tls_key: Option<PathBuf>,
    /// Serve without authentication even beyond loopback (dangerous).
    #[arg(long)]
    insecure_no_auth: bool,
    /// Where the server keeps its state (default ~/.sky/api_server).
    #[arg(long, env = "SKYPILOT_API_SERVER_DATA_DIR")]
    data_dir: Option<PathBuf>,
    /// Seconds running requests get to finish when the server is asked to stop.
    #[arg(long, env = "SKYPILOT_SHUTDOWN_GRACE_SECONDS", default_value_t = 10)]
    shutdown_grace_seconds: u64,
    /// Log format of the server.
    #[arg(long, value_enum, default_value = "text", env = "SKYPILOT_LOG_FORMAT")]
    log_format: LogFormat,
    /// Also serve grpc.health.v1 alone, in plaintext, on this port (for probes that cannot speak TLS).
    #[arg(long, env = "SKYPILOT_HEALTH_PORT")]
    health_port: Option<u16>,
    /// Let web pages from this origin call over gRPC-Web (repeat or comma-separate; "*": any).
    #[arg(long = "cors-allow-origin", env = "SKYPILOT_CORS_ALLOW_ORIGINS", value_delimiter = ',')]
    cors_allow_origins: Vec<String>,
    /// Hours finished requests and their logs are kept; negative keeps them forever.
    #[arg(
        long,
        env = "SKYPILOT_REQUESTS_RETENTION_HOURS",
        default_value_t = 24.0,
        allow_negative_numbers = true
    )]
    requests_retention_hours: f64,
    /// Hours the job logs of torn-down clusters are kept; negative keeps them forever.
    #[arg(
        long,
        env = "SKYPILOT_JOB_LOGS_RETENTION_HOURS",
        default_value_t = 168.0,
        allow_negative_numbers = true
    )]
    job_logs_retention_hours: f64,
    /// The most one upload (a client's workdir or file mount) may hold, in MiB.
    #[arg(long, env = "SKYPILOT_UPLOAD_MAX_MIB", default_value_t = 4096)]
    upload_max_mib: u64,
    /// The most each user's uploads may add up to, in MiB.
    #[arg(long, env = "SKYPILOT_UPLOAD_QUOTA_MIB_PER_USER", default_value_t = 20480)]
    upload_quota_mib_per_user: u64,
    /// Hours an upload no launch used is kept; negative keeps uploads forever.
    #[arg(
        long,
        env = "SKYPILOT_UPLOADS_RETENTION_HOURS",
        default_value_t = 24.0,
        allow_negative_numbers = true
    )]
    uploads_retention_hours: f64,
    /// Whether the local infra (this host) takes clusters. auto: on for a local server; for a
    /// deployed one, uid-per-cluster when the server runs as root, else off. uid-per-cluster:
    /// each cluster's jobs run under a uid of their own, which reads and signals nothing of the
    /// server's or of other clusters (needs root). shared-server-identity: on, and every user's
    /// jobs then run as the server's own user, able to read its data and each other's jobs.
    #[arg(long, env = "SKYPILOT_LOCAL_INFRA", value_enum, default_value = "auto")]
    local_infra: LocalInfraArg,
    /// SkyPilot's SSH node pools file (default: ~/.sky/ssh_node_pools.yaml, when it exists).
    #[arg(long, env = "SKYPILOT_SSH_NODE_POOLS", value_name = "FILE")]
    ssh_node_pools: Option<PathBuf>,
    /// SkyPilot's Slurm configuration: one `Host` per Slurm cluster, naming its login node
    /// (default: ~/.slurm/config, when it exists).
    #[arg(long, env = "SKYPILOT_SLURM_CONFIG", value_name = "FILE")]
    slurm_config: Option<PathBuf>,
    /// Also serve Prometheus metrics (/metrics) alone, without credentials, in plaintext, on
    /// this port (for a scraper inside the cluster). On the API port itself /metrics needs the
    /// same credentials as any call.
    #[arg(long, env = "SKYPILOT_METRICS_PORT", value_name = "PORT")]
    metrics_port: Option<u16>,
    /// Serve the dashboard from this folder (its build: index.html, app.js, app.css) instead of
    /// the copy built into the server, to work on the dashboard without rebuilding the server.
    #[arg(long, env = "SKYPILOT_DASHBOARD_DIR", value_name = "DIR")]
    dashboard_dir: Option<PathBuf>,
    /// Unfinished requests one user may have; more are refused until some finish.
    #[arg(long, env = "SKYPILOT_MAX_REQUESTS_PER_USER", default_value_t = 2_000)]
    max_requests_per_user: usize,
    /// MiB of request data (tasks, envs, secrets) one user's unfinished requests may hold.
    #[arg(long, env = "SKYPILOT_MAX_REQUEST_MIB_PER_USER", default_value_t = 256)]
    max_request_mib_per_user: usize,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum LocalInfraArg {
    Auto,
    Off,
    SharedServerIdentity,
    UidPerCluster,
}

impl LocalInfraArg {
    fn mode(self) -> LocalInfraMode {
        match self {
            LocalInfraArg::Auto => LocalInfraMode::Auto,
            LocalInfraArg::Off => LocalInfraMode::Off,
            LocalInfraArg::SharedServerIdentity => LocalInfraMode::SharedServerIdentity,
            LocalInfraArg::UidPerCluster => LocalInfraMode::UidPerCluster,
        }
    }

    fn flag(self) -> &'static str {
        match self {
            LocalInfraArg::Auto => "--local-infra=auto",
            LocalInfraArg::Off => "--local-infra=off",
            LocalInfraArg::SharedServerIdentity => "--local-infra=shared-server-identity",
            LocalInfraArg::UidPerCluster => "--local-infra=uid-per-cluster",
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum LogFormat {
    Text,
    Json,
}

impl StartArgs {
    /// `sky api start`: start in the background unless a server already answers.
    pub async fn run(self) -> CliResult {
        let port = self.port()?;
        let host = self.host();
        let connect_host =
            if host == "0.0.0.0" || host == "::" { "127.0.0.1".to_string() } else { host.clone() };
        let scheme = if self.tls_cert.is_some() { "https" } else { "http" };
        let mut endpoint = Endpoint::parse(
            &format!("{scheme}://{}", join_host_port(&connect_host, port)),
            EndpointSource::LocalDefault,
        )
        .map_err(|problem| CliError::new(format!("invalid --host/--port: {problem}")))?;
        endpoint.ca_cert = Endpoint::resolve().ok().and_then(|configured| configured.ca_cert);
        let identity = crate::connect::identity()?;
        if skypilot_api::Client::connect(&endpoint, &identity).await.is_ok() {
            println!("SkyPilot API server is already running at {}", endpoint.display());
            return Ok(());
        }
        let data_dir = self.data_dir();
        let start = BackgroundStart {
            host,
            port,
            deploy: self.deploy,
            insecure_no_auth: self.insecure_no_auth,
            tls: self.tls_cert.clone().zip(self.tls_key.clone()),
            data_dir: data_dir.clone(),
            settings: self.settings(),
        };
        start_background(&endpoint, &start).await?;
        println!("\u{251c}\u{2500}\u{2500} SkyPilot API server: {}", endpoint.display());
        println!(
            "\u{2514}\u{2500}\u{2500} View API server logs at: {}",
            server_log_path(&data_dir).display()
        );
        Ok(())
    }

    /// `sky api start --foreground`: serve until SIGTERM or SIGINT.
    pub fn run_foreground(self) -> CliResult {
        init_tracing(self.log_format);
        // Jobs run as this user: keep them from reading this process's
        // environment (initial credentials) and memory through /proc.
        // SAFETY: prctl(PR_SET_DUMPABLE) takes plain integers and touches no memory of ours.
        unsafe { libc::prctl(libc::PR_SET_DUMPABLE, 0, 0, 0, 0) };
        let mut config = ServerConfig::local(self.data_dir());
        config.host = self.host();
        config.port = self.port()?;
        config.mode = if self.deploy { ServerMode::Deploy } else { ServerMode::Local };
        config.require_auth = self.deploy && !self.insecure_no_auth;
        config.insecure_no_auth = self.insecure_no_auth;
        config.shutdown_grace = std::time::Duration::from_secs(self.shutdown_grace_seconds);
        config.retention_hours = self.requests_retention_hours;
        config.job_logs_retention_hours = self.job_logs_retention_hours;
        config.uploads = skypilot_server::UploadLimits {
            max_tree_bytes: self.upload_max_mib.saturating_mul(1 << 20),
            quota_bytes: self.upload_quota_mib_per_user.saturating_mul(1 << 20),
            retention_hours: self.uploads_retention_hours,
        };
        config.local_infra = self.local_infra.mode();
        config.ssh_node_pools = self.ssh_node_pools.clone();
        config.slurm_config = self.slurm_config.clone();
        config.metrics_port = self.metrics_port;
        config.dashboard_dir = self.dashboard_dir.clone();
        config.engine.max_requests_per_user = self.max_requests_per_user;
        config.engine.max_request_bytes_per_user = self.max_request_mib_per_user.saturating_mul(1 << 20);
        config.health_port = self.health_port;
        config.cors_allow_origins = self.cors_allow_origins.clone();
        if let (Some(cert), Some(key)) = (&self.tls_cert, &self.tls_key) {
            config.tls = Some(TlsFiles { cert: cert.clone(), key: key.clone() });
        }
        let secret_env = |name: &str| std::env::var(name).ok().filter(|v| !v.is_empty());
        config.initial_basic_auth = secret_env("SKYPILOT_INITIAL_BASIC_AUTH");
        config.initial_service_account_token = secret_env("SKYPILOT_INITIAL_SERVICE_ACCOUNT_TOKEN");
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .enable_all()
            .build()
            .map_err(|err| CliError::new(format!("cannot start the async runtime: {err}")))?;
        runtime.block_on(async {
            // Listen for signals before the server says it serves, so that a stop
            // that follows at once is graceful too.
            use tokio::signal::unix::{SignalKind, signal};
            let mut terminate = signal(SignalKind::terminate())?;
            let mut interrupt = signal(SignalKind::interrupt())?;
            let server = Server::new(config).start().await.map_err(|err| CliError::new(err.to_string()))?;
            let failure = tokio::select! {
                _ = terminate.recv() => None,
                _ = interrupt.recv() => None,
                err = server.store_failed() => Some(err),
            };
            if let Some(err) = &failure {
                tracing::error!(
                    error = %err,
                    "the store can no longer write; stopping so that a restart recovers it from disk \
                     (free space on the data volume first)"
                );
            }
            let stopped = server.shutdown().await;
            match failure {
                Some(err) => Err(CliError::new(format!("the API server stopped: {err}"))),
                None => stopped.map_err(|err| CliError::new(err.to_string())),
            }
        })
    }

    fn host(&self) -> String {
        self.host.clone().unwrap_or_else(|| if self.deploy { "0.0.0.0" } else { "127.0.0.1" }.into())
    }

    fn port(&self) -> CliResult<u16> {
        match self.port {
            Some(port) => Ok(port),
            None => Ok(Endpoint::local_default()?.port),
        }
    }

    fn data_dir(&self) -> PathBuf {
        self.data_dir.clone().unwrap_or_else(ServerConfig::default_data_dir)
    }

    /// The settings a background server must be started with, as flags.
    fn settings(&self) -> Vec<String> {
        let mut flags = vec![
            format!("--shutdown-grace-seconds={}", self.shutdown_grace_seconds),
            format!("--requests-retention-hours={}", self.requests_retention_hours),
            format!("--job-logs-retention-hours={}", self.job_logs_retention_hours),
            format!("--upload-max-mib={}", self.upload_max_mib),
            format!("--upload-quota-mib-per-user={}", self.upload_quota_mib_per_user),
            format!("--uploads-retention-hours={}", self.uploads_retention_hours),
            self.local_infra.flag().to_string(),
            format!("--max-requests-per-user={}", self.max_requests_per_user),
            format!("--max-request-mib-per-user={}", self.max_request_mib_per_user),
        ];
        if let Some(port) = self.health_port {
            flags.push(format!("--health-port={port}"));
        }
        if let Some(port) = self.metrics_port {
            flags.push(format!("--metrics-port={port}"));
        }
        if let Some(file) = &self.ssh_node_pools {
            // The background server starts elsewhere: the file by its full path.
            let file = std::path::absolute(file).unwrap_or_else(|_| file.clone());
            flags.push(format!("--ssh-node-pools={}", file.display()));
        }
        if let Some(file) = &self.slurm_config {
            let file = std::path::absolute(file).unwrap_or_else(|_| file.clone());
            flags.push(format!("--slurm-config={}", file.display()));
        }
        if let Some(dir) = &self.dashboard_dir {
            let dir = std::path::absolute(dir).unwrap_or_else(|_| dir.clone());
            flags.push(format!("--dashboard-dir={}", dir.display()));
        }
        for origin in &self.cors_allow_origins {
            flags.push(format!("--cors-allow-origin={origin}"));
        }
        flags.push(
            match self.log_format {
                LogFormat::Json => "--log-format=json",
                LogFormat::Text => "--log-format=text",
            }
            .into(),
        );
        flags
    }
}

fn init_tracing(format: LogFormat) {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let ansi = std::io::IsTerminal::is_terminal(&std::io::stderr());
    let builder =
        tracing_subscriber::fmt().with_env_filter(filter).with_ansi(ansi).with_writer(std::io::stderr);
    match format {
        LogFormat::Text => builder.init(),
        LogFormat::Json => builder.json().init(),
    }
}

fn join_host_port(host: &str, port: u16) -> String {
    if host.contains(':') { format!("[{host}]:{port}") } else { format!("{host}:{port}") }
}
