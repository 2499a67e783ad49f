//! `sky autostop`: stopping (or tearing down) clusters after they have been
//! idle for a while, or turning that off.

use skypilot_api::{client::request_metadata, proto::skypilot::v1::AutostopRequest};

use crate::{
    cluster_match::matching_clusters,
    connect::connect,
    error::{CliError, CliResult},
    follow,
};

/// Options of `sky autostop`.
#[derive(Debug, clap::Args)]
pub struct AutostopArgs {
    clusters: Vec<String>,
    /// Every cluster of yours.
    #[arg(short, long)]
    all: bool,
    /// Idle minutes before autostop.
    #[arg(short = 'i', long = "idle-minutes")]
    idle_minutes: Option<i32>,
    /// Tear down instead of stopping.
    #[arg(long)]
    down: bool,
    /// Turn autostop off.
    #[arg(long)]
    cancel: bool,
    /// Do not ask for confirmation.
    #[arg(short, long)]
    yes: bool,
}

impl AutostopArgs {
    pub async fn run(self) -> CliResult {
        // Nothing is asked, so -y changes nothing.
        let AutostopArgs { clusters: patterns, all, idle_minutes, down, cancel, yes: _ } = self;
        if patterns.is_empty() && !all {
            return Err(CliError::new("Specify the clusters (names or glob patterns), or use -a/--all."));
        }
        if !cancel && idle_minutes.is_none() && !down {
            return Err(CliError::new("Specify -i/--idle-minutes MINUTES, --down, or --cancel."));
        }
        let client = connect().await?;
        let names = matching_clusters(&client, &patterns, false).await?;
        for name in names {
            let request = AutostopRequest {
                cluster_name: name,
                idle_minutes: idle_minutes.unwrap_or(if down { 0 } else { 5 }),
                down,
                cancel,
                idempotency_key: String::new(),
            };
            let operation = client.autostop(request).await?;
            let id = request_metadata(&operation)?.request_id;
            follow::follow_to_end(&client, &id).await?;
        }
        Ok(())
    }
}
