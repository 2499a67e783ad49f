//! Running a job: setup on every node of the task, then run on every node,
//! each as a detached run of the infra with SkyPilot's environment
//! variables; a watcher moves the job on when all nodes are done.

use futures_util::{StreamExt as _, stream::FuturesUnordered};
use prost::Message;
use skypilot_api::proto::skypilot::v1::{JobStatus, TaskSpec};

use super::{Clusters, is_job_done};
use crate::{
    clock::now_ms,
    clusters::infra_name,
    error::{Error, Result},
    infra::{RunEnd, RunHandle, RunRef, RunSpec},
    store::{ClusterRecord, JobRecord, NodeProcess},
};

/// The two phases of a job.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Phase {
    Setup,
    Run,
}

impl Phase {
    fn status(self) -> JobStatus {
        match self {
            Phase::Setup => JobStatus::SettingUp,
            Phase::Run => JobStatus::Running,
        }
    }

    fn name(self) -> &'static str {
        match self {
            Phase::Setup => "setup",
            Phase::Run => "run",
        }
    }
}

impl Clusters {
    /// The task a job runs, as submitted (the store keeps it sealed).
    pub(super) fn task_of(&self, job: &JobRecord) -> Result<TaskSpec> {
        TaskSpec::decode(self.inner.store.unseal(&job.task)?.as_slice())
            .map_err(|err| Error::internal(format!("stored task of job {} is unreadable: {err}", job.job_id)))
    }

    /// What runs `phase` of `job` on node `rank`.
    fn run_spec(
        &self,
        cluster: &ClusterRecord,
        job: &JobRecord,
        task: &TaskSpec,
        rank: i32,
        phase: Phase,
    ) -> RunSpec {
        let num_nodes = job_nodes(task, cluster);
        RunSpec {
            run: run_ref(job, phase, rank),
            script: match phase {
                Phase::Setup => task.setup.clone(),
                Phase::Run => task.run.clone(),
            },
            env: job_env(infra_name(cluster), cluster, job, task, rank, num_nodes, phase),
            log_prefix: node_prefix(rank, num_nodes),
        }
    }

    /// Starts `phase` of `job` on each of its nodes. Call with `jobs_lock` held.
    pub(super) async fn start_phase(
        &self,
        cluster: &ClusterRecord,
        mut job: JobRecord,
        phase: Phase,
    ) -> Result<()> {
        let task = self.task_of(&job)?;
        // Record the phase before anything starts: after a crash from here on,
        // recovery finds the runs the infra started instead of starting the
        // phase a second time.
        job.set_status(phase.status());
        job.processes.clear();
        if job.started_ms == 0 {
            job.started_ms = now_ms();
        }
        self.save_job(&job).await?;
        let infra = self.infra_of(&cluster.name)?;
        let mut started = Vec::new();
        for rank in 0..job_nodes(&task, cluster) {
            match infra.start(&self.run_spec(cluster, &job, &task, rank, phase)).await {
                Ok(handle) => started.push((rank, handle)),
                Err(err) => {
                    for (started_rank, handle) in &started {
                        infra.terminate(&cluster.name, *started_rank, *handle);
                    }
                    let message = format!("could not start the job's {} on node {rank}: {err}", phase.name());
                    return self.end_job_locked(job, JobStatus::Failed, None, &message).await;
                }
            }
        }
        job.processes = started.iter().map(|(rank, handle)| node_process(*rank, *handle)).collect();
        self.save_job(&job).await?;
        self.watch(job, phase, started);
        Ok(())
    }

    /// After a restart: watches the runs of a phase that was under way,
    /// adopting those the infra started but that were not recorded, and
    /// starting those that never started. Call with `jobs_lock` held.
    pub(super) async fn resume_phase(&self, mut job: JobRecord, phase: Phase) -> Result<()> {
        let cluster = self.get(&job.cluster)?;
        let task = self.task_of(&job)?;
        let infra = self.infra_of(&cluster.name)?;
        let mut runs = Vec::new();
        for rank in 0..job_nodes(&task, &cluster) {
            if let Some(known) = job.processes.iter().find(|p| p.rank == rank) {
                runs.push((rank, RunHandle { pid: known.pid, start_ticks: known.start_ticks }));
                continue;
            }
            let handle = match infra.find(&run_ref(&job, phase, rank)).await {
                Some(handle) => handle, // started before the crash
                None => match infra.start(&self.run_spec(&cluster, &job, &task, rank, phase)).await {
                    Ok(handle) => handle,
                    Err(err) => {
                        let message =
                            format!("could not start the job's {} on node {rank}: {err}", phase.name());
                        return self.end_job_locked(job, JobStatus::Failed, None, &message).await;
                    }
                },
            };
            runs.push((rank, handle));
        }
        job.processes = runs.iter().map(|(rank, handle)| node_process(*rank, *handle)).collect();
        self.save_job(&job).await?;
        self.watch(job, phase, runs);
        Ok(())
    }

    /// Waits for every run of the phase, then moves the job on; a run that
    /// fails (or whose node is lost) ends the job at once, and with it the
    /// runs still going on the other nodes.
    fn watch(&self, job: JobRecord, phase: Phase, runs: Vec<(i32, RunHandle)>) {
        let clusters = self.clone();
        let shutdown = self.inner.shutdown.clone();
        self.inner.tasks.spawn(async move {
            let Ok(infra) = clusters.infra_of(&job.cluster) else { return };
            let refs: Vec<RunRef> = runs.iter().map(|(rank, _)| run_ref(&job, phase, *rank)).collect();
            let mut waits: FuturesUnordered<_> =
                refs.iter().zip(&runs).map(|(run, (_, handle))| infra.wait(run, *handle)).collect();
            let until_done_or_failed = async {
                let mut ends = Vec::new();
                while let Some(end) = waits.next().await {
                    let failed = end != RunEnd::Exited(0);
                    ends.push(end);
                    if failed {
                        break;
                    }
                }
                ends
            };
            let ends = tokio::select! {
                ends = until_done_or_failed => ends,
                _ = shutdown.cancelled() => return, // runs keep going; watched again at next start
            };
            if let Err(err) = clusters.finish_phase(&job.cluster, job.job_id, phase, ends).await {
                tracing::error!(cluster = %job.cluster, job_id = job.job_id, error = %err, "could not record the job's end");
            }
        });
    }

    async fn finish_phase(&self, cluster: &str, job_id: i64, phase: Phase, ends: Vec<RunEnd>) -> Result<()> {
        let _lock = self.inner.jobs_lock.lock().await;
        let Ok(job) = self.job(cluster, job_id) else { return Ok(()) }; // torn down meanwhile
        if is_job_done(job.status()) || job.status() != phase.status() {
            return Ok(()); // cancelled meanwhile
        }
        let failure = ends.into_iter().find(|end| *end != RunEnd::Exited(0));
        match (phase, failure) {
            (Phase::Setup, Some(end)) => {
                let message = match &end {
                    RunEnd::Exited(code) => format!("setup failed with exit code {code}"),
                    RunEnd::Killed => "setup was killed".to_string(),
                    RunEnd::Lost(why) => format!("setup stopped: {why}"),
                };
                self.end_job_locked(job, JobStatus::FailedSetup, end.code(), &message).await?;
            }
            (Phase::Setup, None) => {
                let cluster_record = self.get(cluster)?;
                self.start_phase(&cluster_record, job, Phase::Run).await?;
            }
            (Phase::Run, Some(end)) => {
                let message = match &end {
                    RunEnd::Exited(code) => format!("exited with code {code}"),
                    RunEnd::Killed => "the job's process was killed".to_string(),
                    RunEnd::Lost(why) => why.clone(),
                };
                self.end_job_locked(job, JobStatus::Failed, end.code(), &message).await?;
            }
            (Phase::Run, None) => self.end_job_locked(job, JobStatus::Succeeded, Some(0), "").await?,
        }
        self.schedule_locked(cluster).await
    }
}

fn run_ref(job: &JobRecord, phase: Phase, rank: i32) -> RunRef {
    RunRef { cluster: job.cluster.clone(), job_id: job.job_id, phase: phase.name(), rank }
}

fn node_process(rank: i32, handle: RunHandle) -> NodeProcess {
    NodeProcess { rank, pid: handle.pid, start_ticks: handle.start_ticks }
}

/// The handle of a recorded run.
pub(super) fn handle(process: &NodeProcess) -> RunHandle {
    RunHandle { pid: process.pid, start_ticks: process.start_ticks }
}

/// How many of the cluster's nodes the job runs on.
fn job_nodes(task: &TaskSpec, cluster: &ClusterRecord) -> i32 {
    task.num_nodes.clamp(1, cluster.num_nodes.max(1))
}

/// Multi-node jobs prefix each line with the node, as SkyPilot does.
fn node_prefix(rank: i32, num_nodes: i32) -> String {
    match (num_nodes, rank) {
        (1, _) => String::new(),
        (_, 0) => "(head, rank=0) ".to_string(),
        (_, rank) => format!("(worker{rank}, rank={rank}) "),
    }
}

/// SkyPilot's job environment, then the task's envs and secrets.
fn job_env(
    infra: &str,
    cluster: &ClusterRecord,
    job: &JobRecord,
    task: &TaskSpec,
    rank: i32,
    num_nodes: i32,
    phase: Phase,
) -> Vec<(String, String)> {
    let ips: Vec<&str> = cluster.node_ips.iter().take(num_nodes as usize).map(String::as_str).collect();
    let ips = ips.join("\n");
    let info = format!(
        "{{\"cluster_name\": \"{}\", \"cloud\": \"{infra}\", \"region\": \"{infra}\", \"zone\": null, \"num_nodes\": {num_nodes}}}",
        cluster.name
    );
    let mut env = vec![
        ("SKYPILOT_NODE_RANK".to_string(), rank.to_string()),
        ("SKYPILOT_NODE_IPS".into(), ips.clone()),
        ("SKYPILOT_NUM_NODES".into(), num_nodes.to_string()),
        ("SKYPILOT_NUM_GPUS_PER_NODE".into(), job.gpus.to_string()),
        ("SKYPILOT_TASK_ID".into(), format!("sky-{}_{}_{}", job.submitted_ms, cluster.name, job.job_id)),
        ("SKYPILOT_CLUSTER_INFO".into(), info),
    ];
    if phase == Phase::Setup {
        env.push(("SKYPILOT_SETUP_NODE_RANK".into(), rank.to_string()));
        env.push(("SKYPILOT_SETUP_NODE_IPS".into(), ips));
    }
    let gpus_per_node = cluster.gpu_indices.len() / cluster.num_nodes.max(1) as usize;
    if gpus_per_node > 0 {
        // The job holds positions of node 0's share; node `rank` has the same positions of its own share.
        let node_share =
            &cluster.gpu_indices[rank as usize * gpus_per_node..(rank as usize + 1) * gpus_per_node];
        let visible: Vec<String> = job
            .gpu_indices
            .iter()
            .filter_map(|held| cluster.gpu_indices[..gpus_per_node].iter().position(|g| g == held))
            .map(|position| node_share[position].to_string())
            .collect();
        env.push(("CUDA_VISIBLE_DEVICES".into(), visible.join(",")));
    }
    env.extend(task.envs.iter().map(|(k, v)| (k.clone(), v.clone())));
    env.extend(task.secrets.iter().map(|(k, v)| (k.clone(), v.clone())));
    env
}
