//! `sky queue`: the job queue of clusters, one table a cluster.

use skypilot_api::{
    names,
    proto::skypilot::v1::{Job, ListClustersRequest, ListJobsRequest},
};

use crate::{
    connect::connect,
    error::CliResult,
    output::{ago, duration_text, table},
};

/// Options of `sky queue`.
#[derive(Debug, clap::Args)]
pub struct QueueArgs {
    /// Clusters (default: all of yours).
    clusters: Vec<String>,
    /// Show only pending and running jobs.
    #[arg(short = 's', long = "skip-finished")]
    skip_finished: bool,
    /// Show every user's jobs.
    #[arg(short = 'u', long = "all-users")]
    all_users: bool,
    /// Show at most this many jobs a cluster, the most recent (0: all).
    #[arg(short = 'l', long, default_value_t = DEFAULT_LIMIT)]
    limit: usize,
}

/// Jobs shown a cluster unless asked for more.
const DEFAULT_LIMIT: usize = 100;
/// Pages asked for a cluster, at most, unless all jobs are asked for.
const MAX_PAGES: usize = 10;

impl QueueArgs {
    pub async fn run(self) -> CliResult {
        let QueueArgs { clusters, skip_finished, all_users, limit } = self;
        let client = connect().await?;
        let names: Vec<String> = if clusters.is_empty() {
            client
                .list_clusters(ListClustersRequest { cluster_names: vec![], all_users, refresh: false })
                .await?
                .into_iter()
                .map(|c| c.name)
                .collect()
        } else {
            clusters
        };
        if names.is_empty() {
            println!("No existing clusters.");
        }
        for name in names {
            // Pages until `limit` jobs (a page may hold fewer, where other
            // users' jobs were skipped), for a bounded number of pages.
            let (mut jobs, mut more) = (Vec::new(), String::new());
            for _ in 0..MAX_PAGES {
                let request = ListJobsRequest {
                    cluster_name: name.clone(),
                    skip_finished,
                    all_users,
                    page_size: i32::try_from(limit.saturating_sub(jobs.len())).unwrap_or(i32::MAX),
                    page_token: more,
                };
                let page = client.list_jobs_page(request).await?;
                jobs.extend(page.jobs);
                more = page.next_page_token;
                if more.is_empty() || limit == 0 || jobs.len() >= limit {
                    break;
                }
            }
            let whose = if all_users { "all users" } else { "current user" };
            println!("Job queue of {whose} on cluster {name}");
            let rows: Vec<Vec<String>> = jobs
                .iter()
                .map(|j| {
                    vec![
                        j.job_id.to_string(),
                        if j.name.is_empty() { "-".into() } else { j.name.clone() },
                        j.user_name.clone(),
                        ago(j.submitted_at.as_ref()),
                        ago(j.started_at.as_ref()),
                        duration(j),
                        job_resources(j),
                        names::job_status(j.status()).to_string(),
                    ]
                })
                .collect();
            print!(
                "{}",
                table(
                    &["ID", "NAME", "USER", "SUBMITTED", "STARTED", "DURATION", "RESOURCES", "STATUS"],
                    &rows
                )
            );
            if !more.is_empty() {
                println!(
                    "Showing the {} most recent jobs; `sky queue {name} --limit 0` shows them all.",
                    jobs.len()
                );
            }
        }
        Ok(())
    }
}

fn duration(job: &Job) -> String {
    let Some(start) = &job.started_at else { return "-".into() };
    let end = job.ended_at.as_ref().map(|t| t.seconds).unwrap_or_else(|| {
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_secs() as i64)
            .unwrap_or(0)
    });
    duration_text(end - start.seconds)
}

fn job_resources(job: &Job) -> String {
    if job.accelerators.is_empty() {
        format!("1x[CPU:{}]", job.cpus)
    } else {
        format!("1x[{}, CPU:{}]", job.accelerators, job.cpus)
    }
}
