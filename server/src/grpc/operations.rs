//! `google.longrunning.Operations`: list, get, delete, cancel and wait.

use std::{sync::Arc, time::Duration};

use skypilot_api::proto::google::longrunning::{
    CancelOperationRequest, DeleteOperationRequest, GetOperationRequest, ListOperationsRequest,
    ListOperationsResponse, Operation, WaitOperationRequest, operations_server::Operations,
};
use tonic::{Request, Response, Status};

use super::{Shared, caller::caller, convert};
use crate::{
    error::{Error, Result},
    ops::ListQuery,
};

/// Page size when the request gives none, and the largest one accepted.
const DEFAULT_PAGE_SIZE: usize = 100;
const MAX_PAGE_SIZE: usize = 1000;
/// Wait when the request gives no timeout, and the longest wait granted.
const DEFAULT_WAIT: Duration = Duration::from_secs(60);
const MAX_WAIT: Duration = Duration::from_secs(3600);

pub struct OperationsApi(pub Arc<Shared>);

#[tonic::async_trait]
impl Operations for OperationsApi {
    async fn list_operations(
        &self,
        request: Request<ListOperationsRequest>,
    ) -> Result<Response<ListOperationsResponse>, Status> {
        let request = request.into_inner();
        if !matches!(request.name.as_str(), "" | "operations") {
            return Err(Error::invalid("name", "must be \"operations\" or empty").into());
        }
        let page_size = match usize::try_from(request.page_size) {
            Err(_) => return Err(Error::invalid("page_size", "must not be negative").into()),
            Ok(0) => DEFAULT_PAGE_SIZE,
            Ok(size) => size.min(MAX_PAGE_SIZE),
        };
        let mut query = parse_filter(&request.filter)?;
        if !request.page_token.is_empty() {
            query.before = Some(self.0.engine.resolve(&request.page_token).map_err(|_| {
                Error::invalid("page_token", "not a token from a previous ListOperations response")
            })?);
        }
        query.limit = page_size + 1;
        let mut records = self.0.engine.list(&query)?;
        let next_page_token = if records.len() > page_size {
            records.truncate(page_size);
            records.last().map(|r| r.id.clone()).unwrap_or_default()
        } else {
            String::new()
        };
        Ok(Response::new(ListOperationsResponse {
            operations: records.iter().map(convert::operation).collect(),
            next_page_token,
        }))
    }

    async fn get_operation(
        &self,
        request: Request<GetOperationRequest>,
    ) -> Result<Response<Operation>, Status> {
        let record = self.0.engine.get(&request.into_inner().name)?;
        Ok(Response::new(convert::operation(&record)))
    }

    async fn delete_operation(
        &self,
        request: Request<DeleteOperationRequest>,
    ) -> Result<Response<()>, Status> {
        let caller = caller(&request, &self.0.owner)?;
        self.0.engine.delete(&caller, &request.into_inner().name).await?;
        Ok(Response::new(()))
    }

    async fn cancel_operation(
        &self,
        request: Request<CancelOperationRequest>,
    ) -> Result<Response<()>, Status> {
        let caller = caller(&request, &self.0.owner)?;
        self.0.engine.cancel(&caller, &request.into_inner().name).await?;
        Ok(Response::new(()))
    }

    async fn wait_operation(
        &self,
        request: Request<WaitOperationRequest>,
    ) -> Result<Response<Operation>, Status> {
        let request = request.into_inner();
        let timeout = match request.timeout {
            None => DEFAULT_WAIT,
            Some(t) if t.seconds < 0 || t.nanos < 0 => {
                return Err(Error::invalid("timeout", "must not be negative").into());
            }
            Some(t) => Duration::new(t.seconds as u64, t.nanos as u32).min(MAX_WAIT),
        };
        let record = self.0.engine.wait(&request.name, timeout).await?;
        Ok(Response::new(convert::operation(&record)))
    }
}

/// Parses a filter of `key = value` terms joined by `AND`. Keys: `done`
/// (true/false), `cluster`, `user` (a user id). Values may be quoted.
fn parse_filter(filter: &str) -> Result<ListQuery> {
    let mut query = ListQuery::default();
    if filter.trim().is_empty() {
        return Ok(query);
    }
    let bad = |problem: String| {
        Error::invalid(
            "filter",
            format!(
                "{problem}; use terms like `done = false AND cluster = \"dev\"` (keys: done, cluster, user)"
            ),
        )
    };
    for term in split_and(filter) {
        let (key, value) =
            term.split_once('=').ok_or_else(|| bad(format!("{term:?} is not `key = value`")))?;
        let value = value.trim().trim_matches('"').to_string();
        match key.trim() {
            "done" => {
                query.done = Some(
                    value.parse().map_err(|_| bad(format!("done must be true or false, not {value:?}")))?,
                )
            }
            "cluster" => query.cluster = Some(value),
            "user" => query.user_id = Some(value),
            other => return Err(bad(format!("unknown key {other:?}"))),
        }
    }
    Ok(query)
}

fn split_and(filter: &str) -> Vec<String> {
    let mut terms = vec![String::new()];
    for word in filter.split_whitespace() {
        if word == "AND" {
            terms.push(String::new());
        } else {
            let term = terms.last_mut().expect("never empty");
            term.push_str(word);
        }
    }
    terms
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn filters_combine_terms_with_and() {
        let query = parse_filter(r#"done = false AND cluster = "dev""#).unwrap();
        assert_eq!(query.done, Some(false));
        assert_eq!(query.cluster.as_deref(), Some("dev"));
    }

    #[test]
    fn bad_filters_name_the_field() {
        for filter in ["state = RUNNING", "done", "done = maybe"] {
            let err = parse_filter(filter).unwrap_err();
            assert!(err.message.contains("`filter`"), "{err}");
        }
    }
}
