//! Server settings, with the defaults a local server uses.

use std::{path::PathBuf, time::Duration};

use skypilot_api::{config::sky_dir, endpoint::DEFAULT_PORT, proto::skypilot::v1::ServerMode};

use crate::{auth::Caller, ops::EngineConfig};

/// How a server runs.
#[derive(Debug, Clone)]
pub struct ServerConfig {
    /// Where the store, operation logs, lock and pid files live.
    pub data_dir: PathBuf,
    pub host: String,
    /// 0 picks a free port (tests).
    pub port: u16,
    pub mode: ServerMode,
    pub engine: EngineConfig,
    /// Finished operations are removed after this many hours; negative keeps them.
    pub retention_hours: f64,
    /// Job logs of torn-down clusters are removed after this many hours;
    /// negative keeps them, 0 removes them at teardown.
    pub job_logs_retention_hours: f64,
    /// How much users may upload, and how long uploads are kept.
    pub uploads: crate::uploads::UploadLimits,
    /// How long running operations get to finish at shutdown.
    pub shutdown_grace: Duration,
    /// How often idle clusters are checked against their autostop setting.
    pub autostop_check_interval: Duration,
    /// Serve TLS with this certificate chain and private key (PEM files).
    pub tls: Option<TlsFiles>,
    /// Authenticate every call but health and reflection (a team deployment).
    pub require_auth: bool,
    /// Allow listening beyond loopback without authentication.
    pub insecure_no_auth: bool,
    /// The first admin, "USER:PASSWORD" or a file holding that
    /// (`SKYPILOT_INITIAL_BASIC_AUTH`); a random password is made without it.
    pub initial_basic_auth: Option<String>,
    /// A service-account token ("sky_..." or a file holding it) registered for
    /// the first admin (`SKYPILOT_INITIAL_SERVICE_ACCOUNT_TOKEN`).
    pub initial_service_account_token: Option<String>,
    /// Browser origins allowed to call over gRPC-Web ("*": any); none by default.
    pub cors_allow_origins: Vec<String>,
    /// Also serve `grpc.health.v1` alone, in plaintext, on this port (for
    /// Kubernetes probes, which cannot speak TLS); 0 picks a free port.
    pub health_port: Option<u16>,
    /// Also serve `/metrics` alone, without credentials, in plaintext, on
    /// this port (for a scraper inside the cluster); 0 picks a free port.
    pub metrics_port: Option<u16>,
    /// Serve the dashboard from this folder (its build: index.html, app.js,
    /// app.css) instead of the copy built into the binary.
    pub dashboard_dir: Option<PathBuf>,
    /// Identity for calls that carry none; default: the user running the server.
    pub owner: Option<Caller>,
    /// Whether the local infra (this host) takes clusters.
    pub local_infra: LocalInfraMode,
    /// SSH node pools (SkyPilot's `ssh_node_pools.yaml`); None: the server
    /// user's `~/.sky/ssh_node_pools.yaml`, when it exists.
    pub ssh_node_pools: Option<PathBuf>,
    /// Slurm clusters (SkyPilot's `~/.slurm/config`); None: the server
    /// user's `~/.slurm/config`, when it exists.
    pub slurm_config: Option<PathBuf>,
}

/// Whether the local infra takes clusters, and as whom its jobs run. As the
/// server's own user is fine for a local server, which is its owner's alone;
/// on a deployed server every user's jobs could then read the server's
/// store, keys and each other's work, so there they run under uids of their
/// own (one per cluster) when the server runs as root, and the local infra
/// is off otherwise, unless the admin says otherwise.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum LocalInfraMode {
    /// A local server: on, as the server's user. A deployed one: a uid per
    /// cluster when it can, else off.
    #[default]
    Auto,
    Off,
    /// On, with every job sharing the server's identity.
    SharedServerIdentity,
    /// On, each cluster under a uid of its own (the server must run as root).
    UidPerCluster,
}

impl ServerConfig {
    /// `~/.sky/api_server`: the local server's data dir.
    pub fn default_data_dir() -> PathBuf {
        sky_dir().join("api_server")
    }

    /// A local server on loopback with its data in `data_dir`.
    pub fn local(data_dir: PathBuf) -> ServerConfig {
        ServerConfig {
            data_dir,
            host: "127.0.0.1".into(),
            port: DEFAULT_PORT,
            mode: ServerMode::Local,
            engine: EngineConfig::default(),
            retention_hours: 24.0,
            job_logs_retention_hours: 168.0,
            uploads: crate::uploads::UploadLimits {
                max_tree_bytes: 4 << 30,
                quota_bytes: 20 << 30,
                retention_hours: 24.0,
            },
            shutdown_grace: Duration::from_secs(10),
            autostop_check_interval: Duration::from_secs(10),
            tls: None,
            require_auth: false,
            insecure_no_auth: false,
            initial_basic_auth: None,
            initial_service_account_token: None,
            health_port: None,
            cors_allow_origins: Vec::new(),
            owner: None,
            local_infra: LocalInfraMode::Auto,
            ssh_node_pools: None,
            slurm_config: None,
            metrics_port: None,
            dashboard_dir: None,
        }
    }
}

/// The PEM files of a TLS server.
#[derive(Debug, Clone)]
pub struct TlsFiles {
    pub cert: PathBuf,
    pub key: PathBuf,
}
