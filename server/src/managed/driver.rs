//! Driving one managed job through its steps: launch its cluster (waiting
//! with back-off while capacity is short), watch the task's job there,
//! decide what its end means (next task, restart on errors, recovery after
//! lost nodes, or the job's end), and tear the cluster down.

use std::time::Duration;

use prost::Message;
use skypilot_api::{
    names::{managed_job_status, parse_error_reason},
    proto::skypilot::v1::{
        ClusterActionRequest, JobStatus, LaunchRequest, LaunchResponse, ManagedJobStatus, RequestState, Role,
        TaskSpec,
    },
};

use super::{Controller, MAX_BACKOFF, Step};
use crate::{
    auth::Caller,
    clock::now_ms,
    clusters::{Fit, is_job_done},
    error::{Error, ErrorReason, Result},
    kinds::cluster::{DOWN, LAUNCH},
    ops::{Engine, Submission},
    store::{JobRecord, ManagedJobRecord, OpRecord},
};

/// How a request the controller made failed.
struct Failure {
    reason: ErrorReason,
    message: String,
}

impl From<Error> for Failure {
    fn from(err: Error) -> Failure {
        Failure { reason: err.reason, message: err.message }
    }
}

/// Waits that double from one second up to `MAX_BACKOFF`.
struct Backoff(Duration);

impl Backoff {
    fn new() -> Backoff {
        Backoff(Duration::from_secs(1))
    }

    fn next(&mut self) -> Duration {
        let wait = self.0;
        self.0 = (self.0 * 2).min(MAX_BACKOFF);
        wait
    }
}

/// Errors after which the controller stops driving a job for now: the
/// server is stopping or its store takes no writes; the next start goes on.
fn is_stop(err: &Error) -> bool {
    matches!(err.reason, ErrorReason::Unavailable | ErrorReason::Storage | ErrorReason::StorageFull)
}

impl Controller {
    /// Drives a job on a task of its own until it is over (or the server stops).
    pub(super) fn spawn_driver(&self, job_id: i64) {
        if !self.inner.driven.lock().unwrap_or_else(|p| p.into_inner()).insert(job_id) {
            return; // driven already
        }
        let controller = self.clone();
        drop(self.subscribe(job_id)); // the job's channel exists while it is driven
        self.inner.tasks.spawn(async move {
            let shutdown = controller.inner.shutdown.clone();
            tokio::select! {
                _ = controller.drive_until_over(job_id) => {}
                _ = shutdown.cancelled() => {} // every step is recorded: the next start goes on
            }
        });
    }

    async fn drive_until_over(&self, job_id: i64) {
        let mut failures = 0;
        loop {
            let Err(err) = self.drive(job_id).await else { return };
            if is_stop(&err) {
                tracing::warn!(job_id, error = %err, "managed job: left for the next start");
                return;
            }
            failures += 1;
            let Ok(mut job) = self.get(job_id) else { return };
            self.note(&job, &format!("Controller error: {err}"));
            let reason = format!("the controller failed: {err}");
            if failures >= 3 || Step::of(&job) == Step::Teardown {
                // Even the teardown fails: give up, saying so.
                job.status = ManagedJobStatus::FailedController as i32;
                job.step = Step::Done as i32;
                job.ended_ms = now_ms();
                job.failure_reason = reason;
                if self.save(&job).await.is_ok() {
                    self.forget(job_id);
                }
                return;
            }
            begin_teardown(&mut job, Some(ManagedJobStatus::FailedController), reason);
            if self.save(&job).await.is_err() {
                return;
            }
        }
    }

    async fn drive(&self, job_id: i64) -> Result<()> {
        let mut backoff = Backoff::new();
        loop {
            let mut job = self.get(job_id)?;
            let step = Step::of(&job);
            let cancellable = matches!(step, Step::Launch | Step::Watch)
                || (step == Step::Teardown && job.final_status() == ManagedJobStatus::Unspecified);
            if job.cancel_requested && cancellable {
                job.status = ManagedJobStatus::Cancelling as i32;
                begin_teardown(&mut job, Some(ManagedJobStatus::Cancelled), "cancelled by user".into());
                self.save(&job).await?;
                self.note(&job, &format!("Cancelling: tearing down cluster '{}'.", job.cluster_name));
                continue;
            }
            match step {
                Step::Launch => self.launch(job, &mut backoff).await?,
                Step::Watch => self.watch(job).await?,
                Step::Teardown => self.teardown(job, &mut backoff).await?,
                Step::Done => {
                    self.forget(job_id);
                    return Ok(());
                }
            }
        }
    }

    /// Launches the job's cluster for the current task and submits the task there.
    async fn launch(&self, mut job: ManagedJobRecord, backoff: &mut Backoff) -> Result<()> {
        let task = self.current_task(&job)?;
        let slot = tokio::select! {
            slot = self.inner.launch_slots.acquire() => {
                slot.map_err(|_| Error::new(ErrorReason::Unavailable, "the controller is stopping"))?
            }
            _ = self.cancel_requested(job.job_id) => return Ok(()),
        };
        match self.inner.clusters.launch_fit(&job.cluster_name, &task)? {
            Fit::Now => {}
            Fit::Later(why) => {
                drop(slot);
                return self.retry_later(job, format!("waiting for capacity: {why}"), backoff).await;
            }
            Fit::Never(why) => {
                let reason = format!("no infra can hold the task: {why}");
                self.note(&job, &format!("Failed: {reason}."));
                begin_teardown(&mut job, Some(ManagedJobStatus::FailedNoResource), reason);
                return self.save(&job).await;
            }
        }
        if job.launch_tries == 0 || job.status() == ManagedJobStatus::Pending {
            // The request's key is recorded before the request is made.
            job.launch_tries = job.launch_tries.max(1);
            if job.status() == ManagedJobStatus::Pending {
                job.status = ManagedJobStatus::Starting as i32;
            }
            self.save(&job).await?;
        }
        self.note(
            &job,
            &format!(
                "Launching cluster '{}' for task {}/{} (attempt {}).",
                job.cluster_name,
                job.current_task + 1,
                job.num_tasks,
                job.attempt
            ),
        );
        let request = LaunchRequest {
            task: Some(managed_task(&job, task)),
            cluster_name: job.cluster_name.clone(),
            idempotency_key: request_key(&job, &format!("launch{}", job.launch_tries)),
            ..Default::default()
        };
        let launched = self.run_request(&job, LAUNCH, &request).await?;
        drop(slot);
        match launched {
            Ok(op) => {
                let response = LaunchResponse::decode(op.response.as_slice())
                    .map_err(|err| Error::internal(format!("launch response unreadable: {err}")))?;
                job.cluster_job_id = response.job_id;
                job.step = Step::Watch as i32;
                job.failure_reason.clear();
                job.output_base =
                    std::fs::metadata(self.output_path(job.job_id)).map_or(0, |m| m.len() as i64);
                self.save(&job).await?;
                *backoff = Backoff::new();
                self.note(
                    &job,
                    &format!(
                        "Cluster '{}' is up; the task is its job {}.",
                        job.cluster_name, job.cluster_job_id
                    ),
                );
                Ok(())
            }
            Err(failure) => match failure.reason {
                ErrorReason::ResourceExhausted
                | ErrorReason::Unavailable
                | ErrorReason::InterruptedByRestart
                | ErrorReason::StorageFull
                | ErrorReason::Cancelled => {
                    job.launch_tries += 1; // the next try is a new request
                    self.save(&job).await?;
                    self.retry_later(job, format!("launch failed: {}", failure.message), backoff).await
                }
                reason => {
                    let status = match reason {
                        ErrorReason::InvalidArgument
                        | ErrorReason::FailedPrecondition
                        | ErrorReason::NotFound => ManagedJobStatus::FailedNoResource,
                        _ => ManagedJobStatus::FailedController,
                    };
                    let why = format!("the launch failed: {}", failure.message);
                    self.note(&job, &format!("Failed: {why}"));
                    begin_teardown(&mut job, Some(status), why);
                    self.save(&job).await
                }
            },
        }
    }

    /// Says why the job waits, then waits (for the back-off, a cluster
    /// change that may have freed capacity, or a cancel).
    async fn retry_later(&self, mut job: ManagedJobRecord, why: String, backoff: &mut Backoff) -> Result<()> {
        if job.failure_reason != why {
            self.note(&job, &format!("{why}; trying again."));
            job.failure_reason = why;
            self.save(&job).await?;
        }
        let mut capacity = self.inner.clusters.subscribe_cluster_changes();
        tokio::select! {
            _ = tokio::time::sleep(backoff.next()) => {}
            _ = capacity.changed() => {}
            _ = self.cancel_requested(job.job_id) => {}
        }
        Ok(())
    }

    /// Follows the task's job on the cluster until it ends or its cluster goes.
    async fn watch(&self, mut job: ManagedJobRecord) -> Result<()> {
        let task = self.current_task(&job)?;
        let header = format!(
            "=== Task {}/{}{}, attempt {} (recoveries so far: {}), on cluster '{}' ===\n",
            job.current_task + 1,
            job.num_tasks,
            if task.name.is_empty() { String::new() } else { format!(" '{}'", task.name) },
            job.attempt,
            job.recovery_count,
            job.cluster_name
        );
        let copier = {
            let (controller, job) = (self.clone(), job.clone());
            AbortOnDrop(tokio::spawn(async move { controller.copy_output(&job, &header).await }))
        };
        let clusters = &self.inner.clusters;
        let mut job_changes = clusters.subscribe_job_changes();
        let mut cluster_changes = clusters.subscribe_cluster_changes();
        let mut mine = self.subscribe(job.job_id);
        let ended: Option<JobRecord> = loop {
            job = self.get(job.job_id)?;
            if job.cancel_requested {
                return Ok(());
            }
            match clusters.job(&job.cluster_name, job.cluster_job_id) {
                Err(err) if err.reason == ErrorReason::NotFound => break None,
                Err(err) => return Err(err),
                Ok(cluster_job) if is_job_done(cluster_job.status()) => break Some(cluster_job),
                Ok(cluster_job) => {
                    if cluster_job.status() == JobStatus::Running && job.status() != ManagedJobStatus::Running
                    {
                        job.status = ManagedJobStatus::Running as i32;
                        job.running_since_ms =
                            if cluster_job.started_ms > 0 { cluster_job.started_ms } else { now_ms() };
                        if job.started_ms == 0 {
                            job.started_ms = job.running_since_ms;
                        }
                        job.failure_reason.clear();
                        self.save(&job).await?;
                        self.note(
                            &job,
                            &format!(
                                "Task {}/{} is running (attempt {}).",
                                job.current_task + 1,
                                job.num_tasks,
                                job.attempt
                            ),
                        );
                    }
                }
            }
            tokio::select! {
                _ = job_changes.changed() => {}
                _ = cluster_changes.changed() => {}
                _ = mine.changed() => {}
            }
        };
        if ended.is_some() {
            // Its log is complete: let the copy reach its end.
            let _ = tokio::time::timeout(Duration::from_secs(30), copier.wait()).await;
        }
        // Running time: from when it was seen running (or, for a run too
        // short to be seen, from the cluster job's own times).
        let ran_from = match (job.running_since_ms, ended.as_ref()) {
            (0, Some(cluster_job)) => cluster_job.started_ms,
            (since, _) => since,
        };
        if ran_from > 0 {
            let until = ended.as_ref().map(|j| j.ended_ms).filter(|ms| *ms > 0).unwrap_or_else(now_ms);
            job.job_duration_ms += (until - ran_from).max(0);
            if job.started_ms == 0 {
                job.started_ms = ran_from;
            }
        }
        job.running_since_ms = 0;
        let max_restarts = task
            .resources
            .as_ref()
            .and_then(|r| r.job_recovery.as_ref())
            .map_or(0, |recovery| recovery.max_restarts_on_errors);
        let line = match ended {
            None => recover(&mut job, "its cluster went away (nodes lost or torn down)".into()),
            Some(cluster_job) => match cluster_job.status() {
                JobStatus::Succeeded if job.current_task + 1 < job.num_tasks => {
                    job.current_task += 1;
                    job.attempt = 1;
                    job.restarts_on_errors = 0;
                    job.launch_tries = 0;
                    job.status = ManagedJobStatus::Starting as i32;
                    begin_teardown(&mut job, None, String::new());
                    format!(
                        "Task {}/{} succeeded; the next one starts on a new cluster.",
                        job.current_task, job.num_tasks
                    )
                }
                JobStatus::Succeeded => {
                    begin_teardown(&mut job, Some(ManagedJobStatus::Succeeded), String::new());
                    "The job succeeded.".to_string()
                }
                JobStatus::FailedSetup => {
                    let why = format!("setup failed: {}", cluster_job.message);
                    begin_teardown(&mut job, Some(ManagedJobStatus::FailedSetup), why.clone());
                    format!("Failed: {why}.")
                }
                JobStatus::Failed if cluster_job.exit_code.is_some() => {
                    if job.restarts_on_errors < max_restarts {
                        job.restarts_on_errors += 1;
                        let why = format!(
                            "the task failed ({}); restart {}/{max_restarts} on errors",
                            cluster_job.message, job.restarts_on_errors
                        );
                        recover(&mut job, why)
                    } else {
                        let why = format!("the task failed: {}", cluster_job.message);
                        begin_teardown(&mut job, Some(ManagedJobStatus::Failed), why.clone());
                        format!("Failed: {why}.")
                    }
                }
                _ => recover(&mut job, format!("its nodes were lost ({})", cluster_job.message)),
            },
        };
        self.save(&job).await?;
        self.note(&job, &line);
        Ok(())
    }

    /// Tears the cluster down, then ends the job or launches again.
    async fn teardown(&self, mut job: ManagedJobRecord, backoff: &mut Backoff) -> Result<()> {
        // Purged: a node lost with its host must not keep the job from recovering.
        let request = ClusterActionRequest {
            cluster_name: job.cluster_name.clone(),
            purge: true,
            idempotency_key: request_key(&job, &format!("down{}", job.teardowns)),
        };
        match self.run_request(&job, DOWN, &request).await? {
            Ok(_) => self.note(&job, &format!("Cluster '{}' torn down.", job.cluster_name)),
            // Never launched, already gone, or (by a name clash) not the job's to touch.
            Err(failure)
                if matches!(failure.reason, ErrorReason::NotFound | ErrorReason::PermissionDenied) => {}
            Err(failure) => {
                self.note(
                    &job,
                    &format!("Teardown of '{}' failed: {}; trying again.", job.cluster_name, failure.message),
                );
                job.teardowns += 1;
                self.save(&job).await?;
                let mut changes = self.inner.clusters.subscribe_cluster_changes();
                tokio::select! {
                    _ = tokio::time::sleep(backoff.next()) => {}
                    _ = changes.changed() => {}
                }
                return Ok(());
            }
        }
        job.cluster_job_id = 0;
        match job.final_status() {
            ManagedJobStatus::Unspecified => job.step = Step::Launch as i32,
            status => {
                job.status = status as i32;
                job.ended_ms = now_ms();
                job.step = Step::Done as i32;
                self.save(&job).await?;
                self.note(&job, &format!("Managed job {}: {}.", job.job_id, managed_job_status(status)));
                return Ok(());
            }
        }
        self.save(&job).await
    }

    /// Submits a request on behalf of the job's owner and waits for its end;
    /// a launch is cancelled when the job is. The outer error stops the driver.
    async fn run_request(
        &self,
        job: &ManagedJobRecord,
        kind: &'static str,
        request: &impl Message,
    ) -> Result<std::result::Result<OpRecord, Failure>> {
        let engine = self.engine()?;
        let owner = owner(job);
        let op = match engine.submit(Submission::new(kind, owner.clone(), request)).await {
            Ok(op) => op,
            Err(err) if is_stop(&err) => return Err(err),
            Err(err) => return Ok(Err(err.into())),
        };
        let mut cancelling = false;
        loop {
            let record = engine.get(&op.id)?;
            if record.is_done() {
                return Ok(outcome(record));
            }
            tokio::select! {
                _ = engine.wait(&op.id, Duration::from_secs(3600)) => {}
                _ = self.cancel_requested(job.job_id), if kind == LAUNCH && !cancelling => {
                    cancelling = true;
                    if let Err(err) = engine.cancel(&owner, &op.id).await {
                        tracing::debug!(op = %op.id, error = %err, "launch finished before its cancel");
                    }
                }
            }
        }
    }

    /// Resolves once the job's cancel is requested.
    async fn cancel_requested(&self, job_id: i64) {
        let mut changes = self.subscribe(job_id);
        loop {
            if self.get(job_id).is_ok_and(|job| job.cancel_requested) {
                return;
            }
            if changes.changed().await.is_err() {
                return std::future::pending().await;
            }
        }
    }

    fn current_task(&self, job: &ManagedJobRecord) -> Result<TaskSpec> {
        let tasks = self.tasks(job)?;
        tasks.into_iter().nth(job.current_task as usize).ok_or_else(|| {
            Error::internal(format!("managed job {} has no task {}", job.job_id, job.current_task))
        })
    }

    fn engine(&self) -> Result<&Engine> {
        self.inner
            .engine
            .get()
            .ok_or_else(|| Error::new(ErrorReason::Unavailable, "the controller has not started"))
    }
}

/// Sets the job to tear its cluster down, then end with `status` (None:
/// launch again).
fn begin_teardown(job: &mut ManagedJobRecord, status: Option<ManagedJobStatus>, why: String) {
    job.step = Step::Teardown as i32;
    job.teardowns += 1;
    job.final_status = status.unwrap_or(ManagedJobStatus::Unspecified) as i32;
    if !why.is_empty() {
        job.failure_reason = why;
    }
}

/// Sets the job to recover: a new attempt on a new cluster. Returns the
/// controller log's line.
fn recover(job: &mut ManagedJobRecord, why: String) -> String {
    job.recovery_count += 1;
    crate::metrics::global().managed_job_recoveries.inc();
    job.attempt += 1;
    job.launch_tries = 0;
    job.status = ManagedJobStatus::Recovering as i32;
    let line = format!("Recovering (recovery {}): {why}.", job.recovery_count);
    begin_teardown(job, None, why);
    line
}

/// The idempotency key of one request for the job: its secret, task,
/// attempt and what the request is for.
fn request_key(job: &ManagedJobRecord, what: &str) -> String {
    format!("sky-jobs/{}/{}/t{}/a{}/{what}", job.key, job.job_id, job.current_task, job.attempt)
}

/// The task as its cluster runs it: autostop belongs to the controller, and
/// `SKYPILOT_TASK_ID` names the managed task, the same in every attempt (as
/// SkyPilot's, so that a task can keep its checkpoints under it).
fn managed_task(job: &ManagedJobRecord, mut task: TaskSpec) -> TaskSpec {
    if let Some(resources) = task.resources.as_mut() {
        resources.autostop_idle_minutes = None;
        resources.autostop_down = false;
    }
    let id = format!("sky-managed-{}_{}_{}-{}", job.submitted_ms, job.name, job.job_id, job.current_task);
    task.envs.entry("SKYPILOT_TASK_ID".into()).or_insert(id);
    task
}

/// Whom the controller acts for: the job's owner. Paths in its tasks were
/// checked when the job was submitted (a path of the server's host was
/// accepted only from its host), so they are taken as they are.
fn owner(job: &ManagedJobRecord) -> Caller {
    let role = if job.user_is_admin { Role::Admin } else { Role::User };
    Caller { name: job.user_name.clone(), id: job.user_id.clone(), role, on_server_host: true }
}

fn outcome(record: OpRecord) -> std::result::Result<OpRecord, Failure> {
    match record.state() {
        RequestState::Succeeded => Ok(record),
        _ => Err(match &record.error {
            Some(error) => {
                Failure { reason: parse_error_reason(&error.reason), message: error.message.clone() }
            }
            None => Failure { reason: ErrorReason::Cancelled, message: record.status_message.clone() },
        }),
    }
}

/// A spawned task that is aborted when dropped.
struct AbortOnDrop(tokio::task::JoinHandle<Result<()>>);

impl AbortOnDrop {
    async fn wait(mut self) {
        let _ = (&mut self.0).await;
    }
}

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}
