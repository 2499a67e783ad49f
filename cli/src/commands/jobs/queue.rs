//! `sky jobs queue`: managed jobs, newest first, in SkyPilot's columns.

use skypilot_api::{
    names,
    proto::skypilot::v1::{ListManagedJobsRequest, ManagedJob},
};

use crate::{
    connect::connect,
    error::CliResult,
    output::{ago, duration_text, table},
};

/// Options of `sky jobs queue`.
#[derive(Debug, clap::Args)]
pub struct JobsQueueArgs {
    /// Show every user's managed jobs.
    #[arg(short = 'u', long = "all-users")]
    all_users: bool,
    /// Show more columns: the cluster, infra and details (why a job failed or waits).
    #[arg(short = 'a', long = "all")]
    all: bool,
    /// Show only jobs that have not finished.
    #[arg(short = 's', long = "skip-finished")]
    skip_finished: bool,
    /// Show at most this many jobs, the most recent (0: all).
    #[arg(short = 'l', long, default_value_t = 500)]
    limit: usize,
}

impl JobsQueueArgs {
    pub async fn run(self) -> CliResult {
        let client = connect().await?;
        let request = ListManagedJobsRequest {
            all_users: self.all_users,
            skip_finished: self.skip_finished,
            job_ids: Vec::new(),
            page_size: i32::try_from(self.limit).unwrap_or(i32::MAX),
            page_token: String::new(),
        };
        eprintln!("Fetching managed job statuses...");
        let page = client.list_managed_jobs(request).await?;
        if page.jobs.is_empty() {
            println!(
                "{}",
                if self.skip_finished { "No in-progress managed jobs." } else { "No managed jobs found." }
            );
            return Ok(());
        }
        println!("Managed jobs");
        let mut headers = vec!["ID", "TASK", "NAME"];
        if self.all_users {
            headers.push("USER");
        }
        headers.extend(["REQUESTED", "SUBMITTED", "TOT. DURATION", "JOB DURATION", "#RECOVERIES", "STATUS"]);
        if self.all {
            headers.extend(["CLUSTER", "INFRA", "DETAILS"]);
        }
        let rows: Vec<Vec<String>> = page.jobs.iter().map(|job| self.row(job)).collect();
        print!("{}", table(&headers, &rows));
        if !page.next_page_token.is_empty() {
            println!(
                "Showing the {} most recent managed jobs; `sky jobs queue --limit 0` shows them all.",
                page.jobs.len()
            );
        }
        Ok(())
    }

    fn row(&self, job: &ManagedJob) -> Vec<String> {
        let task = match job.num_tasks {
            0 | 1 => "-".to_string(),
            n => format!("{}/{n}", job.current_task + 1),
        };
        let mut row = vec![job.job_id.to_string(), task, job.name.clone()];
        if self.all_users {
            row.push(job.user_name.clone());
        }
        let now = now_secs();
        let total = job
            .submitted_at
            .as_ref()
            .map(|submitted| job.ended_at.as_ref().map_or(now, |ended| ended.seconds) - submitted.seconds);
        row.extend([
            job.resources.clone(),
            ago(job.submitted_at.as_ref()),
            total.map_or("-".into(), duration_text),
            if job.job_duration_ms > 0 { duration_text(job.job_duration_ms / 1000) } else { "-".into() },
            job.recovery_count.to_string(),
            names::managed_job_status(job.status()).to_string(),
        ]);
        if self.all {
            let infra = if job.infra.is_empty() { "local".to_string() } else { job.infra.clone() };
            let details =
                if job.failure_reason.is_empty() { "-".to_string() } else { job.failure_reason.clone() };
            row.extend([job.cluster_name.clone(), infra, details]);
        }
        row
    }
}

fn now_secs() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0)
}
