//! The server's error type. Everything below the gRPC layer returns `Error`;
//! `grpc::status` maps each reason to a gRPC code in one exhaustive match.

use std::fmt;

/// What kind of failure: the protocol's `skypilot.v1.ErrorReason`, whose
/// name (without its prefix, see `names::error_reason`) clients get as
/// `google.rpc.ErrorInfo.reason` and find stored with failed operations.
pub use skypilot_api::proto::skypilot::v1::ErrorReason;

/// Whether repeating the same request later may succeed.
pub fn is_retryable(reason: ErrorReason) -> bool {
    matches!(
        reason,
        ErrorReason::InterruptedByRestart
            | ErrorReason::Unavailable
            | ErrorReason::ResourceExhausted
            | ErrorReason::StorageFull
    )
}

/// A server error: a reason and a message for the user that says what to do.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Error {
    pub reason: ErrorReason,
    pub message: String,
}

impl Error {
    pub fn new(reason: ErrorReason, message: impl Into<String>) -> Error {
        Error { reason, message: message.into() }
    }

    /// A bad request field: names the field and the fix.
    pub fn invalid(field: &str, problem: impl fmt::Display) -> Error {
        Error::new(ErrorReason::InvalidArgument, format!("invalid `{field}`: {problem}"))
    }

    pub fn not_found(message: impl Into<String>) -> Error {
        Error::new(ErrorReason::NotFound, message)
    }

    pub fn internal(message: impl Into<String>) -> Error {
        Error::new(ErrorReason::Internal, message)
    }

    pub fn cancelled() -> Error {
        Error::new(ErrorReason::Cancelled, "cancelled by user")
    }

    /// How a followed stream ends when the server stops: the client resumes
    /// from what it has once the server is back.
    pub fn shutting_down() -> Error {
        Error::new(ErrorReason::Unavailable, "the API server is shutting down; resume once it is back")
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for Error {}

impl From<sled::Error> for Error {
    fn from(err: sled::Error) -> Error {
        match err {
            sled::Error::Io(io) if is_full(&io) => disk_full(&io),
            err => Error::new(ErrorReason::Storage, format!("store error: {err}")),
        }
    }
}

impl From<std::io::Error> for Error {
    fn from(err: std::io::Error) -> Error {
        if is_full(&err) {
            return disk_full(&err);
        }
        Error::new(ErrorReason::Storage, format!("data directory error: {err}"))
    }
}

fn is_full(err: &std::io::Error) -> bool {
    matches!(
        err.kind(),
        std::io::ErrorKind::StorageFull
            | std::io::ErrorKind::QuotaExceeded
            | std::io::ErrorKind::FileTooLarge
    )
}

fn disk_full(err: &std::io::Error) -> Error {
    Error::new(
        ErrorReason::StorageFull,
        format!(
            "the API server cannot write to its data directory ({err}): free space on the \
             server's data volume, then retry"
        ),
    )
}

/// Result with the server's error.
pub type Result<T, E = Error> = std::result::Result<T, E>;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_transient_failures_are_retryable() {
        assert!(is_retryable(ErrorReason::StorageFull) && is_retryable(ErrorReason::InterruptedByRestart));
        assert!(!is_retryable(ErrorReason::InvalidArgument) && !is_retryable(ErrorReason::Internal));
    }
}
