//! Counts every gRPC call for the metrics: its method, the status code it
//! ended with (from the response headers of an error, else from the
//! trailers, "Cancelled" when the client left before them) and the time to
//! its response headers. Paths that name no method of this server are
//! counted as "other", so that a caller cannot grow the metrics at will.

use std::{
    future::Future,
    pin::Pin,
    task::{Context, Poll},
    time::Instant,
};

use http_body::{Body, Frame, SizeHint};

use crate::metrics;

/// Services whose methods are counted by name.
const KNOWN: &[&str] = &["/skypilot.v1.", "/grpc.health.v1.", "/grpc.reflection."];

#[derive(Clone, Default)]
pub struct MeteringLayer;

impl<S> tower::Layer<S> for MeteringLayer {
    type Service = Metering<S>;

    fn layer(&self, inner: S) -> Metering<S> {
        Metering { inner }
    }
}

#[derive(Clone)]
pub struct Metering<S> {
    inner: S,
}

impl<S, ReqBody, ResBody> tower::Service<http::Request<ReqBody>> for Metering<S>
where
    S: tower::Service<http::Request<ReqBody>, Response = http::Response<ResBody>>,
    S::Future: Send + 'static,
    ResBody: Body + Unpin,
{
    type Response = http::Response<MeteredBody<ResBody>>;
    type Error = S::Error;
    type Future = Pin<Box<dyn Future<Output = Result<Self::Response, Self::Error>> + Send>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: http::Request<ReqBody>) -> Self::Future {
        let grpc = request
            .headers()
            .get(http::header::CONTENT_TYPE)
            .and_then(|value| value.to_str().ok())
            .is_some_and(|value| value.starts_with("application/grpc"));
        let method = grpc.then(|| method_label(request.uri().path()));
        let started = Instant::now();
        let response = self.inner.call(request);
        Box::pin(async move {
            let response = response.await?;
            let Some(method) = method else {
                return Ok(response.map(|body| MeteredBody { inner: body, call: None }));
            };
            metrics::global()
                .grpc_latency
                .get_or_create(&metrics::Method { method: method.clone() })
                .observe(started.elapsed().as_secs_f64());
            // An error is answered in the headers alone.
            let code = response.headers().get("grpc-status").and_then(code_name);
            Ok(response.map(|body| MeteredBody { inner: body, call: Some(Call { method, code }) }))
        })
    }
}

fn method_label(path: &str) -> String {
    let known = KNOWN.iter().any(|prefix| path.starts_with(prefix))
        && path.len() <= 128
        && path.bytes().all(|b| b.is_ascii_alphanumeric() || b"/._".contains(&b));
    if known { path.to_string() } else { "other".to_string() }
}

/// The name of a `grpc-status` value ("OK", "InvalidArgument" ...).
fn code_name(value: &http::HeaderValue) -> Option<String> {
    let number: i32 = value.to_str().ok()?.trim().parse().ok()?;
    Some(match tonic::Code::from_i32(number) {
        tonic::Code::Ok => "OK".to_string(),
        code => format!("{code:?}"),
    })
}

/// A call not counted yet.
struct Call {
    method: String,
    code: Option<String>,
}

/// A response body that counts its call once it ends (or is dropped).
pub struct MeteredBody<B> {
    inner: B,
    call: Option<Call>,
}

impl<B> MeteredBody<B> {
    fn finish(&mut self) {
        if let Some(call) = self.call.take() {
            let code = call.code.unwrap_or_else(|| "Cancelled".to_string());
            // A method this server does not have is not counted by name.
            let method = if code == "Unimplemented" { "other" } else { call.method.as_str() };
            metrics::global().grpc_call(method, &code);
        }
    }
}

impl<B> Drop for MeteredBody<B> {
    fn drop(&mut self) {
        self.finish();
    }
}

impl<B: Default> Default for MeteredBody<B> {
    fn default() -> Self {
        MeteredBody { inner: B::default(), call: None }
    }
}

impl<B: Body + Unpin> Body for MeteredBody<B> {
    type Data = B::Data;
    type Error = B::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Self::Data>, Self::Error>>> {
        let this = &mut *self;
        let polled = Pin::new(&mut this.inner).poll_frame(cx);
        match &polled {
            Poll::Ready(Some(Ok(frame))) => {
                if let (Some(trailers), Some(call)) = (frame.trailers_ref(), this.call.as_mut())
                    && let Some(code) = trailers.get("grpc-status").and_then(code_name)
                {
                    call.code = Some(code);
                    this.finish();
                }
            }
            Poll::Ready(None) => this.finish(),
            _ => {}
        }
        polled
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_this_servers_methods_are_counted_by_name() {
        assert_eq!(method_label("/skypilot.v1.ClusterService/Launch"), "/skypilot.v1.ClusterService/Launch");
        assert_eq!(method_label("/grpc.health.v1.Health/Check"), "/grpc.health.v1.Health/Check");
        assert_eq!(method_label("/evil.Service/x"), "other");
        assert_eq!(method_label(&format!("/skypilot.v1.{}", "a".repeat(200))), "other");
        assert_eq!(method_label("/skypilot.v1.A/b\"c"), "other");
        assert_eq!(code_name(&http::HeaderValue::from_static("0")).unwrap(), "OK");
        assert_eq!(code_name(&http::HeaderValue::from_static("3")).unwrap(), "InvalidArgument");
    }
}
