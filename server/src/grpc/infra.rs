//! `skypilot.v1.InfraService`: `sky check`, `sky ssh up`, `sky ssh down`.

use std::sync::Arc;

use skypilot_api::proto::{
    google::longrunning::Operation,
    skypilot::v1::{CheckRequest, SshDownRequest, SshUpRequest, infra_service_server::InfraService},
};
use tonic::{Request, Response, Status};

use super::Shared;
use crate::kinds::{check, ssh};

pub struct InfraApi(pub Arc<Shared>);

#[tonic::async_trait]
impl InfraService for InfraApi {
    async fn check(&self, request: Request<CheckRequest>) -> Result<Response<Operation>, Status> {
        self.0.submit(check::NAME, request).await
    }

    async fn ssh_up(&self, request: Request<SshUpRequest>) -> Result<Response<Operation>, Status> {
        self.0.submit(ssh::UP, request).await
    }

    async fn ssh_down(&self, request: Request<SshDownRequest>) -> Result<Response<Operation>, Status> {
        self.0.submit(ssh::DOWN, request).await
    }
}
