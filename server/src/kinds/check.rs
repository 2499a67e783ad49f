//! `sky.check`: reports which infras are usable, with a log like SkyPilot's.

use skypilot_api::proto::skypilot::v1::{CheckRequest, CheckResponse, HostState, InfraCheck};

use super::Kind;
use crate::{
    auth::Caller,
    clusters::Clusters,
    error::Result,
    infra::{self, Capacity, InfraStatus},
    ops::{BoxFuture, OpContext, OpOutput},
};

pub const NAME: &str = "sky.check";

pub struct Check(pub Clusters);

impl Kind for Check {
    type Request = CheckRequest;

    fn validate(&self, _caller: &Caller, request: &mut CheckRequest) -> Result<()> {
        infra::select(&request.infras, &self.0.infra_names()).map(|_| ())
    }

    /// Anyone may check.
    fn authorize(&self, _caller: &Caller, _request: &CheckRequest) -> Result<()> {
        Ok(())
    }

    fn run(&self, request: CheckRequest, ctx: OpContext) -> BoxFuture<Result<OpOutput>> {
        let clusters = self.0.clone();
        Box::pin(async move {
            let names = infra::select(&request.infras, &clusters.infra_names())?;
            ctx.log_line("Checking credentials to enable infra for SkyPilot.")?;
            let statuses: Vec<InfraStatus> =
                futures_util::future::join_all(names.iter().map(|name| clusters.check_infra(name))).await;
            for status in &statuses {
                let verdict = if status.enabled { "enabled [compute]" } else { "disabled" };
                ctx.log_line(&format!("  {}: {verdict}", display_name(&status.name)))?;
                for line in status.detail.lines() {
                    ctx.log_line(&format!("    {line}"))?;
                }
            }
            let enabled: Vec<_> = statuses.iter().filter(|s| s.enabled).collect();
            ctx.log_line("")?;
            if enabled.is_empty() {
                ctx.log_line("No infra is enabled.")?;
            } else {
                ctx.log_line("\u{1f389} Enabled infra \u{1f389}")?;
                for status in &enabled {
                    ctx.log_line(&format!("  {}", display_name(&status.name)))?;
                }
            }
            let response = CheckResponse { infras: statuses.into_iter().map(infra_check).collect() };
            Ok(OpOutput::message("skypilot.v1.CheckResponse", &response))
        })
    }
}

/// An infra's status as the protocol carries it.
pub(super) fn infra_check(status: InfraStatus) -> InfraCheck {
    let capacity = status.capacity.unwrap_or(Capacity { cpus: 0, memory_gib: 0.0, gpus: Vec::new() });
    InfraCheck {
        cpus: capacity.cpus as i32,
        memory_gib: capacity.memory_gib,
        gpus: capacity.gpus,
        name: status.name,
        enabled: status.enabled,
        reason: status.detail,
        hosts: status
            .hosts
            .into_iter()
            .map(|host| {
                let capacity =
                    host.capacity.unwrap_or(Capacity { cpus: 0, memory_gib: 0.0, gpus: Vec::new() });
                HostState {
                    host: host.host,
                    address: host.address,
                    ready: host.ready,
                    detail: host.detail,
                    cpus: capacity.cpus as i32,
                    memory_gib: capacity.memory_gib,
                    gpus: capacity.gpus,
                    host_key: host.host_key.unwrap_or_default(),
                }
            })
            .collect(),
    }
}

fn display_name(infra: &str) -> String {
    if infra.contains('/') {
        return infra.to_string();
    }
    let mut chars = infra.chars();
    chars.next().map(|c| c.to_ascii_uppercase().to_string() + chars.as_str()).unwrap_or_default()
}
