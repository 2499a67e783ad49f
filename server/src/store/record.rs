//! What the store keeps for each operation. Encoded with prost: compact, fast,
//! and tolerant of fields added later (an older record reads with defaults).

use skypilot_api::proto::skypilot::v1::{RequestState, Schedule};

/// One operation as stored. Every state change rewrites the whole record.
#[derive(Clone, PartialEq, prost::Message)]
pub struct OpRecord {
    /// Time-sortable id (UUIDv7, hyphenated).
    #[prost(string, tag = "1")]
    pub id: String,
    /// Registered kind, e.g. "sky.check".
    #[prost(string, tag = "2")]
    pub kind: String,
    #[prost(enumeration = "RequestState", tag = "3")]
    pub state: i32,
    #[prost(string, tag = "4")]
    pub user_name: String,
    #[prost(string, tag = "5")]
    pub user_id: String,
    /// The cluster the operation acts on; empty for none.
    #[prost(string, tag = "6")]
    pub cluster: String,
    #[prost(enumeration = "Schedule", tag = "7")]
    pub schedule: i32,
    /// Milliseconds since the Unix epoch; 0 when not reached yet.
    #[prost(int64, tag = "8")]
    pub created_ms: i64,
    #[prost(int64, tag = "9")]
    pub started_ms: i64,
    #[prost(int64, tag = "10")]
    pub finished_ms: i64,
    /// The encoded request message, as the kind decodes it.
    #[prost(bytes = "vec", tag = "11")]
    pub payload: Vec<u8>,
    #[prost(string, tag = "12")]
    pub idempotency_key: String,
    /// A one-line status for humans.
    #[prost(string, tag = "13")]
    pub status_message: String,
    /// Type URL and encoded message of a successful result.
    #[prost(string, tag = "14")]
    pub response_type_url: String,
    #[prost(bytes = "vec", tag = "15")]
    pub response: Vec<u8>,
    #[prost(message, optional, tag = "16")]
    pub error: Option<StoredError>,
    /// Final size of the log, set when the operation finishes.
    #[prost(int64, tag = "17")]
    pub log_size: i64,
}

/// The error of a failed or cancelled operation.
#[derive(Clone, PartialEq, prost::Message)]
pub struct StoredError {
    /// `ErrorKind::reason()`.
    #[prost(string, tag = "1")]
    pub reason: String,
    #[prost(string, tag = "2")]
    pub message: String,
    #[prost(bool, tag = "3")]
    pub retryable: bool,
}

impl OpRecord {
    /// Whether the operation has finished (succeeded, failed or cancelled).
    pub fn is_done(&self) -> bool {
        is_terminal(self.state())
    }
}

/// Whether `state` is final.
pub fn is_terminal(state: RequestState) -> bool {
    matches!(state, RequestState::Succeeded | RequestState::Failed | RequestState::Cancelled)
}
