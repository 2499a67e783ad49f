//! The cluster and job requests: `sky.launch`, `sky.exec` (LONG), `sky.stop`,
//! `sky.start` (LONG), `sky.down`, `sky.autostop` and `sky.cancel` (SHORT).
//! Each validates its request before it is accepted and runs through `Clusters`.

use skypilot_api::{
    proto::skypilot::v1::{
        AutostopRequest, CancelJobsRequest, CancelJobsResponse, ClusterActionRequest, ClusterActionResponse,
        ExecRequest, ExecResponse, LaunchRequest, Schedule,
    },
    task,
};

use crate::{
    clusters::{Clusters, validate_cluster_name},
    error::{Error, Result},
    ops::{BoxFuture, OpContext, OpOutput, OperationKind},
};

pub const LAUNCH: &str = "sky.launch";
pub const EXEC: &str = "sky.exec";
pub const STOP: &str = "sky.stop";
pub const START: &str = "sky.start";
pub const DOWN: &str = "sky.down";
pub const AUTOSTOP: &str = "sky.autostop";
pub const CANCEL: &str = "sky.cancel";

/// Every cluster and job kind.
pub fn kinds(clusters: &Clusters) -> Vec<std::sync::Arc<dyn OperationKind>> {
    vec![
        std::sync::Arc::new(Launch(clusters.clone())),
        std::sync::Arc::new(Exec(clusters.clone())),
        std::sync::Arc::new(Action { name: STOP, clusters: clusters.clone() }),
        std::sync::Arc::new(Action { name: START, clusters: clusters.clone() }),
        std::sync::Arc::new(Action { name: DOWN, clusters: clusters.clone() }),
        std::sync::Arc::new(Autostop(clusters.clone())),
        std::sync::Arc::new(Cancel(clusters.clone())),
    ]
}

fn validate_task(task: Option<&skypilot_api::proto::skypilot::v1::TaskSpec>) -> Result<()> {
    let task = task.ok_or_else(|| Error::invalid("task", "missing; give a task YAML or a command"))?;
    task::validate(task).map_err(|e| Error::invalid("task", e))?;
    for dest in task.file_mounts.keys() {
        crate::infra::node_relative_path(dest).map_err(|e| Error::invalid("task.file_mounts", e))?;
    }
    for (what, path) in std::iter::once(("workdir", &task.workdir))
        .chain(task.file_mounts.values().map(|p| ("file_mounts", p)))
    {
        if !path.is_empty() && !std::path::Path::new(path).exists() {
            return Err(Error::invalid(
                &format!("task.{what}"),
                format!("{path} does not exist on the API server's host"),
            ));
        }
    }
    Ok(())
}

/// Checks a launch request before it is accepted.
pub fn validate_launch(request: &LaunchRequest) -> Result<()> {
    validate_cluster_name(&request.cluster_name)?;
    validate_task(request.task.as_ref())?;
    if request.idle_minutes_to_autostop.is_some_and(|m| m < 0) {
        return Err(Error::invalid("idle_minutes_to_autostop", "must not be negative"));
    }
    Ok(())
}

/// Checks an exec request before it is accepted.
pub fn validate_exec(request: &ExecRequest) -> Result<()> {
    validate_cluster_name(&request.cluster_name)?;
    validate_task(request.task.as_ref())
}

fn progress(ctx: &OpContext) -> impl Fn(&str) + Sync + '_ {
    move |line: &str| {
        let _ = ctx.log_line(line);
    }
}

struct Launch(Clusters);

impl OperationKind for Launch {
    fn name(&self) -> &'static str {
        LAUNCH
    }
    fn schedule(&self) -> Schedule {
        Schedule::Long
    }
    fn resumable(&self) -> bool {
        true // reconciles the cluster; a job it submitted already is found, not submitted again
    }
    fn run(&self, ctx: OpContext) -> BoxFuture<Result<OpOutput>> {
        let clusters = self.0.clone();
        Box::pin(async move {
            let request: LaunchRequest = ctx.request()?;
            let response = clusters.launch(&request, &ctx.id, &ctx.caller, &progress(&ctx)).await?;
            Ok(OpOutput::message("skypilot.v1.LaunchResponse", &response))
        })
    }
}

struct Exec(Clusters);

impl OperationKind for Exec {
    fn name(&self) -> &'static str {
        EXEC
    }
    fn schedule(&self) -> Schedule {
        Schedule::Long
    }
    fn resumable(&self) -> bool {
        true // a job it submitted already is found, not submitted again
    }
    fn run(&self, ctx: OpContext) -> BoxFuture<Result<OpOutput>> {
        let clusters = self.0.clone();
        Box::pin(async move {
            let request: ExecRequest = ctx.request()?;
            let task = request.task.clone().unwrap_or_default();
            let job_id =
                clusters.exec(&request.cluster_name, &task, &ctx.id, &ctx.caller, &progress(&ctx)).await?;
            let response = ExecResponse { cluster_name: request.cluster_name, job_id };
            Ok(OpOutput::message("skypilot.v1.ExecResponse", &response))
        })
    }
}

/// `sky.stop`, `sky.start` and `sky.down`.
struct Action {
    name: &'static str,
    clusters: Clusters,
}

impl OperationKind for Action {
    fn name(&self) -> &'static str {
        self.name
    }
    fn schedule(&self) -> Schedule {
        if self.name == START { Schedule::Long } else { Schedule::Short }
    }
    fn resumable(&self) -> bool {
        true // each converges on its target state
    }
    fn run(&self, ctx: OpContext) -> BoxFuture<Result<OpOutput>> {
        let clusters = self.clusters.clone();
        let name = self.name;
        Box::pin(async move {
            let request: ClusterActionRequest = ctx.request()?;
            let cluster = &request.cluster_name;
            let record = match name {
                STOP => clusters.stop(cluster).await?,
                START => clusters.start(cluster).await?,
                _ => clusters.down(cluster).await?,
            };
            let done = match name {
                STOP => "Stopped",
                START => "Started",
                _ => "Terminated",
            };
            ctx.log_line(&format!("{done} cluster '{cluster}'."))?;
            let response =
                ClusterActionResponse { cluster_name: request.cluster_name.clone(), status: record.status };
            Ok(OpOutput::message("skypilot.v1.ClusterActionResponse", &response))
        })
    }
}

struct Autostop(Clusters);

impl OperationKind for Autostop {
    fn name(&self) -> &'static str {
        AUTOSTOP
    }
    fn schedule(&self) -> Schedule {
        Schedule::Short
    }
    fn resumable(&self) -> bool {
        true
    }
    fn run(&self, ctx: OpContext) -> BoxFuture<Result<OpOutput>> {
        let clusters = self.0.clone();
        Box::pin(async move {
            let request: AutostopRequest = ctx.request()?;
            let minutes = if request.cancel { -1 } else { request.idle_minutes };
            let record = clusters.set_autostop(&request.cluster_name, minutes, request.down).await?;
            let line = if request.cancel {
                format!("Autostop cancelled for cluster '{}'.", request.cluster_name)
            } else {
                let action = if request.down { "tear down" } else { "stop" };
                format!("Autostop set: {action} '{}' after {minutes} idle minute(s).", request.cluster_name)
            };
            ctx.log_line(&line)?;
            let response =
                ClusterActionResponse { cluster_name: request.cluster_name, status: record.status };
            Ok(OpOutput::message("skypilot.v1.ClusterActionResponse", &response))
        })
    }
}

struct Cancel(Clusters);

impl OperationKind for Cancel {
    fn name(&self) -> &'static str {
        CANCEL
    }
    fn schedule(&self) -> Schedule {
        Schedule::Short
    }
    fn resumable(&self) -> bool {
        true
    }
    fn run(&self, ctx: OpContext) -> BoxFuture<Result<OpOutput>> {
        let clusters = self.0.clone();
        Box::pin(async move {
            let request: CancelJobsRequest = ctx.request()?;
            let cancelled =
                clusters.cancel_jobs(&request.cluster_name, &request.job_ids, request.all).await?;
            let ids: Vec<String> = cancelled.iter().map(i64::to_string).collect();
            if ids.is_empty() {
                ctx.log_line("No jobs to cancel.")?;
            } else {
                ctx.log_line(&format!(
                    "Cancelled job(s) {} on cluster '{}'.",
                    ids.join(", "),
                    request.cluster_name
                ))?;
            }
            let response = CancelJobsResponse { cancelled_job_ids: cancelled };
            Ok(OpOutput::message("skypilot.v1.CancelJobsResponse", &response))
        })
    }
}
