//! Where clusters run. The `Infra` trait is the one place that knows where a
//! cluster's nodes are and how a command runs on them; the job layer
//! (`clusters`) is written once above it and never spawns a process or
//! builds a path on a node. `local` (the API server's own host) is the first
//! implementation.
//!
//! # The contract
//!
//! - **Nodes** are addressed by cluster name and rank (0 is the head).
//!   `provision` makes a cluster's nodes exist (idempotently: a second call
//!   for the same cluster finds them) and returns each node's address, which
//!   jobs see as `SKYPILOT_NODE_IPS`; `release` removes them and everything
//!   on them. `capacity` says what one node offers, so that the job layer
//!   can refuse clusters that cannot fit.
//! - **Files**: `copy_to_node` copies a file or folder of the API server's
//!   host to a destination on a node, `~/`-relative (`~/sky_workdir`, a
//!   file mount). `check_destination` tells, before a request is accepted,
//!   whether a file mount destination is one the infra can place files at.
//! - **Runs**: one phase (setup or run) of one job on one node. `start`
//!   starts it detached: it keeps running when the API server stops or the
//!   connection to the node drops, with HOME set to the node's home, the
//!   working directory `~/sky_workdir`, the given environment, and its output
//!   appended (with the given line prefix) to the job's log. Its exit code is
//!   kept on the node. The returned `RunHandle` is recorded by the job layer;
//!   after a restart `wait` accepts a recorded handle (and says how the run
//!   ended: its exit code, killed, or its node lost), and `find` recovers
//!   the handle of a run that started but was not recorded yet. `terminate`
//!   ends a run and everything it started.
//! - **Logs**: a job has one log, the output of all its runs on all nodes,
//!   read from any byte offset (`read_log`, `log_tail_offset`); it lives
//!   with the cluster (on the head node for remote infras) and is moved to
//!   the API server's host by `archive_logs` before the cluster is released.
//!   `log_changes` wakes a follower when the log may have grown (where the
//!   infra cannot tell, the follower polls).
//! - **Availability**: `check` says whether the infra is usable and what it
//!   offers; `disabled` says why it takes no clusters (the admin turned it
//!   off, or an SSH node pool was not brought up): new clusters, jobs and
//!   starts are then refused. `nodes` says whether each node of a cluster
//!   answers.
//!
//! `contract.rs` holds the contract as a test that every implementation runs.
//!
//! A node reached over SSH keeps the same layout on the remote host (the
//! handle is the remote pid); a Slurm allocation maps nodes to the
//! allocation's hosts and runs to `srun` steps (the handle is the step); a
//! Kubernetes pod is a node whose runs are processes in the pod.

#[cfg(test)]
mod contract;
mod files;
pub mod local;
mod log_watch;
pub mod process;
pub mod run_as;
pub mod slurm;
pub mod ssh;

use std::path::Path;

use futures_util::future::BoxFuture;

use crate::error::{Error, Result};

/// One phase of one job on one node: the infra finds what it keeps for a
/// run (its script, pid and exit status) by this.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RunRef {
    pub cluster: String,
    pub job_id: i64,
    /// "setup" or "run".
    pub phase: &'static str,
    pub rank: i32,
}

/// A run to start.
#[derive(Debug, Clone)]
pub struct RunSpec {
    pub run: RunRef,
    /// A bash script.
    pub script: String,
    pub env: Vec<(String, String)>,
    /// Put before every line of output in the job's log, e.g. "(worker1, rank=1) ".
    pub log_prefix: String,
}

/// How to find a started run again, as the job layer records it. Opaque
/// above the contract: for local and SSH nodes the process id and its start
/// time (clock ticks since boot, which tell a reused pid apart).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RunHandle {
    pub pid: u32,
    pub start_ticks: u64,
}

/// How a run ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RunEnd {
    /// With this exit code.
    Exited(i32),
    /// Killed before it could record an exit code.
    Killed,
    /// Its node stopped answering (the reason, naming the node, for the job's message).
    Lost(String),
}

impl RunEnd {
    /// The run's exit code; None when it has none.
    pub fn code(&self) -> Option<i32> {
        match self {
            RunEnd::Exited(code) => Some(*code),
            RunEnd::Killed | RunEnd::Lost(_) => None,
        }
    }
}

/// Wake-ups for one follower of a job's log.
pub struct LogChanges {
    changes: tokio::sync::watch::Receiver<u64>,
    /// Whatever keeps the wake-ups coming (a watch on the log), until dropped.
    _source: Box<dyn Send + Sync>,
}

impl LogChanges {
    pub fn new(changes: tokio::sync::watch::Receiver<u64>, source: Box<dyn Send + Sync>) -> LogChanges {
        LogChanges { changes, _source: source }
    }

    /// Waits until the log may have grown since the last call.
    pub async fn changed(&mut self) {
        if self.changes.changed().await.is_err() {
            std::future::pending::<()>().await; // the source is gone: no more wake-ups
        }
    }
}

/// The nodes a cluster asks for: how many, what each needs, and where
/// within the infra.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Nodes {
    pub count: i32,
    pub cpus: f64,
    pub memory_gib: f64,
    pub gpus: u32,
    /// The part of the infra name after the infra's own (see `region_of`).
    pub region: Option<String>,
}

impl Nodes {
    /// `count` nodes that need nothing in particular.
    pub fn any(count: i32) -> Nodes {
        Nodes { count, ..Nodes::default() }
    }
}

/// Where within an infra a name points, as given: the partition of
/// `slurm/<cluster>/<partition>` (the only infra with places of its own).
pub fn region_of(name: &str) -> Option<&str> {
    let mut parts = name.trim().splitn(3, '/');
    let kind = parts.next()?;
    parts.next()?;
    let region = parts.next()?;
    (kind.eq_ignore_ascii_case("slurm") && !region.is_empty()).then_some(region)
}

/// Whether a cluster on `recorded` (its infra label) is on what `asked`
/// names (`infra`): the same label, or the same infra when `asked` names no
/// region (`slurm/hpc` is satisfied by `slurm/hpc/gpu`).
pub fn satisfies(recorded: &str, infra: &dyn Infra, asked: &str) -> bool {
    let recorded_infra = match region_of(recorded) {
        Some(region) => &recorded[..recorded.len() - region.len() - 1],
        None => recorded,
    };
    match region_of(asked) {
        Some(_) => recorded == label(infra, asked),
        None => recorded_infra == infra.name(),
    }
}

/// The infra name a cluster records: the infra's own, with the region asked for.
pub fn label(infra: &dyn Infra, asked: &str) -> String {
    match region_of(asked) {
        Some(region) => format!("{}/{region}", infra.name()),
        None => infra.name().to_string(),
    }
}

/// What one node offers.
#[derive(Debug, Clone, PartialEq)]
pub struct Capacity {
    pub cpus: usize,
    pub memory_gib: f64,
    /// One name per GPU, in index order.
    pub gpus: Vec<String>,
}

/// Whether an infra is usable, and why (not).
#[derive(Debug, Clone, PartialEq)]
pub struct InfraStatus {
    pub name: String,
    pub enabled: bool,
    /// What it offers when enabled, or why it is disabled.
    pub detail: String,
    /// The hosts of an infra made of hosts (an SSH node pool), each as it answered.
    pub hosts: Vec<HostReport>,
    /// What an infra that is one machine (local) has in all.
    pub capacity: Option<Capacity>,
}

impl InfraStatus {
    /// An infra that is not made of hosts the server reaches one by one.
    pub fn new(name: impl Into<String>, enabled: bool, detail: impl Into<String>) -> InfraStatus {
        InfraStatus { name: name.into(), enabled, detail: detail.into(), hosts: Vec::new(), capacity: None }
    }
}

/// One host of an infra, as it answered.
#[derive(Debug, Clone, PartialEq)]
pub struct HostReport {
    /// user@address:port.
    pub host: String,
    pub address: String,
    pub ready: bool,
    /// What it offers, or why it is not ready (naming the host).
    pub detail: String,
    /// What it offers, when it answered.
    pub capacity: Option<Capacity>,
    /// Its pinned key's fingerprint.
    pub host_key: Option<String>,
}

/// A cluster's nodes as `provision` made them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Provisioned {
    /// Each node's address, by rank.
    pub addresses: Vec<String>,
    /// The indices of its host's GPUs that each node holds, node after node
    /// (as many per node as it asked for); empty where the job layer picks
    /// them (the local infra, whose one host all clusters share).
    pub gpu_indices: Vec<u32>,
}

/// Where one node of a cluster is, and whether it answers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NodeState {
    /// "local", or the host (user@address:port).
    pub host: String,
    /// False when its host did not answer the last time it was reached.
    pub reachable: bool,
    /// Why it is unreachable.
    pub detail: String,
}

/// The place clusters run; see the module docs for the contract.
pub trait Infra: Send + Sync + 'static {
    /// The name users give in `--infra` and see in `sky status`.
    fn name(&self) -> &str;
    /// Whether the infra is usable now, and what it offers.
    fn check(&self) -> BoxFuture<'_, InfraStatus>;
    /// Why the infra takes no clusters, when the server's admin turned it off.
    fn disabled(&self) -> Option<&str>;
    /// Why a cluster there cannot be stopped (only torn down), where it cannot.
    fn stop_refused(&self) -> Option<&str> {
        None
    }
    /// What one node offers.
    fn capacity(&self) -> BoxFuture<'_, Result<Capacity>>;
    /// Refuses a file mount destination the infra cannot place files at,
    /// saying what to use instead.
    fn check_destination(&self, dest: &str) -> Result<(), String>;
    /// Makes the cluster's nodes exist (where they fit `nodes`); returns
    /// their addresses by rank (and the GPUs they hold, where the infra
    /// places GPUs).
    fn provision<'a>(&'a self, cluster: &'a str, nodes: &'a Nodes) -> BoxFuture<'a, Result<Provisioned>>;
    /// The cluster's nodes by rank: where each is and whether it answered
    /// when last reached; `refresh` reaches every node now.
    fn nodes<'a>(&'a self, cluster: &'a str, refresh: bool) -> BoxFuture<'a, Vec<NodeState>>;
    /// Removes the cluster's nodes and everything on them. With `purge`,
    /// nodes that cannot be reached are forgotten all the same (what is on
    /// them stays there).
    fn release<'a>(&'a self, cluster: &'a str, purge: bool) -> BoxFuture<'a, Result<()>>;
    /// Copies `source` on the API server's host to `dest` (`~/`-relative)
    /// on node `rank`.
    fn copy_to_node<'a>(
        &'a self,
        cluster: &'a str,
        rank: i32,
        source: &'a Path,
        dest: &'a str,
    ) -> BoxFuture<'a, Result<()>>;
    /// Starts a run detached.
    fn start<'a>(&'a self, spec: &'a RunSpec) -> BoxFuture<'a, Result<RunHandle>>;
    /// After a restart: the handle of a run that started but was not
    /// recorded; None when it never started.
    fn find<'a>(&'a self, run: &'a RunRef) -> BoxFuture<'a, Option<RunHandle>>;
    /// Waits until the run ends, and says how.
    fn wait<'a>(&'a self, run: &'a RunRef, handle: RunHandle) -> BoxFuture<'a, RunEnd>;
    /// Ends the run and everything it started (SIGTERM, then SIGKILL after a
    /// grace period); returns at once.
    fn terminate(&self, cluster: &str, rank: i32, handle: RunHandle);
    /// Up to `logfile::CHUNK_BYTES` of the job's log at `offset`; empty at
    /// the end (or before the job wrote anything).
    fn read_log<'a>(&'a self, cluster: &'a str, job_id: i64, offset: u64) -> BoxFuture<'a, Result<Vec<u8>>>;
    /// Wake-ups when the job's log may have grown; None when the infra cannot
    /// tell (yet), and the follower polls.
    fn log_changes(&self, cluster: &str, job_id: i64) -> Option<LogChanges>;
    /// The offset at which the last `lines` lines of the job's log start.
    fn log_tail_offset<'a>(&'a self, cluster: &'a str, job_id: i64, lines: u64)
    -> BoxFuture<'a, Result<u64>>;
    /// Moves the logs of the cluster's jobs to `dest/<job id>.log` on the
    /// API server's host (before `release`); returns how many it moved.
    fn archive_logs<'a>(&'a self, cluster: &'a str, dest: &'a Path) -> BoxFuture<'a, Result<usize>>;
    /// Waits for what the infra still does in the background (the SIGKILLs
    /// that follow `terminate`), at shutdown.
    fn settle(&self) -> BoxFuture<'_, ()>;
}

/// Every infra of a server, by the names users give: `local` first, then
/// `ssh/<pool>` for each SSH node pool, then `slurm/<cluster>` for each
/// Slurm cluster.
#[derive(Clone)]
pub struct Infras {
    all: Vec<std::sync::Arc<dyn Infra>>,
    /// The SSH node pools again, for what only they do (`sky ssh up/down`).
    ssh: Vec<std::sync::Arc<ssh::pool::SshPool>>,
}

impl Infras {
    pub fn new(
        local: std::sync::Arc<dyn Infra>,
        ssh: Vec<std::sync::Arc<ssh::pool::SshPool>>,
        slurm: Vec<std::sync::Arc<slurm::SlurmInfra>>,
    ) -> Infras {
        let mut all = vec![local];
        all.extend(ssh.iter().map(|pool| pool.clone() as std::sync::Arc<dyn Infra>));
        all.extend(slurm.into_iter().map(|cluster| cluster as std::sync::Arc<dyn Infra>));
        Infras { all, ssh }
    }

    /// The SSH node pools `name` picks: `ssh/<pool>` or `<pool>`; empty or
    /// `ssh` for all of them.
    pub fn ssh_pools(&self, name: &str) -> Result<Vec<std::sync::Arc<ssh::pool::SshPool>>> {
        if self.ssh.is_empty() {
            return Err(Error::new(
                crate::error::ErrorReason::FailedPrecondition,
                "this API server has no SSH node pools: list them in ~/.sky/ssh_node_pools.yaml of the \
                 server's user (or sky api start --ssh-node-pools FILE), then restart it",
            ));
        }
        let wanted = name.trim().to_ascii_lowercase();
        if wanted.is_empty() || wanted == "ssh" {
            return Ok(self.ssh.clone());
        }
        let wanted = if wanted.starts_with("ssh/") { wanted } else { format!("ssh/{wanted}") };
        match self.ssh.iter().find(|pool| pool.name() == wanted) {
            Some(pool) => Ok(vec![pool.clone()]),
            None => Err(Error::invalid(
                "infra",
                format!(
                    "{name:?} is not an SSH node pool of this API server (it has: {})",
                    self.ssh.iter().map(|pool| pool.name()).collect::<Vec<_>>().join(", ")
                ),
            )),
        }
    }

    pub fn names(&self) -> Vec<String> {
        self.all.iter().map(|infra| infra.name().to_string()).collect()
    }

    /// The local infra.
    pub fn local(&self) -> &std::sync::Arc<dyn Infra> {
        &self.all[0]
    }

    pub fn all(&self) -> &[std::sync::Arc<dyn Infra>] {
        &self.all
    }

    /// The infra a task names in `resources.infra` (empty: local; `ssh` or
    /// `slurm`: the only SSH node pool or Slurm cluster).
    pub fn named(&self, name: &str) -> Result<&std::sync::Arc<dyn Infra>> {
        let wanted = name.trim().to_ascii_lowercase();
        let wanted = if wanted.is_empty() { "local".to_string() } else { wanted };
        if let Some(infra) = self.all.iter().find(|infra| infra.name() == wanted) {
            return Ok(infra);
        }
        if let Some(region) = region_of(name) {
            let own = &wanted[..wanted.len() - region.len() - 1];
            if let Some(infra) = self.all.iter().find(|infra| infra.name() == own) {
                return Ok(infra);
            }
        }
        let unknown = || {
            Error::invalid(
                "resources.infra",
                format!("{name:?} is not an infra of this API server (it has: {})", self.names().join(", ")),
            )
        };
        let (kind, how) = match wanted.as_str() {
            "ssh" => (
                "SSH node pool",
                "list them in ~/.sky/ssh_node_pools.yaml of the server's user (or sky api start --ssh-node-pools FILE)",
            ),
            "slurm" => (
                "Slurm cluster",
                "list them in ~/.slurm/config of the server's user (or sky api start --slurm-config FILE)",
            ),
            _ => return Err(unknown()),
        };
        let prefix = format!("{wanted}/");
        let family: Vec<&std::sync::Arc<dyn Infra>> =
            self.all.iter().filter(|infra| infra.name().starts_with(&prefix)).collect();
        match family.as_slice() {
            [only] => Ok(only),
            [] => Err(Error::invalid("resources.infra", format!("this API server has no {kind}s: {how}"))),
            _ => Err(Error::invalid(
                "resources.infra",
                format!(
                    "this API server has several {kind}s: name one ({})",
                    family.iter().map(|infra| infra.name()).collect::<Vec<_>>().join(", ")
                ),
            )),
        }
    }
}

/// Picks the infras named in `names` from those this server knows
/// (`known`); empty means all. `ssh` names every SSH node pool, `slurm`
/// every Slurm cluster.
pub fn select(names: &[String], known: &[String]) -> Result<Vec<String>> {
    if names.is_empty() {
        return Ok(known.to_vec());
    }
    let mut selected = Vec::new();
    for name in names {
        let wanted = name.trim().to_ascii_lowercase();
        let matches: Vec<&String> = known
            .iter()
            .filter(|infra| {
                **infra == wanted || infra.strip_prefix(&wanted).is_some_and(|rest| rest.starts_with('/'))
            })
            .collect();
        if matches.is_empty() {
            return Err(Error::invalid(
                "infras",
                format!("unknown infra {name:?}; this server has: {}", known.join(", ")),
            ));
        }
        selected.extend(
            matches.into_iter().filter(|infra| !selected.contains(*infra)).cloned().collect::<Vec<_>>(),
        );
    }
    Ok(selected)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unknown_infra_names_are_refused_with_the_known_list() {
        let known: Vec<String> = ["local", "ssh/gpus", "ssh/cpus"].map(String::from).to_vec();
        let err = select(&["aws".into()], &known).unwrap_err();
        assert!(err.message.contains("`infras`") && err.message.contains("local, ssh/gpus"), "{err}");
        assert_eq!(select(&["Local".into()], &known).unwrap(), ["local"]);
        assert_eq!(select(&["ssh".into()], &known).unwrap(), ["ssh/gpus", "ssh/cpus"]);
        assert_eq!(select(&["ssh/cpus".into(), "ssh".into()], &known).unwrap(), ["ssh/cpus", "ssh/gpus"]);
        assert_eq!(select(&[], &known).unwrap(), known);
    }

    #[test]
    fn a_slurm_partition_is_the_third_part_of_the_infra_name_and_keeps_its_case() {
        assert_eq!(region_of("slurm/big/GPU-a100"), Some("GPU-a100"));
        assert_eq!(region_of("Slurm/big/x/y"), Some("x/y"));
        assert_eq!(region_of("slurm/big"), None);
        assert_eq!(region_of("ssh/pool/x"), None, "only Slurm has places of its own");
    }
}
