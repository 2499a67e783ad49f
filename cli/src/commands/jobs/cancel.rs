//! `sky jobs cancel`: cancelling managed jobs (their clusters are torn down).

use std::io::IsTerminal;

use skypilot_api::{client::request_metadata, proto::skypilot::v1::CancelManagedJobsRequest};

use crate::{
    connect::connect,
    error::{CliError, CliResult},
    follow,
    prompt::{DefaultAnswer, confirm},
};

/// Options of `sky jobs cancel`.
#[derive(Debug, clap::Args)]
pub struct JobsCancelArgs {
    /// Managed job ids.
    job_ids: Vec<i64>,
    /// Cancel the jobs of this name.
    #[arg(short = 'n', long)]
    name: Option<String>,
    /// Cancel all of your unfinished managed jobs.
    #[arg(short = 'a', long)]
    all: bool,
    /// With --all: every user's (an admin's right).
    #[arg(short = 'u', long = "all-users")]
    all_users: bool,
    /// Do not ask for confirmation.
    #[arg(short = 'y', long)]
    yes: bool,
}

impl JobsCancelArgs {
    pub async fn run(self) -> CliResult {
        let JobsCancelArgs { job_ids, name, all, all_users, yes } = self;
        let given = [!job_ids.is_empty(), name.is_some(), all].iter().filter(|given| **given).count();
        if given != 1 {
            return Err(CliError::new("Give exactly one of: managed job IDs, -n/--name NAME, or -a/--all."));
        }
        let what = if all {
            format!("all{} unfinished managed jobs", if all_users { " users'" } else { " your" })
        } else if let Some(name) = &name {
            format!("managed job(s) named '{name}'")
        } else {
            let ids: Vec<String> = job_ids.iter().map(i64::to_string).collect();
            format!("managed job(s) {}", ids.join(", "))
        };
        if !yes
            && std::io::stdin().is_terminal()
            && !confirm(&format!("Cancelling {what}. Proceed?"), DefaultAnswer::Yes)?
        {
            return Err(CliError::new("Aborted."));
        }
        let client = connect().await?;
        let request = CancelManagedJobsRequest {
            job_ids,
            name: name.unwrap_or_default(),
            all,
            all_users,
            idempotency_key: String::new(),
        };
        let operation = client.cancel_managed_jobs(request).await?;
        let id = request_metadata(&operation)?.request_id;
        follow::follow_to_end(&client, &id).await?;
        Ok(())
    }
}
