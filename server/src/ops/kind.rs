//! The contract between the engine and the work it runs: an `OperationKind`
//! per request name (`sky.check`, later `sky.launch` ...), the context a
//! running operation gets, and what it returns.

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

/// One kind of request the engine can run.
pub trait OperationKind: Send + Sync + 'static {
    /// The request name users see, e.g. "sky.check".
    fn name(&self) -> &'static str;
    /// The queue it runs on.
    fn schedule(&self) -> Schedule;
    /// Whether an operation of this kind that was RUNNING when the server
    /// stopped may simply be run again (it converges on the wanted state).
    fn resumable(&self) -> bool;
    /// Runs the operation. Dropping the future cancels it.
    fn run(&self, ctx: OpContext) -> BoxFuture<Result<OpOutput>>;
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
