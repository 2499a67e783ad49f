//! Clusters and their jobs, written once above the `Infra` trait: launching,
//! stopping, starting and tearing down clusters and their autostop settings;
//! a FIFO job queue per cluster that respects what each job asks for; job
//! runs and their logs. Cluster and job records live in the store; nodes,
//! processes and files are the infra's.

mod fit;
mod job_index;
mod jobs;
mod lifecycle;
mod logs;
mod run;

use std::{path::PathBuf, sync::Arc};

use skypilot_api::proto::skypilot::v1::{ClusterStatus, JobStatus};
use tokio::sync::{Mutex, watch};
use tokio_util::{sync::CancellationToken, task::TaskTracker};

pub use fit::Fit;

use crate::{
    error::{Error, ErrorReason, Result},
    infra::{Capacity, Infra, InfraStatus, Infras, NodeState, ssh::pool::SshPool},
    store::{ClusterRecord, JobRecord, Store, Table},
};

/// CPUs a job holds on each node when its task names none (as SkyPilot).
pub const DEFAULT_JOB_CPUS: f64 = 0.5;
/// CPUs each node of a new cluster gets when the task names none.
pub const DEFAULT_CLUSTER_CPUS: f64 = 1.0;

/// Handle to the cluster and job layer; cheap to clone.
#[derive(Clone)]
pub struct Clusters {
    inner: Arc<Inner>,
}

struct Inner {
    store: Store,
    /// Every infra: local, then the SSH node pools.
    infras: Infras,
    /// What the local infra's host offers.
    capacity: Capacity,
    /// Where `down` keeps the job logs of the clusters it removes.
    job_log_archive: PathBuf,
    /// Serializes job state changes and scheduling decisions.
    jobs_lock: Mutex<()>,
    /// Bumped on every job state change, for log followers.
    job_changes: watch::Sender<u64>,
    /// Bumped on every cluster change.
    cluster_changes: watch::Sender<u64>,
    shutdown: CancellationToken,
    tasks: TaskTracker,
}

impl Clusters {
    /// Creates the layer and reconciles jobs left by an earlier run: running
    /// processes are watched again, pending jobs are scheduled.
    /// `job_log_archive` receives the job logs of torn-down clusters.
    pub async fn open(store: Store, infras: Infras, job_log_archive: PathBuf) -> Result<Clusters> {
        let capacity = infras.local().capacity().await?;
        let (job_changes, _) = watch::channel(0);
        let (cluster_changes, _) = watch::channel(0);
        let clusters = Clusters {
            inner: Arc::new(Inner {
                store,
                infras,
                capacity,
                job_log_archive,
                jobs_lock: Mutex::new(()),
                job_changes,
                cluster_changes,
                shutdown: CancellationToken::new(),
                tasks: TaskTracker::new(),
            }),
        };
        clusters.build_job_indexes().await?;
        clusters.reconcile_node_addresses().await?;
        clusters.recover().await?;
        Ok(clusters)
    }

    /// Stops watching jobs (their processes keep running, to be reconciled at
    /// the next start) and ends log streams.
    pub async fn shutdown(&self) {
        self.inner.shutdown.cancel();
        self.inner.tasks.close();
        self.inner.tasks.wait().await;
        for infra in self.inner.infras.all() {
            infra.settle().await;
        }
    }

    /// Fires when the layer shuts down.
    pub fn shutting_down(&self) -> CancellationToken {
        self.inner.shutdown.clone()
    }

    /// Every infra this server knows: `local`, then `ssh/<pool>` for each pool.
    pub fn infra_names(&self) -> Vec<String> {
        self.inner.infras.names()
    }

    /// Whether the infra named `name` is usable, and what it offers.
    pub async fn check_infra(&self, name: &str) -> InfraStatus {
        match self.inner.infras.named(name) {
            Ok(infra) => infra.check().await,
            Err(err) => InfraStatus::new(name, false, err.message),
        }
    }

    /// The infra a task asks for (`resources.infra`; empty: local), refused
    /// when unknown or when it takes no clusters.
    pub fn check_infra_enabled(&self, name: &str) -> Result<()> {
        let infra = self.inner.infras.named(name)?;
        match infra.disabled() {
            Some(why) => Err(Error::new(
                ErrorReason::FailedPrecondition,
                format!("the {} infra is {why}", infra.name()),
            )),
            None => Ok(()),
        }
    }

    /// The SSH node pools `name` picks (`ssh/<pool>`, `<pool>`; empty or
    /// `ssh` for all).
    pub fn ssh_pools(&self, name: &str) -> Result<Vec<Arc<SshPool>>> {
        self.inner.infras.ssh_pools(name)
    }

    /// Where each node of `cluster` is and whether it answers (or, while
    /// its launch waits for nodes, why); `refresh` reaches them now.
    pub async fn nodes(&self, cluster: &ClusterRecord, refresh: bool) -> Vec<NodeState> {
        let launching = cluster.status() == ClusterStatus::Init;
        match self.inner.infras.named(infra_name(cluster)) {
            Ok(infra) if !cluster.node_ips.is_empty() || launching => {
                infra.nodes(&cluster.name, refresh).await
            }
            _ => Vec::new(),
        }
    }

    /// The name of the infra a request on `cluster` runs on: the cluster's
    /// own when it exists, else the one `task` asks for (empty: local).
    pub fn infra_for(
        &self,
        cluster: &str,
        task: Option<&skypilot_api::proto::skypilot::v1::TaskSpec>,
    ) -> String {
        match self.get(cluster) {
            Ok(record) => infra_name(&record).to_string(),
            Err(_) => {
                task.and_then(|task| task.resources.as_ref()).map(|r| r.infra.clone()).unwrap_or_default()
            }
        }
    }

    /// The infra `cluster` runs on.
    pub(crate) fn infra_of(&self, cluster: &str) -> Result<Arc<dyn Infra>> {
        let record = self.get(cluster)?;
        Ok(self.inner.infras.named(infra_name(&record))?.clone())
    }

    /// Refuses a file mount destination the infra cannot place files at.
    pub fn check_destination(&self, infra: &str, dest: &str) -> Result<()> {
        self.inner
            .infras
            .named(infra)?
            .check_destination(dest)
            .map_err(|err| Error::invalid("task.file_mounts", err))
    }

    /// A cluster by name.
    pub fn get(&self, name: &str) -> Result<ClusterRecord> {
        self.inner.store.get(Table::Clusters, name.as_bytes())?.ok_or_else(|| {
            Error::not_found(format!("cluster {name:?} does not exist; `sky status` lists clusters"))
        })
    }

    /// Clusters whose name matches one of `patterns` (globs; all when empty),
    /// of `user_id` only when given.
    pub fn list(&self, patterns: &[String], user_id: Option<&str>) -> Result<Vec<ClusterRecord>> {
        validate_patterns(patterns)?;
        let all: Vec<ClusterRecord> = self.inner.store.scan(Table::Clusters, b"")?;
        Ok(all
            .into_iter()
            .filter(|c| patterns.is_empty() || patterns.iter().any(|p| glob_match(p, &c.name)))
            .filter(|c| user_id.is_none_or(|user| user == c.user_id))
            .collect())
    }

    /// A page of a cluster's jobs, newest first: up to `page.size` (0: all)
    /// below the job id `page.after` names; also the token of the next page.
    pub fn jobs(
        &self,
        cluster: &str,
        skip_finished: bool,
        user_id: Option<&str>,
        page: &Page,
    ) -> Result<(Vec<JobRecord>, String)> {
        self.get(cluster)?;
        let below = match page.token.as_str() {
            "" => None,
            token => Some(token.parse::<i64>().map_err(|_| {
                Error::invalid("page_token", "is not one this server gave: start from the first page")
            })?),
        };
        let limit = if page.size == 0 { usize::MAX } else { page.size };
        let mine = |job: &JobRecord| user_id.is_none_or(|user| user == job.user_id);
        let mut jobs: Vec<JobRecord> = match skip_finished {
            // Unfinished jobs come from their index, never the whole history.
            true => {
                let mut active = self.active_jobs(cluster)?;
                active.retain(|job| mine(job) && below.is_none_or(|below| job.job_id < below));
                active.reverse();
                active.truncate(limit.saturating_add(1));
                active
            }
            false => {
                let before = below.map(|below| job_key(cluster, below));
                // Other users' jobs are looked at too: a page stops after a
                // bounded number of them (it may then hold fewer jobs).
                let budget = limit.saturating_mul(10).max(1000);
                let (found, stopped_at) = self.inner.store.scan_newest(
                    Table::Jobs,
                    &job_prefix(cluster),
                    before.as_deref(),
                    (limit.saturating_add(1), budget),
                    mine,
                )?;
                if let Some(key) = stopped_at {
                    let resume = key[key.len() - 8..].try_into().map(i64::from_be_bytes).unwrap_or(0) + 1;
                    let jobs = found.into_iter().map(|(_, job)| job).collect();
                    return Ok((jobs, resume.to_string()));
                }
                found.into_iter().map(|(_, job)| job).collect()
            }
        };
        let next = match jobs.len() > limit {
            true => {
                jobs.truncate(limit);
                jobs.last().map(|job| job.job_id.to_string()).unwrap_or_default()
            }
            false => String::new(),
        };
        Ok((jobs, next))
    }

    /// One job of a cluster.
    pub fn job(&self, cluster: &str, job_id: i64) -> Result<JobRecord> {
        self.inner.store.get(Table::Jobs, &job_key(cluster, job_id))?.ok_or_else(|| {
            Error::not_found(format!(
                "job {job_id} does not exist on cluster {cluster:?}; `sky queue {cluster}` lists its jobs"
            ))
        })
    }

    async fn save_cluster(&self, cluster: &ClusterRecord) -> Result<()> {
        self.inner.store.put(Table::Clusters, cluster.name.as_bytes(), cluster)?;
        self.inner.store.durable().await?;
        self.inner.cluster_changes.send_modify(|n| *n += 1);
        Ok(())
    }

    /// A receiver that changes whenever a job's state changes.
    pub fn subscribe_job_changes(&self) -> watch::Receiver<u64> {
        self.inner.job_changes.subscribe()
    }

    /// A receiver that changes whenever a cluster record changes or is removed.
    pub fn subscribe_cluster_changes(&self) -> watch::Receiver<u64> {
        self.inner.cluster_changes.subscribe()
    }

    async fn save_job(&self, job: &JobRecord) -> Result<()> {
        self.inner.store.put(Table::Jobs, &job_key(&job.cluster, job.job_id), job)?;
        self.index_job(job)?;
        self.inner.store.durable().await?;
        self.inner.job_changes.send_modify(|n| *n += 1);
        Ok(())
    }

    /// What UP or INIT clusters of the local infra other than `except`
    /// hold: (CPUs, GiB, GPU indices).
    fn held(&self, except: &str) -> Result<(f64, f64, Vec<u32>)> {
        let mut cpus = 0.0;
        let mut memory = 0.0;
        let mut gpus = Vec::new();
        for cluster in self.list(&[], None)? {
            if cluster.name == except
                || cluster.status() == ClusterStatus::Stopped
                || infra_name(&cluster) != "local"
            {
                continue;
            }
            cpus += cluster.cpus * f64::from(cluster.num_nodes);
            memory += cluster.memory_gib * f64::from(cluster.num_nodes);
            gpus.extend(cluster.gpu_indices.iter().copied());
        }
        Ok((cpus, memory, gpus))
    }

    /// Checks that a local `cluster`'s resources fit the host beside the
    /// other clusters; returns the GPU indices it can hold. (Other infras
    /// place nodes themselves, in `provision`.)
    fn reserve(&self, cluster: &ClusterRecord, gpus_per_node: u32) -> Result<Vec<u32>> {
        if infra_name(cluster) != "local" {
            return Ok(Vec::new());
        }
        let (cpus, memory, gpus_held) = self.held(&cluster.name)?;
        let host = &self.inner.capacity;
        let nodes = f64::from(cluster.num_nodes);
        let exhausted = |what: String| Err(Error::new(ErrorReason::ResourceExhausted, what));
        let free_cpus = host.cpus as f64 - cpus;
        if cluster.cpus * nodes > free_cpus + 1e-9 {
            return exhausted(format!(
                "asked for {} CPU(s) x {} node(s), but the host has {} CPUs and other clusters hold {cpus}: \
                 {free_cpus} free. Use fewer CPUs (--cpus) or stop other clusters (sky stop).",
                cluster.cpus, cluster.num_nodes, host.cpus
            ));
        }
        let free_memory = host.memory_gib - memory;
        if cluster.memory_gib * nodes > free_memory + 1e-9 {
            return exhausted(format!(
                "asked for {:.1} GiB memory x {} node(s), but only {free_memory:.1} GiB of the host's {:.1} GiB are free",
                cluster.memory_gib, cluster.num_nodes, host.memory_gib
            ));
        }
        let wanted = gpus_per_node as usize * cluster.num_nodes as usize;
        let free: Vec<u32> = (0..host.gpus.len() as u32).filter(|i| !gpus_held.contains(i)).collect();
        if wanted > free.len() {
            return exhausted(format!(
                "asked for {} GPU(s) x {} node(s) ({}), but the host has {} GPU(s) and {} are free",
                gpus_per_node,
                cluster.num_nodes,
                cluster.accelerators,
                host.gpus.len(),
                free.len()
            ));
        }
        Ok(free[..wanted].to_vec())
    }
}

/// `cluster NUL job_id(big endian)`: jobs of a cluster sort by id.
fn job_key(cluster: &str, job_id: i64) -> Vec<u8> {
    let mut key = job_prefix(cluster);
    key.extend_from_slice(&job_id.to_be_bytes());
    key
}

fn job_prefix(cluster: &str) -> Vec<u8> {
    let mut key = cluster.as_bytes().to_vec();
    key.push(0);
    key
}

/// Which page of a listing: its size (0: everything) and the token that
/// the previous page ended with (empty: the first).
#[derive(Debug, Clone, Default)]
pub struct Page {
    pub size: usize,
    pub token: String,
}

/// Whether a job has ended.
pub fn is_job_done(status: JobStatus) -> bool {
    matches!(status, JobStatus::Succeeded | JobStatus::Failed | JobStatus::FailedSetup | JobStatus::Cancelled)
}

/// Longest cluster-name pattern accepted, and most patterns in one request.
pub const MAX_PATTERN_CHARS: usize = 256;
pub const MAX_PATTERNS: usize = 256;

/// Refuses patterns beyond the bounds above.
pub fn validate_patterns(patterns: &[String]) -> Result<()> {
    if patterns.len() > MAX_PATTERNS {
        return Err(Error::invalid(
            "cluster_names",
            format!("{} patterns given; at most {MAX_PATTERNS} are accepted", patterns.len()),
        ));
    }
    if let Some(long) = patterns.iter().find(|p| p.chars().count() > MAX_PATTERN_CHARS) {
        return Err(Error::invalid(
            "cluster_names",
            format!(
                "a pattern of {} characters; at most {MAX_PATTERN_CHARS} are accepted",
                long.chars().count()
            ),
        ));
    }
    Ok(())
}

/// Shell-style glob: `*` any run, `?` one character. Iterative, with one
/// backtracking point (the last `*`): at most pattern x name steps, without
/// recursion, whatever the pattern.
pub fn glob_match(pattern: &str, name: &str) -> bool {
    let p: Vec<char> = pattern.chars().collect();
    let n: Vec<char> = name.chars().collect();
    let (mut pi, mut ni) = (0, 0);
    // Where the last `*` was, and the name position it currently stands for.
    let mut star: Option<(usize, usize)> = None;
    while ni < n.len() {
        match p.get(pi) {
            Some('*') => {
                star = Some((pi, ni));
                pi += 1;
            }
            Some(c) if *c == '?' || *c == n[ni] => {
                pi += 1;
                ni += 1;
            }
            _ => match star {
                // Let the last `*` take one more character and try again.
                Some((star_pi, star_ni)) => {
                    pi = star_pi + 1;
                    ni = star_ni + 1;
                    star = Some((star_pi, star_ni + 1));
                }
                None => return false,
            },
        }
    }
    p[pi..].iter().all(|c| *c == '*')
}

/// A generated cluster name, as SkyPilot makes them: sky-XXXX-user.
pub fn generated_cluster_name(user: &str) -> String {
    let random = uuid::Uuid::now_v7().simple().to_string();
    let user: String = user
        .to_ascii_lowercase()
        .chars()
        .map(|c| if c.is_ascii_alphanumeric() { c } else { '-' })
        .take(20)
        .collect();
    format!("sky-{}-{}", &random[random.len() - 4..], user.trim_matches('-'))
}

/// Checks a cluster name as SkyPilot does.
pub fn validate_cluster_name(name: &str) -> Result<()> {
    let valid = name.len() <= 63
        && name.chars().next().is_some_and(|c| c.is_ascii_lowercase())
        && name.chars().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-')
        && !name.ends_with('-');
    if !valid {
        return Err(Error::invalid(
            "cluster_name",
            format!(
                "{name:?} is not a valid cluster name: use up to 63 lowercase letters, digits and \
                 dashes, starting with a letter"
            ),
        ));
    }
    Ok(())
}

/// The name of the infra `cluster` runs on.
pub fn infra_name(cluster: &ClusterRecord) -> &str {
    if cluster.infra.is_empty() { "local" } else { &cluster.infra }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn globs_match_like_the_shell() {
        assert!(glob_match("*", "dev"));
        assert!(glob_match("*", ""));
        assert!(glob_match("dev-*", "dev-1"));
        assert!(!glob_match("dev-*", "prod-1"));
        assert!(glob_match("d?v", "dev"));
        assert!(!glob_match("d?v", "dv"));
        assert!(glob_match("*-gpu-*", "train-gpu-7"));
        assert!(glob_match("a*b*c", "axxbyyc"));
        assert!(!glob_match("a*b*c", "axxbyy"));
        assert!(glob_match("**a", "ba"));
        assert!(!glob_match("dev", "dev2"));
    }

    /// Each of these overflowed the stack or ran for hours with recursive
    /// backtracking; now they take at most pattern x name steps.
    #[test]
    fn adversarial_globs_neither_recurse_nor_backtrack_exponentially() {
        let name = format!("{}b", "a".repeat(62));
        assert!(!glob_match(&format!("{}c", "*a".repeat(10)), &name));
        assert!(glob_match(&"*".repeat(200_000), "x"));
        assert!(!glob_match(&format!("{}c", "*a".repeat(128)), &"a".repeat(63)));
    }

    #[test]
    fn too_many_or_too_long_patterns_are_refused() {
        assert!(validate_patterns(&["*".repeat(MAX_PATTERN_CHARS)]).is_ok());
        let err = validate_patterns(&["*".repeat(MAX_PATTERN_CHARS + 1)]).unwrap_err();
        assert!(err.message.contains("`cluster_names`"), "{err}");
        assert!(validate_patterns(&vec!["a".to_string(); MAX_PATTERNS + 1]).is_err());
    }

    #[test]
    fn cluster_names_follow_skypilot_rules() {
        assert!(validate_cluster_name("my-cluster-1").is_ok());
        for bad in ["", "My", "1abc", "a_b", "trailing-"] {
            assert!(validate_cluster_name(bad).is_err(), "{bad}");
        }
    }
}
