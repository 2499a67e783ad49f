//! `sky launch`: launching a cluster (or reusing one) and running a task on it.

use std::io::IsTerminal;

use skypilot_api::proto::skypilot::v1::{LaunchRequest, LaunchResponse, ListClustersRequest};

use crate::{
    connect::connect,
    error::{CliError, CliResult},
    follow,
    job_output::after_submit,
    prompt::{DefaultAnswer, confirm},
    task_args::{TaskOptions, build_task},
    upload::upload_sources,
};

/// Options of `sky launch`.
#[derive(Debug, clap::Args)]
pub struct LaunchArgs {
    /// Task YAML, or a shell command to run.
    entrypoint: Vec<String>,
    /// Cluster name (default: a generated one).
    #[arg(short = 'c', long = "cluster")]
    cluster: Option<String>,
    /// Do not stream the job's output; return once it is submitted.
    #[arg(short = 'd', long = "detach-run")]
    detach_run: bool,
    /// Do not ask for confirmation.
    #[arg(short = 'y', long = "yes")]
    yes: bool,
    /// Only check the task and say what would happen.
    #[arg(long)]
    dryrun: bool,
    /// Tear the cluster down when its jobs are done (after -i minutes idle).
    #[arg(long)]
    down: bool,
    /// Autostop after this many idle minutes.
    #[arg(short = 'i', long = "idle-minutes-to-autostop")]
    idle_minutes: Option<i32>,
    /// Skip setup on an existing cluster.
    #[arg(long)]
    no_setup: bool,
    /// Submit and return at once, printing the request id.
    #[arg(long = "async")]
    run_async: bool,
    #[command(flatten)]
    task: TaskOptions,
}

impl LaunchArgs {
    pub async fn run(self) -> CliResult {
        let mut task = build_task(&self.entrypoint, &self.task)?;
        let client = connect().await?;
        let cluster = self.cluster.unwrap_or_default();
        // Asked only on a terminal, and only before a new cluster is made.
        if !self.yes && !self.dryrun && !cluster.is_empty() && std::io::stdin().is_terminal() {
            let existing = client
                .list_clusters(ListClustersRequest {
                    cluster_names: vec![cluster.clone()],
                    all_users: true,
                    refresh: false,
                })
                .await?;
            if existing.is_empty()
                && !confirm(&format!("Launching a new cluster '{cluster}'. Proceed?"), DefaultAnswer::Yes)?
            {
                return Err(CliError::new("Aborted."));
            }
        }
        upload_sources(&client, &mut task).await?;
        let request = LaunchRequest {
            task: Some(task),
            cluster_name: cluster,
            no_setup: self.no_setup,
            down: self.down,
            idle_minutes_to_autostop: self.idle_minutes,
            dryrun: self.dryrun,
            idempotency_key: String::new(),
        };
        let operation = client.launch(request).await?;
        if self.run_async {
            return follow::print_submitted(&operation);
        }
        let response: LaunchResponse = follow::follow_to_response(&client, &operation).await?;
        if self.dryrun {
            println!("{}", response.summary);
            return Ok(());
        }
        after_submit(&client, &response.cluster_name, response.job_id, self.detach_run).await
    }
}
