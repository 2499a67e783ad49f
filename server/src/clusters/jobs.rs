//! The job queue of each cluster: submission with ids from 1, FIFO
//! scheduling that starts a job only when the CPUs and GPUs it asks for are
//! free on the cluster, cancellation, and reconciliation after a restart.

use prost::Message;
use skypilot_api::{
    proto::skypilot::v1::{ClusterStatus, JobStatus, TaskSpec},
    task::{parse_accelerators, parse_amount},
};

use super::{
    Clusters, DEFAULT_JOB_CPUS, is_job_done,
    run::{self, Phase},
};
use crate::{
    auth::Caller,
    clock::now_ms,
    error::{Error, ErrorReason, Result},
    store::{JobRecord, Table},
};

impl Clusters {
    /// Queues `task` as the cluster's next job for request `request_id`;
    /// returns its id. A request that already submitted its job gets that one.
    pub(super) async fn submit_job(
        &self,
        cluster_name: &str,
        task: &TaskSpec,
        run_setup: bool,
        caller: &Caller,
        request_id: &str,
    ) -> Result<i64> {
        let resources = task.resources.clone().unwrap_or_default();
        let cpus = if resources.cpus.is_empty() {
            DEFAULT_JOB_CPUS
        } else {
            parse_amount(&resources.cpus).map_err(|e| Error::invalid("task.resources.cpus", e))?.value
        };
        let gpus = parse_accelerators(&resources.accelerators).map(|a| a.count).unwrap_or(0);
        let _lock = self.inner.jobs_lock.lock().await;
        if !request_id.is_empty()
            && let Some(job_id) = self.job_of_request(cluster_name, request_id)?
        {
            return Ok(job_id);
        }
        let mut cluster = self.get(cluster_name)?;
        let job_id = cluster.next_job_id.max(1);
        cluster.next_job_id = job_id + 1;
        cluster.idle_since_ms = 0;
        self.inner.store.put(Table::Clusters, cluster.name.as_bytes(), &cluster)?;
        let job = JobRecord {
            job_id,
            cluster: cluster_name.to_string(),
            name: task.name.clone(),
            status: JobStatus::Pending as i32,
            user_name: caller.name.clone(),
            user_id: caller.id.clone(),
            submitted_ms: now_ms(),
            cpus,
            gpus,
            task: self.inner.store.seal(&task.encode_to_vec())?,
            run_setup,
            request_id: request_id.to_string(),
            ..Default::default()
        };
        self.save_job(&job).await?;
        self.schedule_locked(cluster_name).await?;
        Ok(job_id)
    }

    /// Starts pending jobs in id order while they fit; the first that does
    /// not fit waits, and so do all after it (FIFO). Call with `jobs_lock` held.
    pub(super) async fn schedule_locked(&self, cluster_name: &str) -> Result<()> {
        let Ok(cluster) = self.get(cluster_name) else { return Ok(()) };
        if cluster.status() != ClusterStatus::Up {
            return Ok(());
        }
        let jobs = self.active_jobs(cluster_name)?;
        let active = |job: &&JobRecord| matches!(job.status(), JobStatus::SettingUp | JobStatus::Running);
        let mut used_cpus: f64 = jobs.iter().filter(active).map(|j| j.cpus).sum();
        let mut used_gpus: Vec<u32> =
            jobs.iter().filter(active).flat_map(|j| j.gpu_indices.clone()).collect();
        let gpus_per_node = parse_accelerators(&cluster.accelerators).map(|a| a.count).unwrap_or(0) as usize;
        for mut job in jobs.into_iter().filter(|j| j.status() == JobStatus::Pending) {
            let free_gpus: Vec<u32> = cluster
                .gpu_indices
                .iter()
                .take(gpus_per_node) // node 0's share; every node has the same layout
                .copied()
                .filter(|i| !used_gpus.contains(i))
                .collect();
            if used_cpus + job.cpus > cluster.cpus + 1e-9 || job.gpus as usize > free_gpus.len() {
                break;
            }
            used_cpus += job.cpus;
            job.gpu_indices = free_gpus[..job.gpus as usize].to_vec();
            used_gpus.extend(job.gpu_indices.iter().copied());
            let has_setup = self.task_of(&job).is_ok_and(|task| !task.setup.trim().is_empty());
            let phase = if job.run_setup && has_setup { Phase::Setup } else { Phase::Run };
            self.start_phase(&cluster, job, phase).await?;
        }
        Ok(())
    }

    /// `sky cancel`: cancels the given jobs (all unfinished with `all`, the
    /// latest unfinished when neither). Returns the ids cancelled.
    pub async fn cancel_jobs(&self, cluster_name: &str, ids: &[i64], all: bool) -> Result<Vec<i64>> {
        self.get(cluster_name)?;
        let _lock = self.inner.jobs_lock.lock().await;
        let jobs = self.active_jobs(cluster_name)?;
        let targets: Vec<JobRecord> = if all {
            jobs.into_iter().filter(|j| !is_job_done(j.status())).collect()
        } else if ids.is_empty() {
            let latest = jobs.into_iter().rev().find(|j| !is_job_done(j.status())).ok_or_else(|| {
                Error::new(
                    ErrorReason::FailedPrecondition,
                    format!("cluster {cluster_name:?} has no unfinished job to cancel"),
                )
            })?;
            vec![latest]
        } else {
            let mut chosen = Vec::new();
            for id in ids {
                let job = self.job(cluster_name, *id)?;
                if is_job_done(job.status()) {
                    return Err(Error::new(
                        ErrorReason::AlreadyDone,
                        format!(
                            "job {id} on cluster {cluster_name:?} already finished ({})",
                            skypilot_api::names::job_status(job.status())
                        ),
                    ));
                }
                chosen.push(job);
            }
            chosen
        };
        let mut cancelled = Vec::new();
        for job in targets {
            cancelled.push(job.job_id);
            self.end_job_locked(job, JobStatus::Cancelled, None, "cancelled by user").await?;
        }
        self.schedule_locked(cluster_name).await?;
        Ok(cancelled)
    }

    /// Cancels every unfinished job of a cluster (stop, down).
    pub(super) async fn kill_all_jobs(&self, cluster_name: &str, reason: &str) -> Result<()> {
        let _lock = self.inner.jobs_lock.lock().await;
        for job in self.active_jobs(cluster_name)? {
            self.end_job_locked(job, JobStatus::Cancelled, None, reason).await?;
        }
        Ok(())
    }

    /// Records the end of a job, kills whatever of it still runs, and marks
    /// the cluster idle when it was its last active job. Call with `jobs_lock` held.
    pub(super) async fn end_job_locked(
        &self,
        mut job: JobRecord,
        status: JobStatus,
        exit_code: Option<i32>,
        message: &str,
    ) -> Result<()> {
        for process in &job.processes {
            self.infra_of(&job.cluster)?.terminate(&job.cluster, process.rank, run::handle(process));
        }
        job.set_status(status);
        job.exit_code = exit_code;
        job.message = message.to_string();
        job.ended_ms = now_ms();
        if let Ok(cluster) = self.get(&job.cluster) {
            let labels = crate::metrics::InfraState {
                infra: super::infra_name(&cluster).to_string(),
                state: skypilot_api::names::job_status(status).to_string(),
            };
            crate::metrics::global().jobs_finished.get_or_create(&labels).inc();
        }
        job.processes.clear();
        job.gpu_indices.clear();
        let cluster_name = job.cluster.clone();
        self.save_job(&job).await?;
        if self.active_jobs(&cluster_name)?.is_empty()
            && let Ok(mut cluster) = self.get(&cluster_name)
            && cluster.idle_since_ms == 0
            && cluster.status() == ClusterStatus::Up
        {
            cluster.idle_since_ms = now_ms();
            self.save_cluster(&cluster).await?;
        }
        Ok(())
    }

    /// After a restart: watch the processes of jobs that were running, and
    /// schedule pending jobs.
    pub(super) async fn recover(&self) -> Result<()> {
        let _lock = self.inner.jobs_lock.lock().await;
        let jobs = self.all_active_jobs()?;
        let mut clusters: Vec<String> = self.list(&[], None)?.into_iter().map(|c| c.name).collect();
        for job in jobs {
            if !clusters.contains(&job.cluster) {
                clusters.push(job.cluster.clone());
            }
            let phase = match job.status() {
                JobStatus::SettingUp => Phase::Setup,
                JobStatus::Running => Phase::Run,
                _ => continue,
            };
            tracing::info!(cluster = %job.cluster, job_id = job.job_id, "watching job again after restart");
            if let Err(err) = self.resume_phase(job, phase).await {
                tracing::error!(error = %err, "could not resume a job after restart");
            }
        }
        for cluster in clusters {
            self.schedule_locked(&cluster).await?;
        }
        Ok(())
    }
}
