//! The cluster and job requests: `sky.launch`, `sky.exec`, `sky.stop`,
//! `sky.start`, `sky.down`, `sky.autostop` and `sky.cancel`. Each validates
//! its request, lets only the cluster's owner or an admin change an existing
//! cluster, and runs through `Clusters`.

use skypilot_api::{
    proto::skypilot::v1::{
        AutostopRequest, CancelJobsRequest, CancelJobsResponse, ClusterActionRequest, ClusterActionResponse,
        ExecRequest, ExecResponse, LaunchRequest, TaskSpec,
    },
    task,
};

use super::Kind;
use crate::{
    auth::Caller,
    clusters::{Clusters, generated_cluster_name, validate_cluster_name},
    error::{Error, Result},
    ops::{BoxFuture, OpContext, OpOutput},
    uploads::{self, Uploads},
};

pub const LAUNCH: &str = "sky.launch";
pub const EXEC: &str = "sky.exec";
pub const STOP: &str = "sky.stop";
pub const START: &str = "sky.start";
pub const DOWN: &str = "sky.down";
pub const AUTOSTOP: &str = "sky.autostop";
pub const CANCEL: &str = "sky.cancel";

/// Refuses unless the cluster exists and `caller` may change it.
fn ensure_may_manage(clusters: &Clusters, caller: &Caller, cluster: &str) -> Result<()> {
    let record = clusters.get(cluster)?;
    caller.ensure_may_manage(&record.user_id, &record.user_name, &format!("cluster {cluster:?}"))
}

/// Checks a task as `sky.launch` takes it (on `cluster`, empty for a new one).
pub(crate) fn validate_task(
    clusters: &Clusters,
    uploads: &Uploads,
    caller: &Caller,
    cluster: &str,
    task: Option<&TaskSpec>,
) -> Result<()> {
    let task = task.ok_or_else(|| Error::invalid("task", "missing; give a task YAML or a command"))?;
    task::validate(task).map_err(|e| Error::invalid("task", e))?;
    // Uploads the caller sent; a reference to anyone else's is not found.
    uploads.check_task(&caller.id, task)?;
    let infra = clusters.infra_for(cluster, Some(task));
    for dest in task.file_mounts.keys() {
        clusters.check_destination(&infra, dest)?;
    }
    for (what, path) in std::iter::once(("workdir", &task.workdir))
        .chain(task.file_mounts.values().map(|p| ("file_mounts", p)))
    {
        if uploads::is_reference(path) {
            continue;
        }
        if !path.is_empty() && !caller.on_server_host {
            // Paths name files of the caller's machine, not the server's:
            // looking them up here would only show what exists on the server.
            return Err(Error::invalid(
                &format!("task.{what}"),
                format!(
                    "{path} is a path on your machine, and this API server runs elsewhere: it cannot \
                     read it. Upload it first (the sky CLI and the Python and TypeScript clients do), \
                     or leave `{what}` out"
                ),
            ));
        }
        if !path.is_empty() && !std::path::Path::new(path).exists() {
            return Err(Error::invalid(
                &format!("task.{what}"),
                format!("{path} does not exist on the API server's host"),
            ));
        }
    }
    Ok(())
}

/// Appends each progress line to the operation's log.
fn progress(ctx: &OpContext) -> impl Fn(&str) + Sync + '_ {
    move |line: &str| {
        let _ = ctx.log_line(line);
    }
}

pub struct Launch(pub Clusters, pub Uploads);

impl Kind for Launch {
    type Request = LaunchRequest;

    fn validate(&self, caller: &Caller, request: &mut LaunchRequest) -> Result<()> {
        if request.cluster_name.is_empty() {
            request.cluster_name = generated_cluster_name(&caller.name);
        }
        validate_cluster_name(&request.cluster_name)?;
        validate_task(&self.0, &self.1, caller, &request.cluster_name, request.task.as_ref())?;
        if request.idle_minutes_to_autostop.is_some_and(|m| m < 0) {
            return Err(Error::invalid("idle_minutes_to_autostop", "must not be negative"));
        }
        Ok(())
    }

    /// Anyone may launch a new cluster, an existing one only its owner or an
    /// admin; either only where the infra takes clusters (a launch runs a job).
    fn authorize(&self, caller: &Caller, request: &LaunchRequest) -> Result<()> {
        if self.0.get(&request.cluster_name).is_ok() {
            ensure_may_manage(&self.0, caller, &request.cluster_name)?;
        }
        self.0.check_infra_enabled(&self.0.infra_for(&request.cluster_name, request.task.as_ref()))
    }

    fn run(&self, mut request: LaunchRequest, ctx: OpContext) -> BoxFuture<Result<OpOutput>> {
        let (clusters, uploads) = (self.0.clone(), self.1.clone());
        Box::pin(async move {
            if let Some(task) = request.task.take() {
                request.task = Some(uploads.resolve_task(&ctx.caller.id, task).await?);
            }
            let response = clusters.launch(&request, &ctx.id, &ctx.caller, &progress(&ctx)).await?;
            Ok(OpOutput::message("skypilot.v1.LaunchResponse", &response))
        })
    }
}

pub struct Exec(pub Clusters, pub Uploads);

impl Kind for Exec {
    type Request = ExecRequest;

    fn validate(&self, caller: &Caller, request: &mut ExecRequest) -> Result<()> {
        validate_cluster_name(&request.cluster_name)?;
        validate_task(&self.0, &self.1, caller, &request.cluster_name, request.task.as_ref())
    }

    fn authorize(&self, caller: &Caller, request: &ExecRequest) -> Result<()> {
        ensure_may_manage(&self.0, caller, &request.cluster_name)?;
        self.0.check_infra_enabled(&self.0.infra_for(&request.cluster_name, None))
    }

    fn run(&self, request: ExecRequest, ctx: OpContext) -> BoxFuture<Result<OpOutput>> {
        let (clusters, uploads) = (self.0.clone(), self.1.clone());
        Box::pin(async move {
            let task = uploads.resolve_task(&ctx.caller.id, request.task.clone().unwrap_or_default()).await?;
            let job_id =
                clusters.exec(&request.cluster_name, &task, &ctx.id, &ctx.caller, &progress(&ctx)).await?;
            let response = ExecResponse { cluster_name: request.cluster_name, job_id };
            Ok(OpOutput::message("skypilot.v1.ExecResponse", &response))
        })
    }
}

/// What `sky.stop`, `sky.start` and `sky.down` do to a cluster.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum ActionKind {
    Stop,
    Start,
    Down,
}

/// `sky.stop`, `sky.start` and `sky.down`.
pub struct Action {
    action: ActionKind,
    clusters: Clusters,
}

impl Action {
    pub fn stop(clusters: Clusters) -> Action {
        Action { action: ActionKind::Stop, clusters }
    }
    pub fn start(clusters: Clusters) -> Action {
        Action { action: ActionKind::Start, clusters }
    }
    pub fn down(clusters: Clusters) -> Action {
        Action { action: ActionKind::Down, clusters }
    }
}

impl Kind for Action {
    type Request = ClusterActionRequest;

    fn validate(&self, _caller: &Caller, request: &mut ClusterActionRequest) -> Result<()> {
        validate_cluster_name(&request.cluster_name)
    }

    /// Stop and down clean up whatever the infra; start runs nothing new
    /// where the infra takes no clusters.
    fn authorize(&self, caller: &Caller, request: &ClusterActionRequest) -> Result<()> {
        ensure_may_manage(&self.clusters, caller, &request.cluster_name)?;
        match self.action {
            ActionKind::Start => {
                self.clusters.check_infra_enabled(&self.clusters.infra_for(&request.cluster_name, None))
            }
            ActionKind::Stop | ActionKind::Down => Ok(()),
        }
    }

    fn run(&self, request: ClusterActionRequest, ctx: OpContext) -> BoxFuture<Result<OpOutput>> {
        let clusters = self.clusters.clone();
        let action = self.action;
        Box::pin(async move {
            let cluster = &request.cluster_name;
            let (record, done) = match action {
                ActionKind::Stop => (clusters.stop(cluster).await?, "Stopped"),
                ActionKind::Start => (clusters.start(cluster).await?, "Started"),
                ActionKind::Down => (clusters.down(cluster, request.purge).await?, "Terminated"),
            };
            ctx.log_line(&format!("{done} cluster '{cluster}'."))?;
            let response =
                ClusterActionResponse { cluster_name: request.cluster_name.clone(), status: record.status };
            Ok(OpOutput::message("skypilot.v1.ClusterActionResponse", &response))
        })
    }
}

pub struct Autostop(pub Clusters);

impl Kind for Autostop {
    type Request = AutostopRequest;

    fn validate(&self, _caller: &Caller, request: &mut AutostopRequest) -> Result<()> {
        if !request.cancel && request.idle_minutes < 0 {
            return Err(Error::invalid(
                "idle_minutes",
                "must not be negative; use cancel to turn autostop off",
            ));
        }
        validate_cluster_name(&request.cluster_name)
    }

    fn authorize(&self, caller: &Caller, request: &AutostopRequest) -> Result<()> {
        ensure_may_manage(&self.0, caller, &request.cluster_name)
    }

    fn run(&self, request: AutostopRequest, ctx: OpContext) -> BoxFuture<Result<OpOutput>> {
        let clusters = self.0.clone();
        Box::pin(async move {
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

pub struct Cancel(pub Clusters);

impl Kind for Cancel {
    type Request = CancelJobsRequest;

    fn validate(&self, _caller: &Caller, request: &mut CancelJobsRequest) -> Result<()> {
        validate_cluster_name(&request.cluster_name)?;
        if request.job_ids.iter().any(|id| *id < 1) {
            return Err(Error::invalid("job_ids", "job ids start at 1"));
        }
        Ok(())
    }

    fn authorize(&self, caller: &Caller, request: &CancelJobsRequest) -> Result<()> {
        ensure_may_manage(&self.0, caller, &request.cluster_name)
    }

    fn run(&self, request: CancelJobsRequest, ctx: OpContext) -> BoxFuture<Result<OpOutput>> {
        let clusters = self.0.clone();
        Box::pin(async move {
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
