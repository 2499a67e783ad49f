//! The `local` infra: clusters on the API server's own host. A cluster is a
//! folder with one home folder per node (`node-<rank>`, holding
//! `sky_workdir` and file mounts) and a `jobs` folder with each job's
//! scripts, log (`run.log`, all nodes) and exit codes. Runs are detached
//! process groups (`process`).

use std::{
    collections::HashMap,
    path::{Path, PathBuf},
    process::Command,
    sync::Mutex,
};

use futures_util::future::BoxFuture;

use super::{
    Capacity, Infra, InfraStatus, LogChanges, RunHandle, RunRef, RunSpec,
    log_watch::LogWatch,
    process::{self, NodeCommand},
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
}

impl LocalInfra {
    pub fn new(root: PathBuf) -> LocalInfra {
        LocalInfra { root, disabled: None, children: Mutex::default(), log_watch: LogWatch::new() }
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

    fn command(&self, spec: &RunSpec) -> NodeCommand {
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
        }
    }

    fn children(&self) -> std::sync::MutexGuard<'_, HashMap<u32, tokio::process::Child>> {
        self.children.lock().unwrap_or_else(|p| p.into_inner())
    }
}

impl Infra for LocalInfra {
    fn name(&self) -> &'static str {
        "local"
    }

    fn disabled(&self) -> Option<&str> {
        self.disabled.as_deref()
    }

    fn check(&self) -> BoxFuture<'_, InfraStatus> {
        Box::pin(async {
            if let Some(why) = &self.disabled {
                return InfraStatus { name: "local", enabled: false, detail: why.clone() };
            }
            let detail = match self.capacity().await {
                Ok(host) => {
                    let gpus = if host.gpus.is_empty() {
                        "no GPUs".to_string()
                    } else {
                        format!("{} GPU(s): {}", host.gpus.len(), host.gpus.join(", "))
                    };
                    format!("{} CPUs, {:.1} GiB memory, {gpus}", host.cpus, host.memory_gib)
                }
                Err(err) => format!("cannot read the host's resources: {err}"),
            };
            InfraStatus { name: "local", enabled: true, detail }
        })
    }

    fn capacity(&self) -> BoxFuture<'_, Result<Capacity>> {
        Box::pin(blocking(|| Ok(host_capacity())))
    }

    fn check_destination(&self, dest: &str) -> Result<(), String> {
        node_relative_path(dest).map(|_| ())
    }

    fn provision<'a>(&'a self, cluster: &'a str, num_nodes: i32) -> BoxFuture<'a, Result<Vec<String>>> {
        let homes: Vec<PathBuf> = (0..num_nodes).map(|rank| self.node_home(cluster, rank)).collect();
        let jobs = self.cluster_dir(cluster).join("jobs");
        Box::pin(blocking(move || {
            for home in &homes {
                std::fs::create_dir_all(home.join("sky_workdir"))?;
            }
            std::fs::create_dir_all(jobs)?;
            Ok(vec!["127.0.0.1".to_string(); homes.len()])
        }))
    }

    fn release<'a>(&'a self, cluster: &'a str) -> BoxFuture<'a, Result<()>> {
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
        Box::pin(blocking(move || {
            let dest = dest.map_err(|err| Error::invalid("task.file_mounts", err))?;
            copy_tree(&source, &dest).map_err(|err| {
                Error::invalid("task.workdir/file_mounts", format!("cannot copy files: {err}"))
            })
        }))
    }

    fn start<'a>(&'a self, spec: &'a RunSpec) -> BoxFuture<'a, Result<RunHandle>> {
        Box::pin(async move {
            let command = self.command(spec);
            std::fs::create_dir_all(self.job_dir(&spec.run.cluster, spec.run.job_id))?;
            let spawned = process::spawn(&command)?;
            // The wrapper writes the same pid first thing; writing it here too
            // means it is on disk before the run is reported started, even
            // if the wrapper has not got that far.
            let _ = std::fs::write(&command.pid_file, format!("{}\n", spawned.handle.pid));
            self.children().insert(spawned.handle.pid, spawned.child);
            Ok(spawned.handle)
        })
    }

    fn find<'a>(&'a self, run: &'a RunRef) -> BoxFuture<'a, Option<RunHandle>> {
        let (pid_file, script_file) = (self.run_file(run, "pid"), self.run_file(run, "sh"));
        let found = blocking(move || {
            Ok(match process::read_pid(&pid_file) {
                // A process that is gone gets a start time no process has:
                // its exit file then tells how it ended.
                Some(pid) => {
                    Some(RunHandle { pid, start_ticks: process::start_ticks(pid).unwrap_or(u64::MAX) })
                }
                // Started a moment before the server stopped, before it wrote its pid.
                None => process::find_running(&script_file),
            })
        });
        Box::pin(async move { found.await.ok().flatten() })
    }

    fn wait<'a>(&'a self, run: &'a RunRef, handle: RunHandle) -> BoxFuture<'a, Option<i32>> {
        Box::pin(async move {
            let exit_file = self.run_file(run, "exit");
            let child = self.children().remove(&handle.pid);
            match child {
                Some(child) => process::wait_child(child, &exit_file).await,
                None => process::wait_recovered(handle, &exit_file).await,
            }
        })
    }

    fn terminate(&self, handle: RunHandle) {
        process::kill_group(handle);
        // A run nobody waits for (its phase failed to start on another node):
        // dropping the child lets the runtime reap it.
        self.children().remove(&handle.pid);
    }

    fn read_log<'a>(&'a self, cluster: &'a str, job_id: i64, offset: u64) -> BoxFuture<'a, Result<Vec<u8>>> {
        Box::pin(logfile::read_chunk_async(self.job_log(cluster, job_id), offset))
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
        Box::pin(blocking(move || Ok(logfile::tail_offset(&path, lines)?)))
    }

    fn archive_logs<'a>(&'a self, cluster: &'a str, dest: &'a Path) -> BoxFuture<'a, Result<usize>> {
        let jobs = self.cluster_dir(cluster).join("jobs");
        let dest = dest.to_path_buf();
        Box::pin(blocking(move || {
            let entries = match std::fs::read_dir(&jobs) {
                Ok(entries) => entries,
                Err(err) if err.kind() == std::io::ErrorKind::NotFound => return Ok(0),
                Err(err) => return Err(err.into()),
            };
            let mut moved = 0;
            for entry in entries {
                let entry = entry?;
                let log = entry.path().join("run.log");
                let Some(job_id) = entry.file_name().to_str().and_then(|id| id.parse::<i64>().ok()) else {
                    continue;
                };
                if !log.exists() {
                    continue;
                }
                std::fs::create_dir_all(&dest)?;
                std::fs::rename(&log, dest.join(format!("{job_id}.log")))?;
                moved += 1;
            }
            Ok(moved)
        }))
    }

    fn settle(&self) -> BoxFuture<'_, ()> {
        Box::pin(process::finish_kills())
    }
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

/// A file destination as a path inside the node's home: `~/x` and relative
/// paths are accepted; other absolute paths are not (nodes of the local
/// infra share the host's file system).
fn node_relative_path(dest: &str) -> Result<PathBuf, String> {
    let relative = dest.strip_prefix("~/").unwrap_or(dest);
    if relative.starts_with('/') || relative.split('/').any(|part| part == "..") {
        return Err(format!(
            "file mount destination {dest:?}: the local infra places files under each node's home; \
             use a path like ~/data"
        ));
    }
    Ok(PathBuf::from(relative))
}

/// Copies a file or a folder (recursively, symlinks as links) to `dest`.
fn copy_tree(source: &Path, dest: &Path) -> std::io::Result<()> {
    let meta = std::fs::symlink_metadata(source)
        .map_err(|err| std::io::Error::new(err.kind(), format!("{}: {err}", source.display())))?;
    if meta.is_dir() {
        std::fs::create_dir_all(dest)?;
        for entry in std::fs::read_dir(source)? {
            let entry = entry?;
            copy_tree(&entry.path(), &dest.join(entry.file_name()))?;
        }
    } else if meta.file_type().is_symlink() {
        let target = std::fs::read_link(source)?;
        let _ = std::fs::remove_file(dest);
        std::os::unix::fs::symlink(target, dest)?;
    } else {
        if let Some(parent) = dest.parent() {
            std::fs::create_dir_all(parent)?;
        }
        std::fs::copy(source, dest)?;
    }
    Ok(())
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

    #[test]
    fn destinations_outside_the_node_home_are_refused() {
        assert!(node_relative_path("~/data").is_ok());
        assert!(node_relative_path("data/x").is_ok());
        for bad in ["/etc/passwd", "~/../x", "a/../../b"] {
            assert!(node_relative_path(bad).is_err(), "{bad}");
        }
    }
}
