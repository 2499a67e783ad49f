//! The one mapping from server errors to gRPC statuses, with a
//! `google.rpc.ErrorInfo` (stable reason, domain `skypilot.v1`) so that
//! clients in any language can branch on the reason rather than the text.

use std::{collections::HashMap, time::Duration};

use prost::Message;
use skypilot_api::{
    names::{error_reason, parse_error_reason},
    proto::google::rpc,
};
use tonic::{Code, Status};
use tonic_types::{ErrorDetails, StatusExt};

use crate::{
    error::{Error, ErrorReason, is_retryable},
    store::StoredError,
};

/// Domain of every `ErrorInfo` this server sends.
pub const ERROR_DOMAIN: &str = "skypilot.v1";

/// The gRPC code for each kind of error.
pub fn code(kind: ErrorReason) -> Code {
    match kind {
        ErrorReason::InvalidArgument => Code::InvalidArgument,
        ErrorReason::NotFound => Code::NotFound,
        ErrorReason::Unauthenticated => Code::Unauthenticated,
        ErrorReason::PermissionDenied => Code::PermissionDenied,
        ErrorReason::AlreadyExists => Code::AlreadyExists,
        ErrorReason::AmbiguousId => Code::InvalidArgument,
        ErrorReason::IdempotencyKeyReused => Code::AlreadyExists,
        ErrorReason::AlreadyDone => Code::FailedPrecondition,
        ErrorReason::FailedPrecondition => Code::FailedPrecondition,
        ErrorReason::Cancelled => Code::Cancelled,
        ErrorReason::InterruptedByRestart => Code::Aborted,
        ErrorReason::Unavailable => Code::Unavailable,
        ErrorReason::ClientTooOld => Code::FailedPrecondition,
        ErrorReason::ResourceExhausted => Code::ResourceExhausted,
        ErrorReason::Storage => Code::Internal,
        ErrorReason::StorageFull => Code::ResourceExhausted,
        ErrorReason::Internal | ErrorReason::Unspecified => Code::Internal,
    }
}

impl From<Error> for Status {
    fn from(err: Error) -> Status {
        let mut details =
            ErrorDetails::with_error_info(error_reason(err.reason), ERROR_DOMAIN, HashMap::new());
        if is_retryable(err.reason) {
            details.set_retry_info(Some(Duration::from_secs(1)));
        }
        Status::with_error_details(code(err.reason), err.message, details)
    }
}

/// The `google.rpc.Status` of a failed or cancelled operation.
pub fn rpc_status(error: &StoredError) -> rpc::Status {
    let kind = parse_error_reason(&error.reason);
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
