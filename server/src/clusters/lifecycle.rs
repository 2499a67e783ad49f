//! Cluster lifecycle: launch (create or reuse, then submit the task as a
//! job), exec, stop, start, down and autostop settings.

use skypilot_api::{
    proto::skypilot::v1::{ClusterStatus, LaunchRequest, LaunchResponse, TaskSpec},
    task::{parse_accelerators, parse_amount},
};

use super::{Clusters, DEFAULT_CLUSTER_CPUS, DEFAULT_JOB_CPUS, infra_name};
use std::path::Path;

use crate::{
    auth::Caller,
    clock::now_ms,
    error::{Error, ErrorReason, Result},
    infra::{self, Nodes},
    store::{ClusterRecord, Table},
};

/// Per-node resources a task asks for: (CPUs, GiB, accelerators, GPUs).
pub(super) fn task_resources(task: &TaskSpec, default_cpus: f64) -> Result<(f64, f64, String, u32)> {
    let resources = task.resources.clone().unwrap_or_default();
    let invalid = |field: &str, e: String| Error::invalid(&format!("task.resources.{field}"), e);
    let cpus = if resources.cpus.is_empty() {
        default_cpus
    } else {
        parse_amount(&resources.cpus).map_err(|e| invalid("cpus", e))?.value
    };
    let memory = if resources.memory.is_empty() {
        0.0
    } else {
        parse_amount(&resources.memory).map_err(|e| invalid("memory", e))?.value
    };
    let gpus = if resources.accelerators.is_empty() {
        0
    } else {
        parse_accelerators(&resources.accelerators).map_err(|e| invalid("accelerators", e))?.count
    };
    Ok((cpus, memory, resources.accelerators, gpus))
}

/// The nodes `cluster` asks its infra for.
fn nodes_of(cluster: &ClusterRecord) -> Nodes {
    Nodes {
        count: cluster.num_nodes,
        cpus: cluster.cpus,
        memory_gib: cluster.memory_gib,
        gpus: gpus_per_node(cluster),
        region: infra::region_of(infra_name(cluster)).map(str::to_string),
    }
}

fn gpus_per_node(cluster: &ClusterRecord) -> u32 {
    parse_accelerators(&cluster.accelerators).map(|a| a.count).unwrap_or(0)
}

impl Clusters {
    /// `sky launch`: creates the cluster (or reuses a compatible one, starting
    /// it if stopped), copies files, and submits the task as a job.
    pub async fn launch(
        &self,
        request: &LaunchRequest,
        request_id: &str,
        caller: &Caller,
        progress: &(dyn Fn(&str) + Sync),
    ) -> Result<LaunchResponse> {
        let task = request.task.clone().unwrap_or_default();
        let name = request.cluster_name.clone();
        let (cpus, memory, accelerators, gpus) = task_resources(&task, DEFAULT_CLUSTER_CPUS)?;
        let existing: Option<ClusterRecord> = self.inner.store.get(Table::Clusters, name.as_bytes())?;
        let asked_infra = task.resources.as_ref().map(|r| r.infra.clone()).unwrap_or_default();
        let infra = self.inner.infras.named(&asked_infra)?.clone();
        let mut cluster = match existing {
            Some(cluster) => {
                if !asked_infra.is_empty()
                    && !infra::satisfies(infra_name(&cluster), infra.as_ref(), &asked_infra)
                {
                    return Err(Error::new(
                        ErrorReason::FailedPrecondition,
                        format!(
                            "cluster {name:?} runs on {}, not on {}: launch on another cluster (-c NEW_NAME), \
                             or tear this one down first (sky down {name})",
                            infra_name(&cluster),
                            infra::label(infra.as_ref(), &asked_infra)
                        ),
                    ));
                }
                self.check_fits(&cluster, &task)?;
                if cluster.status() == ClusterStatus::Stopped && !request.dryrun {
                    progress(&format!("Restarting stopped cluster '{name}'."));
                    self.start(&name).await?
                } else if cluster.status() == ClusterStatus::Init && !request.dryrun {
                    // An earlier launch stopped half way (a server restart): finish it.
                    progress(&format!("Resuming the launch of cluster '{name}'."));
                    let mut cluster = cluster;
                    self.provision(&mut cluster).await?;
                    cluster
                } else {
                    progress(&format!("Reusing existing cluster '{name}' ({}).", status_name(&cluster)));
                    cluster
                }
            }
            None => {
                let mut cluster = ClusterRecord {
                    name: name.clone(),
                    status: ClusterStatus::Init as i32,
                    num_nodes: task.num_nodes.max(1),
                    cpus,
                    memory_gib: memory,
                    accelerators,
                    autostop_idle_minutes: -1,
                    launched_ms: now_ms(),
                    user_name: caller.name.clone(),
                    user_id: caller.id.clone(),
                    next_job_id: 1,
                    ports: task.resources.clone().unwrap_or_default().ports,
                    infra: infra::label(infra.as_ref(), &asked_infra),
                    ..Default::default()
                };
                cluster.gpu_indices = self.reserve(&cluster, gpus)?;
                if request.dryrun {
                    cluster
                } else {
                    progress(&format!(
                        "Launching a new cluster '{name}': {} node(s), {} CPU(s){}{} per node, on {}.",
                        cluster.num_nodes,
                        cluster.cpus,
                        if memory > 0.0 { format!(", {memory} GiB memory") } else { String::new() },
                        if cluster.accelerators.is_empty() {
                            String::new()
                        } else {
                            format!(", {}", cluster.accelerators)
                        },
                        infra.name(),
                    ));
                    self.save_cluster(&cluster).await?;
                    self.provision(&mut cluster).await?;
                    progress(&format!("\u{2713} Cluster launched: {name}."));
                    cluster
                }
            }
        };
        if request.dryrun {
            return Ok(LaunchResponse {
                cluster_name: name.clone(),
                job_id: 0,
                summary: format!(
                    "Dry run: would run task '{}' on cluster '{name}' ({} node(s), {} CPU(s) per node).",
                    if task.name.is_empty() { "-" } else { &task.name },
                    cluster.num_nodes,
                    cluster.cpus
                ),
            });
        }
        self.sync_files(&cluster, &task, progress).await?;

        let task_autostop =
            task.resources.as_ref().and_then(|r| r.autostop_idle_minutes.map(|m| (m, r.autostop_down)));
        let autostop = match (request.idle_minutes_to_autostop, request.down) {
            (Some(minutes), down) => Some((minutes, down)),
            (None, true) => Some((0, true)),
            (None, false) => task_autostop,
        };
        if let Some((minutes, down)) = autostop {
            cluster = self.set_autostop(&name, minutes, down).await?;
            let action = if cluster.autostop_down { "tear down" } else { "stop" };
            progress(&format!("Autostop set: {action} '{name}' after {minutes} idle minute(s)."));
        }
        let job_id = self.submit_job(&name, &task, !request.no_setup, caller, request_id).await?;
        progress(&format!("\u{2699}\u{fe0e} Job submitted, ID: {job_id}"));
        let summary = format!(
            "Job {job_id} submitted to cluster '{name}' ({} node(s), {} CPU(s) per node).",
            cluster.num_nodes, cluster.cpus
        );
        Ok(LaunchResponse { cluster_name: name, job_id, summary })
    }

    /// `sky exec`: submits the task as a job on an UP cluster (no setup).
    pub async fn exec(
        &self,
        name: &str,
        task: &TaskSpec,
        request_id: &str,
        caller: &Caller,
        progress: &(dyn Fn(&str) + Sync),
    ) -> Result<i64> {
        let cluster = self.get(name)?;
        if cluster.status() != ClusterStatus::Up {
            return Err(Error::new(
                ErrorReason::FailedPrecondition,
                format!("cluster {name:?} is {}; start it first: sky start {name}", status_name(&cluster)),
            ));
        }
        self.check_fits(&cluster, task)?;
        self.sync_files(&cluster, task, progress).await?;
        let job_id = self.submit_job(name, task, false, caller, request_id).await?;
        progress(&format!("\u{2699}\u{fe0e} Job submitted, ID: {job_id}"));
        Ok(job_id)
    }

    /// Checks that a task's per-node needs fit an existing cluster.
    fn check_fits(&self, cluster: &ClusterRecord, task: &TaskSpec) -> Result<()> {
        let (cpus, memory, _, gpus) = task_resources(task, DEFAULT_JOB_CPUS)?;
        let name = &cluster.name;
        let mismatch = |what: String| {
            Err(Error::new(
                ErrorReason::FailedPrecondition,
                format!(
                    "the task does not fit cluster {name:?}: {what}. Launch it on another cluster \
                     (-c NEW_NAME), or tear this one down first (sky down {name})."
                ),
            ))
        };
        if task.num_nodes > cluster.num_nodes {
            return mismatch(format!(
                "it asks for {} nodes, the cluster has {}",
                task.num_nodes, cluster.num_nodes
            ));
        }
        if cpus > cluster.cpus + 1e-9 {
            return mismatch(format!("it asks for {cpus} CPUs per node, the cluster has {}", cluster.cpus));
        }
        if memory > 0.0 && memory > cluster.memory_gib + 1e-9 {
            return mismatch(format!(
                "it asks for {memory} GiB memory per node, the cluster has {} GiB",
                cluster.memory_gib
            ));
        }
        if gpus > gpus_per_node(cluster) {
            return mismatch(format!(
                "it asks for {gpus} GPU(s) per node, the cluster has {}",
                if cluster.accelerators.is_empty() { "none" } else { &cluster.accelerators }
            ));
        }
        Ok(())
    }

    /// Copies the workdir to `~/sky_workdir` and each file mount to its
    /// destination, on every node.
    async fn sync_files(
        &self,
        cluster: &ClusterRecord,
        task: &TaskSpec,
        progress: &(dyn Fn(&str) + Sync),
    ) -> Result<()> {
        if !task.workdir.is_empty() {
            progress(&format!(
                "Syncing workdir {} to ~/sky_workdir on {} node(s).",
                task.workdir, cluster.num_nodes
            ));
        }
        let workdir = (!task.workdir.is_empty()).then_some(("~/sky_workdir", task.workdir.as_str()));
        let mounts = task.file_mounts.iter().map(|(dest, source)| (dest.as_str(), source.as_str()));
        let copies: Vec<(&str, &str)> = workdir.into_iter().chain(mounts).collect();
        let infra = self.inner.infras.named(infra_name(cluster))?;
        for rank in 0..cluster.num_nodes {
            for (dest, source) in &copies {
                infra.copy_to_node(&cluster.name, rank, Path::new(source), dest).await?;
            }
        }
        Ok(())
    }

    /// `sky stop`: cancels the cluster's jobs and releases its resources.
    pub async fn stop(&self, name: &str) -> Result<ClusterRecord> {
        let mut cluster = self.get(name)?;
        if cluster.status() == ClusterStatus::Stopped {
            return Ok(cluster);
        }
        if let Ok(infra) = self.inner.infras.named(infra_name(&cluster))
            && let Some(why) = infra.stop_refused()
        {
            return Err(Error::new(
                ErrorReason::FailedPrecondition,
                format!("cluster {name:?} runs on {}, where it cannot be stopped: {why}", infra.name()),
            ));
        }
        self.kill_all_jobs(name, "cluster was stopped").await?;
        cluster = self.get(name)?;
        cluster.status = ClusterStatus::Stopped as i32;
        cluster.gpu_indices.clear();
        cluster.idle_since_ms = 0;
        self.save_cluster(&cluster).await?;
        Ok(cluster)
    }

    /// `sky start`: takes a stopped cluster's resources back.
    pub async fn start(&self, name: &str) -> Result<ClusterRecord> {
        let mut cluster = self.get(name)?;
        if cluster.status() != ClusterStatus::Stopped {
            return Ok(cluster);
        }
        cluster.gpu_indices = self.reserve(&cluster, gpus_per_node(&cluster))?;
        self.provision(&mut cluster).await?;
        Ok(cluster)
    }

    /// After an upgrade from a server that did not record node addresses:
    /// asks the infra for those of every UP cluster that lacks them.
    pub(super) async fn reconcile_node_addresses(&self) -> Result<()> {
        for mut cluster in self.list(&[], None)? {
            if cluster.status() == ClusterStatus::Up && cluster.node_ips.len() != cluster.num_nodes as usize {
                let infra = self.inner.infras.named(infra_name(&cluster))?;
                cluster.node_ips = infra.provision(&cluster.name, &nodes_of(&cluster)).await?.addresses;
                self.save_cluster(&cluster).await?;
            }
        }
        Ok(())
    }

    /// Makes the cluster's nodes exist and records it UP, with their addresses.
    pub(super) async fn provision(&self, cluster: &mut ClusterRecord) -> Result<()> {
        let infra = self.inner.infras.named(infra_name(cluster))?;
        let provisioned = infra.provision(&cluster.name, &nodes_of(cluster)).await?;
        cluster.node_ips = provisioned.addresses;
        if !provisioned.gpu_indices.is_empty() {
            cluster.gpu_indices = provisioned.gpu_indices;
        }
        cluster.status = ClusterStatus::Up as i32;
        cluster.idle_since_ms = now_ms();
        self.save_cluster(cluster).await
    }

    /// `sky down`: cancels the jobs, removes the nodes and forgets the
    /// cluster (with `purge`, even where nodes do not answer).
    pub async fn down(&self, name: &str, purge: bool) -> Result<ClusterRecord> {
        let mut cluster = self.get(name)?;
        let infra = self.inner.infras.named(infra_name(&cluster))?.clone();
        self.kill_all_jobs(name, "cluster was torn down").await?;
        let archive = self.inner.job_log_archive.join(format!("{name}-{}", now_ms()));
        if let Err(err) = infra.archive_logs(name, &archive).await {
            tracing::warn!(cluster = name, error = %err, "could not keep the job logs of a torn-down cluster");
        }
        infra.release(name, purge).await?;
        self.forget_jobs(name)?;
        self.inner.store.delete(Table::Clusters, name.as_bytes())?;
        self.inner.store.durable().await?;
        self.inner.cluster_changes.send_modify(|n| *n += 1);
        cluster.status = ClusterStatus::Unspecified as i32;
        Ok(cluster)
    }

    /// `sky autostop`: `minutes` < 0 turns it off.
    pub async fn set_autostop(&self, name: &str, minutes: i32, down: bool) -> Result<ClusterRecord> {
        let mut cluster = self.get(name)?;
        // Where a cluster cannot stop, autostop tears it down.
        let cannot_stop =
            self.inner.infras.named(infra_name(&cluster)).is_ok_and(|infra| infra.stop_refused().is_some());
        let down = down || cannot_stop;
        cluster.autostop_idle_minutes = minutes.max(-1);
        cluster.autostop_down = down && minutes >= 0;
        if cluster.idle_since_ms != 0 {
            cluster.idle_since_ms = now_ms(); // setting autostop restarts the idle clock
        }
        self.save_cluster(&cluster).await?;
        Ok(cluster)
    }
}

/// SkyPilot's spelling of a cluster's status.
pub fn status_name(cluster: &ClusterRecord) -> &'static str {
    skypilot_api::names::cluster_status(cluster.status())
}
