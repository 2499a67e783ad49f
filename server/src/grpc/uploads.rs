//! `skypilot.v1.UploadService`: the contents and trees of clients'
//! workdirs and file mounts, kept for the caller.

use std::sync::Arc;

use skypilot_api::proto::skypilot::v1::{
    CreateTreeRequest, CreateTreeResponse, FindMissingBlobsRequest, FindMissingBlobsResponse,
    UploadBlobsRequest, UploadBlobsResponse, upload_blobs_request::Part,
    upload_service_server::UploadService,
};
use tonic::{Request, Response, Status, Streaming};

use super::{Shared, caller::caller};
use crate::error::Error;

pub struct UploadsApi(pub Arc<Shared>);

#[tonic::async_trait]
impl UploadService for UploadsApi {
    async fn find_missing_blobs(
        &self,
        request: Request<FindMissingBlobsRequest>,
    ) -> Result<Response<FindMissingBlobsResponse>, Status> {
        let caller = caller(&request, &self.0.owner)?;
        let missing = self.0.uploads.find_missing(&caller.id, &request.get_ref().digests)?;
        Ok(Response::new(FindMissingBlobsResponse { missing }))
    }

    /// A stream that breaks mid-content keeps nothing of that content.
    async fn upload_blobs(
        &self,
        request: Request<Streaming<UploadBlobsRequest>>,
    ) -> Result<Response<UploadBlobsResponse>, Status> {
        let caller = caller(&request, &self.0.owner)?;
        let mut receiver = self.0.uploads.receiver(&caller.id)?;
        let mut stream = request.into_inner();
        while let Some(message) = stream.message().await? {
            match message.part {
                Some(Part::Header(header)) => receiver.header(&header.digest, header.size).await?,
                Some(Part::Data(data)) => receiver.data(&data).await?,
                None => return Err(Error::invalid("part", "each message is a header or data").into()),
            }
        }
        Ok(Response::new(receiver.finish()?))
    }

    async fn create_tree(
        &self,
        request: Request<CreateTreeRequest>,
    ) -> Result<Response<CreateTreeResponse>, Status> {
        let caller = caller(&request, &self.0.owner)?;
        Ok(Response::new(self.0.uploads.create_tree(&caller.id, request.into_inner())?))
    }
}
