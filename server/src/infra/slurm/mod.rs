//! Slurm clusters as infras (`slurm/<name>`), as SkyPilot runs tasks on
//! them: every command goes to the cluster's login node over SSH (`config`
//! names it), where the Slurm client commands run as the configured user
//! (`commands`).
//!
//! - A SkyPilot cluster is one Slurm allocation, named
//!   `sky-<cluster>-<server id>` and held by a batch step that sleeps, with
//!   one task per node: `provision` submits it (`sbatch`) and waits while
//!   Slurm queues it, `release` cancels it (`scancel`). Ranks are the
//!   allocation's nodes in Slurm's order, and their addresses its node names.
//!   Slurm cannot stop an allocation and resume it, so `sky stop` is refused
//!   and autostop releases it.
//! - A run is an `srun --overlap` step on its node inside the allocation,
//!   started from a detached process on the login node that appends the
//!   step's output to the job's log and keeps its exit code there: the SSH
//!   infra's runtime (`ssh::runtime`), so runs outlive the API server and
//!   are found again after a restart, never started twice.
//! - Files live in the login user's home, which Slurm's compute nodes share
//!   (as on most Slurm clusters): each node's home is
//!   `~/.sky-api/clusters/<cluster>/node-<rank>`, as on an SSH host.
//! - An allocation that Slurm ends (time limit, a failed node, `scancel` by
//!   an admin) loses its runs: they end `Lost` with Slurm's state, and
//!   `nodes` reports the cluster's nodes gone with it.

mod commands;
pub mod config;
#[cfg(test)]
mod tests;

use std::{
    collections::HashMap,
    path::Path,
    sync::{Arc, Mutex},
    time::Duration,
};

use futures_util::future::BoxFuture;
use tokio_util::task::TaskTracker;

use self::commands::Allocation;
use super::{
    Capacity, HostReport, Infra, InfraStatus, LogChanges, NodeState, Nodes, Provisioned, RunEnd, RunHandle,
    RunRef, RunSpec,
    files::node_relative_path,
    ssh::{
        connection::{Ssh, SshError},
        pool::infra_error,
        pools::Host,
        remote,
        runtime::{self, HostRunner, Look, RunWatch},
        transfer,
    },
};
use crate::error::{Error, ErrorReason, Result};

/// How long one ordinary command on the login node may take.
const COMMAND_TIMEOUT: Duration = Duration::from_secs(60);
/// How often a queued allocation (and an ending one) is looked at, at first and at most.
const POLL_FIRST: Duration = Duration::from_millis(100);
const POLL_MAX: Duration = Duration::from_secs(2);
/// How many times an ending allocation is looked at again (about 45 s in
/// all: Slurm gives a step's processes KillWait, 30 s by default, to end).
const ENDING_POLLS: usize = 50;
/// How long the login node may not answer before a run is taken for lost.
const LOGIN_LOST_AFTER: Duration = Duration::from_secs(15);

/// Why `sky stop` is refused on Slurm.
const CANNOT_STOP: &str = "a Slurm allocation cannot be stopped and resumed (its nodes go back to Slurm): \
    tear the cluster down instead (sky down), or let autostop release it (sky autostop --down)";

/// One Slurm cluster, reached through its login node.
pub struct SlurmInfra {
    /// `slurm/<name>`.
    name: String,
    login: Host,
    ssh: Arc<Ssh>,
    /// Names this server's allocations apart from other servers' of the same user.
    server_id: String,
    /// The allocations last seen, by cluster.
    allocations: Mutex<HashMap<String, Allocation>>,
    /// Why the login node did not answer when last reached.
    unreachable: Mutex<Option<String>>,
    /// Terminations under way, waited for at shutdown.
    kills: TaskTracker,
}

/// The Slurm clusters of `file` (when given, it must exist; else the server
/// user's `~/.slurm/config`, when it exists), with SSH state (pinned host
/// keys, control sockets) and this server's id in `state_dir`.
pub fn load(
    file: Option<&Path>,
    home: &Path,
    user: &str,
    state_dir: &Path,
) -> Result<Vec<Arc<SlurmInfra>>, String> {
    let default = home.join(".slurm/config");
    let clusters = match file {
        Some(file) => config::load(file, home, user)?,
        None if default.exists() => config::load(&default, home, user)?,
        None => Vec::new(),
    };
    if clusters.is_empty() {
        return Ok(Vec::new());
    }
    for cluster in &clusters {
        super::ssh::connection::check_identity_file(&cluster.login)?;
    }
    let keep = |err: std::io::Error| format!("cannot keep Slurm state in {}: {err}", state_dir.display());
    let ssh = Arc::new(Ssh::new(state_dir.join("ssh")).map_err(keep)?);
    clusters
        .into_iter()
        .map(|cluster| SlurmInfra::new(cluster, ssh.clone(), state_dir).map(Arc::new).map_err(keep))
        .collect()
}

/// This server's id, made on first use and kept in `state_dir`.
fn server_id(state_dir: &Path) -> std::io::Result<String> {
    let file = state_dir.join("server-id");
    if let Ok(id) = std::fs::read_to_string(&file)
        && id.trim().len() == 8
    {
        return Ok(id.trim().to_string());
    }
    std::fs::create_dir_all(state_dir)?;
    let id = skypilot_api::identity::random_hex(4).map_err(|err| std::io::Error::other(err.to_string()))?;
    std::fs::write(&file, &id)?;
    Ok(id)
}

impl SlurmInfra {
    /// The Slurm cluster reached through its login node with `ssh`, with
    /// this server's id kept in `state_dir`.
    pub fn new(
        cluster: config::SlurmCluster,
        ssh: Arc<Ssh>,
        state_dir: &Path,
    ) -> std::io::Result<SlurmInfra> {
        Ok(SlurmInfra {
            name: format!("slurm/{}", cluster.name),
            login: cluster.login,
            ssh,
            server_id: server_id(state_dir)?,
            allocations: Mutex::default(),
            unreachable: Mutex::default(),
            kills: TaskTracker::new(),
        })
    }

    /// The Slurm job name of `cluster`'s allocation.
    fn job_name(&self, cluster: &str) -> String {
        format!("sky-{cluster}-{}", self.server_id)
    }

    /// Runs `script` on the login node, noting whether it answered.
    async fn reach(&self, script: &str) -> std::result::Result<Vec<u8>, SshError> {
        let result = self.ssh.run(&self.login, script, COMMAND_TIMEOUT).await;
        let mut unreachable = self.unreachable.lock().unwrap_or_else(|p| p.into_inner());
        match &result {
            Ok(_) | Err(SshError::Failed { .. }) => *unreachable = None,
            Err(err) => *unreachable = Some(err.to_string()),
        }
        result
    }

    /// Slurm's nodes, as `sinfo` on the login node reports them.
    async fn slurm_nodes(&self) -> Result<Vec<commands::SlurmNode>> {
        let output = self.run_script(&self.login, commands::SINFO).await?;
        let nodes = commands::parse_sinfo(&String::from_utf8_lossy(&output));
        match nodes.is_empty() {
            true => Err(Error::new(
                ErrorReason::Unavailable,
                format!("sinfo on {} lists no nodes: is Slurm up there?", self.login.label()),
            )),
            false => Ok(nodes),
        }
    }

    /// The newest allocation of `cluster` that Slurm knows, asked now.
    async fn lookup(&self, cluster: &str) -> Result<Option<Allocation>> {
        let output = self.run_script(&self.login, &commands::lookup(&self.job_name(cluster))).await?;
        let found = commands::parse_lookup(&String::from_utf8_lossy(&output));
        let mut known = self.allocations.lock().unwrap_or_else(|p| p.into_inner());
        match &found {
            Some(allocation) => known.insert(cluster.to_string(), allocation.clone()),
            None => known.remove(cluster),
        };
        Ok(found)
    }

    /// The running allocation of `cluster` (as last seen, else asked now).
    async fn running(&self, cluster: &str) -> Result<Allocation> {
        let seen = self.allocations.lock().unwrap_or_else(|p| p.into_inner()).get(cluster).cloned();
        let allocation = match seen {
            Some(allocation) if allocation.running() => Some(allocation),
            _ => self.lookup(cluster).await?,
        };
        match allocation {
            Some(allocation) if allocation.running() => Ok(allocation),
            Some(allocation) => Err(Error::new(
                ErrorReason::FailedPrecondition,
                format!(
                    "the Slurm allocation {} of cluster {cluster:?} is not running: {}; tear the cluster down \
                     (sky down {cluster}) and launch it again",
                    allocation.job_id,
                    allocation.describe()
                ),
            )),
            None => {
                Err(Error::not_found(format!("cluster {cluster:?} has no Slurm allocation on {}", self.name)))
            }
        }
    }

    /// Whether `allocation` waits on a partition limit that holds for good:
    /// its partition has fewer nodes of the size asked for than it asks for,
    /// counting those down or drained (which may come back).
    async fn beyond_partition(&self, allocation: &Allocation, nodes: &Nodes) -> Result<bool> {
        if !allocation.waits_on_partition() {
            return Ok(false);
        }
        let in_partition = |partition: &String| match &nodes.region {
            Some(region) => partition.trim_end_matches('*') == region,
            None => partition.ends_with('*'),
        };
        let big_enough = self
            .slurm_nodes()
            .await?
            .iter()
            .filter(|node| node.partitions.iter().any(in_partition))
            .filter(|node| {
                node.cpus as f64 >= nodes.cpus.ceil()
                    && node.memory_mib as f64 >= nodes.memory_gib * 1024.0
                    && node.gpus.len() >= nodes.gpus as usize
            })
            .count();
        Ok(big_enough < nodes.count.max(1) as usize)
    }

    /// The node of `rank` in `allocation`.
    fn node<'a>(&self, cluster: &str, allocation: &'a Allocation, rank: i32) -> Result<&'a str> {
        usize::try_from(rank).ok().and_then(|rank| allocation.nodes.get(rank)).map(String::as_str).ok_or_else(
            || Error::not_found(format!("cluster {cluster:?} has no node {rank} on {}", self.name)),
        )
    }

    /// How a run whose process ended with `end` ended, now that the
    /// allocation may have ended under it.
    async fn ended(&self, run: &RunRef, end: RunEnd) -> RunEnd {
        // An allocation that is ending says why only once it has ended
        // (Slurm waits for its steps first): wait a while for that.
        let mut found = self.lookup(&run.cluster).await;
        let mut pause = POLL_FIRST;
        for _ in 0..ENDING_POLLS {
            match &found {
                Ok(Some(allocation)) if allocation.state == "COMPLETING" => {
                    tokio::time::sleep(pause).await;
                    pause = (pause * 2).min(Duration::from_secs(1));
                    found = self.lookup(&run.cluster).await;
                }
                _ => break,
            }
        }
        match found {
            Ok(Some(allocation)) if allocation.running() => end,
            Ok(Some(allocation)) => RunEnd::Lost(format!(
                "the Slurm allocation {} of cluster {:?} ended: {}",
                allocation.job_id,
                run.cluster,
                allocation.describe()
            )),
            Ok(None) => {
                RunEnd::Lost(format!("the Slurm allocation of cluster {:?} is gone from Slurm", run.cluster))
            }
            Err(_) => end,
        }
    }
}

impl HostRunner for SlurmInfra {
    fn ssh(&self) -> &Ssh {
        &self.ssh
    }

    async fn run_script(&self, _host: &Host, script: &str) -> Result<Vec<u8>> {
        self.reach(script).await.map_err(infra_error)
    }
}

impl Infra for SlurmInfra {
    fn name(&self) -> &str {
        &self.name
    }

    /// Slurm's partitions and nodes (one report per node), or why the
    /// login node or Slurm cannot be used.
    fn check(&self) -> BoxFuture<'_, InfraStatus> {
        Box::pin(async move {
            let nodes = match self.slurm_nodes().await {
                Ok(nodes) => nodes,
                Err(err) => return InfraStatus::new(&self.name, false, err.message),
            };
            let mut partitions: Vec<&str> = Vec::new();
            for partition in nodes.iter().flat_map(|node| &node.partitions) {
                if !partitions.contains(&partition.as_str()) {
                    partitions.push(partition);
                }
            }
            commands::sort_partitions(&mut partitions);
            let usable = nodes.iter().filter(|node| node.usable()).count();
            let mut detail = format!(
                "login node {}; partitions {} (* default); {usable} of {} nodes usable",
                self.login.label(),
                partitions.join(", "),
                nodes.len()
            );
            let hosts: Vec<HostReport> = nodes
                .iter()
                .map(|node| {
                    let gpus = match node.gpus.len() {
                        0 => "no GPUs".to_string(),
                        n => format!("{n} GPU(s): {}", node.gpus.join(", ")),
                    };
                    HostReport {
                        host: node.name.clone(),
                        address: node.name.clone(),
                        ready: node.usable(),
                        detail: format!(
                            "{}: {}, {} CPUs, {:.1} GiB memory, {gpus}; partitions {}",
                            node.name,
                            node.state,
                            node.cpus,
                            node.memory_mib as f64 / 1024.0,
                            node.partitions.join(", ")
                        ),
                        capacity: Some(node.capacity()),
                        host_key: None,
                    }
                })
                .collect();
            for host in &hosts {
                detail.push('\n');
                detail.push_str(&host.detail);
            }
            InfraStatus { name: self.name.clone(), enabled: usable > 0, detail, hosts, capacity: None }
        })
    }

    fn disabled(&self) -> Option<&str> {
        None
    }

    fn stop_refused(&self) -> Option<&str> {
        Some(CANNOT_STOP)
    }

    /// The largest usable node.
    fn capacity(&self) -> BoxFuture<'_, Result<Capacity>> {
        Box::pin(async move {
            let nodes = self.slurm_nodes().await?;
            nodes
                .iter()
                .filter(|node| node.usable())
                .map(|node| node.capacity())
                .max_by_key(|c| c.cpus)
                .ok_or_else(|| {
                    Error::new(
                        ErrorReason::Unavailable,
                        format!("no node of {} takes jobs (sinfo)", self.name),
                    )
                })
        })
    }

    fn check_destination(&self, dest: &str) -> Result<(), String> {
        node_relative_path(dest).map(|_| ())
    }

    /// Submits the allocation unless Slurm has it already, and waits while
    /// Slurm queues it.
    fn provision<'a>(&'a self, cluster: &'a str, nodes: &'a Nodes) -> BoxFuture<'a, Result<Provisioned>> {
        Box::pin(async move {
            let mut submitted = false;
            let mut pause = POLL_FIRST;
            let allocation = loop {
                match self.lookup(cluster).await? {
                    Some(allocation) if allocation.running() => break allocation,
                    Some(allocation)
                        if allocation.never_starts() || self.beyond_partition(&allocation, nodes).await? =>
                    {
                        self.run_script(&self.login, &commands::cancel(&self.job_name(cluster))).await?;
                        return Err(Error::new(
                            ErrorReason::ResourceExhausted,
                            format!(
                                "{} will never start the allocation of cluster {cluster:?} ({}): it asks for more \
                                 than its partition has or allows; ask for fewer nodes, CPUs, memory or GPUs (sky \
                                 check {} lists its nodes)",
                                self.name,
                                allocation.describe(),
                                self.name
                            ),
                        ));
                    }
                    Some(allocation) if allocation.waiting() => {
                        tokio::time::sleep(pause).await;
                        pause = (pause * 2).min(POLL_MAX);
                    }
                    Some(allocation) if submitted => {
                        return Err(Error::new(
                            ErrorReason::Unavailable,
                            format!(
                                "Slurm ended allocation {} of cluster {cluster:?} before it started: {}",
                                allocation.job_id,
                                allocation.describe()
                            ),
                        ));
                    }
                    _ => {
                        let script =
                            commands::submit(&self.job_name(cluster), nodes, nodes.region.as_deref());
                        self.reach(&script)
                            .await
                            .map_err(|err| refused_submission(&self.name, cluster, err))?;
                        submitted = true;
                    }
                }
            };
            let ranks: Vec<i32> = (0..allocation.nodes.len() as i32).collect();
            self.run_script(&self.login, &remote::provision(cluster, &ranks)).await?;
            Ok(Provisioned { addresses: allocation.nodes, gpu_indices: Vec::new() })
        })
    }

    /// Each node of the allocation, reachable while it runs; a queued
    /// allocation is one node that says why it waits.
    fn nodes<'a>(&'a self, cluster: &'a str, refresh: bool) -> BoxFuture<'a, Vec<NodeState>> {
        Box::pin(async move {
            let seen = self.allocations.lock().unwrap_or_else(|p| p.into_inner()).get(cluster).cloned();
            let allocation = match seen {
                Some(allocation) if !refresh && allocation.running() => Some(allocation),
                _ => match self.lookup(cluster).await {
                    Ok(found) => found,
                    Err(err) => {
                        return vec![NodeState {
                            host: self.login.label(),
                            reachable: false,
                            detail: err.message,
                        }];
                    }
                },
            };
            let Some(allocation) = allocation else { return Vec::new() };
            let job = format!("Slurm job {}", allocation.job_id);
            if allocation.nodes.is_empty() {
                let detail = match allocation.waiting() {
                    true => format!("queued in Slurm: {}", allocation.describe()),
                    false => format!("the allocation ended: {}", allocation.describe()),
                };
                return vec![NodeState { host: job, reachable: false, detail }];
            }
            allocation
                .nodes
                .iter()
                .map(|node| NodeState {
                    host: format!("{node} ({job})"),
                    reachable: allocation.running(),
                    detail: match allocation.running() {
                        true => String::new(),
                        false => format!("the allocation ended: {}", allocation.describe()),
                    },
                })
                .collect()
        })
    }

    /// Cancels the allocation and removes the cluster's files; with
    /// `purge`, a login node that does not answer is not waited for.
    fn release<'a>(&'a self, cluster: &'a str, purge: bool) -> BoxFuture<'a, Result<()>> {
        Box::pin(async move {
            let script = format!("{}{}", commands::cancel(&self.job_name(cluster)), remote::release(cluster));
            match self.run_script(&self.login, &script).await {
                Err(err) if purge && err.reason == ErrorReason::Unavailable => {
                    tracing::warn!(cluster, login = %self.login.label(), error = %err, "purged: the cluster's allocation and files are left to Slurm and the login node");
                }
                result => {
                    result?;
                }
            }
            self.allocations.lock().unwrap_or_else(|p| p.into_inner()).remove(cluster);
            Ok(())
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
            let dest = format!(
                "{}/{}",
                remote::node_home(cluster, rank),
                remote::quote(&relative.to_string_lossy())
            );
            transfer::send(&self.ssh, &self.login, source, &dest).await
        })
    }

    fn start<'a>(&'a self, spec: &'a RunSpec) -> BoxFuture<'a, Result<RunHandle>> {
        Box::pin(async move {
            let run = &spec.run;
            let allocation = self.running(&run.cluster).await?;
            let node = self.node(&run.cluster, &allocation, run.rank)?;
            let marker = skypilot_api::identity::random_hex(8)?;
            let script = commands::step_script(run, &allocation, node, &marker, &spec.script);
            let log = remote::job_log(&run.cluster, run.job_id);
            runtime::start(self, &self.login, spec, &script, &log).await
        })
    }

    fn find<'a>(&'a self, run: &'a RunRef) -> BoxFuture<'a, Option<RunHandle>> {
        Box::pin(async move { runtime::find(self, &self.login, run).await })
    }

    /// A login node that does not answer for `LOGIN_LOST_AFTER` loses the
    /// run; a run that ends because its allocation did is lost with it.
    fn wait<'a>(&'a self, run: &'a RunRef, handle: RunHandle) -> BoxFuture<'a, RunEnd> {
        Box::pin(async move {
            let poll = remote::poll(run, handle.pid, handle.start_ticks);
            let mut watch = RunWatch::new(LOGIN_LOST_AFTER);
            let end = loop {
                match watch.read(run, self.reach(&poll).await) {
                    Look::Running | Look::Unknown => {}
                    Look::Ended(end) => break end,
                    Look::Lost(err) => {
                        return RunEnd::Lost(format!(
                            "the login node {} was lost: {err}",
                            self.login.label()
                        ));
                    }
                }
                watch.pause().await;
            };
            self.ended(run, end).await
        })
    }

    /// Ends the run's process on the login node (srun passes SIGTERM on to
    /// the step), then cancels the step where it outlived it.
    fn terminate(&self, cluster: &str, _rank: i32, handle: RunHandle) {
        let (login, ssh) = (self.login.clone(), self.ssh.clone());
        let allocation = self.allocations.lock().unwrap_or_else(|p| p.into_inner()).get(cluster).cloned();
        self.kills.spawn(async move {
            // In a subshell: it exits as soon as the process is gone.
            let mut script = format!("(\n{})\n", remote::terminate(handle.pid, handle.start_ticks));
            if let Some(allocation) = allocation {
                script += &commands::cancel_step(allocation.job_id, handle.pid);
            }
            if let Err(err) = ssh.run(&login, &script, COMMAND_TIMEOUT).await {
                tracing::warn!(login = %login.label(), error = %err, "could not end a run");
            }
        });
    }

    fn read_log<'a>(&'a self, cluster: &'a str, job_id: i64, offset: u64) -> BoxFuture<'a, Result<Vec<u8>>> {
        Box::pin(runtime::read_log(self, &self.login, cluster, job_id, offset))
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
        Box::pin(runtime::log_tail_offset(self, &self.login, cluster, job_id, lines))
    }

    fn archive_logs<'a>(&'a self, cluster: &'a str, dest: &'a Path) -> BoxFuture<'a, Result<usize>> {
        Box::pin(runtime::archive_logs(self, &self.login, cluster, dest))
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

/// Why Slurm refused an allocation, as the job layer reports it: a request
/// that no node can satisfy is exhausted; other refusals name Slurm's words.
fn refused_submission(infra: &str, cluster: &str, err: SshError) -> Error {
    let SshError::Failed { stderr, .. } = &err else { return infra_error(err) };
    let said = stderr.trim().trim_start_matches("sbatch: error: ").to_string();
    if said.contains("Invalid partition name") {
        return Error::invalid(
            "resources.infra",
            format!("{infra} has no such partition ({said}): `sky check {infra}` lists its partitions"),
        );
    }
    let reason = match said.contains("node configuration is not available")
        || said.contains("More processors requested than permitted")
        || said.contains("Memory required by task is not available")
        || said.contains("Requested node configuration")
        || said.contains("Invalid generic resource")
    {
        true => ErrorReason::ResourceExhausted,
        false => ErrorReason::FailedPrecondition,
    };
    Error::new(
        reason,
        format!(
            "{infra} refused the allocation of cluster {cluster:?}: {said}; ask for fewer nodes, CPUs, memory or GPUs (sky check {infra} lists its nodes)"
        ),
    )
}
