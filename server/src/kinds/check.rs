//! `sky.check`: reports which infras are usable, with a log like SkyPilot's.

use skypilot_api::proto::skypilot::v1::{CheckRequest, CheckResponse, InfraCheck, Schedule};

use crate::{
    error::Result,
    infra,
    ops::{BoxFuture, OpContext, OpOutput, OperationKind},
};

pub const NAME: &str = "sky.check";

/// Validates a check request before it is accepted.
pub fn validate(request: &CheckRequest) -> Result<()> {
    infra::select(&request.infras).map(|_| ())
}

pub struct Check;

impl OperationKind for Check {
    fn name(&self) -> &'static str {
        NAME
    }

    fn schedule(&self) -> Schedule {
        Schedule::Short
    }

    fn resumable(&self) -> bool {
        true // a check has no side effects
    }

    fn run(&self, ctx: OpContext) -> BoxFuture<Result<OpOutput>> {
        Box::pin(async move {
            let request: CheckRequest = ctx.request()?;
            let names = infra::select(&request.infras)?;
            ctx.log_line("Checking credentials to enable infra for SkyPilot.")?;
            let statuses =
                tokio::task::spawn_blocking(move || names.into_iter().map(infra::check).collect::<Vec<_>>())
                    .await
                    .map_err(|err| crate::error::Error::internal(format!("infra check: {err}")))?;
            for status in &statuses {
                let verdict = if status.enabled { "enabled [compute]" } else { "disabled" };
                ctx.log_line(&format!("  {}: {verdict}", display_name(status.name)))?;
                ctx.log_line(&format!("    {}", status.detail))?;
            }
            let enabled: Vec<_> = statuses.iter().filter(|s| s.enabled).collect();
            ctx.log_line("")?;
            if enabled.is_empty() {
                ctx.log_line("No infra is enabled.")?;
            } else {
                ctx.log_line("\u{1f389} Enabled infra \u{1f389}")?;
                for status in &enabled {
                    ctx.log_line(&format!("  {}", display_name(status.name)))?;
                }
            }
            let response = CheckResponse {
                infras: statuses
                    .into_iter()
                    .map(|s| InfraCheck { name: s.name.to_string(), enabled: s.enabled, reason: s.detail })
                    .collect(),
            };
            Ok(OpOutput::message("skypilot.v1.CheckResponse", &response))
        })
    }
}

fn display_name(infra: &str) -> String {
    let mut chars = infra.chars();
    chars.next().map(|c| c.to_ascii_uppercase().to_string() + chars.as_str()).unwrap_or_default()
}
