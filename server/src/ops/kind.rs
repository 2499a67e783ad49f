//! The contract between the engine and the work it runs: an `OperationKind`
//! per request name (`sky.launch`, `sky.check` ...) that checks a request
//! before it is accepted and runs it afterwards; the context a running
//! operation gets, and what it returns.

use std::{future::Future, pin::Pin, sync::Arc};

use skypilot_api::proto::skypilot::v1::Schedule;
use tokio_util::sync::CancellationToken;

use super::log::OpLog;
use crate::{
    auth::Caller,
    error::{Error, Result},
};

/// A boxed future, so that kinds can be stored as trait objects.
pub type BoxFuture<T> = Pin<Box<dyn Future<Output = T> + Send + 'static>>;

/// One kind of request the engine can run. `Engine::submit` calls
/// `validate`, then `authorize`, and stores the request only when both pass.
pub trait OperationKind: Send + Sync + 'static {
    /// The request name users see, e.g. "sky.check".
    fn name(&self) -> &'static str;
    /// The queue it runs on.
    fn schedule(&self) -> Schedule;
    /// Whether an operation of this kind that was RUNNING when the server
    /// stopped may simply be run again (it converges on the wanted state).
    fn resumable(&self) -> bool;
    /// Decodes and checks the encoded request (filling in defaults, such as
    /// a generated cluster name); says what the engine stores and on which
    /// cluster's queue it waits.
    fn validate(&self, caller: &Caller, payload: Vec<u8>) -> Result<Admitted>;
    /// Refuses a caller who may not submit this request.
    fn authorize(&self, caller: &Caller, request: &Admitted) -> Result<()>;
    /// Runs the operation. Dropping the future cancels it.
    fn run(&self, ctx: OpContext) -> BoxFuture<Result<OpOutput>>;
}

/// A request that passed validation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Admitted {
    /// The encoded request message, as the kind will decode it to run it.
    pub payload: Vec<u8>,
    /// The cluster it acts on; empty for none.
    pub cluster: String,
    /// Empty for none.
    pub idempotency_key: String,
}

/// What a running operation knows and can do.
pub struct OpContext {
    pub id: String,
    pub caller: Caller,
    pub cluster: String,
    /// The encoded request message.
    pub payload: Vec<u8>,
    /// Fires when the user cancels the operation.
    pub cancel: CancellationToken,
    pub(super) log: Arc<OpLog>,
}

impl OpContext {
    /// Decodes the request message.
    pub fn request<M: prost::Message + Default>(&self) -> Result<M> {
        M::decode(self.payload.as_slice())
            .map_err(|err| Error::internal(format!("stored request of {} is unreadable: {err}", self.id)))
    }

    /// Appends one line to the operation's log.
    pub fn log_line(&self, line: &str) -> Result<()> {
        let mut text = String::with_capacity(line.len() + 1);
        text.push_str(line);
        text.push('\n');
        self.log.append(text.as_bytes())?;
        Ok(())
    }
}

/// The response of a successful operation: a packed protobuf message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OpOutput {
    pub type_url: String,
    pub value: Vec<u8>,
}

impl OpOutput {
    /// Packs `message`, whose full protobuf name is `full_name`.
    pub fn message<M: prost::Message>(full_name: &str, message: &M) -> OpOutput {
        OpOutput { type_url: format!("type.googleapis.com/{full_name}"), value: message.encode_to_vec() }
    }
}
