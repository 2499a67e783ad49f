//! Counts every gRPC call for the metrics: its method, the status code it
//! ended with (from the response headers of an error, else from the
//! trailers, "Cancelled" when the client left before them) and the time to
//! its response headers. Paths that name no method this server has are
//! counted as "other", so that no caller can grow the metrics at will.

use std::{collections::HashSet, sync::LazyLock};

use std::{
    future::Future,
    pin::Pin,
    task::{Context, Poll},
    time::Instant,
};

use http_body::{Body, Frame, SizeHint};
use prost::Message as _;

use crate::metrics;

/// Methods of the standard services this server also serves.
const STANDARD: &[&str] = &[
    "/grpc.health.v1.Health/Check",
    "/grpc.health.v1.Health/Watch",
    "/grpc.reflection.v1.ServerReflection/ServerReflectionInfo",
    "/grpc.reflection.v1alpha.ServerReflection/ServerReflectionInfo",
];

/// Every method path this server answers: `/package.Service/Method`.
static KNOWN: LazyLock<HashSet<String>> = LazyLock::new(|| {
    let mut known: HashSet<String> = STANDARD.iter().map(|path| path.to_string()).collect();
    let files =
        prost_types::FileDescriptorSet::decode(skypilot_api::proto::FILE_DESCRIPTOR_SET).unwrap_or_default();
    for file in &files.file {
        for service in &file.service {
            for method in &service.method {
                known.insert(format!("/{}.{}/{}", file.package(), service.name(), method.name()));
            }
        }
    }
    known
});

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
    if KNOWN.contains(path) { path.to_string() } else { "other".to_string() }
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
            metrics::global().grpc_call(&call.method, &code);
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
        assert_eq!(method_label("/skypilot.v1.ClusterService/Made-up"), "other");
        assert_eq!(method_label("/grpc.health.v1.Health/Nope"), "other");
        assert_eq!(
            method_label("/skypilot.v1.ManagedJobService/LaunchManagedJob"),
            "/skypilot.v1.ManagedJobService/LaunchManagedJob"
        );
        assert_eq!(code_name(&http::HeaderValue::from_static("0")).unwrap(), "OK");
        assert_eq!(code_name(&http::HeaderValue::from_static("3")).unwrap(), "InvalidArgument");
    }
}
