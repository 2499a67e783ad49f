//! `skypilot.v1.ManagedJobService`: launching and cancelling managed jobs
//! are operations (their kinds validate and authorize them); the listing
//! and the log streams are direct reads of the controller.

use std::{pin::Pin, sync::Arc};

use futures_util::{Stream, StreamExt};
use skypilot_api::proto::{
    google::longrunning::Operation,
    skypilot::v1::{
        CancelManagedJobsRequest, LaunchManagedJobRequest, ListManagedJobsRequest, ListManagedJobsResponse,
        TailManagedJobLogsRequest, TailManagedJobLogsResponse, managed_job_service_server::ManagedJobService,
    },
};
use tonic::{Request, Response, Status};

use super::{Shared, caller::caller, convert};
use crate::{
    clusters::Page,
    error::Error,
    managed::kinds::{CANCEL, LAUNCH},
};

type ResponseStream<T> = Pin<Box<dyn Stream<Item = Result<T, Status>> + Send>>;

/// Most job ids one listing filters on.
const MAX_LISTED_IDS: usize = 1000;

pub struct ManagedJobsApi(pub Arc<Shared>);

#[tonic::async_trait]
impl ManagedJobService for ManagedJobsApi {
    async fn launch_managed_job(
        &self,
        request: Request<LaunchManagedJobRequest>,
    ) -> Result<Response<Operation>, Status> {
        self.0.submit(LAUNCH, request).await
    }

    async fn list_managed_jobs(
        &self,
        request: Request<ListManagedJobsRequest>,
    ) -> Result<Response<ListManagedJobsResponse>, Status> {
        let caller = caller(&request, &self.0.owner)?;
        let request = request.into_inner();
        if request.job_ids.len() > MAX_LISTED_IDS {
            return Err(Error::invalid("job_ids", format!("more than {MAX_LISTED_IDS} ids")).into());
        }
        let user = (!request.all_users).then_some(caller.id.as_str());
        let page = Page {
            size: usize::try_from(request.page_size)
                .map_err(|_| Error::invalid("page_size", "must not be negative"))?,
            token: request.page_token,
        };
        let controller = &self.0.managed;
        let (jobs, next_page_token) =
            controller.list(user, request.skip_finished, &request.job_ids, &page)?;
        let jobs = jobs.iter().map(|job| convert::managed_job(job, controller.describe(job))).collect();
        Ok(Response::new(ListManagedJobsResponse { jobs, next_page_token }))
    }

    async fn cancel_managed_jobs(
        &self,
        request: Request<CancelManagedJobsRequest>,
    ) -> Result<Response<Operation>, Status> {
        self.0.submit(CANCEL, request).await
    }

    type TailManagedJobLogsStream = ResponseStream<TailManagedJobLogsResponse>;

    async fn tail_managed_job_logs(
        &self,
        request: Request<TailManagedJobLogsRequest>,
    ) -> Result<Response<Self::TailManagedJobLogsStream>, Status> {
        let caller = caller(&request, &self.0.owner)?;
        let request = request.into_inner();
        let tail_lines = super::non_negative(request.tail_lines, "tail_lines")?;
        let offset = super::non_negative(request.offset, "offset")?;
        let controller = self.0.managed.clone();
        let job_id = controller.job_for_logs(&caller, request.job_id, &request.name)?;
        let chunks = controller.logs(job_id, request.controller, request.follow, tail_lines, offset)?;
        let stream = chunks.map(move |chunk| {
            chunk
                .inspect(|chunk| crate::metrics::global().log_streamed("managed_job", chunk.data.len()))
                .map(|chunk| TailManagedJobLogsResponse {
                    offset: chunk.offset as i64,
                    data: chunk.data,
                    job: chunk.job.as_ref().map(|job| convert::managed_job(job, controller.describe(job))),
                })
                .map_err(Status::from)
        });
        Ok(Response::new(Box::pin(stream)))
    }
}
