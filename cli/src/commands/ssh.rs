//! `sky ssh up` and `sky ssh down`: bring SSH node pools up (each host
//! reached, its key pinned, probed and prepared) or take them down (their
//! clusters torn down, their hosts forgotten).

use std::io::IsTerminal;

use skypilot_api::{
    client::request_metadata,
    proto::skypilot::v1::{ListClustersRequest, SshDownRequest, SshUpRequest},
};

use crate::{
    connect::connect,
    error::{CliError, CliResult},
    follow,
    prompt::{DefaultAnswer, confirm},
};

#[derive(Debug, clap::Subcommand)]
pub enum SshCommand {
    /// Bring SSH node pools up: reach every host, pin its key, probe it and
    /// prepare it (pools from ~/.sky/ssh_node_pools.yaml of the server's user).
    Up(PoolArgs),
    /// Take SSH node pools down: tear down their clusters and forget their hosts.
    Down(PoolArgs),
}

#[derive(Debug, clap::Args)]
pub struct PoolArgs {
    /// The pool (`ssh/<pool>` or `<pool>`); default: every pool.
    #[arg(long)]
    infra: Option<String>,
    /// Do not ask for confirmation.
    #[arg(short, long)]
    yes: bool,
    /// Submit and return at once, printing the request id.
    #[arg(long = "async")]
    run_async: bool,
}

impl SshCommand {
    pub async fn run(self) -> CliResult {
        let client = connect().await?;
        let (operation, run_async) = match self {
            SshCommand::Up(args) => {
                let infra = args.infra.unwrap_or_default();
                (client.ssh_up(SshUpRequest { infra, idempotency_key: String::new() }).await?, args.run_async)
            }
            SshCommand::Down(args) => {
                let infra = args.infra.unwrap_or_default();
                if !args.yes && std::io::stdin().is_terminal() {
                    let clusters = client
                        .list_clusters(ListClustersRequest { all_users: true, ..Default::default() })
                        .await?;
                    let on_pool: Vec<String> = clusters
                        .into_iter()
                        .filter(|cluster| on_pool(&cluster.infra, &infra))
                        .map(|cluster| cluster.name)
                        .collect();
                    let what = match on_pool.is_empty() {
                        true => String::new(),
                        false => {
                            format!(" and tear down {} cluster(s): {}", on_pool.len(), on_pool.join(", "))
                        }
                    };
                    let pools =
                        if infra.is_empty() { "every SSH node pool".to_string() } else { infra.clone() };
                    if !confirm(&format!("Take down {pools}{what}. Proceed?"), DefaultAnswer::Yes)? {
                        return Err(CliError::new("Aborted."));
                    }
                }
                (
                    client.ssh_down(SshDownRequest { infra, idempotency_key: String::new() }).await?,
                    args.run_async,
                )
            }
        };
        if run_async {
            return follow::print_submitted(&operation);
        }
        let id = request_metadata(&operation)?.request_id;
        follow::follow_to_end(&client, &id).await?;
        Ok(())
    }
}

/// Whether a cluster's infra is the pool `wanted` names (empty: any pool).
fn on_pool(infra: &str, wanted: &str) -> bool {
    let Some(pool) = infra.strip_prefix("ssh/") else { return false };
    let wanted = wanted.trim().to_ascii_lowercase();
    let wanted = wanted.strip_prefix("ssh/").unwrap_or(&wanted);
    wanted.is_empty() || wanted == "ssh" || wanted == pool
}
