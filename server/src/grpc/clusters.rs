//! `skypilot.v1.ClusterService` and `skypilot.v1.JobService`: cluster and job
//! requests become operations on the cluster's queue (their kinds validate
//! and authorize them); listings and log streams are direct reads.

use std::{pin::Pin, sync::Arc};

use futures_util::{Stream, StreamExt};
use skypilot_api::proto::{
    google::longrunning::Operation,
    skypilot::v1::{
        AutostopRequest, CancelJobsRequest, ClusterActionRequest, ExecRequest, LaunchRequest,
        ListClustersRequest, ListClustersResponse, ListJobsRequest, ListJobsResponse, TailJobLogsRequest,
        TailJobLogsResponse, cluster_service_server::ClusterService, job_service_server::JobService,
    },
};
use tonic::{Request, Response, Status};

use super::{Shared, caller::caller, convert};
use crate::{
    clusters::{Page, validate_cluster_name},
    error::Error,
    kinds::cluster::{AUTOSTOP, CANCEL, DOWN, EXEC, LAUNCH, START, STOP},
};

type ResponseStream<T> = Pin<Box<dyn Stream<Item = Result<T, Status>> + Send>>;

pub struct ClustersApi(pub Arc<Shared>);

#[tonic::async_trait]
impl ClusterService for ClustersApi {
    async fn launch(&self, request: Request<LaunchRequest>) -> Result<Response<Operation>, Status> {
        self.0.submit(LAUNCH, request).await
    }

    async fn exec(&self, request: Request<ExecRequest>) -> Result<Response<Operation>, Status> {
        self.0.submit(EXEC, request).await
    }

    async fn stop(&self, request: Request<ClusterActionRequest>) -> Result<Response<Operation>, Status> {
        self.0.submit(STOP, request).await
    }

    async fn start(&self, request: Request<ClusterActionRequest>) -> Result<Response<Operation>, Status> {
        self.0.submit(START, request).await
    }

    async fn down(&self, request: Request<ClusterActionRequest>) -> Result<Response<Operation>, Status> {
        self.0.submit(DOWN, request).await
    }

    async fn autostop(&self, request: Request<AutostopRequest>) -> Result<Response<Operation>, Status> {
        self.0.submit(AUTOSTOP, request).await
    }

    async fn list_clusters(
        &self,
        request: Request<ListClustersRequest>,
    ) -> Result<Response<ListClustersResponse>, Status> {
        let caller = caller(&request, &self.0.owner)?;
        let request = request.into_inner();
        let user = (!request.all_users).then_some(caller.id.as_str());
        let clusters = self.0.clusters.list(&request.cluster_names, user)?;
        let nodes = futures_util::future::join_all(
            clusters.iter().map(|cluster| self.0.clusters.nodes(cluster, request.refresh)),
        )
        .await;
        let clusters =
            clusters.iter().zip(nodes).map(|(cluster, nodes)| convert::cluster(cluster, nodes)).collect();
        Ok(Response::new(ListClustersResponse { clusters }))
    }
}

pub struct JobsApi(pub Arc<Shared>);

#[tonic::async_trait]
impl JobService for JobsApi {
    async fn list_jobs(
        &self,
        request: Request<ListJobsRequest>,
    ) -> Result<Response<ListJobsResponse>, Status> {
        let caller = caller(&request, &self.0.owner)?;
        let request = request.into_inner();
        validate_cluster_name(&request.cluster_name)?;
        let user = (!request.all_users).then_some(caller.id.as_str());
        let page = Page {
            size: usize::try_from(request.page_size)
                .map_err(|_| Error::invalid("page_size", "must not be negative"))?,
            token: request.page_token,
        };
        let (jobs, next_page_token) =
            self.0.clusters.jobs(&request.cluster_name, request.skip_finished, user, &page)?;
        Ok(Response::new(ListJobsResponse { jobs: jobs.iter().map(convert::job).collect(), next_page_token }))
    }

    async fn cancel_jobs(&self, request: Request<CancelJobsRequest>) -> Result<Response<Operation>, Status> {
        self.0.submit(CANCEL, request).await
    }

    type TailJobLogsStream = ResponseStream<TailJobLogsResponse>;

    async fn tail_job_logs(
        &self,
        request: Request<TailJobLogsRequest>,
    ) -> Result<Response<Self::TailJobLogsStream>, Status> {
        let request = request.into_inner();
        validate_cluster_name(&request.cluster_name)?;
        let tail_lines = super::non_negative(request.tail_lines, "tail_lines")?;
        let offset = super::non_negative(request.offset, "offset")?;
        if request.job_id < 0 {
            return Err(Error::invalid("job_id", "must not be negative (0 means the latest job)").into());
        }
        let chunks = self
            .0
            .clusters
            .job_logs(&request.cluster_name, request.job_id, request.follow, tail_lines, offset)
            .await?;
        let stream = chunks.map(|chunk| {
            chunk
                .inspect(|chunk| crate::metrics::global().log_streamed("job", chunk.data.len()))
                .map(|chunk| TailJobLogsResponse {
                    offset: chunk.offset as i64,
                    data: chunk.data,
                    job: chunk.job.as_ref().map(convert::job),
                })
                .map_err(Status::from)
        });
        Ok(Response::new(Box::pin(stream)))
    }
}
