//! The caller of an RPC, and the API version check every call passes through.

use std::{
    future::Future,
    pin::Pin,
    task::{Context, Poll},
};

use http::HeaderValue;
use skypilot_api::version::{
    API_VERSION, API_VERSION_HEADER, MIN_API_VERSION, USER_ID_HEADER, USER_NAME_HEADER,
};
use tonic::{Request, Status};

use crate::{
    auth::Caller,
    error::{Error, ErrorReason},
};

/// Longest user name or id accepted in a header.
const MAX_IDENTITY_CHARS: usize = 128;

/// The caller: as authenticated by `AuthLayer` on a deployed server;
/// otherwise (a local server) as the client presents itself, or `default`
/// (the server's owner) when the call carries no identity, as from `grpcurl`.
pub fn caller<T>(request: &Request<T>, default: &Caller) -> Result<Caller, Status> {
    let mut caller = presented(request, default)?;
    caller.on_server_host = request.remote_addr().is_some_and(|peer| peer.ip().is_loopback());
    Ok(caller)
}

/// Who the caller is, before where it calls from.
fn presented<T>(request: &Request<T>, default: &Caller) -> Result<Caller, Status> {
    if let Some(authenticated) = request.extensions().get::<Caller>() {
        return Ok(authenticated.clone());
    }
    let header = |name: &str| -> Result<Option<String>, Status> {
        let Some(value) = request.metadata().get(name) else {
            return Ok(None);
        };
        let value = value
            .to_str()
            .ok()
            .map(str::trim)
            .filter(|v| !v.is_empty() && v.len() <= MAX_IDENTITY_CHARS)
            .filter(|v| v.chars().all(|c| c.is_ascii_graphic()))
            .ok_or_else(|| {
                Error::invalid(
                    name,
                    format!("must be 1 to {MAX_IDENTITY_CHARS} printable characters without spaces"),
                )
            })?;
        Ok(Some(value.to_string()))
    };
    Ok(Caller::local(
        header(USER_NAME_HEADER)?.unwrap_or_else(|| default.name.clone()),
        header(USER_ID_HEADER)?.unwrap_or_else(|| default.id.clone()),
    ))
}

/// Refuses clients older than `MIN_API_VERSION` and stamps every response
/// with this server's `API_VERSION`.
#[derive(Debug, Clone, Copy, Default)]
pub struct ApiVersionLayer;

impl<S> tower::Layer<S> for ApiVersionLayer {
    type Service = ApiVersionService<S>;

    fn layer(&self, inner: S) -> Self::Service {
        ApiVersionService { inner }
    }
}

#[derive(Debug, Clone)]
pub struct ApiVersionService<S> {
    inner: S,
}

type BoxedResponse<R, E> = Pin<Box<dyn Future<Output = Result<R, E>> + Send>>;

impl<S, ReqBody, ResBody> tower::Service<http::Request<ReqBody>> for ApiVersionService<S>
where
    S: tower::Service<http::Request<ReqBody>, Response = http::Response<ResBody>>,
    S::Future: Send + 'static,
    S::Error: Send + 'static,
    ResBody: Default + Send + 'static,
{
    type Response = http::Response<ResBody>;
    type Error = S::Error;
    type Future = BoxedResponse<Self::Response, Self::Error>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: http::Request<ReqBody>) -> Self::Future {
        let client_version = request
            .headers()
            .get(API_VERSION_HEADER)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.trim().parse::<i32>().ok());
        if let Some(version) = client_version.filter(|v| *v < MIN_API_VERSION) {
            let status = Status::from(Error::new(
                ErrorReason::ClientTooOld,
                format!(
                    "this client speaks API version {version}, but the API server needs at \
                     least version {MIN_API_VERSION}: upgrade the client (sky)"
                ),
            ));
            let mut response = status.into_http::<ResBody>();
            stamp(&mut response);
            return Box::pin(std::future::ready(Ok(response)));
        }
        let response = self.inner.call(request);
        Box::pin(async move {
            let mut response = response.await?;
            stamp(&mut response);
            Ok(response)
        })
    }
}

fn stamp<B>(response: &mut http::Response<B>) {
    response.headers_mut().insert(API_VERSION_HEADER, HeaderValue::from(API_VERSION));
}
