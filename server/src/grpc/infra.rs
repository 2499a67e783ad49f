//! `skypilot.v1.InfraService`: `sky check`.

use std::sync::Arc;

use skypilot_api::proto::{
    google::longrunning::Operation,
    skypilot::v1::{CheckRequest, infra_service_server::InfraService},
};
use tonic::{Request, Response, Status};

use super::Shared;
use crate::kinds::check;

pub struct InfraApi(pub Arc<Shared>);

#[tonic::async_trait]
impl InfraService for InfraApi {
    async fn check(&self, request: Request<CheckRequest>) -> Result<Response<Operation>, Status> {
        self.0.submit(check::NAME, request).await
    }
}
