//! `sky exec`: running a task as a job on an existing cluster (no setup).

use skypilot_api::proto::skypilot::v1::{ExecRequest, ExecResponse};

use crate::{
    connect::connect,
    error::CliResult,
    follow,
    job_output::after_submit,
    task_args::{TaskOptions, build_task},
    upload::upload_sources,
};

/// Options of `sky exec`.
#[derive(Debug, clap::Args)]
pub struct ExecArgs {
    /// Cluster to run on.
    cluster: String,
    /// Task YAML, or a shell command to run.
    #[arg(required = true)]
    entrypoint: Vec<String>,
    /// Do not stream the job's output.
    #[arg(short = 'd', long = "detach-run")]
    detach_run: bool,
    /// Submit and return at once, printing the request id.
    #[arg(long = "async")]
    run_async: bool,
    #[command(flatten)]
    task: TaskOptions,
}

impl ExecArgs {
    pub async fn run(self) -> CliResult {
        let mut task = build_task(&self.entrypoint, &self.task)?;
        let client = connect().await?;
        upload_sources(&client, &mut task).await?;
        let request =
            ExecRequest { cluster_name: self.cluster, task: Some(task), idempotency_key: String::new() };
        let operation = client.exec(request).await?;
        if self.run_async {
            return follow::print_submitted(&operation);
        }
        let response: ExecResponse = follow::follow_to_response(&client, &operation).await?;
        after_submit(&client, &response.cluster_name, response.job_id, self.detach_run).await
    }
}
