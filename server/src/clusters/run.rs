//! Running a job: setup on every node of the task, then run on every node,
//! each as a detached process (see `infra::process`) with SkyPilot's
//! environment variables; a watcher moves the job on when all nodes are done.

use futures_util::future::join_all;
use prost::Message;
use skypilot_api::proto::skypilot::v1::{JobStatus, TaskSpec};

use super::{Clusters, is_job_done};
use crate::{
    error::{Error, Result},
    infra::process::{self, NodeCommand, Spawned},
    ops::now_ms,
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
    /// The log file of a job (all nodes, setup and run).
    pub(super) fn job_log_path(&self, cluster: &str, job_id: i64) -> std::path::PathBuf {
        self.inner.infra.job_dir(cluster, job_id).join("run.log")
    }

    fn exit_file(&self, job: &JobRecord, phase: Phase, rank: i32) -> std::path::PathBuf {
        self.inner.infra.job_dir(&job.cluster, job.job_id).join(format!("{}-{rank}.exit", phase.name()))
    }

    /// The command that runs `phase` of `job` on node `rank`.
    fn node_command(
        &self,
        cluster: &ClusterRecord,
        job: &JobRecord,
        task: &TaskSpec,
        rank: i32,
        phase: Phase,
    ) -> NodeCommand {
        let dir = self.inner.infra.job_dir(&cluster.name, job.job_id);
        let home = self.inner.infra.node_home(&cluster.name, rank);
        let num_nodes = job_nodes(task, cluster);
        NodeCommand {
            script: match phase {
                Phase::Setup => task.setup.clone(),
                Phase::Run => task.run.clone(),
            },
            script_file: dir.join(format!("{}-{rank}.sh", phase.name())),
            log: dir.join("run.log"),
            exit_file: self.exit_file(job, phase, rank),
            pid_file: dir.join(format!("{}-{rank}.pid", phase.name())),
            prefix: node_prefix(rank, num_nodes),
            cwd: home.join("sky_workdir"),
            env: job_env(cluster, job, task, rank, num_nodes, phase, &home),
        }
    }

    /// Starts `phase` of `job` on each of its nodes. Call with `jobs_lock` held.
    pub(super) async fn start_phase(
        &self,
        cluster: &ClusterRecord,
        mut job: JobRecord,
        phase: Phase,
    ) -> Result<()> {
        let task = decode_task(&job)?;
        std::fs::create_dir_all(self.inner.infra.job_dir(&cluster.name, job.job_id))?;
        // Record the phase before anything starts: after a crash from here on,
        // recovery finds the processes through their pid files instead of
        // starting the phase a second time.
        job.set_status(phase.status());
        job.processes.clear();
        if job.started_ms == 0 {
            job.started_ms = now_ms();
        }
        self.save_job(&job).await?;
        let mut spawned = Vec::new();
        for rank in 0..job_nodes(&task, cluster) {
            match process::spawn(&self.node_command(cluster, &job, &task, rank, phase)) {
                Ok(process) => spawned.push((rank, process)),
                Err(err) => {
                    for (_, process) in &spawned {
                        process::kill_group(process.pid, process.start_ticks);
                    }
                    let message = format!("could not start the job's {} on node {rank}: {err}", phase.name());
                    return self.end_job_locked(job, JobStatus::Failed, None, &message).await;
                }
            }
        }
        job.processes = spawned
            .iter()
            .map(|(rank, p)| NodeProcess { rank: *rank, pid: p.pid, start_ticks: p.start_ticks })
            .collect();
        self.save_job(&job).await?;
        self.watch(job, phase, spawned.into_iter().map(|(_, p)| p).collect());
        Ok(())
    }

    /// After a restart: watches the processes of a phase that was under way,
    /// adopting those that recorded only a pid file and starting those that
    /// never started. Call with `jobs_lock` held.
    pub(super) async fn resume_phase(&self, mut job: JobRecord, phase: Phase) -> Result<()> {
        let cluster = self.get(&job.cluster)?;
        let task = decode_task(&job)?;
        let mut records = Vec::new();
        let mut processes = Vec::new();
        for rank in 0..job_nodes(&task, &cluster) {
            if let Some(known) = job.processes.iter().find(|p| p.rank == rank) {
                processes.push(Spawned::recovered(known.pid, known.start_ticks));
                records.push(known.clone());
                continue;
            }
            let command = self.node_command(&cluster, &job, &task, rank, phase);
            let process = match process::read_pid(&command.pid_file) {
                // Started before the crash; if it is gone, its exit file tells how it ended.
                Some(pid) => Spawned::recovered(pid, process::start_ticks(pid).unwrap_or(u64::MAX)),
                None => match process::spawn(&command) {
                    Ok(process) => process,
                    Err(err) => {
                        let message =
                            format!("could not start the job's {} on node {rank}: {err}", phase.name());
                        return self.end_job_locked(job, JobStatus::Failed, None, &message).await;
                    }
                },
            };
            records.push(NodeProcess { rank, pid: process.pid, start_ticks: process.start_ticks });
            processes.push(process);
        }
        job.processes = records;
        self.save_job(&job).await?;
        self.watch(job, phase, processes);
        Ok(())
    }

    fn watch(&self, job: JobRecord, phase: Phase, processes: Vec<Spawned>) {
        let clusters = self.clone();
        let exit_files: Vec<_> = job.processes.iter().map(|p| self.exit_file(&job, phase, p.rank)).collect();
        let shutdown = self.inner.shutdown.clone();
        self.inner.tasks.spawn(async move {
            let waits = processes.into_iter().zip(&exit_files).map(|(process, file)| process::wait(process, file));
            let codes = tokio::select! {
                codes = join_all(waits) => codes,
                _ = shutdown.cancelled() => return, // processes keep running; watched again at next start
            };
            if let Err(err) = clusters.finish_phase(&job.cluster, job.job_id, phase, codes).await {
                tracing::error!(cluster = %job.cluster, job_id = job.job_id, error = %err, "could not record the job's end");
            }
        });
    }

    async fn finish_phase(
        &self,
        cluster: &str,
        job_id: i64,
        phase: Phase,
        codes: Vec<Option<i32>>,
    ) -> Result<()> {
        let _lock = self.inner.jobs_lock.lock().await;
        let Ok(job) = self.job(cluster, job_id) else { return Ok(()) }; // torn down meanwhile
        let expected = match phase {
            Phase::Setup => JobStatus::SettingUp,
            Phase::Run => JobStatus::Running,
        };
        if is_job_done(job.status()) || job.status() != expected {
            return Ok(()); // cancelled meanwhile
        }
        let failure = codes.iter().find(|code| **code != Some(0)).copied();
        match (phase, failure) {
            (Phase::Setup, Some(code)) => {
                let message = match code {
                    Some(code) => format!("setup failed with exit code {code}"),
                    None => "setup was killed".to_string(),
                };
                self.end_job_locked(job, JobStatus::FailedSetup, code, &message).await?;
            }
            (Phase::Setup, None) => {
                let cluster_record = self.get(cluster)?;
                self.start_phase(&cluster_record, job, Phase::Run).await?;
            }
            (Phase::Run, Some(code)) => {
                let message = match code {
                    Some(code) => format!("exited with code {code}"),
                    None => "the job's process was killed".to_string(),
                };
                self.end_job_locked(job, JobStatus::Failed, code, &message).await?;
            }
            (Phase::Run, None) => self.end_job_locked(job, JobStatus::Succeeded, Some(0), "").await?,
        }
        self.schedule_locked(cluster).await
    }
}

fn decode_task(job: &JobRecord) -> Result<TaskSpec> {
    TaskSpec::decode(job.task.as_slice())
        .map_err(|err| Error::internal(format!("stored task of job {} is unreadable: {err}", job.job_id)))
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
    cluster: &ClusterRecord,
    job: &JobRecord,
    task: &TaskSpec,
    rank: i32,
    num_nodes: i32,
    phase: Phase,
    home: &std::path::Path,
) -> Vec<(String, String)> {
    let ips = vec!["127.0.0.1"; num_nodes as usize].join("\n");
    let info = format!(
        "{{\"cluster_name\": \"{}\", \"cloud\": \"local\", \"region\": \"local\", \"zone\": null, \"num_nodes\": {num_nodes}}}",
        cluster.name
    );
    let mut env = vec![
        ("HOME".to_string(), home.to_string_lossy().into_owned()),
        ("SKYPILOT_NODE_RANK".into(), rank.to_string()),
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
