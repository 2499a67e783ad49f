//! `sky cancel`: cancelling jobs on a cluster.

use std::io::IsTerminal;

use skypilot_api::{client::request_metadata, proto::skypilot::v1::CancelJobsRequest};

use crate::{
    connect::connect,
    error::{CliError, CliResult},
    follow,
    prompt::{DefaultAnswer, confirm},
};

/// Options of `sky cancel`.
#[derive(Debug, clap::Args)]
pub struct CancelArgs {
    cluster: String,
    job_ids: Vec<i64>,
    /// Cancel all of the cluster's unfinished jobs.
    #[arg(short, long)]
    all: bool,
    /// Do not ask for confirmation.
    #[arg(short, long)]
    yes: bool,
}

impl CancelArgs {
    pub async fn run(self) -> CliResult {
        let CancelArgs { cluster, job_ids, all, yes } = self;
        if job_ids.is_empty() && !all {
            return Err(CliError::new(
                "Specify job IDs to cancel, or use -a/--all to cancel all of the cluster's jobs.",
            ));
        }
        // Asked only on a terminal.
        if all
            && !yes
            && std::io::stdin().is_terminal()
            && !confirm(&format!("Cancelling all jobs on cluster {cluster}. Proceed?"), DefaultAnswer::Yes)?
        {
            return Err(CliError::new("Aborted."));
        }
        let client = connect().await?;
        let operation = client
            .cancel_jobs(CancelJobsRequest {
                cluster_name: cluster,
                job_ids,
                all,
                idempotency_key: String::new(),
            })
            .await?;
        let id = request_metadata(&operation)?.request_id;
        follow::follow_to_end(&client, &id).await?;
        Ok(())
    }
}
