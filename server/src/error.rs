//! The server's error type. Everything below the gRPC layer returns `Error`;
//! `grpc::status` maps each reason to a gRPC code in one exhaustive match.

use std::fmt;

/// What kind of failure: the protocol's `skypilot.v1.ErrorReason`, whose
/// name (without its prefix) clients get as `google.rpc.ErrorInfo.reason`
/// and find stored with failed operations.
pub use skypilot_api::proto::skypilot::v1::ErrorReason;

/// The prefix of every `ErrorReason` value name in the protocol.
const REASON_PREFIX: &str = "ERROR_REASON_";

/// The stable reason string of `reason`, e.g. "INVALID_ARGUMENT".
pub fn reason_name(reason: ErrorReason) -> &'static str {
    let name = reason.as_str_name();
    name.strip_prefix(REASON_PREFIX).unwrap_or(name)
}

/// The reason for a stored reason string; unknown ones read as `Internal`.
pub fn reason_from_name(name: &str) -> ErrorReason {
    ErrorReason::from_str_name(&format!("{REASON_PREFIX}{name}"))
        .filter(|reason| *reason != ErrorReason::Unspecified)
        .unwrap_or(ErrorReason::Internal)
}

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
    fn every_reason_reads_back_from_its_name() {
        for value in 1..=ErrorReason::Internal as i32 {
            let reason = ErrorReason::try_from(value).unwrap();
            assert!(!reason_name(reason).starts_with(REASON_PREFIX));
            assert_eq!(reason_from_name(reason_name(reason)), reason);
        }
        assert_eq!(reason_name(ErrorReason::StorageFull), "STORAGE_FULL");
        assert_eq!(reason_from_name("NO_SUCH_REASON"), ErrorReason::Internal);
        assert_eq!(reason_from_name("UNSPECIFIED"), ErrorReason::Internal);
    }
}
