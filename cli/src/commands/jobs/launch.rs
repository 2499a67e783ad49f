//! `sky jobs launch`: submits a managed job and, unless detached, streams
//! its output until it ends.

use std::io::IsTerminal;

use skypilot_api::proto::skypilot::v1::{LaunchManagedJobRequest, LaunchManagedJobResponse};

use super::logs::follow_job;
use crate::{
    connect::connect,
    error::{CliError, CliResult},
    follow,
    prompt::{DefaultAnswer, confirm},
    task_args::{TaskOptions, build_pipeline},
    upload::upload_sources,
};

/// Options of `sky jobs launch`.
#[derive(Debug, clap::Args)]
pub struct JobsLaunchArgs {
    /// Task YAML (documents separated by `---` run one after another), or a shell command.
    entrypoint: Vec<String>,
    /// Do not stream the job's output; return once it is submitted.
    #[arg(short = 'd', long = "detach-run")]
    detach_run: bool,
    /// Do not ask for confirmation.
    #[arg(short = 'y', long = "yes")]
    yes: bool,
    /// Submit and return at once, printing the request id.
    #[arg(long = "async")]
    run_async: bool,
    #[command(flatten)]
    task: TaskOptions,
}

impl JobsLaunchArgs {
    pub async fn run(self) -> CliResult {
        let (name, mut tasks) = build_pipeline(&self.entrypoint, &self.task)?;
        let shown = if !name.is_empty() {
            name.clone()
        } else {
            tasks.first().map(|task| task.name.clone()).filter(|n| !n.is_empty()).unwrap_or("sky-cmd".into())
        };
        // Asked only on a terminal.
        if !self.yes
            && std::io::stdin().is_terminal()
            && !confirm(
                &format!("Launching a managed job '{shown}' ({} task(s)). Proceed?", tasks.len()),
                DefaultAnswer::Yes,
            )?
        {
            return Err(CliError::new("Aborted."));
        }
        let client = connect().await?;
        for task in &mut tasks {
            upload_sources(&client, task).await?;
        }
        let request = LaunchManagedJobRequest { tasks, name, idempotency_key: String::new() };
        let operation = client.launch_managed_job(request).await?;
        if self.run_async {
            return follow::print_submitted(&operation);
        }
        let response: LaunchManagedJobResponse = follow::follow_to_response(&client, &operation).await?;
        let id = response.job_id;
        eprintln!("\u{2699}\u{fe0e} Managed job {id} ('{}') submitted.", response.name);
        if self.detach_run {
            eprintln!("\u{251c}\u{2500}\u{2500} To stream job logs: sky jobs logs {id}");
            eprintln!("\u{251c}\u{2500}\u{2500} To stream controller logs: sky jobs logs --controller {id}");
            eprintln!("\u{2514}\u{2500}\u{2500} To cancel the job: sky jobs cancel {id}");
            return Ok(());
        }
        eprintln!(
            "\u{2514}\u{2500}\u{2500} Streaming its output... (Ctrl-C to exit log streaming; the job will not be killed)"
        );
        follow_job(&client, id, false, true, None).await
    }
}
