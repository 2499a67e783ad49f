//! The one mapping from server errors to gRPC statuses, with a
//! `google.rpc.ErrorInfo` (stable reason, domain `skypilot.v1`) so that
//! clients in any language can branch on the reason rather than the text.

use std::{collections::HashMap, time::Duration};

use prost::Message;
use skypilot_api::proto::google::rpc;
use tonic::{Code, Status};
use tonic_types::{ErrorDetails, StatusExt};

use crate::{
    error::{Error, ErrorKind},
    store::StoredError,
};

/// Domain of every `ErrorInfo` this server sends.
pub const ERROR_DOMAIN: &str = "skypilot.v1";

/// The gRPC code for each kind of error.
pub fn code(kind: ErrorKind) -> Code {
    match kind {
        ErrorKind::InvalidArgument => Code::InvalidArgument,
        ErrorKind::NotFound => Code::NotFound,
        ErrorKind::Unauthenticated => Code::Unauthenticated,
        ErrorKind::PermissionDenied => Code::PermissionDenied,
        ErrorKind::AlreadyExists => Code::AlreadyExists,
        ErrorKind::AmbiguousId => Code::InvalidArgument,
        ErrorKind::IdempotencyKeyReused => Code::AlreadyExists,
        ErrorKind::AlreadyDone => Code::FailedPrecondition,
        ErrorKind::FailedPrecondition => Code::FailedPrecondition,
        ErrorKind::Cancelled => Code::Cancelled,
        ErrorKind::Interrupted => Code::Aborted,
        ErrorKind::Unavailable => Code::Unavailable,
        ErrorKind::ClientTooOld => Code::FailedPrecondition,
        ErrorKind::ResourceExhausted => Code::ResourceExhausted,
        ErrorKind::Storage => Code::Internal,
        ErrorKind::StorageFull => Code::ResourceExhausted,
        ErrorKind::Internal => Code::Internal,
    }
}

impl From<Error> for Status {
    fn from(err: Error) -> Status {
        let mut details = ErrorDetails::with_error_info(err.kind.reason(), ERROR_DOMAIN, HashMap::new());
        if err.kind.retryable() {
            details.set_retry_info(Some(Duration::from_secs(1)));
        }
        Status::with_error_details(code(err.kind), err.message, details)
    }
}

/// The `google.rpc.Status` of a failed or cancelled operation.
pub fn rpc_status(error: &StoredError) -> rpc::Status {
    let kind = ErrorKind::from_reason(&error.reason);
    let info = rpc::ErrorInfo {
        reason: error.reason.clone(),
        domain: ERROR_DOMAIN.to_string(),
        metadata: HashMap::from([("retryable".to_string(), error.retryable.to_string())]),
    };
    rpc::Status {
        code: code(kind) as i32,
        message: error.message.clone(),
        details: vec![prost_types::Any {
            type_url: "type.googleapis.com/google.rpc.ErrorInfo".into(),
            value: info.encode_to_vec(),
        }],
    }
}
