//! `skypilot.v1.ClusterService` and `skypilot.v1.JobService`: cluster and job
//! requests become operations on the cluster's queue; listings and log
//! streams are direct reads.

use std::{pin::Pin, sync::Arc};

use futures_util::{Stream, StreamExt};
use prost::Message;
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
    auth::Caller,
    clusters::validate_cluster_name,
    error::Error,
    kinds::cluster::{self as kinds, validate_exec, validate_launch},
    ops::Submission,
};

type ResponseStream<T> = Pin<Box<dyn Stream<Item = Result<T, Status>> + Send>>;

pub struct ClustersApi(pub Arc<Shared>);

impl ClustersApi {
    async fn submit(
        &self,
        kind: &str,
        cluster: &str,
        caller: Caller,
        key: &str,
        payload: Vec<u8>,
    ) -> Result<Response<Operation>, Status> {
        let submission = Submission {
            kind: kind.to_string(),
            payload,
            caller,
            cluster: cluster.to_string(),
            idempotency_key: key.to_string(),
        };
        let record = self.0.engine.submit(submission).await?;
        Ok(Response::new(convert::operation(&record)))
    }

    /// Checks that the cluster exists and that the caller may change it.
    fn ensure_may_manage(&self, caller: &Caller, cluster: &str) -> Result<(), Status> {
        validate_cluster_name(cluster)?;
        let record = self.0.clusters.get(cluster)?;
        caller.ensure_may_manage(&record.user_id, &record.user_name, &format!("cluster {cluster:?}"))?;
        Ok(())
    }

    async fn action(
        &self,
        kind: &str,
        request: Request<ClusterActionRequest>,
    ) -> Result<Response<Operation>, Status> {
        let caller = caller(&request, &self.0.owner)?;
        let request = request.into_inner();
        self.ensure_may_manage(&caller, &request.cluster_name)?;
        let payload = request.encode_to_vec();
        self.submit(kind, &request.cluster_name, caller, &request.idempotency_key, payload).await
    }
}

/// A generated cluster name, as SkyPilot makes them: sky-XXXX-user.
fn generated_cluster_name(user: &str) -> String {
    let random = uuid::Uuid::now_v7().simple().to_string();
    let user: String = user
        .to_ascii_lowercase()
        .chars()
        .map(|c| if c.is_ascii_alphanumeric() { c } else { '-' })
        .take(20)
        .collect();
    format!("sky-{}-{}", &random[random.len() - 4..], user.trim_matches('-'))
}

#[tonic::async_trait]
impl ClusterService for ClustersApi {
    async fn launch(&self, request: Request<LaunchRequest>) -> Result<Response<Operation>, Status> {
        let caller = caller(&request, &self.0.owner)?;
        let mut request = request.into_inner();
        if request.cluster_name.is_empty() {
            request.cluster_name = generated_cluster_name(&caller.name);
        }
        validate_launch(&request)?;
        if self.0.clusters.get(&request.cluster_name).is_ok() {
            self.ensure_may_manage(&caller, &request.cluster_name)?;
        }
        let cluster = request.cluster_name.clone();
        let key = request.idempotency_key.clone();
        self.submit(kinds::LAUNCH, &cluster, caller, &key, request.encode_to_vec()).await
    }

    async fn exec(&self, request: Request<ExecRequest>) -> Result<Response<Operation>, Status> {
        let caller = caller(&request, &self.0.owner)?;
        let request = request.into_inner();
        validate_exec(&request)?;
        self.ensure_may_manage(&caller, &request.cluster_name)?;
        let cluster = request.cluster_name.clone();
        let key = request.idempotency_key.clone();
        self.submit(kinds::EXEC, &cluster, caller, &key, request.encode_to_vec()).await
    }

    async fn stop(&self, request: Request<ClusterActionRequest>) -> Result<Response<Operation>, Status> {
        self.action(kinds::STOP, request).await
    }

    async fn start(&self, request: Request<ClusterActionRequest>) -> Result<Response<Operation>, Status> {
        self.action(kinds::START, request).await
    }

    async fn down(&self, request: Request<ClusterActionRequest>) -> Result<Response<Operation>, Status> {
        self.action(kinds::DOWN, request).await
    }

    async fn autostop(&self, request: Request<AutostopRequest>) -> Result<Response<Operation>, Status> {
        let caller = caller(&request, &self.0.owner)?;
        let request = request.into_inner();
        if !request.cancel && request.idle_minutes < 0 {
            return Err(Error::invalid(
                "idle_minutes",
                "must not be negative; use cancel to turn autostop off",
            )
            .into());
        }
        self.ensure_may_manage(&caller, &request.cluster_name)?;
        let cluster = request.cluster_name.clone();
        let key = request.idempotency_key.clone();
        self.submit(kinds::AUTOSTOP, &cluster, caller, &key, request.encode_to_vec()).await
    }

    async fn list_clusters(
        &self,
        request: Request<ListClustersRequest>,
    ) -> Result<Response<ListClustersResponse>, Status> {
        let caller = caller(&request, &self.0.owner)?;
        let request = request.into_inner();
        let user = (!request.all_users).then_some(caller.id.as_str());
        let clusters = self.0.clusters.list(&request.cluster_names, user)?;
        Ok(Response::new(ListClustersResponse { clusters: clusters.iter().map(convert::cluster).collect() }))
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
        let jobs = self.0.clusters.jobs(&request.cluster_name, request.skip_finished, user)?;
        Ok(Response::new(ListJobsResponse { jobs: jobs.iter().map(convert::job).collect() }))
    }

    async fn cancel_jobs(&self, request: Request<CancelJobsRequest>) -> Result<Response<Operation>, Status> {
        let caller = caller(&request, &self.0.owner)?;
        let request = request.into_inner();
        let api = ClustersApi(self.0.clone());
        api.ensure_may_manage(&caller, &request.cluster_name)?;
        if request.job_ids.iter().any(|id| *id < 1) {
            return Err(Error::invalid("job_ids", "job ids start at 1").into());
        }
        let cluster = request.cluster_name.clone();
        let key = request.idempotency_key.clone();
        api.submit(kinds::CANCEL, &cluster, caller, &key, request.encode_to_vec()).await
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
        let chunks = self.0.clusters.job_logs(
            &request.cluster_name,
            request.job_id,
            request.follow,
            tail_lines,
            offset,
        )?;
        let stream = chunks.map(|chunk| {
            chunk
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
