//! The gRPC layer: thin handlers. A mutating call is caller -> submit (the
//! operation's kind validates and authorizes it) -> convert; a read is
//! caller -> read -> convert. No store access and no business logic here.

mod answers;
mod browsers;
mod caller;
mod clusters;
mod convert;
mod dashboard;
mod infra;
mod managed_jobs;
mod metering;
mod metrics_endpoint;
mod operations;
mod requests;
mod server_info;
pub mod status;
mod uploads;
mod users;

use std::sync::Arc;

pub use browsers::{BrowserGuardLayer, cors_layer, is_loopback_host};
pub use caller::ApiVersionLayer;
pub use dashboard::{DASHBOARD_PATH, DashboardLayer, embedded_size as dashboard_size};
pub use metering::MeteringLayer;
pub use metrics_endpoint::{MetricsEndpointLayer, MetricsListener, MetricsSource};
use skypilot_api::proto::{
    google::longrunning::{Operation, operations_server::OperationsServer},
    skypilot::v1::{
        ServerMode, cluster_service_server::ClusterServiceServer, infra_service_server::InfraServiceServer,
        job_service_server::JobServiceServer, managed_job_service_server::ManagedJobServiceServer,
        request_service_server::RequestServiceServer, server_service_server::ServerServiceServer,
        upload_service_server::UploadServiceServer, user_service_server::UserServiceServer,
    },
};

use tonic::{Request, Response, Status};

use crate::{
    auth::{Accounts, Caller},
    clusters::Clusters,
    managed::Controller,
    ops::{Engine, Submission},
};

/// Largest request message the server decodes.
pub const MAX_REQUEST_BYTES: usize = 4 * 1024 * 1024;

/// An optional request field that must not be negative, as u64.
pub(crate) fn non_negative<T: TryInto<u64>>(
    value: Option<T>,
    field: &str,
) -> Result<Option<u64>, crate::error::Error> {
    value
        .map(|v| v.try_into().map_err(|_| crate::error::Error::invalid(field, "must not be negative")))
        .transpose()
}

/// What every handler shares.
pub struct Shared {
    pub engine: Engine,
    pub clusters: Clusters,
    /// The managed jobs controller.
    pub managed: Controller,
    /// Users and tokens of a deployed server; None for a local one.
    pub accounts: Option<Arc<Accounts>>,
    pub mode: ServerMode,
    /// Uploaded workdirs and file mounts.
    pub uploads: crate::uploads::Uploads,
    /// Identity assumed for calls that carry none (a local server's owner).
    pub owner: Caller,
}

impl Shared {
    /// Submits the request as an operation of `kind` (which validates and
    /// authorizes it) on behalf of the caller.
    async fn submit<M: prost::Message>(
        &self,
        kind: &'static str,
        request: Request<M>,
    ) -> Result<Response<Operation>, Status> {
        let caller = caller::caller(&request, &self.owner)?;
        let record = self.engine.submit(Submission::new(kind, caller, request.get_ref())).await?;
        Ok(Response::new(convert::operation(&record)))
    }
}

/// The application services, ready to add to a tonic router.
pub struct Services {
    pub operations: OperationsServer<operations::OperationsApi>,
    pub requests: RequestServiceServer<requests::RequestsApi>,
    pub server: ServerServiceServer<server_info::ServerApi>,
    pub infra: InfraServiceServer<infra::InfraApi>,
    pub clusters: ClusterServiceServer<clusters::ClustersApi>,
    pub jobs: JobServiceServer<clusters::JobsApi>,
    pub managed_jobs: ManagedJobServiceServer<managed_jobs::ManagedJobsApi>,
    pub users: UserServiceServer<users::UsersApi>,
    pub uploads: UploadServiceServer<uploads::UploadsApi>,
}

impl Services {
    pub fn new(shared: Arc<Shared>) -> Services {
        Services {
            operations: OperationsServer::new(operations::OperationsApi(shared.clone()))
                .max_decoding_message_size(MAX_REQUEST_BYTES),
            requests: RequestServiceServer::new(requests::RequestsApi(shared.clone()))
                .max_decoding_message_size(MAX_REQUEST_BYTES),
            server: ServerServiceServer::new(server_info::ServerApi(shared.clone()))
                .max_decoding_message_size(MAX_REQUEST_BYTES),
            infra: InfraServiceServer::new(infra::InfraApi(shared.clone()))
                .max_decoding_message_size(MAX_REQUEST_BYTES),
            clusters: ClusterServiceServer::new(clusters::ClustersApi(shared.clone()))
                .max_decoding_message_size(MAX_REQUEST_BYTES),
            jobs: JobServiceServer::new(clusters::JobsApi(shared.clone()))
                .max_decoding_message_size(MAX_REQUEST_BYTES),
            managed_jobs: ManagedJobServiceServer::new(managed_jobs::ManagedJobsApi(shared.clone()))
                .max_decoding_message_size(MAX_REQUEST_BYTES),
            users: UserServiceServer::new(users::UsersApi(shared.clone()))
                .max_decoding_message_size(MAX_REQUEST_BYTES),
            // A tree lists every file of a workdir.
            uploads: UploadServiceServer::new(uploads::UploadsApi(shared))
                .max_decoding_message_size(16 * MAX_REQUEST_BYTES),
        }
    }
}
