//! Requests answered before the gRPC services see them: the browser guard's
//! refusals, the dashboard's files and `/metrics` each decide from the
//! request alone whether they answer it, and one layer puts each in front of
//! what follows.

use std::{
    future::Future,
    pin::Pin,
    task::{Context, Poll},
};

/// Every answer's type: what tonic's services answer too.
pub type Reply = http::Response<tonic::body::Body>;

/// An answer still to be worked out.
pub type ReplyFuture = Pin<Box<dyn Future<Output = Reply> + Send>>;

/// Something that answers some requests itself.
pub trait Answer: Clone + Send + Sync + 'static {
    /// The answer to `request`, or None to pass it on.
    fn answer<B>(&self, request: &http::Request<B>) -> Option<ReplyFuture>;
}

/// A reply of `status` with `text` as its body.
pub fn reply(status: u16, text: &str) -> Reply {
    let mut response = http::Response::new(tonic::body::Body::new(text.to_string()));
    *response.status_mut() = http::StatusCode::from_u16(status).unwrap_or(http::StatusCode::OK);
    response
}

/// A reply known at once.
pub fn ready(reply: Reply) -> ReplyFuture {
    Box::pin(std::future::ready(reply))
}

/// Puts an [`Answer`] in front of a service.
#[derive(Debug, Clone)]
pub struct AnswerLayer<A>(pub A);

impl<S, A: Answer> tower::Layer<S> for AnswerLayer<A> {
    type Service = Answering<S, A>;

    fn layer(&self, inner: S) -> Answering<S, A> {
        Answering { inner, answer: self.0.clone() }
    }
}

#[derive(Debug, Clone)]
pub struct Answering<S, A> {
    inner: S,
    answer: A,
}

impl<S, A, ReqBody> tower::Service<http::Request<ReqBody>> for Answering<S, A>
where
    S: tower::Service<http::Request<ReqBody>, Response = Reply>,
    S::Future: Send + 'static,
    S::Error: Send + 'static,
    A: Answer,
{
    type Response = Reply;
    type Error = S::Error;
    type Future = Pin<Box<dyn Future<Output = Result<Reply, S::Error>> + Send>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: http::Request<ReqBody>) -> Self::Future {
        match self.answer.answer(&request) {
            Some(answer) => Box::pin(async move { Ok(answer.await) }),
            None => Box::pin(self.inner.call(request)),
        }
    }
}
