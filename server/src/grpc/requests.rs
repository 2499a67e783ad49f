//! `skypilot.v1.RequestService`: list requests, watch one, stream its log.

use std::{pin::Pin, sync::Arc};

use futures_util::{Stream, StreamExt};
use skypilot_api::proto::skypilot::v1::{
    ListRequestsRequest, ListRequestsResponse, StreamLogsRequest, StreamLogsResponse, WatchOperationRequest,
    WatchOperationResponse, request_service_server::RequestService,
};
use tonic::{Request, Response, Status};

use super::{Shared, caller::caller, convert};
use crate::{error::Error, ops::ListQuery};

type ResponseStream<T> = Pin<Box<dyn Stream<Item = Result<T, Status>> + Send>>;

pub struct RequestsApi(pub Arc<Shared>);

#[tonic::async_trait]
impl RequestService for RequestsApi {
    async fn list_requests(
        &self,
        request: Request<ListRequestsRequest>,
    ) -> Result<Response<ListRequestsResponse>, Status> {
        let caller = caller(&request, &self.0.owner)?;
        let request = request.into_inner();
        let limit =
            usize::try_from(request.limit).map_err(|_| Error::invalid("limit", "must not be negative"))?;
        let records = if !request.request_ids.is_empty() {
            // Named requests are shown whatever their owner or state.
            let records: Result<Vec<_>, _> =
                request.request_ids.iter().map(|id| self.0.engine.get(id)).collect();
            records?
        } else {
            self.0.engine.list(&ListQuery {
                user_id: (!request.all_users).then_some(caller.id),
                done: (!request.include_finished).then_some(false),
                cluster: Some(request.cluster_name).filter(|c| !c.is_empty()),
                before: None,
                limit,
            })?
        };
        Ok(Response::new(ListRequestsResponse {
            operations: records.iter().map(convert::operation).collect(),
        }))
    }

    type WatchOperationStream = ResponseStream<WatchOperationResponse>;

    async fn watch_operation(
        &self,
        request: Request<WatchOperationRequest>,
    ) -> Result<Response<Self::WatchOperationStream>, Status> {
        let snapshots = self.0.engine.watch(&request.into_inner().name)?;
        let stream = snapshots
            .map(|record| Ok(WatchOperationResponse { operation: Some(convert::operation(&record?)) }));
        Ok(Response::new(Box::pin(stream)))
    }

    type StreamLogsStream = ResponseStream<StreamLogsResponse>;

    async fn stream_logs(
        &self,
        request: Request<StreamLogsRequest>,
    ) -> Result<Response<Self::StreamLogsStream>, Status> {
        let request = request.into_inner();
        let tail_lines = super::non_negative(request.tail_lines, "tail_lines")?;
        let offset = super::non_negative(request.offset, "offset")?;
        let chunks = self.0.engine.logs(&request.name, request.follow, tail_lines, offset)?;
        let stream = chunks.map(|chunk| {
            chunk
                .inspect(|chunk| crate::metrics::global().log_streamed("request", chunk.data.len()))
                .map(|chunk| StreamLogsResponse { offset: chunk.offset as i64, data: chunk.data })
                .map_err(Status::from)
        });
        Ok(Response::new(Box::pin(stream)))
    }
}
