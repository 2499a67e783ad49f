//! The managed job requests: `sky.jobs.launch` (checks every task of the
//! pipeline as `sky.launch` would, then hands the job to the controller)
//! and `sky.jobs.cancel` (only the owner or an admin; a finished job named
//! by id is refused).

use std::{sync::Arc, time::Duration};

use skypilot_api::{
    proto::skypilot::v1::{
        CancelManagedJobsRequest, CancelManagedJobsResponse, LaunchManagedJobRequest,
        LaunchManagedJobResponse, Schedule,
    },
    task::{self, MAX_PIPELINE_TASKS},
};

use super::{Controller, is_final};
use crate::{
    auth::Caller,
    clusters::Clusters,
    error::{Error, Result},
    kinds::{Kind, cluster::validate_task, register},
    ops::{BoxFuture, OpContext, OpOutput, OperationKind},
    uploads::Uploads,
};

pub const LAUNCH: &str = "sky.jobs.launch";
pub const CANCEL: &str = "sky.jobs.cancel";

/// How long a cancel waits for its jobs to end before it reports them cancelling.
const CANCEL_WAIT: Duration = Duration::from_secs(60);
/// Most jobs one cancel names by id.
const MAX_CANCEL_IDS: usize = 1000;

/// The managed job kinds, for the engine.
pub fn all(controller: &Controller, clusters: &Clusters, uploads: &Uploads) -> Vec<Arc<dyn OperationKind>> {
    vec![
        register(LAUNCH, Schedule::Short, JobsLaunch(controller.clone(), clusters.clone(), uploads.clone())),
        register(CANCEL, Schedule::Short, JobsCancel(controller.clone())),
    ]
}

struct JobsLaunch(Controller, Clusters, Uploads);

impl Kind for JobsLaunch {
    type Request = LaunchManagedJobRequest;

    fn validate(&self, caller: &Caller, request: &mut LaunchManagedJobRequest) -> Result<()> {
        if request.tasks.is_empty() {
            return Err(Error::invalid("tasks", "empty; give a task YAML or a command"));
        }
        if request.tasks.len() > MAX_PIPELINE_TASKS {
            return Err(Error::invalid(
                "tasks",
                format!("{} tasks; a pipeline has at most {MAX_PIPELINE_TASKS}", request.tasks.len()),
            ));
        }
        if !request.name.is_empty() && !task::is_task_name(&request.name) {
            return Err(Error::invalid(
                "name",
                format!("{:?} is not a valid job name: use letters, digits, `.`, `_` and `-`", request.name),
            ));
        }
        for (index, task) in request.tasks.iter().enumerate() {
            validate_task(&self.1, &self.2, caller, "", Some(task)).map_err(|err| {
                match request.tasks.len() {
                    1 => err,
                    _ => {
                        Error::new(err.reason, format!("task {} of the pipeline: {}", index + 1, err.message))
                    }
                }
            })?;
        }
        Ok(())
    }

    /// Anyone may submit a managed job, only to an infra that takes clusters.
    fn authorize(&self, _caller: &Caller, request: &LaunchManagedJobRequest) -> Result<()> {
        for task in &request.tasks {
            self.1.check_infra_enabled(&self.1.infra_for("", Some(task)))?;
        }
        Ok(())
    }

    fn run(&self, request: LaunchManagedJobRequest, ctx: OpContext) -> BoxFuture<Result<OpOutput>> {
        let controller = self.0.clone();
        Box::pin(async move {
            let job = controller.create(&ctx.caller, &request, &ctx.id).await?;
            ctx.log_line(&format!(
                "Managed job {} ('{}') submitted; its cluster will be '{}'.",
                job.job_id, job.name, job.cluster_name
            ))?;
            let response = LaunchManagedJobResponse { job_id: job.job_id, name: job.name };
            Ok(OpOutput::message("skypilot.v1.LaunchManagedJobResponse", &response))
        })
    }
}

struct JobsCancel(Controller);

impl Kind for JobsCancel {
    type Request = CancelManagedJobsRequest;

    fn validate(&self, _caller: &Caller, request: &mut CancelManagedJobsRequest) -> Result<()> {
        if request.job_ids.len() > MAX_CANCEL_IDS {
            return Err(Error::invalid("job_ids", format!("more than {MAX_CANCEL_IDS} ids")));
        }
        if let Some(bad) = request.job_ids.iter().find(|id| **id < 1) {
            return Err(Error::invalid("job_ids", format!("{bad} is not a managed job id (ids start at 1)")));
        }
        if request.name.chars().count() > task::MAX_TASK_NAME_CHARS {
            return Err(Error::invalid(
                "name",
                format!("longer than {} characters", task::MAX_TASK_NAME_CHARS),
            ));
        }
        if request.job_ids.is_empty() && request.name.is_empty() && !request.all {
            return Err(Error::invalid("job_ids", "give job ids, a name (-n NAME) or all (-a)"));
        }
        Ok(())
    }

    /// Only the owner of each job or an admin; unknown jobs and finished
    /// jobs named by id are refused before anything is cancelled.
    fn authorize(&self, caller: &Caller, request: &CancelManagedJobsRequest) -> Result<()> {
        let jobs = self.0.select(caller, &request.job_ids, &request.name, request.all, request.all_users)?;
        for job in &jobs {
            caller.ensure_may_manage(&job.user_id, &job.user_name, &format!("managed job {}", job.job_id))?;
            if !request.job_ids.is_empty() && is_final(job.status()) {
                return Err(Error::new(
                    crate::error::ErrorReason::AlreadyDone,
                    format!(
                        "managed job {} already finished ({})",
                        job.job_id,
                        skypilot_api::names::managed_job_status(job.status())
                    ),
                ));
            }
        }
        Ok(())
    }

    fn run(&self, request: CancelManagedJobsRequest, ctx: OpContext) -> BoxFuture<Result<OpOutput>> {
        let controller = self.0.clone();
        Box::pin(async move {
            let jobs = controller.select(
                &ctx.caller,
                &request.job_ids,
                &request.name,
                request.all,
                request.all_users,
            )?;
            // Jobs that finished since the request was accepted are left alone.
            let unfinished: Vec<_> = jobs.into_iter().filter(|job| !is_final(job.status())).collect();
            let ids = controller.request_cancel(&ctx.caller, &unfinished).await?;
            if ids.is_empty() {
                ctx.log_line("No unfinished managed job to cancel.")?;
            } else {
                ctx.log_line(&format!("Cancelling managed job(s) {}.", join(&ids)))?;
                controller.wait_final(&ids, CANCEL_WAIT).await;
                let still: Vec<i64> = ids
                    .iter()
                    .copied()
                    .filter(|id| controller.get(*id).is_ok_and(|job| !is_final(job.status())))
                    .collect();
                match still.is_empty() {
                    true => ctx.log_line(&format!("Managed job(s) {} cancelled.", join(&ids)))?,
                    false => ctx.log_line(&format!(
                        "Managed job(s) {} are still cancelling; `sky jobs queue` shows when they end.",
                        join(&still)
                    ))?,
                }
            }
            let response = CancelManagedJobsResponse { cancelled_job_ids: ids };
            Ok(OpOutput::message("skypilot.v1.CancelManagedJobsResponse", &response))
        })
    }
}

fn join(ids: &[i64]) -> String {
    ids.iter().map(i64::to_string).collect::<Vec<_>>().join(", ")
}
