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
pub fn host_resources() -> HostResources {
    let cpus = std::thread::available_parallelism().map(|n| n.get()).unwrap_or(1);
    let memory_gib = std::fs::read_to_string("/proc/meminfo")
        .ok()
        .and_then(|text| {
            text.lines()
                .find_map(|line| line.strip_prefix("MemTotal:"))
                .and_then(|rest| rest.trim().trim_end_matches("kB").trim().parse::<f64>().ok())
        })
        .map(|kib| kib / (1024.0 * 1024.0))
        .unwrap_or(0.0);
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
