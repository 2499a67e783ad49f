//! `skypilot.v1.InfraService`: `sky check`.

use std::sync::Arc;

use prost::Message;
use skypilot_api::proto::{
    google::longrunning::Operation,
    skypilot::v1::{CheckRequest, infra_service_server::InfraService},
};
use tonic::{Request, Response, Status};

use super::{Shared, caller::caller, convert};
use crate::{kinds::check, ops::Submission};

pub struct InfraApi(pub Arc<Shared>);

#[tonic::async_trait]
impl InfraService for InfraApi {
    async fn check(&self, request: Request<CheckRequest>) -> Result<Response<Operation>, Status> {
        let caller = caller(&request, &self.0.owner)?;
        let request = request.into_inner();
        check::validate(&request)?;
        let record = self
            .0
            .engine
            .submit(Submission {
                kind: check::NAME.to_string(),
                idempotency_key: request.idempotency_key.clone(),
                payload: request.encode_to_vec(),
                caller,
                cluster: String::new(),
            })
            .await?;
        Ok(Response::new(convert::operation(&record)))
    }
}
