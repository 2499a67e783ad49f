//! The server process: takes the data-dir lock, binds the port, opens the
//! store, recovers the engine, serves gRPC (with health and reflection) and
//! shuts down in order: NOT_SERVING, stop accepting, drain, flush.

use std::{
    fmt,
    fs::{self, File},
    io,
    net::SocketAddr,
    path::PathBuf,
    sync::Arc,
    time::Duration,
};

use futures_util::StreamExt;
use skypilot_api::{
    identity::Identity,
    proto::{FILE_DESCRIPTOR_SET, skypilot::v1::ServerMode},
};
use tokio::{net::TcpListener, sync::oneshot, task::JoinHandle};
use tokio_stream::wrappers::TcpListenerStream;
use tonic_health::{ServingStatus, server::HealthReporter};

use crate::{
    auth::{Accounts, AuthLayer, Caller, FirstAdmin},
    clock::join_within,
    clusters::Clusters,
    config::{LocalInfraMode, ServerConfig, TlsFiles},
    data_dir::{DataDir, DataDirError},
    error::{Error, Result},
    grpc::{
        ApiVersionLayer, BrowserGuardLayer, DashboardLayer, MeteringLayer, MetricsEndpointLayer,
        MetricsListener, MetricsSource, Services, Shared, cors_layer, is_loopback_host,
    },
    health::{HealthListener, set_health},
    infra::{Infras, local::LocalInfra, run_as, slurm, slurm::SlurmInfra, ssh, ssh::pool::SshPool},
    kinds::{self, autostop_loop},
    managed::{self, Controller},
    ops::{Engine, OperationKind, log::LogDir},
    retention::Retention,
    store::Store,
    uploads::Uploads,
};

/// Why a deployed server's local infra is off, as `sky check` and refused
/// launches say.
const LOCAL_INFRA_OFF: &str = "off on this team API server: its jobs would run as the server's own \
    user, able to read the server's data and every other user's jobs. An admin may run each cluster \
    under a uid of its own (`sky api start --local-infra uid-per-cluster`, the server running as \
    root), or turn it on knowingly with `--local-infra shared-server-identity` (chart value \
    server.localInfra)";

/// The SSH node pools of `config`, read at start: a bad pool file stops the
/// server with a message that names the pool, host and field.
fn ssh_pools(config: &ServerConfig, data_dir: &DataDir) -> Result<Vec<Arc<SshPool>>, StartError> {
    let (home, me) = home_and_user();
    ssh::load(config.ssh_node_pools.as_deref(), &home, &me, &data_dir.ssh()).map_err(StartError::SshNodePools)
}

/// The Slurm clusters of `config`, read at start: a bad configuration stops
/// the server with a message that names the line.
fn slurm_clusters(config: &ServerConfig, data_dir: &DataDir) -> Result<Vec<Arc<SlurmInfra>>, StartError> {
    let (home, me) = home_and_user();
    slurm::load(config.slurm_config.as_deref(), &home, &me, &data_dir.slurm()).map_err(StartError::Slurm)
}

/// The server user's home, and name (ssh's own default user).
fn home_and_user() -> (PathBuf, String) {
    let me = std::env::var("USER").or_else(|_| std::env::var("LOGNAME")).unwrap_or_else(|_| "root".into());
    let home = std::env::var_os("HOME").map(PathBuf::from).unwrap_or_else(|| PathBuf::from("/"));
    (home, me)
}

/// The local infra as `config.local_infra` asks for it on this server.
fn local_infra(config: &ServerConfig, data_dir: &DataDir) -> Result<LocalInfra, StartError> {
    let clusters = data_dir.clusters();
    let with_cluster_uids = || -> Result<LocalInfra, String> {
        run_as::check_usable(run_as::FIRST_CLUSTER_UID)?;
        data_dir.open_to_cluster_uids()?;
        LocalInfra::with_cluster_uids(clusters.clone(), run_as::FIRST_CLUSTER_UID)
            .map_err(|err| format!("cannot prepare {}: {err}", clusters.display()))
    };
    Ok(match config.local_infra {
        LocalInfraMode::Auto if config.mode != ServerMode::Deploy => LocalInfra::new(clusters),
        LocalInfraMode::Auto => with_cluster_uids().unwrap_or_else(|why| {
            LocalInfra::off(clusters.clone(), format!("{LOCAL_INFRA_OFF}. Uids per cluster: {why}"))
        }),
        LocalInfraMode::Off => LocalInfra::off(clusters, LOCAL_INFRA_OFF.to_string()),
        LocalInfraMode::SharedServerIdentity => LocalInfra::new(clusters),
        LocalInfraMode::UidPerCluster => with_cluster_uids().map_err(StartError::LocalInfra)?,
    })
}

/// Why the server could not start.
#[derive(Debug)]
pub enum StartError {
    DataDir(DataDirError),
    PortInUse { host: String, port: u16 },
    Bind { address: String, source: io::Error },
    Store(Error),
    Reflection(String),
    Insecure { host: String },
    Tls(String),
    Cors(String),
    LocalInfra(String),
    SshNodePools(String),
    Slurm(String),
    Dashboard(String),
}

impl fmt::Display for StartError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            StartError::DataDir(err) => write!(f, "{err}"),
            StartError::PortInUse { host, port } => write!(
                f,
                "port {port} on {host} is already in use (another API server or program is \
                 listening there); stop it or choose another port with --port"
            ),
            StartError::Bind { address, source } => {
                write!(f, "cannot listen on {address}: {source}")
            }
            StartError::Store(err) => write!(f, "{err}"),
            StartError::Reflection(err) => write!(f, "cannot set up server reflection: {err}"),
            StartError::Tls(err) => write!(f, "cannot set up TLS: {err}"),
            StartError::Cors(err) => write!(f, "cannot set up CORS: {err}"),
            StartError::SshNodePools(why) | StartError::Slurm(why) | StartError::Dashboard(why) => {
                write!(f, "{why}")
            }
            StartError::LocalInfra(why) => write!(
                f,
                "cannot run clusters under uids of their own (--local-infra uid-per-cluster): {why}"
            ),
            StartError::Insecure { host } => write!(
                f,
                "refusing to listen on {host} without authentication: use --deploy (credentials \
                 required), a loopback address, or --insecure-no-auth if you really mean it"
            ),
        }
    }
}

impl std::error::Error for StartError {}

impl From<DataDirError> for StartError {
    fn from(err: DataDirError) -> StartError {
        StartError::DataDir(err)
    }
}

/// A server to start.
pub struct Server {
    config: ServerConfig,
    extra_kinds: Vec<Arc<dyn OperationKind>>,
}

impl Server {
    pub fn new(config: ServerConfig) -> Server {
        Server { config, extra_kinds: Vec::new() }
    }

    /// Registers an operation kind besides the built-in ones.
    pub fn with_kind(mut self, kind: Arc<dyn OperationKind>) -> Server {
        self.extra_kinds.push(kind);
        self
    }

    /// Starts serving; returns once the server answers health checks as SERVING.
    pub async fn start(self) -> Result<RunningServer, StartError> {
        let config = self.config;
        // Settings are checked before the data directory is touched. The first
        // admin's are needed only for a store without users, so an error in
        // them counts only then.
        let first_admin = config.require_auth.then(|| {
            FirstAdmin::parse(
                config.initial_basic_auth.as_deref(),
                config.initial_service_account_token.as_deref(),
            )
        });
        if !config.require_auth && !config.insecure_no_auth && !is_loopback_host(&config.host) {
            return Err(StartError::Insecure { host: config.host.clone() });
        }
        // Flow-control windows that let an upload stream at disk speed
        // rather than wait for a window update every 64 KiB.
        let mut builder = tonic::transport::Server::builder()
            .initial_stream_window_size(Some(4 << 20))
            .initial_connection_window_size(Some(16 << 20));
        if let Some(files) = &config.tls {
            builder =
                builder.tls_config(tls_config(files)?).map_err(|err| StartError::Tls(err.to_string()))?;
        }
        check_cors(&config)?;
        let cors = cors_layer(&config.cors_allow_origins).map_err(StartError::Cors)?;
        let browsers = BrowserGuardLayer::new(
            &config.cors_allow_origins,
            is_loopback_host(&config.host),
            config.require_auth,
        );
        let dashboard = DashboardLayer::new(config.dashboard_dir.clone()).map_err(StartError::Dashboard)?;
        let dir = config.data_dir.clone();
        let dir_err = |source| StartError::DataDir(DataDirError::Io { dir: dir.clone(), source });
        let (data_dir, lock) = DataDir::take(&dir)?;

        if !config.require_auth && !is_loopback_host(&config.host) {
            tracing::warn!(
                host = %config.host,
                "AUTHENTICATION IS OFF on a non-loopback address: anyone who reaches this port can run \
                 commands as anyone"
            );
        }
        let listener = bind(&config.host, config.port).await?;
        let local_addr = listener.local_addr().map_err(|source| StartError::Bind {
            address: format!("{}:{}", config.host, config.port),
            source,
        })?;
        let health_listener = match config.health_port {
            Some(port) => Some(bind(&config.host, port).await?),
            None => None,
        };
        let metrics_listener = match config.metrics_port {
            Some(port) => Some(bind(&config.host, port).await?),
            None => None,
        };

        let (health, health_service) = tonic_health::server::health_reporter();
        let health_service_for_probes = health_service.clone();
        let health_service_for_metrics = health_service.clone();
        set_health(&health, ServingStatus::NotServing).await;

        let store = Store::open(&data_dir.store()).map_err(StartError::Store)?;
        let close_on_error = CloseOnError(Some(store.clone()));
        let logs = LogDir::open(data_dir.operation_logs()).map_err(dir_err)?;
        let infra = Arc::new(local_infra(&config, &data_dir)?);
        let infras = Infras::new(infra, ssh_pools(&config, &data_dir)?, slurm_clusters(&config, &data_dir)?);
        let clusters = Clusters::open(store.clone(), infras, data_dir.archived_job_logs())
            .await
            .map_err(StartError::Store)?;
        let uploads = Uploads::open(data_dir.uploads(), config.uploads.clone()).map_err(dir_err)?;
        let controller =
            Controller::new(store.clone(), clusters.clone(), uploads.clone(), data_dir.managed_jobs())
                .map_err(StartError::Store)?;
        let mut all_kinds = kinds::all(&clusters, &uploads);
        all_kinds.extend(managed::kinds::all(&controller, &clusters, &uploads));
        all_kinds.extend(self.extra_kinds);
        let engine =
            Engine::start(store.clone(), logs, all_kinds, &config.engine).await.map_err(StartError::Store)?;
        controller.start(engine.clone()).map_err(StartError::Store)?;

        let accounts = config.require_auth.then(|| Arc::new(Accounts::new(store.clone())));
        if let (Some(accounts), Some(first_admin)) = (&accounts, first_admin) {
            let generated = accounts.bootstrap(first_admin).await.map_err(StartError::Store)?;
            if let Some(password) = generated {
                // Not in the log, which others may read: in a file only the
                // server's user can.
                let file = data_dir.initial_admin_password();
                write_private(&file, &format!("{password}\n")).map_err(dir_err)?;
                tracing::warn!(
                    file = %file.display(),
                    "created the initial admin user 'admin'; its password is in the file named here \
                     (readable by the server's user only): log in, change it with \
                     `sky users set-password`, then delete the file"
                );
            }
        }
        let owner = config.owner.clone().unwrap_or_else(|| {
            Identity::current()
                .map(|me| Caller::local(me.name, me.id))
                .unwrap_or_else(|_| Caller::local("unknown", "unknown"))
        });
        let services = Services::new(Arc::new(Shared {
            engine: engine.clone(),
            clusters: clusters.clone(),
            managed: controller.clone(),
            accounts: accounts.clone(),
            mode: config.mode,
            uploads: uploads.clone(),
            owner,
        }));
        let reflection_v1 = tonic_reflection::server::Builder::configure()
            .register_encoded_file_descriptor_set(FILE_DESCRIPTOR_SET)
            .register_encoded_file_descriptor_set(tonic_health::pb::FILE_DESCRIPTOR_SET)
            .build_v1()
            .map_err(|err| StartError::Reflection(err.to_string()))?;
        let reflection_v1alpha = tonic_reflection::server::Builder::configure()
            .register_encoded_file_descriptor_set(FILE_DESCRIPTOR_SET)
            .register_encoded_file_descriptor_set(tonic_health::pb::FILE_DESCRIPTOR_SET)
            .build_v1alpha()
            .map_err(|err| StartError::Reflection(err.to_string()))?;

        // A local server is its owner's alone: connections from other Unix
        // users of the host are closed at once.
        let owner_only = !config.require_auth && is_loopback_host(&config.host);
        let incoming = TcpListenerStream::new(listener)
            .filter(move |stream| std::future::ready(!owner_only || stream.as_ref().is_ok_and(from_owner)))
            .map(|stream| {
                stream.inspect(|tcp| {
                    let _ = tcp.set_nodelay(true);
                })
            });
        let (stop_serving, stopped) = oneshot::channel::<()>();
        let metrics_source =
            MetricsSource { engine: engine.clone(), clusters: clusters.clone(), store: store.clone() };
        // Pages from origins not allowed (and, on a local server, calls to a
        // host that is not a loopback one) are refused first; the dashboard's
        // files and `/metrics` are answered next (the latter with the same
        // credentials as a call). gRPC-Web (for
        // browsers) arrives over HTTP/1.1 and is translated to gRPC before the
        // calls are counted and the version and auth checks see them.
        let router = builder
            .accept_http1(true)
            .layer(tower::util::option_layer(cors))
            .layer(browsers)
            .layer(dashboard)
            .layer(MetricsEndpointLayer::new(metrics_source.clone(), accounts.clone()))
            .layer(tonic_web::GrpcWebLayer::new())
            .layer(MeteringLayer)
            .layer(ApiVersionLayer)
            .layer(AuthLayer::new(accounts.clone()))
            .add_service(health_service)
            .add_service(reflection_v1)
            .add_service(reflection_v1alpha)
            .add_service(services.operations)
            .add_service(services.requests)
            .add_service(services.server)
            .add_service(services.infra)
            .add_service(services.clusters)
            .add_service(services.jobs)
            .add_service(services.managed_jobs)
            .add_service(services.users)
            .add_service(services.uploads);
        let serve = tokio::spawn(async move {
            router
                .serve_with_incoming_shutdown(incoming, async {
                    let _ = stopped.await;
                })
                .await
        });
        let health_only = health_listener.map(|listener| {
            let health_only = HealthListener::start(listener, health_service_for_probes);
            let address = health_only.local_addr();
            tracing::info!(address = ?address, "serving grpc.health.v1 alone in plaintext");
            health_only
        });
        let metrics_only = metrics_listener.map(|listener| {
            let metrics_only = MetricsListener::start(listener, metrics_source, health_service_for_metrics);
            tracing::info!(address = ?metrics_only.local_addr(), "serving /metrics alone in plaintext, without credentials");
            metrics_only
        });
        let retention = Retention {
            request_hours: config.retention_hours,
            job_log_hours: config.job_logs_retention_hours,
            job_log_archive: data_dir.archived_job_logs(),
            uploads: Some(uploads),
        };
        let retention = tokio::spawn(retention.run(engine.clone()));
        let autostop =
            tokio::spawn(autostop_loop(clusters.clone(), engine.clone(), config.autostop_check_interval));

        write_private(&data_dir.pid_file(), &format!("{}\n{local_addr}\n", std::process::id()))
            .map_err(dir_err)?;
        close_on_error.disarm();
        set_health(&health, ServingStatus::Serving).await;
        tracing::info!(address = %local_addr, data_dir = %dir.display(), "API server is serving");
        Ok(RunningServer {
            local_addr,
            engine,
            clusters,
            controller,
            store,
            autostop,
            health,
            stop_serving,
            serve,
            retention,
            health_only,
            metrics_only,
            grace: config.shutdown_grace,
            data_dir: dir,
            _lock: lock,
        })
    }
}

/// A running server.
pub struct RunningServer {
    local_addr: SocketAddr,
    engine: Engine,
    clusters: Clusters,
    controller: Controller,
    store: Store,
    autostop: JoinHandle<()>,
    health: HealthReporter,
    stop_serving: oneshot::Sender<()>,
    serve: JoinHandle<Result<(), tonic::transport::Error>>,
    retention: JoinHandle<()>,
    health_only: Option<HealthListener>,
    metrics_only: Option<MetricsListener>,
    grace: Duration,
    data_dir: PathBuf,
    _lock: File,
}

impl RunningServer {
    /// The address the server listens on (its port when started with port 0).
    pub fn local_addr(&self) -> SocketAddr {
        self.local_addr
    }

    /// Resolves once the store can no longer write (a full or failing disk).
    /// The store then refuses every write until it is opened again, so the
    /// process should stop: a restart recovers from what is on disk.
    pub async fn store_failed(&self) -> Error {
        self.store.failed().await
    }

    /// The plaintext health-only listener's address, when one was asked for.
    pub fn health_addr(&self) -> Option<SocketAddr> {
        self.health_only.as_ref().and_then(HealthListener::local_addr)
    }

    /// The metrics-only listener's address, when one was asked for.
    pub fn metrics_addr(&self) -> Option<SocketAddr> {
        self.metrics_only.as_ref().and_then(MetricsListener::local_addr)
    }

    /// The clusters and jobs layer, for embedding and tests.
    pub fn clusters(&self) -> &Clusters {
        &self.clusters
    }

    /// The engine, for embedding and tests.
    pub fn engine(&self) -> &Engine {
        &self.engine
    }

    /// Shuts down: NOT_SERVING, stop accepting, let running operations finish
    /// within the grace period, flush the store, release the data dir.
    pub async fn shutdown(self) -> Result<()> {
        tracing::info!("API server shutting down");
        set_health(&self.health, ServingStatus::NotServing).await;
        let _ = self.stop_serving.send(());
        self.retention.abort();
        let _ = self.retention.await;
        self.autostop.abort();
        let _ = self.autostop.await;
        // Managed jobs stop being driven; each goes on from its recorded step at the next start.
        self.controller.shutdown().await;
        let drained = self.engine.shutdown(self.grace).await;
        // Job processes keep running; they are reconciled at the next start.
        self.clusters.shutdown().await;
        let closed = self.store.close();
        // In-flight calls end once the engine is down (streams end at
        // shutdown); give them a moment, then stop serving regardless.
        join_within(self.serve, Duration::from_secs(2)).await;
        if let Some(metrics_only) = self.metrics_only {
            metrics_only.stop().await;
        }
        if let Some(health_only) = self.health_only {
            health_only.stop().await;
        }
        let _ = fs::remove_file(self.data_dir.join("server.pid"));
        tracing::info!("API server stopped");
        drained.and(closed)
    }
}

/// Closes the store when a start fails after opening it, so that the data
/// directory is free for the next attempt.
struct CloseOnError(Option<Store>);

impl CloseOnError {
    fn disarm(mut self) {
        self.0 = None;
    }
}

impl Drop for CloseOnError {
    fn drop(&mut self) {
        if let Some(store) = self.0.take() {
            let _ = store.close();
        }
    }
}

/// Refuses `--cors-allow-origin '*'` on a server without authentication: any
/// web page the server's users open could then run jobs as them. Other
/// origins are allowed with a warning, as they can too.
fn check_cors(config: &ServerConfig) -> Result<(), StartError> {
    if config.require_auth || config.cors_allow_origins.is_empty() {
        return Ok(());
    }
    if config.cors_allow_origins.iter().any(|origin| origin.trim() == "*") {
        return Err(StartError::Cors(
            "--cors-allow-origin '*' lets every web page call this server, which requires no \
             credentials: name the origins of the pages you trust, or require credentials (--deploy)"
                .into(),
        ));
    }
    tracing::warn!(
        origins = ?config.cors_allow_origins,
        "web pages from these origins may call this server, which requires no credentials: \
         they can run commands as its users"
    );
    Ok(())
}

/// Whether a connection to a local server comes from the server's own Unix
/// user (or root). Where the host cannot tell (not Linux), it is let in.
fn from_owner(stream: &tokio::net::TcpStream) -> bool {
    use skypilot_api::peer::{connection_owner, own_uid};
    if !cfg!(target_os = "linux") {
        return true;
    }
    let (Ok(peer), Ok(local)) = (stream.peer_addr(), stream.local_addr()) else { return false };
    let owner = connection_owner(peer, local);
    let allowed = owner.is_some_and(|uid| uid == 0 || Some(uid) == own_uid());
    if !allowed {
        tracing::warn!(?owner, %peer, "refused a connection from another Unix user: this local server is its owner's");
    }
    allowed
}

/// Writes `text` to a new file that only the server's user may read.
fn write_private(path: &std::path::Path, text: &str) -> io::Result<()> {
    use std::{io::Write as _, os::unix::fs::OpenOptionsExt as _};
    let mut file = fs::OpenOptions::new().create(true).truncate(true).write(true).mode(0o600).open(path)?;
    file.write_all(text.as_bytes())?;
    file.sync_all()
}

/// The server's TLS identity from its PEM files.
fn tls_config(files: &TlsFiles) -> Result<tonic::transport::ServerTlsConfig, StartError> {
    let read = |path: &std::path::Path| {
        fs::read(path).map_err(|err| StartError::Tls(format!("cannot read {}: {err}", path.display())))
    };
    let identity = tonic::transport::Identity::from_pem(read(&files.cert)?, read(&files.key)?);
    Ok(tonic::transport::ServerTlsConfig::new().identity(identity))
}

async fn bind(host: &str, port: u16) -> Result<TcpListener, StartError> {
    let address = format!("{host}:{port}");
    TcpListener::bind(&address).await.map_err(|source| {
        if source.kind() == io::ErrorKind::AddrInUse {
            StartError::PortInUse { host: host.to_string(), port }
        } else {
            StartError::Bind { address, source }
        }
    })
}
