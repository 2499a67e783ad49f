//! Whether a new cluster for a task could be launched now, later (when
//! other clusters let go of what they hold), or never: what the managed
//! jobs controller asks before it launches, so that a job waits for
//! capacity instead of failing, and fails at once when nothing could hold it.

use skypilot_api::proto::skypilot::v1::{ClusterStatus, TaskSpec};

use super::{Clusters, DEFAULT_CLUSTER_CPUS, lifecycle::task_resources};
use crate::{error::Result, store::ClusterRecord};

/// Where a launch stands.
#[derive(Debug, Clone, PartialEq)]
pub enum Fit {
    /// It fits (or the infra decides when it provisions).
    Now,
    /// Not now: other clusters hold what it needs (why).
    Later(String),
    /// Never: the infra takes no clusters, or all of it would not be enough (why).
    Never(String),
}

impl Clusters {
    /// Whether a new cluster `name` for `task` fits its infra.
    pub fn launch_fit(&self, name: &str, task: &TaskSpec) -> Result<Fit> {
        let (cpus, memory, accelerators, gpus) = task_resources(task, DEFAULT_CLUSTER_CPUS)?;
        let asked_infra = task.resources.as_ref().map(|r| r.infra.clone()).unwrap_or_default();
        let infra = match self.inner.infras.named(&asked_infra) {
            Ok(infra) => infra.clone(),
            Err(err) => return Ok(Fit::Never(err.message)),
        };
        if let Err(err) = self.check_infra_enabled(infra.name()) {
            return Ok(Fit::Never(err.message));
        }
        if infra.name() != "local" {
            return Ok(Fit::Now); // a pool places nodes on its hosts when it provisions
        }
        let nodes = task.num_nodes.max(1);
        let host = &self.inner.capacity;
        let total = f64::from(nodes);
        if cpus * total > host.cpus as f64 + 1e-9 {
            return Ok(Fit::Never(format!(
                "it asks for {cpus} CPU(s) x {nodes} node(s) and the host has {} CPUs in all",
                host.cpus
            )));
        }
        if memory * total > host.memory_gib + 1e-9 {
            return Ok(Fit::Never(format!(
                "it asks for {memory} GiB x {nodes} node(s) and the host has {:.1} GiB in all",
                host.memory_gib
            )));
        }
        if (gpus as usize) * (nodes as usize) > host.gpus.len() {
            return Ok(Fit::Never(format!(
                "it asks for {gpus} GPU(s) x {nodes} node(s) and the host has {} GPU(s) in all",
                host.gpus.len()
            )));
        }
        let cluster = ClusterRecord {
            name: name.to_string(),
            status: ClusterStatus::Init as i32,
            num_nodes: nodes,
            cpus,
            memory_gib: memory,
            accelerators,
            infra: infra.name().to_string(),
            ..Default::default()
        };
        Ok(match self.reserve(&cluster, gpus) {
            Ok(_) => Fit::Now,
            Err(err) => Fit::Later(err.message),
        })
    }
}
