//! SSH node pools: a team's own machines, reached over SSH (`pools` reads
//! SkyPilot's `ssh_node_pools.yaml`; `connection` drives the system OpenSSH
//! client). `sky check` connects to every host of every pool, pins its host
//! key on first use, and reports what each offers (CPUs, memory, GPUs from
//! `nvidia-smi`) or why it cannot be used. Clusters on pools (`infra:
//! ssh/<pool>`) build on this.

pub mod connection;
pub mod pools;

use std::{path::Path, time::Duration};

use connection::{Ssh, SshError};
use futures_util::future::join_all;
pub use pools::{Host, Pool};

use super::{Capacity, InfraStatus};

/// How long probing one host may take.
const PROBE_TIMEOUT: Duration = Duration::from_secs(20);

/// What a host reports about itself.
const PROBE: &str = r#"nproc
awk '/^MemTotal:/ {print $2}' /proc/meminfo
if command -v nvidia-smi >/dev/null 2>&1; then nvidia-smi --query-gpu=name --format=csv,noheader || true; fi
"#;

/// The pools this server knows, and its connections to their hosts.
pub struct SshPools {
    pools: Vec<Pool>,
    ssh: Ssh,
}

impl SshPools {
    /// The pools of `file` (when given, it must exist; else the server
    /// user's `~/.sky/ssh_node_pools.yaml`, when it exists), with SSH state
    /// (pinned host keys, control sockets) in `state_dir`.
    pub fn load(file: Option<&Path>, home: &Path, user: &str, state_dir: &Path) -> Result<SshPools, String> {
        let default = home.join(".sky/ssh_node_pools.yaml");
        let pools = match file {
            Some(file) => pools::load(file, home, user)?,
            None if default.exists() => pools::load(&default, home, user)?,
            None => Vec::new(),
        };
        for host in pools.iter().flat_map(|pool| &pool.hosts) {
            connection::check_identity_file(host)?;
        }
        let ssh = Ssh::new(state_dir.to_path_buf())
            .map_err(|err| format!("cannot keep SSH state in {}: {err}", state_dir.display()))?;
        Ok(SshPools { pools, ssh })
    }

    /// `ssh/<pool>` for every pool.
    pub fn infra_names(&self) -> Vec<String> {
        self.pools.iter().map(|pool| format!("ssh/{}", pool.name)).collect()
    }

    /// Connects to every host of the pool named `infra` (`ssh/<pool>`) and
    /// says what each offers, or why it cannot be used.
    pub async fn check(&self, infra: &str) -> InfraStatus {
        let Some(pool) = self.pools.iter().find(|pool| format!("ssh/{}", pool.name) == infra) else {
            return InfraStatus {
                name: infra.to_string(),
                enabled: false,
                detail: "no such SSH node pool".into(),
            };
        };
        let reports = join_all(pool.hosts.iter().map(|host| self.report(host))).await;
        let ready = reports.iter().filter(|(ok, _)| *ok).count();
        let mut detail = format!("{ready} of {} hosts ready", pool.hosts.len());
        for (_, line) in reports {
            detail.push('\n');
            detail.push_str(&line);
        }
        InfraStatus { name: infra.to_string(), enabled: ready > 0, detail }
    }

    /// One line on `host`: ready, with what it offers and its key, or why not.
    async fn report(&self, host: &Host) -> (bool, String) {
        match self.probe(host).await {
            Ok(capacity) => {
                let gpus = match capacity.gpus.len() {
                    0 => "no GPUs".to_string(),
                    n => format!("{n} GPU(s): {}", capacity.gpus.join(", ")),
                };
                let key = self.ssh.fingerprint(host).await.unwrap_or_else(|| "not pinned".into());
                let line = format!(
                    "{}: ready, {} CPUs, {:.1} GiB memory, {gpus}; host key {key}",
                    host.label(),
                    capacity.cpus,
                    capacity.memory_gib
                );
                (true, line)
            }
            // Every error names the host.
            Err(err) => (false, err.to_string()),
        }
    }

    /// What `host` offers, asked over SSH.
    pub async fn probe(&self, host: &Host) -> Result<Capacity, SshError> {
        let output = self.ssh.run(host, PROBE, PROBE_TIMEOUT).await?;
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

    /// Ends the connections to every host.
    pub async fn close(&self) {
        self.ssh.close().await;
    }
}
