//! `sky stop`, `sky start` and `sky down`: one request a matching cluster.

use std::io::IsTerminal;

use skypilot_api::client::{ClusterAction, request_metadata};

use crate::{
    cluster_match::matching_clusters,
    connect::connect,
    error::{CliError, CliResult},
    follow,
    prompt::{DefaultAnswer, confirm},
};

/// Which clusters a command acts on.
#[derive(Debug, clap::Args)]
pub struct ClusterSelection {
    /// Cluster names or glob patterns (matching only your clusters unless -u).
    clusters: Vec<String>,
    /// Every cluster of yours.
    #[arg(short, long)]
    all: bool,
    /// Match every user's clusters.
    #[arg(short = 'u', long = "all-users")]
    all_users: bool,
    /// Do not ask for confirmation.
    #[arg(short, long)]
    yes: bool,
}

/// Options of `sky down`.
#[derive(Debug, clap::Args)]
pub struct DownArgs {
    #[command(flatten)]
    selection: ClusterSelection,
    /// Forget the clusters even where their nodes do not answer (a dead
    /// host); what is on those nodes stays there.
    #[arg(short, long)]
    purge: bool,
}

impl DownArgs {
    pub async fn run(self) -> CliResult {
        self.selection.run_with(ClusterAction::Down, self.purge).await
    }
}

impl ClusterSelection {
    /// Asks for `action` on every selected cluster (names or globs), one
    /// request each; goes on past a failure and names the clusters that failed.
    pub async fn run(self, action: ClusterAction) -> CliResult {
        self.run_with(action, false).await
    }

    /// `run`, with `purge` for down.
    async fn run_with(self, action: ClusterAction, purge: bool) -> CliResult {
        let ClusterSelection { clusters: patterns, all, all_users, yes } = self;
        if patterns.is_empty() && !all {
            return Err(CliError::new(format!(
                "Specify the clusters to {action} (names or glob patterns), or use -a/--all."
            )));
        }
        let client = connect().await?;
        let names = matching_clusters(&client, &patterns, all_users).await?;
        if names.is_empty() {
            println!("No clusters to {action}.");
            return Ok(());
        }
        // Stop and down are asked about, only on a terminal; start is not.
        if let Some(verb) = confirmation_verb(action)
            && !yes
            && std::io::stdin().is_terminal()
            && !confirm(
                &format!("{verb} {} cluster(s): {}. Proceed?", names.len(), names.join(", ")),
                DefaultAnswer::Yes,
            )?
        {
            return Err(CliError::new("Aborted."));
        }
        let mut failures = Vec::new();
        for name in &names {
            let result = async {
                let operation = client.cluster_action_with(action, name, purge).await?;
                let id = request_metadata(&operation)?.request_id;
                follow::follow_to_end(&client, &id).await
            }
            .await;
            if let Err(err) = result {
                eprintln!("{err}");
                failures.push(name.clone());
            }
        }
        if failures.is_empty() {
            Ok(())
        } else {
            Err(CliError::new(format!("Failed to {action}: {}", failures.join(", "))))
        }
    }
}

/// The verb of the confirmation `action` asks for: stop and down ask, start does not.
fn confirmation_verb(action: ClusterAction) -> Option<&'static str> {
    match action {
        ClusterAction::Stop => Some("Stopping"),
        ClusterAction::Down => Some("Terminating"),
        ClusterAction::Start => None,
    }
}
