//! The `local` infra: clusters on the API server's own host. Reports the CPUs,
//! memory and GPUs the host offers.

use std::process::Command;

use super::InfraStatus;

/// What the host offers.
#[derive(Debug, Clone, PartialEq)]
pub struct HostResources {
    pub cpus: usize,
    pub memory_gib: f64,
    pub gpus: Vec<String>,
}

/// Reads the host's CPUs (those this process may use), memory and GPUs.
/// In a container the limits are the container's: the CPU count follows the
/// cgroup's quota (std reads it) and memory the cgroup's `memory.max`.
pub fn host_resources() -> HostResources {
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
    HostResources { cpus, memory_gib, gpus: nvidia_gpus() }
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

/// The local infra is always usable; the detail says what it offers.
pub fn check() -> InfraStatus {
    let host = host_resources();
    let gpus = if host.gpus.is_empty() {
        "no GPUs".to_string()
    } else {
        format!("{} GPU(s): {}", host.gpus.len(), host.gpus.join(", "))
    };
    InfraStatus {
        name: "local",
        enabled: true,
        detail: format!("{} CPUs, {:.1} GiB memory, {gpus}", host.cpus, host.memory_gib),
    }
}

/// Clusters on this host: a cluster is a folder with one home folder per node
/// (`node-<rank>`, holding `sky_workdir` and file mounts) and a `jobs` folder
/// with each job's scripts, log and exit codes.
#[derive(Debug, Clone)]
pub struct LocalInfra {
    root: std::path::PathBuf,
}

impl LocalInfra {
    pub fn new(root: std::path::PathBuf) -> LocalInfra {
        LocalInfra { root }
    }

    fn cluster_dir(&self, cluster: &str) -> std::path::PathBuf {
        self.root.join(cluster)
    }
}

impl super::Infra for LocalInfra {
    fn name(&self) -> &'static str {
        "local"
    }

    fn provision(&self, cluster: &str, num_nodes: i32) -> std::io::Result<()> {
        for rank in 0..num_nodes {
            std::fs::create_dir_all(self.node_home(cluster, rank).join("sky_workdir"))?;
        }
        std::fs::create_dir_all(self.cluster_dir(cluster).join("jobs"))
    }

    fn sync_files(
        &self,
        cluster: &str,
        num_nodes: i32,
        workdir: &str,
        file_mounts: &std::collections::HashMap<String, String>,
    ) -> std::io::Result<()> {
        for rank in 0..num_nodes {
            let home = self.node_home(cluster, rank);
            if !workdir.is_empty() {
                copy_tree(std::path::Path::new(workdir), &home.join("sky_workdir"))?;
            }
            for (dest, source) in file_mounts {
                let dest = home.join(super::node_relative_path(dest).map_err(std::io::Error::other)?);
                copy_tree(std::path::Path::new(source), &dest)?;
            }
        }
        Ok(())
    }

    fn node_home(&self, cluster: &str, rank: i32) -> std::path::PathBuf {
        self.cluster_dir(cluster).join(format!("node-{rank}"))
    }

    fn job_dir(&self, cluster: &str, job_id: i64) -> std::path::PathBuf {
        self.cluster_dir(cluster).join("jobs").join(job_id.to_string())
    }

    fn teardown(&self, cluster: &str) -> std::io::Result<()> {
        match std::fs::remove_dir_all(self.cluster_dir(cluster)) {
            Err(err) if err.kind() != std::io::ErrorKind::NotFound => Err(err),
            _ => Ok(()),
        }
    }
}

/// Copies a file or a folder (recursively, symlinks as links) to `dest`.
fn copy_tree(source: &std::path::Path, dest: &std::path::Path) -> std::io::Result<()> {
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
