//! The indexes that keep job work independent of a cluster's history: the
//! keys of its unfinished jobs (what scheduling, cancelling and recovery
//! look at) and the job each request submitted (so that a request run
//! again finds its job). Both are kept beside the job records, in the same
//! writes, and built once from the records of a store that predates them.

use super::{Clusters, is_job_done, job_key, job_prefix};
use crate::{
    error::Result,
    store::{JobRecord, Table},
};

/// (infra, status, how many).
pub type InfraCount = (String, String, i64);

/// Marks a store whose indexes were built (no cluster name starts with NUL).
const BUILT: &[u8] = b"\0built";

impl Clusters {
    /// The cluster's unfinished jobs, in id order.
    pub(super) fn active_jobs(&self, cluster: &str) -> Result<Vec<JobRecord>> {
        self.jobs_at(self.inner.store.scan_keys(Table::ActiveJobs, &job_prefix(cluster))?)
    }

    /// Every cluster's unfinished jobs.
    pub(super) fn all_active_jobs(&self) -> Result<Vec<JobRecord>> {
        let keys = self.inner.store.scan_keys(Table::ActiveJobs, b"")?;
        self.jobs_at(keys.into_iter().filter(|key| !key.starts_with(b"\0")).collect())
    }

    /// Clusters by (infra, status) and unfinished jobs by (infra, status),
    /// for the metrics: what is active, never the history.
    pub fn counts(&self) -> Result<(Vec<InfraCount>, Vec<InfraCount>)> {
        let clusters = self.list(&[], None)?;
        let infra_of: std::collections::HashMap<&str, &str> =
            clusters.iter().map(|cluster| (cluster.name.as_str(), super::infra_name(cluster))).collect();
        let mut by_cluster: std::collections::HashMap<(String, String), i64> = Default::default();
        for cluster in &clusters {
            let status = skypilot_api::names::cluster_status(cluster.status()).to_string();
            *by_cluster.entry((super::infra_name(cluster).to_string(), status)).or_default() += 1;
        }
        let mut by_job: std::collections::HashMap<(String, String), i64> = Default::default();
        for job in self.all_active_jobs()? {
            let infra = infra_of.get(job.cluster.as_str()).copied().unwrap_or("local").to_string();
            let status = skypilot_api::names::job_status(job.status()).to_string();
            *by_job.entry((infra, status)).or_default() += 1;
        }
        let flat = |counts: std::collections::HashMap<(String, String), i64>| {
            counts.into_iter().map(|((infra, status), count)| (infra, status, count)).collect()
        };
        Ok((flat(by_cluster), flat(by_job)))
    }

    fn jobs_at(&self, keys: Vec<Vec<u8>>) -> Result<Vec<JobRecord>> {
        let mut jobs = Vec::with_capacity(keys.len());
        for key in keys {
            if let Some(job) = self.inner.store.get::<JobRecord>(Table::Jobs, &key)? {
                jobs.push(job);
            }
        }
        Ok(jobs)
    }

    /// Keeps the indexes in step with a job record about to be saved.
    pub(super) fn index_job(&self, job: &JobRecord) -> Result<()> {
        let key = job_key(&job.cluster, job.job_id);
        match is_job_done(job.status()) {
            true => self.inner.store.delete(Table::ActiveJobs, &key)?,
            false => self.inner.store.put_raw(Table::ActiveJobs, &key, b"")?,
        }
        if !job.request_id.is_empty() {
            let request = request_key(&job.cluster, &job.request_id);
            self.inner.store.put_raw(Table::JobRequests, &request, &job.job_id.to_be_bytes())?;
        }
        Ok(())
    }

    /// The job that request `request_id` submitted to the cluster, if any.
    pub(super) fn job_of_request(&self, cluster: &str, request_id: &str) -> Result<Option<i64>> {
        let raw = self.inner.store.get_raw(Table::JobRequests, &request_key(cluster, request_id))?;
        Ok(raw.and_then(|raw| raw.try_into().ok()).map(i64::from_be_bytes))
    }

    /// Forgets the jobs of a cluster that is torn down.
    pub(super) fn forget_jobs(&self, cluster: &str) -> Result<()> {
        let prefix = job_prefix(cluster);
        for table in [Table::Jobs, Table::ActiveJobs, Table::JobRequests] {
            self.inner.store.remove_prefix(table, &prefix)?;
        }
        Ok(())
    }

    /// Builds the indexes from the job records, once per store.
    pub(super) async fn build_job_indexes(&self) -> Result<()> {
        if self.inner.store.get_raw(Table::ActiveJobs, BUILT)?.is_some() {
            return Ok(());
        }
        for job in self.inner.store.scan::<JobRecord>(Table::Jobs, b"")? {
            self.index_job(&job)?;
        }
        self.inner.store.put_raw(Table::ActiveJobs, BUILT, b"")?;
        self.inner.store.durable().await
    }
}

fn request_key(cluster: &str, request_id: &str) -> Vec<u8> {
    let mut key = job_prefix(cluster);
    key.extend_from_slice(request_id.as_bytes());
    key
}
