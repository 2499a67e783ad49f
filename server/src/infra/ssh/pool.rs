//! One SSH node pool as an infra (`ssh/<pool>`): places a cluster's nodes on
//! the pool's hosts, copies files there, runs jobs there detached, and reads
//! their state and logs back from the hosts themselves.
//!
//! A pool takes clusters once an admin brought it up (`sky ssh up`: each
//! host reached, its key pinned, probed and prepared), until it is taken
//! down (`sky ssh down`).
//!
//! Placement (`placement`): node ranks go to the hosts that fit what each
//! node needs (CPUs, memory, GPUs, as the hosts report them), one host per
//! node while there are enough (else nodes share hosts, as the local infra's
//! nodes share its host), each node holding GPU indices of its own.
//!
//! Logs: runs on the head node's host append to the job's log there; a run
//! on another host logs to a file of its own, appended to the job's log as
//! it grows (`worker_logs`).

use std::{
    collections::HashMap,
    path::{Path, PathBuf},
    sync::{
        Arc,
        atomic::{AtomicBool, Ordering},
    },
    time::Duration,
};

use futures_util::future::{BoxFuture, join_all};
use tokio_util::task::TaskTracker;

use super::{
    connection::{Ssh, SshError},
    placement::{self, Placement, Placements, Room},
    pools::{Host, Pool},
    remote,
    runtime::{self, HostRunner, Look, RunWatch},
    transfer,
    worker_logs::WorkerLog,
};
use crate::{
    error::{Error, ErrorReason, Result},
    infra::{
        Capacity, HostReport, Infra, InfraStatus, LogChanges, NodeState, Nodes, Provisioned, RunEnd,
        RunHandle, RunRef, RunSpec, files::node_relative_path,
    },
};

/// How long one ordinary command on a host may take.
const COMMAND_TIMEOUT: Duration = Duration::from_secs(60);
/// How long a node may not answer before its runs are taken for lost.
const NODE_LOST_AFTER: Duration = Duration::from_secs(15);

/// What a host reports about itself.
const PROBE: &str = r#"nproc
awk '/^MemTotal:/ {print $2}' /proc/meminfo
if command -v nvidia-smi >/dev/null 2>&1; then nvidia-smi --query-gpu=name --format=csv,noheader || true; fi
"#;

/// What a host needs for jobs (besides bash): `sky ssh up` checks for it,
/// and makes the folder every cluster lives in.
const PREPARE: &str = r#"missing=""
for tool in tar setsid nohup kill awk base64; do command -v "$tool" >/dev/null 2>&1 || missing="$missing $tool"; done
if [ -n "$missing" ]; then echo "missing commands:$missing; install them on the host" >&2; exit 3; fi
mkdir -p "$HOME/.sky-api/clusters" || exit 4
probe="$HOME/.sky-api/.write-test-$$"
if ! echo ok > "$probe" 2>/dev/null; then echo "cannot write to $HOME/.sky-api (disk full or read-only?)" >&2; exit 4; fi
rm -f "$probe"
"#;

/// A pool of SSH hosts.
pub struct SshPool {
    /// `ssh/<pool>`.
    name: String,
    pool: Pool,
    ssh: Arc<Ssh>,
    /// Where each cluster's nodes are.
    placements: Placements,
    /// One placement at a time, so that two clusters never count on the same room.
    placing: tokio::sync::Mutex<()>,
    /// Exists while the pool is up (`sky ssh up`, until `sky ssh down`).
    up_marker: PathBuf,
    up: AtomicBool,
    /// Why the pool takes no clusters while it is not up.
    not_up: String,
    /// Hosts that did not answer when last reached, and why.
    unreachable: std::sync::Mutex<HashMap<String, String>>,
    /// Terminations under way (SIGTERM, then SIGKILL), waited for at shutdown.
    kills: TaskTracker,
}

impl SshPool {
    /// The pool, with its state (placements, whether it is up) under `state`.
    pub fn new(pool: Pool, ssh: Arc<Ssh>, state: &Path) -> std::io::Result<SshPool> {
        let placements = Placements::new(state.join("placements").join(&pool.name))?;
        std::fs::create_dir_all(state.join("up"))?;
        let up_marker = state.join("up").join(&pool.name);
        let name = format!("ssh/{}", pool.name);
        Ok(SshPool {
            not_up: format!("not up: an admin brings it up with `sky ssh up --infra {name}`"),
            up: AtomicBool::new(up_marker.exists()),
            up_marker,
            name,
            pool,
            ssh,
            placements,
            placing: tokio::sync::Mutex::new(()),
            unreachable: std::sync::Mutex::default(),
            kills: TaskTracker::new(),
        })
    }

    /// `sky ssh up`: reaches every host (pinning its key on first use),
    /// probes it and prepares it; the pool is up once one host is ready.
    pub async fn up(&self) -> InfraStatus {
        let status = self.reach_every_host(true).await;
        if status.enabled {
            match std::fs::write(&self.up_marker, b"") {
                Ok(()) => self.up.store(true, Ordering::SeqCst),
                Err(err) => {
                    return InfraStatus::new(
                        &self.name,
                        false,
                        format!("cannot record that the pool is up ({}): {err}", self.up_marker.display()),
                    );
                }
            }
        }
        status
    }

    /// `sky ssh down`, first half: the pool takes no new clusters.
    pub fn take_down(&self) -> Result<()> {
        self.up.store(false, Ordering::SeqCst);
        match std::fs::remove_file(&self.up_marker) {
            Err(err) if err.kind() != std::io::ErrorKind::NotFound => Err(err.into()),
            _ => Ok(()),
        }
    }

    /// `sky ssh down`, once its clusters are gone: removes the runtime's
    /// folder from each host (where nothing is left in it), ends the
    /// connections and forgets the hosts' pinned keys.
    pub async fn forget(&self) -> Vec<String> {
        // A termination still under way would reach a host again after its
        // key is forgotten, and pin it anew.
        self.kills.close();
        self.kills.wait().await;
        self.kills.reopen();
        let mut problems = Vec::new();
        for host in &self.pool.hosts {
            if self.ssh.ready(host).await.is_ok() {
                let tidy = "rmdir \"$HOME/.sky-api/clusters\" \"$HOME/.sky-api\" 2>/dev/null; true";
                let _ = self.ssh.run(host, tidy, COMMAND_TIMEOUT).await;
            }
            if let Err(err) = self.ssh.forget(host).await {
                problems.push(format!("{}: {err}", host.label()));
            }
        }
        self.unreachable.lock().unwrap_or_else(|p| p.into_inner()).clear();
        problems
    }

    /// Each host's report; `prepare` also readies it for jobs.
    async fn reach_every_host(&self, prepare: bool) -> InfraStatus {
        let hosts = join_all(self.pool.hosts.iter().map(|host| self.report(host, prepare))).await;
        let ready = hosts.iter().filter(|host| host.ready).count();
        let mut detail = format!("{ready} of {} hosts ready", self.pool.hosts.len());
        for host in &hosts {
            detail.push('\n');
            detail.push_str(&host.detail);
        }
        InfraStatus { name: self.name.clone(), enabled: ready > 0, detail, hosts, capacity: None }
    }

    /// The hosts of the cluster's nodes, by rank; empty when it has none.
    fn placement(&self, cluster: &str) -> Result<Vec<&Host>> {
        let Some(placement) = self.placements.read(cluster)? else { return Ok(Vec::new()) };
        placement.nodes.iter().map(|node| self.host_labelled(cluster, &node.host)).collect()
    }

    fn host_labelled(&self, cluster: &str, label: &str) -> Result<&Host> {
        self.pool.hosts.iter().find(|host| host.label() == label).ok_or_else(|| {
            Error::new(
                ErrorReason::FailedPrecondition,
                format!(
                    "cluster {cluster:?} has a node on {label}, which is no longer in {}: put the host back in \
                     the pool file, or tear the cluster down (sky down {cluster})",
                    self.name
                ),
            )
        })
    }

    /// The host of node `rank`.
    fn host(&self, cluster: &str, rank: i32) -> Result<&Host> {
        let placement = self.placement(cluster)?;
        usize::try_from(rank).ok().and_then(|rank| placement.get(rank).copied()).ok_or_else(|| {
            Error::not_found(format!("cluster {cluster:?} has no node {rank} on {}", self.name))
        })
    }

    /// Picks a host for each node among those that answer and have room
    /// beside what other clusters hold.
    async fn place(&self, cluster: &str, nodes: &Nodes) -> Result<Placement> {
        let facts = join_all(self.pool.hosts.iter().map(|host| self.probe(host))).await;
        let mut held = self.placements.held_per_host(cluster);
        let mut rooms = Vec::new();
        let mut refusals = Vec::new();
        for (host, fact) in self.pool.hosts.iter().zip(facts) {
            match fact {
                Ok(capacity) => {
                    let label = host.label();
                    let held = held.remove(&label).unwrap_or_default();
                    rooms.push(Room { host: label, capacity, held });
                }
                Err(err) => refusals.push(err.to_string()),
            }
        }
        match placement::choose(rooms, nodes) {
            Ok(placed) => Ok(Placement { needs: nodes.clone(), nodes: placed }),
            Err(full) => {
                refusals.extend(full);
                Err(Error::new(
                    ErrorReason::ResourceExhausted,
                    format!(
                        "{} has no room for cluster {cluster:?} ({} node(s) of {} CPU(s), {} GiB memory, {} GPU(s)): \
                         {}. Ask for less, tear down other clusters, or add hosts to the pool",
                        self.name,
                        nodes.count,
                        nodes.cpus,
                        nodes.memory_gib,
                        nodes.gpus,
                        refusals.join("; ")
                    ),
                ))
            }
        }
    }

    /// Notes whether `host` answered.
    fn note<T>(&self, host: &Host, result: &std::result::Result<T, SshError>) {
        let mut unreachable = self.unreachable.lock().unwrap_or_else(|p| p.into_inner());
        match result {
            Ok(_) | Err(SshError::Failed { .. }) => {
                unreachable.remove(&host.label());
            }
            Err(err) => {
                unreachable.insert(host.label(), err.to_string());
            }
        }
    }

    /// Runs `script` on `host`, noting whether it answered.
    async fn reach(&self, host: &Host, script: &str) -> std::result::Result<Vec<u8>, SshError> {
        let result = self.ssh.run(host, script, COMMAND_TIMEOUT).await;
        self.note(host, &result);
        result
    }

    /// What `host` offers, asked over SSH.
    async fn probe(&self, host: &Host) -> std::result::Result<Capacity, SshError> {
        let output = self.reach(host, PROBE).await?;
        let text = String::from_utf8_lossy(&output);
        let mut lines = text.lines().map(str::trim);
        let bad = |what: &str| SshError::Failed {
            host: host.label(),
            code: Some(0),
            stderr: format!("the host did not report its {what} (is it Linux, with nproc and /proc?)"),
        };
        let cpus = lines.next().and_then(|line| line.parse().ok()).ok_or_else(|| bad("CPUs"))?;
        let kib: f64 = lines.next().and_then(|line| line.parse().ok()).ok_or_else(|| bad("memory"))?;
        let gpus = lines.filter(|line| !line.is_empty()).map(str::to_string).collect();
        Ok(Capacity { cpus, memory_gib: kib / (1024.0 * 1024.0), gpus })
    }

    /// `host` as it answers: ready, with what it offers and its key, or why
    /// not; `prepare` also readies it for jobs.
    async fn report(&self, host: &Host, prepare: bool) -> HostReport {
        let mut report = HostReport {
            host: host.label(),
            address: host.address.clone(),
            ready: false,
            detail: String::new(),
            capacity: None,
            host_key: None,
        };
        let probed = match self.probe(host).await {
            Ok(capacity) if prepare => self.reach(host, PREPARE).await.map(|_| capacity),
            probed => probed,
        };
        match probed {
            Ok(capacity) => {
                let gpus = match capacity.gpus.len() {
                    0 => "no GPUs".to_string(),
                    n => format!("{n} GPU(s): {}", capacity.gpus.join(", ")),
                };
                report.host_key = self.ssh.fingerprint(host).await;
                report.detail = format!(
                    "{}: ready, {} CPUs, {:.1} GiB memory, {gpus}; host key {}",
                    host.label(),
                    capacity.cpus,
                    capacity.memory_gib,
                    report.host_key.as_deref().unwrap_or("not pinned")
                );
                report.ready = true;
                report.capacity = Some(capacity);
            }
            // Every error names the host.
            Err(err) => report.detail = err.to_string(),
        }
        report
    }

    /// Runs `script` on `host`, as an infra error when it fails.
    async fn run(&self, host: &Host, script: &str) -> Result<Vec<u8>> {
        self.reach(host, script).await.map_err(infra_error)
    }
}

impl HostRunner for SshPool {
    fn ssh(&self) -> &Ssh {
        &self.ssh
    }

    async fn run_script(&self, host: &Host, script: &str) -> Result<Vec<u8>> {
        self.run(host, script).await
    }
}

impl Infra for SshPool {
    fn name(&self) -> &str {
        &self.name
    }

    /// A pool that is up reports each host; one that is not is not reached.
    fn check(&self) -> BoxFuture<'_, InfraStatus> {
        Box::pin(async move {
            match self.up.load(Ordering::SeqCst) {
                true => self.reach_every_host(false).await,
                false => InfraStatus::new(&self.name, false, &self.not_up),
            }
        })
    }

    fn disabled(&self) -> Option<&str> {
        (!self.up.load(Ordering::SeqCst)).then_some(self.not_up.as_str())
    }

    /// The largest host that answers.
    fn capacity(&self) -> BoxFuture<'_, Result<Capacity>> {
        Box::pin(async move {
            let facts = join_all(self.pool.hosts.iter().map(|host| self.probe(host))).await;
            facts.into_iter().flatten().max_by(|a, b| a.cpus.cmp(&b.cpus)).ok_or_else(|| {
                Error::new(ErrorReason::Unavailable, format!("no host of {} answers", self.name))
            })
        })
    }

    fn check_destination(&self, dest: &str) -> Result<(), String> {
        node_relative_path(dest).map(|_| ())
    }

    fn provision<'a>(&'a self, cluster: &'a str, nodes: &'a Nodes) -> BoxFuture<'a, Result<Provisioned>> {
        Box::pin(async move {
            let _one_at_a_time = self.placing.lock().await;
            let placement = match self.placements.read(cluster)? {
                Some(placement) if placement.nodes.len() == nodes.count as usize => placement,
                _ => {
                    let placement = self.place(cluster, nodes).await?;
                    self.placements.write(cluster, &placement)?;
                    placement
                }
            };
            let hosts = self.placement(cluster)?;
            let mut ranks_by_host: Vec<(&Host, Vec<i32>)> = Vec::new();
            for (rank, host) in hosts.iter().enumerate() {
                match ranks_by_host.iter_mut().find(|(known, _)| known.label() == host.label()) {
                    Some((_, ranks)) => ranks.push(rank as i32),
                    None => ranks_by_host.push((host, vec![rank as i32])),
                }
            }
            for (host, ranks) in &ranks_by_host {
                self.run(host, &remote::provision(cluster, ranks)).await?;
            }
            Ok(Provisioned {
                addresses: hosts.iter().map(|host| host.address.clone()).collect(),
                gpu_indices: placement.nodes.into_iter().flat_map(|node| node.gpus).collect(),
            })
        })
    }

    fn nodes<'a>(&'a self, cluster: &'a str, refresh: bool) -> BoxFuture<'a, Vec<NodeState>> {
        Box::pin(async move {
            let Ok(hosts) = self.placement(cluster) else { return Vec::new() };
            if refresh {
                let mut distinct = hosts.clone();
                distinct.dedup_by_key(|host| host.label());
                join_all(distinct.iter().map(|host| self.reach(host, "true"))).await;
            }
            let unreachable = self.unreachable.lock().unwrap_or_else(|p| p.into_inner());
            hosts
                .iter()
                .map(|host| {
                    let why = unreachable.get(&host.label());
                    NodeState {
                        host: host.label(),
                        reachable: why.is_none(),
                        detail: why.cloned().unwrap_or_default(),
                    }
                })
                .collect()
        })
    }

    fn release<'a>(&'a self, cluster: &'a str, purge: bool) -> BoxFuture<'a, Result<()>> {
        Box::pin(async move {
            let mut hosts = self.placement(cluster)?;
            hosts.dedup_by_key(|host| host.label());
            for host in hosts {
                match self.run(host, &remote::release(cluster)).await {
                    Err(err) if purge && err.reason == ErrorReason::Unavailable => {
                        tracing::warn!(cluster, host = %host.label(), error = %err, "purged: the cluster's files stay on a host that does not answer");
                    }
                    result => {
                        result?;
                    }
                }
            }
            self.placements.remove(cluster)
        })
    }

    fn copy_to_node<'a>(
        &'a self,
        cluster: &'a str,
        rank: i32,
        source: &'a Path,
        dest: &'a str,
    ) -> BoxFuture<'a, Result<()>> {
        Box::pin(async move {
            let relative = node_relative_path(dest).map_err(|err| Error::invalid("task.file_mounts", err))?;
            let host = self.host(cluster, rank)?;
            let dest = format!(
                "{}/{}",
                remote::node_home(cluster, rank),
                remote::quote(&relative.to_string_lossy())
            );
            transfer::send(&self.ssh, host, source, &dest).await
        })
    }

    fn start<'a>(&'a self, spec: &'a RunSpec) -> BoxFuture<'a, Result<RunHandle>> {
        Box::pin(async move {
            let run = &spec.run;
            let host = self.host(&run.cluster, run.rank)?;
            let head = self.host(&run.cluster, 0)?;
            let log = match host.label() == head.label() {
                true => remote::job_log(&run.cluster, run.job_id),
                false => remote::run_file(run, "log"),
            };
            runtime::start(self, host, spec, &spec.script, &log).await
        })
    }

    fn find<'a>(&'a self, run: &'a RunRef) -> BoxFuture<'a, Option<RunHandle>> {
        Box::pin(async move { runtime::find(self, self.host(&run.cluster, run.rank).ok()?, run).await })
    }

    /// A node that does not answer for `NODE_LOST_AFTER` is lost: its run
    /// ends so, and the job with it.
    fn wait<'a>(&'a self, run: &'a RunRef, handle: RunHandle) -> BoxFuture<'a, RunEnd> {
        Box::pin(async move {
            let (host, head) = match (self.host(&run.cluster, run.rank), self.host(&run.cluster, 0)) {
                (Ok(host), Ok(head)) => (host, head),
                (Err(err), _) | (_, Err(err)) => return RunEnd::Lost(err.message),
            };
            // A run on another host than the head's: its log, merged as it grows.
            let mut worker_log =
                (host.label() != head.label()).then(|| WorkerLog::new(&self.ssh, run, host, head));
            let poll = remote::poll(run, handle.pid, handle.start_ticks);
            let mut watch = RunWatch::new(NODE_LOST_AFTER);
            let end = loop {
                match watch.read(run, self.reach(host, &poll).await) {
                    Look::Running => {
                        if let Some(log) = worker_log.as_mut()
                            && let Err(err) = log.merge(false).await
                        {
                            tracing::warn!(cluster = %run.cluster, rank = run.rank, error = %err, "could not add a node's output to the job's log");
                        }
                    }
                    Look::Ended(end) => break end,
                    Look::Unknown => {}
                    Look::Lost(err) => {
                        return RunEnd::Lost(format!("node {} ({}) was lost: {err}", run.rank, host.label()));
                    }
                }
                watch.pause().await;
            };
            if let Some(log) = worker_log.as_mut()
                && let Err(err) = log.merge(true).await
            {
                tracing::warn!(cluster = %run.cluster, rank = run.rank, error = %err, "could not add a node's log to the job's log");
            }
            end
        })
    }

    fn terminate(&self, cluster: &str, rank: i32, handle: RunHandle) {
        let Ok(host) = self.host(cluster, rank) else { return };
        let (host, ssh) = (host.clone(), self.ssh.clone());
        self.kills.spawn(async move {
            let script = remote::terminate(handle.pid, handle.start_ticks);
            if let Err(err) = ssh.run(&host, &script, COMMAND_TIMEOUT).await {
                tracing::warn!(host = %host.label(), error = %err, "could not end a run");
            }
        });
    }

    fn read_log<'a>(&'a self, cluster: &'a str, job_id: i64, offset: u64) -> BoxFuture<'a, Result<Vec<u8>>> {
        Box::pin(async move {
            // A released cluster has no log left.
            let Some(head) = self.placement(cluster)?.first().copied() else { return Ok(Vec::new()) };
            runtime::read_log(self, head, cluster, job_id, offset).await
        })
    }

    fn log_changes(&self, _cluster: &str, _job_id: i64) -> Option<LogChanges> {
        None
    }

    fn log_tail_offset<'a>(
        &'a self,
        cluster: &'a str,
        job_id: i64,
        lines: u64,
    ) -> BoxFuture<'a, Result<u64>> {
        Box::pin(async move {
            let Some(head) = self.placement(cluster)?.first().copied() else { return Ok(0) };
            runtime::log_tail_offset(self, head, cluster, job_id, lines).await
        })
    }

    fn archive_logs<'a>(&'a self, cluster: &'a str, dest: &'a Path) -> BoxFuture<'a, Result<usize>> {
        Box::pin(async move {
            let Ok(head) = self.host(cluster, 0) else { return Ok(0) };
            runtime::archive_logs(self, head, cluster, dest).await
        })
    }

    fn settle(&self) -> BoxFuture<'_, ()> {
        Box::pin(async move {
            self.kills.close();
            self.kills.wait().await;
            self.kills.reopen();
            self.ssh.close().await;
        })
    }
}

/// An SSH failure as the job layer reports it: the host that did not
/// answer is unavailable (the request may be retried); others failed.
pub(crate) fn infra_error(err: SshError) -> Error {
    match err {
        SshError::Unreachable { .. } | SshError::TimedOut { .. } => {
            Error::new(ErrorReason::Unavailable, err.to_string())
        }
        SshError::HostKeyChanged { .. } | SshError::Denied { .. } => {
            Error::new(ErrorReason::FailedPrecondition, err.to_string())
        }
        SshError::Failed { .. } => Error::internal(err.to_string()),
    }
}

// Real sshd hosts for the tests (shared with the server's and the CLI's tests).
#[cfg(test)]
#[path = "../../../tests/common/unix_user.rs"]
#[allow(dead_code)]
pub(crate) mod unix_user;

#[cfg(test)]
#[path = "../../../tests/common/ssh_hosts.rs"]
#[allow(dead_code)]
pub(crate) mod ssh_hosts;

#[cfg(test)]
mod tests {
    use super::*;

    use super::ssh_hosts;

    fn pool_of(hosts: &ssh_hosts::SshHosts) -> Pool {
        let hosts = hosts
            .hosts
            .iter()
            .map(|host| Host {
                address: host.address.clone(),
                user: host.user.name.clone(),
                port: host.port,
                identity_file: Some(hosts.key.clone()),
            })
            .collect();
        Pool { name: "lab".into(), hosts }
    }

    #[tokio::test]
    async fn an_ssh_pool_keeps_the_infra_contract() {
        let hosts = ssh_hosts::SshHosts::start(2);
        let state = tempfile::tempdir().unwrap();
        let ssh = Arc::new(Ssh::new(state.path().join("ssh")).unwrap());
        let open = || SshPool::new(pool_of(&hosts), ssh.clone(), state.path()).unwrap();
        let reopen = || Box::new(open()) as Box<dyn Infra>;
        let pool = open();
        super::super::super::contract::check(&pool, &reopen, state.path()).await;
        ssh.close().await;
    }

    #[tokio::test]
    async fn runs_that_end_before_their_start_is_reported_still_report_their_exit_code() {
        let hosts = ssh_hosts::SshHosts::start(1);
        let state = tempfile::tempdir().unwrap();
        let ssh = Arc::new(Ssh::new(state.path().join("ssh")).unwrap());
        let pool = SshPool::new(pool_of(&hosts), ssh.clone(), state.path()).unwrap();
        pool.provision("quick", &Nodes::any(1)).await.unwrap();
        for job_id in 1..=20 {
            let spec = RunSpec {
                run: RunRef { cluster: "quick".into(), job_id, phase: "run", rank: 0 },
                script: format!("exit {}", job_id % 3),
                env: Vec::new(),
                log_prefix: String::new(),
            };
            let handle = pool.start(&spec).await.unwrap();
            assert_eq!(
                pool.wait(&spec.run, handle).await,
                RunEnd::Exited((job_id % 3) as i32),
                "job {job_id}"
            );
        }
        pool.release("quick", false).await.unwrap();
        ssh.close().await;
    }

    #[tokio::test]
    async fn a_folder_sent_again_sends_only_what_changed() {
        let hosts = ssh_hosts::SshHosts::start(1);
        let state = tempfile::tempdir().unwrap();
        let ssh = Arc::new(Ssh::new(state.path().join("ssh")).unwrap());
        let pool = SshPool::new(pool_of(&hosts), ssh.clone(), state.path()).unwrap();
        pool.provision("sync", &Nodes::any(1)).await.unwrap();
        let source = state.path().join("project");
        std::fs::create_dir_all(source.join("src")).unwrap();
        std::fs::write(source.join("kept.txt"), "original").unwrap();
        std::fs::write(source.join("src/train.py"), "v1").unwrap();
        pool.copy_to_node("sync", 0, &source, "~/sky_workdir").await.unwrap();
        let host = &hosts.hosts[0];
        let workdir = host.user.home.as_ref().unwrap().join(".sky-api/clusters/sync/node-0/sky_workdir");
        let workdir = workdir.display();
        // The host's copy of kept.txt is changed behind the server's back,
        // keeping its size and time: a file that is not sent again keeps it.
        let tamper = format!(
            "cd {workdir} && t=$(stat -c %Y kept.txt) && printf ORIGINAL > kept.txt && touch -d @$t kept.txt"
        );
        let tampered = host.run(&tamper);
        assert!(tampered.status.success(), "{}", String::from_utf8_lossy(&tampered.stderr));
        std::fs::write(source.join("src/train.py"), "version 2").unwrap();
        std::fs::write(source.join("new.txt"), "new").unwrap();
        pool.copy_to_node("sync", 0, &source, "~/sky_workdir").await.unwrap();
        let read = |file: &str| String::from_utf8(host.run(&format!("cat {workdir}/{file}")).stdout).unwrap();
        assert_eq!(read("kept.txt"), "ORIGINAL", "an unchanged file is not sent again");
        assert_eq!(read("src/train.py"), "version 2");
        assert_eq!(read("new.txt"), "new");
        pool.release("sync", false).await.unwrap();
        ssh.close().await;
    }

    #[tokio::test]
    async fn nodes_go_where_there_is_room_beside_other_clusters_and_the_rest_is_refused_with_what_is_free() {
        let hosts = ssh_hosts::SshHosts::start(2);
        let state = tempfile::tempdir().unwrap();
        let ssh = Arc::new(Ssh::new(state.path().join("ssh")).unwrap());
        let pool = SshPool::new(pool_of(&hosts), ssh.clone(), state.path()).unwrap();
        let cpus = pool.capacity().await.unwrap().cpus as f64;
        let nodes = |count, cpus| Nodes { count, cpus, ..Nodes::default() };
        // Two big nodes: one per host, each leaving half a CPU.
        let big = pool.provision("big", &nodes(2, cpus - 0.5)).await.unwrap();
        assert_eq!(
            big.addresses,
            [hosts.hosts[0].address.clone(), hosts.hosts[1].address.clone()],
            "one host per node"
        );
        let err = pool.provision("more", &nodes(1, 1.0)).await.unwrap_err();
        assert_eq!(err.reason, ErrorReason::ResourceExhausted);
        for host in &hosts.hosts {
            let free = format!("{}: 0.5 of {cpus} CPUs", host.label());
            assert!(err.message.contains(&free), "{free}: {err}");
        }
        assert_eq!(
            pool.provision("small", &nodes(1, 0.5)).await.unwrap().addresses.len(),
            1,
            "half a CPU is still free"
        );
        let huge = Nodes { count: 1, cpus: 100_000.0, gpus: 1, ..Nodes::default() };
        assert_eq!(pool.provision("huge", &huge).await.unwrap_err().reason, ErrorReason::ResourceExhausted);
        // What a released cluster held is free again.
        pool.release("big", false).await.unwrap();
        pool.provision("more", &nodes(1, 1.0)).await.unwrap();
        for cluster in ["small", "more"] {
            pool.release(cluster, false).await.unwrap();
        }
        ssh.close().await;
    }
}
