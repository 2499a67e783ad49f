//! `skypilot.v1.ServerService`: version, mode and the calling user.

use std::sync::Arc;

use skypilot_api::{
    proto::skypilot::v1::{
        GetServerInfoRequest, GetServerInfoResponse, User, server_service_server::ServerService,
    },
    version::{API_VERSION, COMMIT, MIN_API_VERSION, VERSION},
};
use tonic::{Request, Response, Status};

use super::{Shared, caller::caller};

pub struct ServerApi(pub Arc<Shared>);

#[tonic::async_trait]
impl ServerService for ServerApi {
    async fn get_server_info(
        &self,
        request: Request<GetServerInfoRequest>,
    ) -> Result<Response<GetServerInfoResponse>, Status> {
        let user = caller(&request, &self.0.owner)?;
        Ok(Response::new(GetServerInfoResponse {
            version: VERSION.to_string(),
            commit: COMMIT.to_string(),
            api_version: API_VERSION,
            min_api_version: MIN_API_VERSION,
            mode: self.0.mode as i32,
            user: Some(User { name: user.name, id: user.id }),
            upload_max_bytes: self.0.uploads.limits().max_tree_bytes as i64,
        }))
    }
}
