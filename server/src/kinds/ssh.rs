//! `sky.ssh_up` and `sky.ssh_down`: an admin brings SSH node pools up (each
//! host reached, its key pinned, probed and prepared) and takes them down
//! (their clusters torn down, their hosts forgotten).

use skypilot_api::proto::skypilot::v1::{SshDownRequest, SshDownResponse, SshUpRequest, SshUpResponse};

use super::{Kind, check::infra_check};
use crate::{
    auth::Caller,
    clusters::{Clusters, infra_name},
    error::{Error, ErrorReason, Result},
    infra::Infra as _,
    ops::{BoxFuture, OpContext, OpOutput},
};

pub const UP: &str = "sky.ssh_up";
pub const DOWN: &str = "sky.ssh_down";

pub struct SshUp(pub Clusters);

impl Kind for SshUp {
    type Request = SshUpRequest;

    fn validate(&self, _caller: &Caller, request: &mut SshUpRequest) -> Result<()> {
        self.0.ssh_pools(&request.infra).map(|_| ())
    }

    fn authorize(&self, caller: &Caller, _request: &SshUpRequest) -> Result<()> {
        caller.ensure_admin("bring SSH node pools up")
    }

    fn run(&self, request: SshUpRequest, ctx: OpContext) -> BoxFuture<Result<OpOutput>> {
        let clusters = self.0.clone();
        Box::pin(async move {
            let mut pools = Vec::new();
            for pool in clusters.ssh_pools(&request.infra)? {
                ctx.log_line(&format!("Bringing up SSH node pool {}...", pool_name(pool.name())))?;
                let status = pool.up().await;
                for host in &status.hosts {
                    let mark = if host.ready { "\u{2713}" } else { "\u{2717}" };
                    ctx.log_line(&format!("  {mark} {}", host.detail))?;
                }
                let verdict = match status.enabled {
                    true => format!(
                        "\u{2713} SSH node pool {} is up: {}.",
                        pool_name(pool.name()),
                        summary(&status.detail)
                    ),
                    false => format!(
                        "\u{2717} SSH node pool {} is not up: {}.",
                        pool_name(pool.name()),
                        summary(&status.detail)
                    ),
                };
                ctx.log_line(&verdict)?;
                pools.push(status);
            }
            if pools.iter().all(|status| !status.enabled) {
                let why: Vec<String> =
                    pools.iter().map(|s| format!("{}: {}", s.name, s.detail.replace('\n', "; "))).collect();
                return Err(Error::new(
                    ErrorReason::Unavailable,
                    format!(
                        "no host is ready, so no pool is up ({}); fix what each host says and run sky ssh up again",
                        why.join(" | ")
                    ),
                ));
            }
            let response = SshUpResponse { pools: pools.into_iter().map(infra_check).collect() };
            Ok(OpOutput::message("skypilot.v1.SshUpResponse", &response))
        })
    }
}

pub struct SshDown(pub Clusters);

impl Kind for SshDown {
    type Request = SshDownRequest;

    fn validate(&self, _caller: &Caller, request: &mut SshDownRequest) -> Result<()> {
        self.0.ssh_pools(&request.infra).map(|_| ())
    }

    fn authorize(&self, caller: &Caller, _request: &SshDownRequest) -> Result<()> {
        caller.ensure_admin("take SSH node pools down")
    }

    /// The pool takes no new clusters first; then its clusters are torn
    /// down and its hosts forgotten.
    fn run(&self, request: SshDownRequest, ctx: OpContext) -> BoxFuture<Result<OpOutput>> {
        let clusters = self.0.clone();
        Box::pin(async move {
            let mut response = SshDownResponse::default();
            for pool in clusters.ssh_pools(&request.infra)? {
                pool.take_down()?;
                let on_pool: Vec<String> = clusters
                    .list(&[], None)?
                    .into_iter()
                    .filter(|cluster| infra_name(cluster) == pool.name())
                    .map(|cluster| cluster.name)
                    .collect();
                for cluster in on_pool {
                    ctx.log_line(&format!("Tearing down cluster '{cluster}' on {}...", pool.name()))?;
                    clusters.down(&cluster, false).await?;
                    ctx.log_line(&format!("Terminated cluster '{cluster}'."))?;
                    response.clusters.push(cluster);
                }
                for problem in pool.forget().await {
                    ctx.log_line(&format!("  warning: {problem}"))?;
                }
                ctx.log_line(&format!("\u{2713} SSH node pool {} is down.", pool_name(pool.name())))?;
                response.pools.push(pool.name().to_string());
            }
            Ok(OpOutput::message("skypilot.v1.SshDownResponse", &response))
        })
    }
}

/// `lab` for `ssh/lab`.
fn pool_name(infra: &str) -> &str {
    infra.strip_prefix("ssh/").unwrap_or(infra)
}

/// The first line of a pool's report ("2 of 3 hosts ready").
fn summary(detail: &str) -> &str {
    detail.lines().next().unwrap_or_default()
}
