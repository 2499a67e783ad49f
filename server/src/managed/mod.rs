//! Managed jobs (`sky jobs`): the API server is their controller. Each job
//! (a pipeline of one or more tasks) runs on a cluster of its own, launched
//! and torn down through the operation engine (`sky.launch`, `sky.down`) on
//! behalf of the job's owner; when the cluster's nodes are lost, or the
//! job's code fails and restarts remain, the cluster is launched again.
//!
//! Every step is recorded in the store before it is taken, and every request
//! the controller submits carries an idempotency key made from the job's
//! secret, its task, attempt and step: after a restart (even a SIGKILL) the
//! controller goes on from the recorded step, finds the requests it already
//! made instead of making them twice, and so never launches a second
//! cluster or runs a task twice.

mod driver;
pub mod kinds;
mod output;

use std::{
    collections::HashMap,
    path::PathBuf,
    sync::{Arc, Mutex, OnceLock},
    time::Duration,
};

use prost::Message;
use skypilot_api::proto::skypilot::v1::{LaunchManagedJobRequest, ManagedJobStatus, TaskSpec};
use tokio::sync::{Semaphore, watch};
use tokio_util::{sync::CancellationToken, task::TaskTracker};

use crate::{
    auth::Caller,
    clock::{format_utc, now_ms},
    clusters::{Clusters, Page},
    error::{Error, ErrorReason, Result},
    ops::Engine,
    store::{ManagedJobRecord, Store, Table},
    uploads::Uploads,
};

/// Launches the controller makes at once; other jobs wait their turn.
const LAUNCH_SLOTS: usize = 8;
/// Longest wait between two tries of a launch that found no capacity.
const MAX_BACKOFF: Duration = Duration::from_secs(60);

/// What the controller does next for a job.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(i32)]
enum Step {
    /// Launch the job's cluster and submit the current task on it.
    Launch = 0,
    /// Follow the task's job on the cluster until it ends.
    Watch = 1,
    /// Tear the cluster down; then end the job (with `final_status`) or launch again.
    Teardown = 2,
    /// Nothing: the job is over.
    Done = 3,
}

impl Step {
    fn of(job: &ManagedJobRecord) -> Step {
        match job.step {
            0 => Step::Launch,
            1 => Step::Watch,
            2 => Step::Teardown,
            _ => Step::Done,
        }
    }
}

/// Whether a managed job status is final.
pub fn is_final(status: ManagedJobStatus) -> bool {
    matches!(
        status,
        ManagedJobStatus::Succeeded
            | ManagedJobStatus::Failed
            | ManagedJobStatus::FailedSetup
            | ManagedJobStatus::FailedNoResource
            | ManagedJobStatus::FailedController
            | ManagedJobStatus::Cancelled
    )
}

/// Handle to the controller; cheap to clone.
#[derive(Clone)]
pub struct Controller {
    inner: Arc<Inner>,
}

struct Inner {
    store: Store,
    clusters: Clusters,
    /// Uploaded workdirs and file mounts the jobs' tasks name.
    uploads: Uploads,
    /// `<data>/managed_jobs/<id>/{output,controller}.log`.
    dir: PathBuf,
    /// Set once the engine runs (the engine needs the controller's kinds first).
    engine: OnceLock<Engine>,
    /// Per unfinished job: bumped whenever its record or its logs change.
    live: Mutex<HashMap<i64, watch::Sender<u64>>>,
    /// The jobs a driver drives (never two drivers for one job).
    driven: Mutex<std::collections::HashSet<i64>>,
    /// Serializes id allocation.
    create_lock: tokio::sync::Mutex<()>,
    launch_slots: Semaphore,
    shutdown: CancellationToken,
    tasks: TaskTracker,
}

impl Controller {
    pub fn new(store: Store, clusters: Clusters, uploads: Uploads, dir: PathBuf) -> Result<Controller> {
        std::fs::create_dir_all(&dir)?;
        Ok(Controller {
            inner: Arc::new(Inner {
                store,
                clusters,
                uploads,
                dir,
                engine: OnceLock::new(),
                live: Mutex::default(),
                driven: Mutex::default(),
                create_lock: tokio::sync::Mutex::new(()),
                launch_slots: Semaphore::new(LAUNCH_SLOTS),
                shutdown: CancellationToken::new(),
                tasks: TaskTracker::new(),
            }),
        })
    }

    /// Starts driving every unfinished job, on `engine`.
    pub fn start(&self, engine: Engine) -> Result<()> {
        if self.inner.engine.set(engine).is_err() {
            return Err(Error::internal("the managed jobs controller was started twice"));
        }
        for job_id in self.active_ids()? {
            tracing::info!(job_id, "managed job: driven again after restart");
            self.spawn_driver(job_id);
        }
        let controller = self.clone();
        self.inner.tasks.spawn(async move { controller.keep_uploads().await });
        Ok(())
    }

    /// Marks the uploads that unfinished jobs name as used, often enough
    /// that upload retention never removes what a waiting task (or the next
    /// task of a pipeline) will launch from.
    async fn keep_uploads(&self) {
        let hours = self.inner.uploads.limits().retention_hours;
        if hours < 0.0 {
            return; // uploads are never removed
        }
        let every = Duration::from_secs_f64(hours * 3600.0 / 4.0)
            .clamp(Duration::from_secs(60), Duration::from_secs(3600));
        loop {
            for job_id in self.active_ids().unwrap_or_default() {
                let Ok(job) = self.get(job_id) else { continue };
                for task in self.tasks(&job).unwrap_or_default() {
                    // A reference that is gone already fails the job's launch, which says so.
                    let _ = self.inner.uploads.check_task(&job.user_id, &task);
                }
            }
            tokio::select! {
                _ = tokio::time::sleep(every) => {}
                _ = self.inner.shutdown.cancelled() => return,
            }
        }
    }

    /// Stops driving jobs (their clusters keep running; the next start goes on).
    pub async fn shutdown(&self) {
        self.inner.shutdown.cancel();
        self.inner.tasks.close();
        self.inner.tasks.wait().await;
    }

    /// Accepts a job for request `request_id` (a request run again after a
    /// restart finds the job it made). The tasks were validated.
    pub async fn create(
        &self,
        caller: &Caller,
        request: &LaunchManagedJobRequest,
        request_id: &str,
    ) -> Result<ManagedJobRecord> {
        let _lock = self.inner.create_lock.lock().await;
        if let Some(raw) = self.inner.store.get_raw(Table::ManagedJobRequests, request_id.as_bytes())?
            && let Ok(id) = <[u8; 8]>::try_from(raw.as_slice())
        {
            return self.get(i64::from_be_bytes(id));
        }
        let (last, _) = self.inner.store.scan_newest::<ManagedJobRecord>(
            Table::ManagedJobs,
            b"",
            None,
            (1, 1),
            |_| true,
        )?;
        let job_id = last.first().map_or(0, |(_, job)| job.job_id) + 1;
        let name = job_name(request);
        let key = uuid::Uuid::now_v7().simple().to_string();
        let tasks = LaunchManagedJobRequest { tasks: request.tasks.clone(), ..Default::default() };
        let job = ManagedJobRecord {
            job_id,
            cluster_name: cluster_name(&name, job_id, &key),
            name,
            user_name: caller.name.clone(),
            user_id: caller.id.clone(),
            user_is_admin: caller.is_admin(),
            status: ManagedJobStatus::Pending as i32,
            tasks: self.inner.store.seal(&tasks.encode_to_vec())?,
            num_tasks: request.tasks.len() as i32,
            attempt: 1,
            submitted_ms: now_ms(),
            key,
            request_id: request_id.to_string(),
            step: Step::Launch as i32,
            ..Default::default()
        };
        std::fs::create_dir_all(self.job_dir(job_id))?;
        self.inner.store.put(Table::ManagedJobs, &job_id.to_be_bytes(), &job)?;
        self.inner.store.put_raw(Table::ActiveManagedJobs, &job_id.to_be_bytes(), b"")?;
        self.inner.store.put_raw(Table::ManagedJobRequests, request_id.as_bytes(), &job_id.to_be_bytes())?;
        self.inner.store.durable().await?;
        self.note(&job, &format!("Submitted by {} with {} task(s).", job.user_name, job.num_tasks));
        if self.inner.engine.get().is_some() {
            self.spawn_driver(job_id);
        }
        Ok(job)
    }

    /// A job by id.
    pub fn get(&self, job_id: i64) -> Result<ManagedJobRecord> {
        self.inner.store.get(Table::ManagedJobs, &job_id.to_be_bytes())?.ok_or_else(|| {
            Error::not_found(format!(
                "managed job {job_id} does not exist; `sky jobs queue -u` lists managed jobs"
            ))
        })
    }

    /// A page of jobs, newest first (of `user_id` only when given).
    pub fn list(
        &self,
        user_id: Option<&str>,
        skip_finished: bool,
        job_ids: &[i64],
        page: &Page,
    ) -> Result<(Vec<ManagedJobRecord>, String)> {
        let before = match page.token.as_str() {
            "" => None,
            token => Some(token.parse::<i64>().map(i64::to_be_bytes).map_err(|_| {
                Error::invalid("page_token", "is not one this server gave: start from the first page")
            })?),
        };
        let limit = if page.size == 0 { usize::MAX } else { page.size };
        let keep = |job: &ManagedJobRecord| {
            user_id.is_none_or(|user| user == job.user_id)
                && (!skip_finished || !is_final(job.status()))
                && (job_ids.is_empty() || job_ids.contains(&job.job_id))
        };
        let mut found: Vec<(Vec<u8>, ManagedJobRecord)> = match skip_finished {
            // Unfinished jobs come from their index, never the whole history.
            true => {
                let mut active = Vec::new();
                for job_id in self.active_ids()?.into_iter().rev() {
                    if before.is_some_and(|before| job_id.to_be_bytes() >= before) {
                        continue;
                    }
                    let job = self.get(job_id)?;
                    if keep(&job) {
                        active.push((job_id.to_be_bytes().to_vec(), job));
                        if active.len() > limit {
                            break;
                        }
                    }
                }
                active
            }
            false => {
                self.inner
                    .store
                    .scan_newest(
                        Table::ManagedJobs,
                        b"",
                        before.as_ref().map(|b| b.as_slice()),
                        (limit.saturating_add(1), usize::MAX),
                        keep,
                    )?
                    .0
            }
        };
        let next = match found.len() > limit {
            true => {
                found.truncate(limit);
                found.last().map(|(_, job)| job.job_id.to_string()).unwrap_or_default()
            }
            false => String::new(),
        };
        Ok((found.into_iter().map(|(_, job)| job).collect(), next))
    }

    /// The jobs a cancel or logs request names: `ids`; else those named
    /// `name`; else (with `all`) every unfinished one of the caller (of
    /// everyone with `all_users`). Refuses unknown ids and names.
    pub fn select(
        &self,
        caller: &Caller,
        ids: &[i64],
        name: &str,
        all: bool,
        all_users: bool,
    ) -> Result<Vec<ManagedJobRecord>> {
        if !ids.is_empty() {
            return ids.iter().map(|id| self.get(*id)).collect();
        }
        let mine = (!all_users).then_some(caller.id.as_str());
        if !name.is_empty() {
            let (jobs, _) = self.list(mine, false, &[], &Page::default())?;
            let named: Vec<_> = jobs.into_iter().filter(|job| job.name == name).collect();
            if named.is_empty() {
                return Err(Error::not_found(format!(
                    "no managed job named {name:?}{}; `sky jobs queue` lists them",
                    if all_users { "" } else { " of yours" }
                )));
            }
            return Ok(named);
        }
        if all {
            return Ok(self.list(mine, true, &[], &Page::default())?.0);
        }
        Err(Error::invalid("job_ids", "give job ids, a name (-n NAME) or all (-a)"))
    }

    /// The job a logs request names: `job_id`; else the newest named `name`
    /// (the caller's first); else the caller's newest.
    pub fn job_for_logs(&self, caller: &Caller, job_id: i64, name: &str) -> Result<i64> {
        if job_id < 0 {
            return Err(Error::invalid("job_id", "must not be negative (0 means your latest job)"));
        }
        if job_id > 0 {
            return self.get(job_id).map(|job| job.job_id);
        }
        let first_page = Page { size: 1, token: String::new() };
        if name.is_empty() {
            let (mine, _) = self.list(Some(&caller.id), false, &[], &first_page)?;
            return mine.first().map(|job| job.job_id).ok_or_else(|| {
                Error::not_found("you have no managed jobs; `sky jobs queue -u` lists everyone's")
            });
        }
        let (named, _) = self.list(None, false, &[], &Page::default())?;
        let named: Vec<_> = named.into_iter().filter(|job| job.name == name).collect();
        named.iter().find(|job| job.user_id == caller.id).or(named.first()).map(|job| job.job_id).ok_or_else(
            || Error::not_found(format!("no managed job named {name:?}; `sky jobs queue -u` lists them")),
        )
    }

    /// Asks the controller to cancel `jobs` (the caller must own them or be
    /// an admin); returns their ids. A finished job named by id is refused.
    pub async fn request_cancel(&self, caller: &Caller, jobs: &[ManagedJobRecord]) -> Result<Vec<i64>> {
        for job in jobs {
            caller.ensure_may_manage(&job.user_id, &job.user_name, &format!("managed job {}", job.job_id))?;
            if is_final(job.status()) {
                return Err(Error::new(
                    ErrorReason::AlreadyDone,
                    format!(
                        "managed job {} already finished ({})",
                        job.job_id,
                        skypilot_api::names::managed_job_status(job.status())
                    ),
                ));
            }
        }
        let mut cancelled = Vec::new();
        for job in jobs {
            let mut job = self.get(job.job_id)?;
            if is_final(job.status()) {
                continue; // finished meanwhile
            }
            if !job.cancel_requested {
                job.cancel_requested = true;
                self.save(&job).await?;
                self.note(&job, &format!("Cancel requested by {}.", caller.name));
            }
            cancelled.push(job.job_id);
        }
        Ok(cancelled)
    }

    /// Waits up to `timeout` for every job in `ids` to reach a final status.
    pub async fn wait_final(&self, ids: &[i64], timeout: Duration) {
        let _ = tokio::time::timeout(timeout, async {
            for id in ids {
                let mut changes = self.subscribe(*id);
                while !self.get(*id).is_ok_and(|job| is_final(job.status())) {
                    if changes.changed().await.is_err() {
                        break; // the job is no longer driven: it is over
                    }
                }
            }
        })
        .await;
    }

    /// What a listing shows of the job's current task and running time.
    pub fn describe(&self, job: &ManagedJobRecord) -> JobSummary {
        let task = self.tasks(job).ok().and_then(|tasks| tasks.into_iter().nth(job.current_task as usize));
        let task = task.unwrap_or_default();
        let resources = task.resources.clone().unwrap_or_default();
        let per_node = match (resources.accelerators.is_empty(), resources.cpus.is_empty()) {
            (false, _) => resources.accelerators.clone(),
            (true, false) => format!("CPU:{}", resources.cpus),
            (true, true) => "CPU:1".to_string(),
        };
        let running = if job.running_since_ms > 0 { now_ms() - job.running_since_ms } else { 0 };
        JobSummary {
            task_name: task.name,
            resources: format!("{}x[{per_node}]", task.num_nodes.max(1)),
            infra: resources.infra,
            job_duration_ms: job.job_duration_ms + running.max(0),
        }
    }

    /// The ids of the jobs not over yet, oldest first.
    fn active_ids(&self) -> Result<Vec<i64>> {
        let keys = self.inner.store.scan_keys(Table::ActiveManagedJobs, b"")?;
        Ok(keys
            .iter()
            .filter_map(|key| <[u8; 8]>::try_from(key.as_slice()).ok())
            .map(i64::from_be_bytes)
            .collect())
    }

    /// Stores a changed record durably, then tells whoever follows the job.
    async fn save(&self, job: &ManagedJobRecord) -> Result<()> {
        self.inner.store.put(Table::ManagedJobs, &job.job_id.to_be_bytes(), job)?;
        if Step::of(job) == Step::Done {
            self.inner.store.delete(Table::ActiveManagedJobs, &job.job_id.to_be_bytes())?;
        }
        self.inner.store.durable().await?;
        self.bump(job.job_id);
        Ok(())
    }

    fn bump(&self, job_id: i64) {
        if let Some(changes) = self.inner.live.lock().unwrap_or_else(|p| p.into_inner()).get(&job_id) {
            changes.send_modify(|n| *n += 1);
        }
    }

    /// A receiver that changes with the job's record and logs while it is driven.
    /// (For a job that is over, one that never changes: there is nothing to wait for.)
    fn subscribe(&self, job_id: i64) -> watch::Receiver<u64> {
        let mut live = self.inner.live.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(changes) = live.get(&job_id) {
            return changes.subscribe();
        }
        // Looked at under the lock: a driver forgets a job's channel under it
        // after recording the job over, so no channel outlives its job.
        if self.get(job_id).is_ok_and(|job| Step::of(&job) == Step::Done) {
            return watch::channel(0).1;
        }
        live.entry(job_id).or_insert_with(|| watch::channel(0).0).subscribe()
    }

    /// Forgets the channel of a job that is over.
    fn forget(&self, job_id: i64) {
        self.inner.live.lock().unwrap_or_else(|p| p.into_inner()).remove(&job_id);
        self.inner.driven.lock().unwrap_or_else(|p| p.into_inner()).remove(&job_id);
    }

    /// The job's tasks, as submitted.
    fn tasks(&self, job: &ManagedJobRecord) -> Result<Vec<TaskSpec>> {
        let plain = self.inner.store.unseal(&job.tasks)?;
        LaunchManagedJobRequest::decode(plain.as_slice()).map(|request| request.tasks).map_err(|err| {
            Error::internal(format!("stored tasks of managed job {} are unreadable: {err}", job.job_id))
        })
    }

    fn job_dir(&self, job_id: i64) -> PathBuf {
        self.inner.dir.join(job_id.to_string())
    }

    /// Appends a timestamped line to the job's controller log.
    fn note(&self, job: &ManagedJobRecord, line: &str) {
        let path = self.job_dir(job.job_id).join(output::CONTROLLER_LOG);
        let text = format!("{} {line}\n", format_utc(now_ms()));
        if let Err(err) = output::append(&path, text.as_bytes()) {
            tracing::warn!(job_id = job.job_id, error = %err, "cannot write a managed job's controller log");
        }
        tracing::info!(job_id = job.job_id, "managed job: {line}");
        self.bump(job.job_id);
    }
}

/// A listing's view of a job's current task.
pub struct JobSummary {
    pub task_name: String,
    /// Nodes and what each asks for, e.g. "2x[CPU:4]".
    pub resources: String,
    pub infra: String,
    /// Running time so far, over all attempts.
    pub job_duration_ms: i64,
}

/// The job's name: the request's, else its first task's, else SkyPilot's
/// name for a command.
fn job_name(request: &LaunchManagedJobRequest) -> String {
    if !request.name.is_empty() {
        return request.name.clone();
    }
    match request.tasks.first().map(|task| task.name.as_str()) {
        Some(name) if !name.is_empty() => name.to_string(),
        _ => "sky-cmd".to_string(),
    }
}

/// The name of a job's cluster: `<name>-<id>-<4 characters of its secret>`,
/// as cluster names go (lowercase letters, digits and dashes, from a
/// letter, at most 63), so that nobody takes it by chance beforehand.
fn cluster_name(name: &str, job_id: i64, key: &str) -> String {
    let mut base: String = name
        .to_ascii_lowercase()
        .chars()
        .map(|c| if c.is_ascii_alphanumeric() { c } else { '-' })
        .take(40)
        .collect();
    base = base.trim_matches('-').to_string();
    if !base.starts_with(|c: char| c.is_ascii_lowercase()) {
        base = format!("job-{base}").trim_end_matches('-').to_string();
    }
    format!("{base}-{job_id}-{}", &key[key.len() - 4..])
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::clusters::validate_cluster_name;

    #[test]
    fn job_clusters_get_valid_names_from_any_job_name() {
        for name in ["train", "My_Job.v2", "9lives", "---", "x".repeat(200).as_str(), "sky-cmd"] {
            let cluster = cluster_name(name, 12, "0123456789abcdef");
            assert!(validate_cluster_name(&cluster).is_ok(), "{name:?} -> {cluster:?}");
            assert!(cluster.ends_with("-12-cdef"), "{cluster}");
        }
        assert_eq!(cluster_name("train", 3, "aaaa0f0f"), "train-3-0f0f");
    }
}
