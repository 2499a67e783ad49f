//! Where clusters run: the `Infra` trait (provision nodes, copy files, tear
//! down) with its one implementation so far, `local` (the API server's own
//! host); which infras exist and whether they work; detached job processes.

pub mod local;
pub mod process;

use std::{collections::HashMap, io, path::PathBuf};

use crate::error::{Error, Result};

/// What the job layer needs from the place clusters run.
pub trait Infra: Send + Sync + 'static {
    fn name(&self) -> &'static str;
    /// Creates the nodes of a cluster (idempotent).
    fn provision(&self, cluster: &str, num_nodes: i32) -> io::Result<()>;
    /// Copies the workdir to `~/sky_workdir` and each file mount to its node
    /// path, on every node.
    fn sync_files(
        &self,
        cluster: &str,
        num_nodes: i32,
        workdir: &str,
        file_mounts: &HashMap<String, String>,
    ) -> io::Result<()>;
    /// The home folder of node `rank` (jobs run with HOME set to it).
    fn node_home(&self, cluster: &str, rank: i32) -> PathBuf;
    /// The folder of a job's scripts, log and exit codes.
    fn job_dir(&self, cluster: &str, job_id: i64) -> PathBuf;
    /// Removes the cluster's nodes and files.
    fn teardown(&self, cluster: &str) -> io::Result<()>;
}

/// A file-mount destination as a path inside the node's home: `~/x` and
/// relative paths are accepted; other absolute paths are not (nodes of the
/// local infra share the host's file system).
pub fn node_relative_path(dest: &str) -> Result<PathBuf, String> {
    let relative = dest.strip_prefix("~/").unwrap_or(dest);
    if relative.starts_with('/') || relative.split('/').any(|part| part == "..") {
        return Err(format!(
            "file mount destination {dest:?}: the local infra places files under each node's home; \
             use a path like ~/data"
        ));
    }
    Ok(PathBuf::from(relative))
}

/// Names of every infra this server knows.
pub const INFRAS: &[&str] = &["local"];

/// Whether one infra is usable, and why (not).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InfraStatus {
    pub name: &'static str,
    pub enabled: bool,
    /// What it offers when enabled, or why it is disabled.
    pub detail: String,
}

/// Checks that every name in `names` is a known infra; empty means all.
pub fn select(names: &[String]) -> Result<Vec<&'static str>> {
    if names.is_empty() {
        return Ok(INFRAS.to_vec());
    }
    names
        .iter()
        .map(|name| {
            let wanted = name.trim().to_ascii_lowercase();
            INFRAS.iter().copied().find(|known| *known == wanted).ok_or_else(|| {
                Error::invalid(
                    "infras",
                    format!("unknown infra {name:?}; this server supports: {}", INFRAS.join(", ")),
                )
            })
        })
        .collect()
}

/// Checks one infra.
pub fn check(name: &'static str) -> InfraStatus {
    match name {
        "local" => local::check(),
        _ => InfraStatus { name, enabled: false, detail: "not supported by this server".into() },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unknown_infra_names_are_refused_with_the_supported_list() {
        let err = select(&["aws".into()]).unwrap_err();
        assert!(err.message.contains("`infras`") && err.message.contains("local"), "{err}");
        assert_eq!(select(&["Local".into()]).unwrap(), ["local"]);
        assert_eq!(select(&[]).unwrap(), INFRAS);
    }
}
