//! `sky api cancel`: cancelling requests, given by id or all active ones.

use skypilot_api::{client::request_metadata, proto::skypilot::v1::ListRequestsRequest};
use tonic::Code;

use crate::{
    connect::connect,
    error::{CliError, CliResult},
    prompt::{DefaultAnswer, confirm},
};

/// Options of `sky api cancel`.
#[derive(Debug, clap::Args)]
pub struct CancelArgs {
    /// Request ids (or unique prefixes) to cancel.
    request_ids: Vec<String>,
    /// Cancel all of your active requests.
    #[arg(short, long)]
    all: bool,
    /// With --all: every user's active requests.
    #[arg(short = 'u', long = "all-users")]
    all_users: bool,
    /// Do not ask for confirmation.
    #[arg(short, long)]
    yes: bool,
}

impl CancelArgs {
    pub async fn run(self) -> CliResult {
        let CancelArgs { request_ids: ids, all, all_users, yes } = self;
        if ids.is_empty() && !all && !all_users {
            return Err(CliError::new(
                "Specify request IDs to cancel, or use -a/--all (-u/--all-users for every user's).",
            ));
        }
        let client = connect().await?;
        let ids = if ids.is_empty() {
            let active = client
                .list_requests(ListRequestsRequest {
                    all_users,
                    include_finished: false,
                    ..Default::default()
                })
                .await?;
            let ids: Vec<String> = active
                .iter()
                .map(|op| request_metadata(op).map(|m| m.request_id))
                .collect::<Result<_, _>>()?;
            if ids.is_empty() {
                println!("No requests need to be cancelled.");
                return Ok(());
            }
            let whose = if all_users { "all users'" } else { "your" };
            // Asked even when stdin is not a terminal: there, no answer is no.
            if !yes
                && !confirm(&format!("Cancel {whose} {} active request(s)?", ids.len()), DefaultAnswer::No)?
            {
                return Err(CliError::new("Aborted."));
            }
            ids
        } else {
            ids
        };
        let mut cancelled = Vec::new();
        for id in &ids {
            match client.cancel_operation(id).await {
                Ok(()) => cancelled.push(id.clone()),
                Err(err) if err.code() == Some(Code::FailedPrecondition) => eprintln!("{err}"),
                Err(err) => return Err(err.into()),
            }
        }
        if cancelled.is_empty() {
            println!("No requests need to be cancelled.");
        } else {
            println!("Cancelled {} request(s): {}", cancelled.len(), cancelled.join(", "));
        }
        Ok(())
    }
}
