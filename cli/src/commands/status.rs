//! `sky status`: the table of clusters.

use skypilot_api::{
    names,
    proto::skypilot::v1::{Cluster, ClusterStatus, ListClustersRequest},
};

use crate::{
    connect::connect,
    error::CliResult,
    output::{ago, table},
};

/// Options of `sky status`.
#[derive(Debug, clap::Args)]
pub struct StatusArgs {
    /// Cluster names or glob patterns.
    clusters: Vec<String>,
    /// Show every user's clusters.
    #[arg(short = 'u', long = "all-users")]
    all_users: bool,
    /// Show more details.
    #[arg(short, long)]
    verbose: bool,
    /// Reach every node now rather than report what the server last saw
    /// (the local infra is always current).
    #[arg(short, long)]
    refresh: bool,
}

impl StatusArgs {
    pub async fn run(self) -> CliResult {
        let StatusArgs { clusters, all_users, verbose, refresh } = self;
        let client = connect().await?;
        let clusters =
            client.list_clusters(ListClustersRequest { cluster_names: clusters, all_users, refresh }).await?;
        if clusters.is_empty() {
            println!("No existing clusters.");
            return Ok(());
        }
        let mut headers = vec!["NAME"];
        if all_users || verbose {
            headers.push("USER");
        }
        headers.extend(["INFRA", "RESOURCES", "STATUS", "AUTOSTOP", "LAUNCHED"]);
        // Clusters on hosts of their own (SSH node pools) show them.
        let with_hosts = clusters.iter().any(|c| c.nodes.iter().any(|node| node.host != "local"));
        if with_hosts {
            headers.push("HOSTS");
        }
        let rows: Vec<Vec<String>> = clusters
            .iter()
            .map(|c| {
                let mut row = vec![c.name.clone()];
                if all_users || verbose {
                    row.push(c.user_name.clone());
                }
                row.extend([
                    c.infra.clone(),
                    resources(c),
                    names::cluster_status(c.status()).into(),
                    autostop_column(c),
                    ago(c.launched_at.as_ref()),
                ]);
                if with_hosts {
                    row.push(hosts_column(c));
                }
                row
            })
            .collect();
        println!("Clusters");
        print!("{}", table(&headers, &rows));
        for cluster in &clusters {
            if cluster.status() == ClusterStatus::Init {
                // A launch that waits for its nodes says why (a Slurm queue).
                for node in cluster.nodes.iter().filter(|node| !node.reachable) {
                    println!("Cluster '{}' is launching: {} ({})", cluster.name, node.detail, node.host);
                }
                continue;
            }
            for node in cluster.nodes.iter().filter(|node| !node.reachable) {
                println!(
                    "Cluster '{}': node {} on {} is unreachable: {}",
                    cluster.name, node.rank, node.host, node.detail
                );
            }
        }
        Ok(())
    }
}

fn resources(cluster: &Cluster) -> String {
    let mut parts = vec![format!("cpus={}", cluster.cpus)];
    parts.push(if cluster.memory_gib > 0.0 { format!("mem={}", cluster.memory_gib) } else { "mem=-".into() });
    if !cluster.accelerators.is_empty() {
        parts.insert(0, format!("gpus={}", cluster.accelerators));
    }
    format!("{}x({})", cluster.num_nodes, parts.join(", "))
}

/// Each host of the cluster's nodes once, the unreachable ones marked.
fn hosts_column(cluster: &Cluster) -> String {
    let mut hosts: Vec<String> = Vec::new();
    for node in &cluster.nodes {
        // A launching cluster's nodes are not reachable yet; a line below says why.
        let host = match node.reachable || cluster.status() == ClusterStatus::Init {
            true => node.host.clone(),
            false => format!("{} (unreachable)", node.host),
        };
        if !hosts.contains(&host) {
            hosts.push(host);
        }
    }
    if hosts.is_empty() { "-".into() } else { hosts.join(", ") }
}

fn autostop_column(cluster: &Cluster) -> String {
    if cluster.autostop_idle_minutes < 0 {
        "-".into()
    } else if cluster.autostop_down {
        format!("{}m (down)", cluster.autostop_idle_minutes)
    } else {
        format!("{}m", cluster.autostop_idle_minutes)
    }
}
