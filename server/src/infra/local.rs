//! The `local` infra: clusters on the API server's own host. A cluster is a
//! folder with one home folder per node (`node-<rank>`, holding
//! `sky_workdir` and file mounts) and a `jobs` folder with each job's
//! scripts, log (`run.log`, all nodes) and exit codes. Runs are detached
//! process groups (`process`). On a deployed server that runs as root, each
//! cluster has a uid of its own (`run_as`): its folder and its jobs are that
//! uid's, and the server touches the folder only as that uid.

use std::{
    collections::HashMap,
    os::unix::fs::{DirBuilderExt as _, OpenOptionsExt as _},
    path::{Path, PathBuf},
    process::Command,
    sync::{
        Arc, Mutex,
        atomic::{AtomicBool, Ordering},
    },
};

use futures_util::future::BoxFuture;

use super::{
    Capacity, Infra, InfraStatus, LogChanges, NodeState, Nodes, Provisioned, RunEnd, RunHandle, RunRef,
    RunSpec,
    files::{copy_tree, node_relative_path},
    log_watch::LogWatch,
    process::{self, NodeCommand},
    run_as::{self, ClusterUids},
};
use crate::{
    error::{Error, Result},
    logfile,
};

/// Clusters on this host, as folders under `root`.
pub struct LocalInfra {
    root: PathBuf,
    /// Why it takes no clusters, when it is off.
    disabled: Option<String>,
    /// Runs started by this process, waited on directly (others are watched
    /// through /proc).
    children: Mutex<HashMap<u32, tokio::process::Child>>,
    /// Wakes followers of job logs when the logs grow.
    log_watch: LogWatch,
    /// Each cluster's uid, when clusters have their own; None: everything
    /// runs as the server.
    uids: Option<Arc<ClusterUids>>,
}

impl LocalInfra {
    /// Clusters whose jobs run as the server's own user.
    pub fn new(root: PathBuf) -> LocalInfra {
        LocalInfra {
            root,
            disabled: None,
            children: Mutex::default(),
            log_watch: LogWatch::new(),
            uids: None,
        }
    }

    /// Clusters under uids of their own, from `first_uid` up (the server
    /// runs as root; see `run_as::check_usable`). `root` is made reachable,
    /// not readable, by those uids (0711).
    pub fn with_cluster_uids(root: PathBuf, first_uid: u32) -> std::io::Result<LocalInfra> {
        std::fs::DirBuilder::new().recursive(true).mode(0o711).create(&root)?;
        std::fs::set_permissions(&root, std::os::unix::fs::PermissionsExt::from_mode(0o711))?;
        Ok(LocalInfra { uids: Some(Arc::new(ClusterUids::new(first_uid))), ..LocalInfra::new(root) })
    }

    /// The infra, taking no clusters for the reason given.
    pub fn off(root: PathBuf, why: String) -> LocalInfra {
        LocalInfra { disabled: Some(why), ..LocalInfra::new(root) }
    }

    fn cluster_dir(&self, cluster: &str) -> PathBuf {
        self.root.join(cluster)
    }

    fn node_home(&self, cluster: &str, rank: i32) -> PathBuf {
        self.cluster_dir(cluster).join(format!("node-{rank}"))
    }

    fn job_dir(&self, cluster: &str, job_id: i64) -> PathBuf {
        self.cluster_dir(cluster).join("jobs").join(job_id.to_string())
    }

    fn job_log(&self, cluster: &str, job_id: i64) -> PathBuf {
        self.job_dir(cluster, job_id).join("run.log")
    }

    /// `<job dir>/<phase>-<rank>.<extension>`
    fn run_file(&self, run: &RunRef, extension: &str) -> PathBuf {
        self.job_dir(&run.cluster, run.job_id).join(format!("{}-{}.{extension}", run.phase, run.rank))
    }

    /// The uid the cluster's jobs run as, when not the server's.
    fn cluster_uid(&self, cluster: &str) -> Result<Option<u32>> {
        match self.uids {
            Some(_) => Ok(Some(run_as::cluster_uid(&self.cluster_dir(cluster))?)),
            None => Ok(None),
        }
    }

    /// Runs file work in a cluster's folder on a blocking thread: as the
    /// cluster's uid when it has one.
    async fn in_cluster<T: Send + 'static>(
        &self,
        cluster: &str,
        work: impl FnOnce() -> Result<T> + Send + 'static,
    ) -> Result<T> {
        let dir = self.cluster_dir(cluster);
        let own_uid = self.uids.is_some();
        blocking(move || match own_uid {
            true => match run_as::cluster_uid(&dir) {
                Ok(uid) => run_as::as_user(uid, work),
                // No folder: the work finds nothing, as no one in particular.
                Err(err) if err.kind() == std::io::ErrorKind::NotFound => {
                    run_as::as_user(run_as::NOBODY, work)
                }
                Err(err) => Err(err.into()),
            },
            false => work(),
        })
        .await
    }

    fn command(&self, spec: &RunSpec, run_as: Option<u32>) -> NodeCommand {
        let run = &spec.run;
        let home = self.node_home(&run.cluster, run.rank);
        let mut env = vec![("HOME".to_string(), home.to_string_lossy().into_owned())];
        env.extend(spec.env.iter().cloned());
        NodeCommand {
            script: spec.script.clone(),
            script_file: self.run_file(run, "sh"),
            log: self.job_log(&run.cluster, run.job_id),
            exit_file: self.run_file(run, "exit"),
            pid_file: self.run_file(run, "pid"),
            prefix: spec.log_prefix.clone(),
            cwd: home.join("sky_workdir"),
            env,
            run_as,
        }
    }

    fn children(&self) -> std::sync::MutexGuard<'_, HashMap<u32, tokio::process::Child>> {
        self.children.lock().unwrap_or_else(|p| p.into_inner())
    }
}

impl Infra for LocalInfra {
    fn name(&self) -> &str {
        "local"
    }

    fn disabled(&self) -> Option<&str> {
        self.disabled.as_deref()
    }

    fn check(&self) -> BoxFuture<'_, InfraStatus> {
        Box::pin(async {
            if let Some(why) = &self.disabled {
                return InfraStatus::new("local", false, why.clone());
            }
            match self.capacity().await {
                Ok(host) => {
                    let gpus = if host.gpus.is_empty() {
                        "no GPUs".to_string()
                    } else {
                        format!("{} GPU(s): {}", host.gpus.len(), host.gpus.join(", "))
                    };
                    let detail = format!("{} CPUs, {:.1} GiB memory, {gpus}", host.cpus, host.memory_gib);
                    InfraStatus { capacity: Some(host), ..InfraStatus::new("local", true, detail) }
                }
                Err(err) => {
                    InfraStatus::new("local", true, format!("cannot read the host's resources: {err}"))
                }
            }
        })
    }

    fn capacity(&self) -> BoxFuture<'_, Result<Capacity>> {
        Box::pin(blocking(|| Ok(host_capacity())))
    }

    fn check_destination(&self, dest: &str) -> Result<(), String> {
        node_relative_path(dest).map(|_| ())
    }

    /// The host's resources are shared out by the job layer (`Clusters::reserve`).
    fn provision<'a>(&'a self, cluster: &'a str, nodes: &'a Nodes) -> BoxFuture<'a, Result<Provisioned>> {
        let homes: Vec<PathBuf> = (0..nodes.count).map(|rank| self.node_home(cluster, rank)).collect();
        let (root, dir) = (self.root.clone(), self.cluster_dir(cluster));
        let uids = self.uids.clone();
        Box::pin(blocking(move || {
            std::fs::DirBuilder::new().recursive(true).mode(0o700).create(&dir)?;
            let make_nodes = || -> Result<Vec<String>> {
                for home in &homes {
                    std::fs::create_dir_all(home.join("sky_workdir"))?;
                }
                std::fs::create_dir_all(dir.join("jobs"))?;
                Ok(vec!["127.0.0.1".to_string(); homes.len()])
            };
            let addresses = match uids {
                Some(uids) => run_as::as_user(uids.assign(&root, &dir)?, make_nodes)?,
                None => make_nodes()?,
            };
            Ok(Provisioned { addresses, gpu_indices: Vec::new() })
        }))
    }

    /// Every node is on this host, which always answers.
    fn nodes<'a>(&'a self, cluster: &'a str, _refresh: bool) -> BoxFuture<'a, Vec<NodeState>> {
        let dir = self.cluster_dir(cluster);
        Box::pin(async move {
            let count = std::fs::read_dir(&dir)
                .into_iter()
                .flatten()
                .flatten()
                .filter(|entry| entry.file_name().to_string_lossy().starts_with("node-"))
                .count();
            let node = NodeState { host: "local".into(), reachable: true, detail: String::new() };
            vec![node; count]
        })
    }

    /// (Its nodes are folders of this host: there is nothing out of reach to purge.)
    fn release<'a>(&'a self, cluster: &'a str, _purge: bool) -> BoxFuture<'a, Result<()>> {
        let dir = self.cluster_dir(cluster);
        Box::pin(blocking(move || match std::fs::remove_dir_all(dir) {
            Err(err) if err.kind() != std::io::ErrorKind::NotFound => Err(err.into()),
            _ => Ok(()),
        }))
    }

    fn copy_to_node<'a>(
        &'a self,
        cluster: &'a str,
        rank: i32,
        source: &'a Path,
        dest: &'a str,
    ) -> BoxFuture<'a, Result<()>> {
        let home = self.node_home(cluster, rank);
        let source = source.to_path_buf();
        let dest = node_relative_path(dest).map(|relative| home.join(relative));
        // Dropping the copy (its request was cancelled) stops it.
        let cancelled = Arc::new(AtomicBool::new(false));
        let stop_on_drop = StopOnDrop(cancelled.clone());
        // As the cluster's uid, when it has one: the copy reads only what
        // that uid may read, and the files it makes are the cluster's.
        let copy = self.in_cluster(cluster, move || {
            let dest = dest.map_err(|err| Error::invalid("task.file_mounts", err))?;
            copy_tree(&source, &dest, &cancelled).map_err(|err| {
                Error::invalid("task.workdir/file_mounts", format!("cannot copy files: {err}"))
            })
        });
        Box::pin(async move {
            let copied = copy.await;
            drop(stop_on_drop);
            copied
        })
    }

    fn start<'a>(&'a self, spec: &'a RunSpec) -> BoxFuture<'a, Result<RunHandle>> {
        Box::pin(async move {
            let cluster = &spec.run.cluster;
            let command = self.command(spec, self.cluster_uid(cluster)?);
            let job_dir = self.job_dir(cluster, spec.run.job_id);
            let prepared = command.clone();
            self.in_cluster(cluster, move || {
                std::fs::create_dir_all(job_dir)?;
                Ok(process::prepare(&prepared)?)
            })
            .await?;
            let spawned = process::spawn(&command)?;
            // The wrapper writes the same pid first thing; writing it here too
            // means it is on disk before the run is reported started, even
            // if the wrapper has not got that far.
            let (pid_file, pid) = (command.pid_file.clone(), spawned.handle.pid);
            let _ = self.in_cluster(cluster, move || Ok(std::fs::write(pid_file, format!("{pid}\n"))?)).await;
            self.children().insert(spawned.handle.pid, spawned.child);
            Ok(spawned.handle)
        })
    }

    fn find<'a>(&'a self, run: &'a RunRef) -> BoxFuture<'a, Option<RunHandle>> {
        let (pid_file, script_file) = (self.run_file(run, "pid"), self.run_file(run, "sh"));
        Box::pin(async move {
            let uid = self.cluster_uid(&run.cluster).ok()?;
            let written =
                self.in_cluster(&run.cluster, move || Ok(process::read_pid(&pid_file))).await.ok()?;
            match written {
                // The job could have written anything there: a live process
                // is taken only if it is a run (a group leader) of this cluster.
                Some(pid) if process::start_ticks(pid).is_some() => {
                    let ours = process::leads_its_group(pid)
                        && uid.is_none_or(|uid| process::process_uid(pid) == Some(uid));
                    ours.then(|| RunHandle {
                        pid,
                        start_ticks: process::start_ticks(pid).unwrap_or(u64::MAX),
                    })
                }
                // A process that is gone gets a start time no process has:
                // its exit file then tells how it ended.
                Some(pid) => Some(RunHandle { pid, start_ticks: u64::MAX }),
                // Started a moment before the server stopped, before it wrote its pid.
                None => blocking(move || Ok(process::find_running(&script_file))).await.ok().flatten(),
            }
        })
    }

    fn wait<'a>(&'a self, run: &'a RunRef, handle: RunHandle) -> BoxFuture<'a, RunEnd> {
        Box::pin(async move {
            let exit_file = self.run_file(run, "exit");
            let child = self.children().remove(&handle.pid);
            match child {
                Some(child) => process::wait_child(child).await,
                None => process::wait_recovered(handle).await,
            }
            match self.in_cluster(&run.cluster, move || Ok(process::read_exit_code(&exit_file))).await {
                Ok(Some(code)) => RunEnd::Exited(code),
                _ => RunEnd::Killed,
            }
        })
    }

    fn terminate(&self, _cluster: &str, _rank: i32, handle: RunHandle) {
        process::kill_group(handle);
        // A run nobody waits for (its phase failed to start on another node):
        // dropping the child lets the runtime reap it.
        self.children().remove(&handle.pid);
    }

    fn read_log<'a>(&'a self, cluster: &'a str, job_id: i64, offset: u64) -> BoxFuture<'a, Result<Vec<u8>>> {
        let log = self.job_log(cluster, job_id);
        Box::pin(self.in_cluster(cluster, move || Ok(logfile::read_chunk(&log, offset)?)))
    }

    fn log_changes(&self, cluster: &str, job_id: i64) -> Option<LogChanges> {
        self.log_watch.follow(&self.job_dir(cluster, job_id))
    }

    fn log_tail_offset<'a>(
        &'a self,
        cluster: &'a str,
        job_id: i64,
        lines: u64,
    ) -> BoxFuture<'a, Result<u64>> {
        let path = self.job_log(cluster, job_id);
        Box::pin(self.in_cluster(cluster, move || Ok(logfile::tail_offset(&path, lines)?)))
    }

    fn archive_logs<'a>(&'a self, cluster: &'a str, dest: &'a Path) -> BoxFuture<'a, Result<usize>> {
        let dir = self.cluster_dir(cluster);
        let dest = dest.to_path_buf();
        let own_uid = self.uids.is_some();
        Box::pin(blocking(move || {
            let logs = match own_uid {
                true => match run_as::cluster_uid(&dir) {
                    Ok(uid) => run_as::as_user(uid, || open_job_logs(&dir))?,
                    Err(err) if err.kind() == std::io::ErrorKind::NotFound => return Ok(0),
                    Err(err) => return Err(err.into()),
                },
                false => open_job_logs(&dir)?,
            };
            let count = logs.len();
            for (job_id, path, mut log) in logs {
                std::fs::DirBuilder::new().recursive(true).mode(0o700).create(&dest)?;
                let kept = dest.join(format!("{job_id}.log"));
                if own_uid {
                    // Copied by the server, so that the kept log is the server's.
                    let mut copy =
                        std::fs::OpenOptions::new().write(true).create_new(true).mode(0o600).open(kept)?;
                    std::io::copy(&mut log, &mut copy)?;
                } else {
                    std::fs::rename(path, kept)?;
                }
            }
            Ok(count)
        }))
    }

    fn settle(&self) -> BoxFuture<'_, ()> {
        Box::pin(process::finish_kills())
    }
}

/// Sets its flag when dropped.
struct StopOnDrop(Arc<AtomicBool>);

impl Drop for StopOnDrop {
    fn drop(&mut self) {
        self.0.store(true, Ordering::Relaxed);
    }
}

/// The log of each job of the cluster at `dir` that has one, opened.
fn open_job_logs(dir: &Path) -> Result<Vec<(i64, PathBuf, std::fs::File)>> {
    let entries = match std::fs::read_dir(dir.join("jobs")) {
        Ok(entries) => entries,
        Err(err) if err.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(err) => return Err(err.into()),
    };
    let mut logs = Vec::new();
    for entry in entries {
        let entry = entry?;
        let Some(job_id) = entry.file_name().to_str().and_then(|id| id.parse::<i64>().ok()) else {
            continue;
        };
        let path = entry.path().join("run.log");
        match logfile::open_regular(&path) {
            Ok(log) => logs.push((job_id, path, log)),
            Err(err) if err.kind() == std::io::ErrorKind::NotFound => {}
            Err(err) => return Err(err.into()),
        }
    }
    Ok(logs)
}

/// Runs file-system work on a blocking thread, off the async workers.
async fn blocking<T: Send + 'static>(work: impl FnOnce() -> Result<T> + Send + 'static) -> Result<T> {
    tokio::task::spawn_blocking(work)
        .await
        .map_err(|err| Error::internal(format!("local infra task: {err}")))?
}

/// What the host offers: the CPUs this process may use, memory and GPUs.
/// In a container the limits are the container's: the CPU count follows the
/// cgroup's quota (std reads it) and memory the cgroup's `memory.max`.
fn host_capacity() -> Capacity {
    let cpus = std::thread::available_parallelism().map(|n| n.get()).unwrap_or(1);
    let total_gib = std::fs::read_to_string("/proc/meminfo")
        .ok()
        .and_then(|text| {
            text.lines()
                .find_map(|line| line.strip_prefix("MemTotal:"))
                .and_then(|rest| rest.trim().trim_end_matches("kB").trim().parse::<f64>().ok())
        })
        .map(|kib| kib / (1024.0 * 1024.0))
        .unwrap_or(0.0);
    let limit_gib = std::fs::read_to_string("/sys/fs/cgroup/memory.max")
        .ok()
        .and_then(|text| text.trim().parse::<f64>().ok())
        .map(|bytes| bytes / (1024.0 * 1024.0 * 1024.0));
    let memory_gib = match limit_gib {
        Some(limit) if total_gib == 0.0 || limit < total_gib => limit,
        _ => total_gib,
    };
    Capacity { cpus, memory_gib, gpus: nvidia_gpus() }
}

/// GPU names from `nvidia-smi`, empty when it is absent or fails.
fn nvidia_gpus() -> Vec<String> {
    Command::new("nvidia-smi")
        .args(["--query-gpu=name", "--format=csv,noheader"])
        .output()
        .ok()
        .filter(|out| out.status.success())
        .map(|out| {
            String::from_utf8_lossy(&out.stdout)
                .lines()
                .map(str::trim)
                .filter(|line| !line.is_empty())
                .map(str::to_string)
                .collect()
        })
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn the_local_infra_keeps_the_infra_contract() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().join("clusters");
        let reopen = || Box::new(LocalInfra::new(root.clone())) as Box<dyn Infra>;
        super::super::contract::check(&LocalInfra::new(root.clone()), &reopen, dir.path()).await;
    }

    #[tokio::test]
    async fn the_local_infra_keeps_the_infra_contract_with_a_uid_per_cluster() {
        // SAFETY: geteuid has no preconditions.
        assert_eq!(
            unsafe { libc::geteuid() },
            0,
            "clusters under their own uids need root: run the tests as root"
        );
        let dir = tempfile::tempdir().unwrap();
        std::fs::set_permissions(dir.path(), std::os::unix::fs::PermissionsExt::from_mode(0o755)).unwrap();
        let root = dir.path().join("clusters");
        let first = run_as::FIRST_CLUSTER_UID;
        let open = || LocalInfra::with_cluster_uids(root.clone(), first).unwrap();
        let reopen = || Box::new(open()) as Box<dyn Infra>;
        super::super::contract::check(&open(), &reopen, dir.path()).await;
    }
}
