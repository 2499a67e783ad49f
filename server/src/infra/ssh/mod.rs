//! SSH node pools: a team's own machines, reached over SSH, as an infra
//! (`ssh/<pool>`). `pools` reads SkyPilot's `ssh_node_pools.yaml`;
//! `connection` drives the system OpenSSH client; `pool` places clusters'
//! nodes on a pool's hosts (`placement`) and runs jobs there; `transfer`
//! sends files; `remote` holds the shell scripts run on the hosts.
//!
//! On a host, a cluster's node keeps the local infra's layout under
//! `~/.sky-api/clusters/<cluster>/` of the pool's user: `node-<rank>` is the
//! node's home (`sky_workdir` and file mounts), `jobs/<id>` each job's
//! scripts, pids, exit codes and log. Runs are detached process groups that
//! outlive the SSH connection and the API server.

pub mod connection;
mod placement;
pub mod pool;
pub mod pools;
pub(crate) mod remote;
pub(crate) mod runtime;
pub(crate) mod transfer;
mod worker_logs;

use std::{path::Path, sync::Arc};

/// The pools of `file` (when given, it must exist; else the server user's
/// `~/.sky/ssh_node_pools.yaml`, when it exists), each an infra, with SSH
/// state (pinned host keys, control sockets, placements, which pools are
/// up) in `state_dir`.
pub fn load(
    file: Option<&Path>,
    home: &Path,
    user: &str,
    state_dir: &Path,
) -> Result<Vec<Arc<pool::SshPool>>, String> {
    let default = home.join(".sky/ssh_node_pools.yaml");
    let pools = match file {
        Some(file) => pools::load(file, home, user)?,
        None if default.exists() => pools::load(&default, home, user)?,
        None => Vec::new(),
    };
    if pools.is_empty() {
        return Ok(Vec::new());
    }
    for host in pools.iter().flat_map(|pool| &pool.hosts) {
        connection::check_identity_file(host)?;
    }
    let ssh = Arc::new(
        connection::Ssh::new(state_dir.to_path_buf())
            .map_err(|err| format!("cannot keep SSH state in {}: {err}", state_dir.display()))?,
    );
    pools
        .into_iter()
        .map(|pool| {
            pool::SshPool::new(pool, ssh.clone(), state_dir)
                .map(Arc::new)
                .map_err(|err| format!("cannot keep SSH state in {}: {err}", state_dir.display()))
        })
        .collect()
}
