//! Turning cluster names and glob patterns into the clusters a command acts on.

use skypilot_api::{Client, proto::skypilot::v1::ListClustersRequest};

use crate::error::{CliError, CliResult};

/// Cluster names matching `patterns` (all when empty); an exact name that
/// matches nothing is an error.
pub async fn matching_clusters(
    client: &Client,
    patterns: &[String],
    all_users: bool,
) -> CliResult<Vec<String>> {
    let clusters = client
        .list_clusters(ListClustersRequest { cluster_names: patterns.to_vec(), all_users, refresh: false })
        .await?;
    let names: Vec<String> = clusters.into_iter().map(|c| c.name).collect();
    let missing: Vec<&String> =
        patterns.iter().filter(|p| !p.contains(['*', '?']) && !names.contains(p)).collect();
    if !missing.is_empty() {
        let missing: Vec<&str> = missing.iter().map(|s| s.as_str()).collect();
        return Err(CliError::new(format!(
            "Cluster(s) not found: {}. `sky status` lists clusters.",
            missing.join(", ")
        )));
    }
    Ok(names)
}
