//! The server's error type. Everything below the gRPC layer returns `Error`;
//! `grpc::status` maps each kind to a gRPC code in one exhaustive match.

use std::fmt;

/// What kind of failure, with a stable reason string that clients can branch on
/// (sent as `google.rpc.ErrorInfo.reason` and stored with failed operations).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorKind {
    /// A request field is malformed; the message names the field.
    InvalidArgument,
    /// No operation (or other resource) with that id.
    NotFound,
    /// No valid credentials: the message says how to log in.
    Unauthenticated,
    /// Valid credentials, but not allowed to do this.
    PermissionDenied,
    /// Already exists (a user name, for instance).
    AlreadyExists,
    /// An id prefix matches more than one operation.
    AmbiguousId,
    /// An idempotency key was reused with a different request.
    IdempotencyKeyReused,
    /// The operation already finished.
    AlreadyDone,
    /// The action needs another state first (e.g. deleting a running operation).
    FailedPrecondition,
    /// The operation was cancelled.
    Cancelled,
    /// The operation was running when the server stopped and cannot be resumed.
    Interrupted,
    /// The server is shutting down or starting; retry shortly.
    Unavailable,
    /// The client speaks an API version the server no longer serves.
    ClientTooOld,
    /// Not enough of something (CPUs, memory, queue space) right now.
    ResourceExhausted,
    /// The data directory or store failed.
    Storage,
    /// The data directory's disk is full (or a file size limit was hit).
    StorageFull,
    /// A bug or an unexpected condition.
    Internal,
}

impl ErrorKind {
    const ALL: [ErrorKind; 17] = [
        ErrorKind::InvalidArgument,
        ErrorKind::NotFound,
        ErrorKind::Unauthenticated,
        ErrorKind::PermissionDenied,
        ErrorKind::AlreadyExists,
        ErrorKind::AmbiguousId,
        ErrorKind::IdempotencyKeyReused,
        ErrorKind::AlreadyDone,
        ErrorKind::FailedPrecondition,
        ErrorKind::Cancelled,
        ErrorKind::Interrupted,
        ErrorKind::Unavailable,
        ErrorKind::ClientTooOld,
        ErrorKind::ResourceExhausted,
        ErrorKind::Storage,
        ErrorKind::StorageFull,
        ErrorKind::Internal,
    ];

    /// The stable reason string.
    pub fn reason(self) -> &'static str {
        match self {
            ErrorKind::InvalidArgument => "INVALID_ARGUMENT",
            ErrorKind::NotFound => "NOT_FOUND",
            ErrorKind::Unauthenticated => "UNAUTHENTICATED",
            ErrorKind::PermissionDenied => "PERMISSION_DENIED",
            ErrorKind::AlreadyExists => "ALREADY_EXISTS",
            ErrorKind::AmbiguousId => "AMBIGUOUS_ID",
            ErrorKind::IdempotencyKeyReused => "IDEMPOTENCY_KEY_REUSED",
            ErrorKind::AlreadyDone => "ALREADY_DONE",
            ErrorKind::FailedPrecondition => "FAILED_PRECONDITION",
            ErrorKind::Cancelled => "CANCELLED",
            ErrorKind::Interrupted => "INTERRUPTED_BY_RESTART",
            ErrorKind::Unavailable => "UNAVAILABLE",
            ErrorKind::ClientTooOld => "CLIENT_TOO_OLD",
            ErrorKind::ResourceExhausted => "RESOURCE_EXHAUSTED",
            ErrorKind::Storage => "STORAGE",
            ErrorKind::StorageFull => "STORAGE_FULL",
            ErrorKind::Internal => "INTERNAL",
        }
    }

    /// The kind for a stored reason string; unknown reasons read as `Internal`.
    pub fn from_reason(reason: &str) -> ErrorKind {
        ErrorKind::ALL.into_iter().find(|kind| kind.reason() == reason).unwrap_or(ErrorKind::Internal)
    }

    /// Whether repeating the same request later may succeed.
    pub fn retryable(self) -> bool {
        matches!(
            self,
            ErrorKind::Interrupted
                | ErrorKind::Unavailable
                | ErrorKind::ResourceExhausted
                | ErrorKind::StorageFull
        )
    }
}

/// A server error: a kind and a message for the user that says what to do.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Error {
    pub kind: ErrorKind,
    pub message: String,
}

impl Error {
    pub fn new(kind: ErrorKind, message: impl Into<String>) -> Error {
        Error { kind, message: message.into() }
    }

    /// A bad request field: names the field and the fix.
    pub fn invalid(field: &str, problem: impl fmt::Display) -> Error {
        Error::new(ErrorKind::InvalidArgument, format!("invalid `{field}`: {problem}"))
    }

    pub fn not_found(message: impl Into<String>) -> Error {
        Error::new(ErrorKind::NotFound, message)
    }

    pub fn internal(message: impl Into<String>) -> Error {
        Error::new(ErrorKind::Internal, message)
    }

    pub fn cancelled() -> Error {
        Error::new(ErrorKind::Cancelled, "cancelled by user")
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
            err => Error::new(ErrorKind::Storage, format!("store error: {err}")),
        }
    }
}

impl From<std::io::Error> for Error {
    fn from(err: std::io::Error) -> Error {
        if is_full(&err) {
            return disk_full(&err);
        }
        Error::new(ErrorKind::Storage, format!("data directory error: {err}"))
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
        ErrorKind::StorageFull,
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
    fn every_reason_reads_back_as_its_kind() {
        for kind in ErrorKind::ALL {
            assert_eq!(ErrorKind::from_reason(kind.reason()), kind);
        }
    }
}
