//! The managed job calls of the typed client (`sky jobs ...`).

use super::{Client, ClientError, MAX_MESSAGE_BYTES, Transport, with_key};
use crate::proto::{
    google::longrunning::Operation,
    skypilot::v1::{
        CancelManagedJobsRequest, LaunchManagedJobRequest, ListManagedJobsRequest, ListManagedJobsResponse,
        TailManagedJobLogsRequest, TailManagedJobLogsResponse,
        managed_job_service_client::ManagedJobServiceClient,
    },
};

impl Client {
    fn managed_jobs(&self) -> ManagedJobServiceClient<Transport> {
        ManagedJobServiceClient::with_interceptor(self.channel.clone(), self.headers.clone())
            .max_decoding_message_size(MAX_MESSAGE_BYTES)
    }

    /// Submits `sky jobs launch`.
    pub async fn launch_managed_job(
        &self,
        mut request: LaunchManagedJobRequest,
    ) -> Result<Operation, ClientError> {
        with_key(&mut request.idempotency_key);
        self.retrying(|| async { self.accept(self.managed_jobs().launch_managed_job(request.clone()).await) })
            .await
    }

    /// One page of `sky jobs queue`, with the token of the next.
    pub async fn list_managed_jobs(
        &self,
        request: ListManagedJobsRequest,
    ) -> Result<ListManagedJobsResponse, ClientError> {
        self.retrying(|| async { self.accept(self.managed_jobs().list_managed_jobs(request.clone()).await) })
            .await
    }

    /// Submits `sky jobs cancel`.
    pub async fn cancel_managed_jobs(
        &self,
        mut request: CancelManagedJobsRequest,
    ) -> Result<Operation, ClientError> {
        with_key(&mut request.idempotency_key);
        self.retrying(|| async {
            self.accept(self.managed_jobs().cancel_managed_jobs(request.clone()).await)
        })
        .await
    }

    /// Streams a managed job's output or controller log (`sky jobs logs`).
    pub async fn tail_managed_job_logs(
        &self,
        request: TailManagedJobLogsRequest,
    ) -> Result<tonic::Streaming<TailManagedJobLogsResponse>, ClientError> {
        self.retrying(|| async {
            self.accept(self.managed_jobs().tail_managed_job_logs(request.clone()).await)
        })
        .await
    }
}
