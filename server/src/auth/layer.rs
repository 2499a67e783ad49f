//! The tower layer that authenticates every call of a deployed server, except
//! `grpc.health.v1` and reflection, and hands the caller to the handlers in
//! the request's extensions.

use std::{
    future::Future,
    net::IpAddr,
    pin::Pin,
    sync::Arc,
    task::{Context, Poll},
};

use tonic::{
    Status,
    transport::server::{TcpConnectInfo, TlsConnectInfo},
};

use super::Accounts;

/// Paths that never need credentials.
const OPEN_PREFIXES: &[&str] = &["/grpc.health.v1.", "/grpc.reflection."];

/// Authenticates calls when `accounts` is set (a deployed server).
#[derive(Clone)]
pub struct AuthLayer {
    accounts: Option<Arc<Accounts>>,
}

impl AuthLayer {
    pub fn new(accounts: Option<Arc<Accounts>>) -> AuthLayer {
        AuthLayer { accounts }
    }
}

impl<S> tower::Layer<S> for AuthLayer {
    type Service = AuthService<S>;

    fn layer(&self, inner: S) -> Self::Service {
        AuthService { inner, accounts: self.accounts.clone() }
    }
}

#[derive(Clone)]
pub struct AuthService<S> {
    inner: S,
    accounts: Option<Arc<Accounts>>,
}

type BoxedResponse<R, E> = Pin<Box<dyn Future<Output = Result<R, E>> + Send>>;

impl<S, ReqBody, ResBody> tower::Service<http::Request<ReqBody>> for AuthService<S>
where
    S: tower::Service<http::Request<ReqBody>, Response = http::Response<ResBody>> + Clone + Send + 'static,
    S::Future: Send + 'static,
    S::Error: Send + 'static,
    ReqBody: Send + 'static,
    ResBody: Default + Send + 'static,
{
    type Response = http::Response<ResBody>;
    type Error = S::Error;
    type Future = BoxedResponse<Self::Response, Self::Error>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, mut request: http::Request<ReqBody>) -> Self::Future {
        let open = OPEN_PREFIXES.iter().any(|prefix| request.uri().path().starts_with(prefix));
        let accounts = match &self.accounts {
            Some(accounts) if !open => accounts.clone(),
            _ => return Box::pin(self.inner.call(request)),
        };
        // The ready service goes with this call; a fresh clone waits for the next.
        let clone = self.inner.clone();
        let mut inner = std::mem::replace(&mut self.inner, clone);
        let header = request.headers().get("authorization").and_then(|v| v.to_str().ok()).map(str::to_string);
        let peer = peer_ip(&request);
        Box::pin(async move {
            match accounts.authenticate(header.as_deref(), peer).await {
                Ok(caller) => {
                    request.extensions_mut().insert(caller);
                    inner.call(request).await
                }
                Err(err) => {
                    crate::metrics::global().auth_failures.inc();
                    Ok(Status::from(err).into_http::<ResBody>())
                }
            }
        })
    }
}

/// The address a request came from.
pub fn peer_ip<B>(request: &http::Request<B>) -> Option<IpAddr> {
    let extensions = request.extensions();
    extensions
        .get::<TcpConnectInfo>()
        .and_then(|info| info.remote_addr())
        .or_else(|| {
            extensions.get::<TlsConnectInfo<TcpConnectInfo>>().and_then(|info| info.get_ref().remote_addr())
        })
        .map(|addr| addr.ip())
}
