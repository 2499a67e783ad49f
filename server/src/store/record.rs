//! What the store keeps: operations, clusters, jobs, users and tokens.
//! Encoded with prost: compact, fast, and tolerant of fields added later (an
//! older record reads with defaults).

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
    /// The encoded request message, sealed (`payloads`); empty when it is
    /// in a file of its own.
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
    /// The submitter was an admin: the operation runs with an admin's rights.
    #[prost(bool, tag = "18")]
    pub user_is_admin: bool,
    /// The payload is in a file of its own, not in `payload`.
    #[prost(bool, tag = "19")]
    pub payload_in_file: bool,
    /// SHA-256 of the payload as submitted (empty for records from before it).
    #[prost(bytes = "vec", tag = "20")]
    pub payload_digest: Vec<u8>,
    /// Bytes of the payload as submitted.
    #[prost(int64, tag = "21")]
    pub payload_size: i64,
}

/// The error of a failed or cancelled operation.
#[derive(Clone, PartialEq, prost::Message)]
pub struct StoredError {
    /// `ErrorReason::reason()`.
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

/// A cluster as stored.
#[derive(Clone, PartialEq, prost::Message)]
pub struct ClusterRecord {
    #[prost(string, tag = "1")]
    pub name: String,
    #[prost(enumeration = "skypilot_api::proto::skypilot::v1::ClusterStatus", tag = "2")]
    pub status: i32,
    #[prost(int32, tag = "3")]
    pub num_nodes: i32,
    /// Per node.
    #[prost(double, tag = "4")]
    pub cpus: f64,
    #[prost(double, tag = "5")]
    pub memory_gib: f64,
    /// "NAME:COUNT" per node, or empty.
    #[prost(string, tag = "6")]
    pub accelerators: String,
    /// Host GPU indices held, `gpus_per_node` per node in rank order.
    #[prost(uint32, repeated, tag = "7")]
    pub gpu_indices: Vec<u32>,
    /// -1 when autostop is off.
    #[prost(int32, tag = "8")]
    pub autostop_idle_minutes: i32,
    #[prost(bool, tag = "9")]
    pub autostop_down: bool,
    #[prost(int64, tag = "10")]
    pub launched_ms: i64,
    #[prost(string, tag = "11")]
    pub user_name: String,
    #[prost(string, tag = "12")]
    pub user_id: String,
    /// When the cluster last became idle; 0 while it has active jobs.
    #[prost(int64, tag = "13")]
    pub idle_since_ms: i64,
    /// The id the next job gets.
    #[prost(int64, tag = "14")]
    pub next_job_id: i64,
    #[prost(string, repeated, tag = "15")]
    pub ports: Vec<String>,
    /// Each node's address by rank, as the infra gave them at provisioning.
    #[prost(string, repeated, tag = "16")]
    pub node_ips: Vec<String>,
    /// The infra the cluster runs on (`local`, `ssh/<pool>`); empty: local.
    #[prost(string, tag = "17")]
    pub infra: String,
}

/// A job as stored.
#[derive(Clone, PartialEq, prost::Message)]
pub struct JobRecord {
    #[prost(int64, tag = "1")]
    pub job_id: i64,
    #[prost(string, tag = "2")]
    pub cluster: String,
    #[prost(string, tag = "3")]
    pub name: String,
    #[prost(enumeration = "skypilot_api::proto::skypilot::v1::JobStatus", tag = "4")]
    pub status: i32,
    #[prost(string, tag = "5")]
    pub user_name: String,
    #[prost(string, tag = "6")]
    pub user_id: String,
    #[prost(int64, tag = "7")]
    pub submitted_ms: i64,
    #[prost(int64, tag = "8")]
    pub started_ms: i64,
    #[prost(int64, tag = "9")]
    pub ended_ms: i64,
    /// CPUs per node the job holds while it runs.
    #[prost(double, tag = "10")]
    pub cpus: f64,
    /// GPUs per node the job holds while it runs.
    #[prost(uint32, tag = "11")]
    pub gpus: u32,
    #[prost(int32, optional, tag = "12")]
    pub exit_code: Option<i32>,
    #[prost(string, tag = "13")]
    pub message: String,
    /// The encoded `TaskSpec`, sealed (`Store::seal`).
    #[prost(bytes = "vec", tag = "14")]
    pub task: Vec<u8>,
    /// Whether setup runs before the job's run commands.
    #[prost(bool, tag = "15")]
    pub run_setup: bool,
    /// The processes of the current phase, one per node.
    #[prost(message, repeated, tag = "16")]
    pub processes: Vec<NodeProcess>,
    /// Host GPU indices the job holds (all nodes).
    #[prost(uint32, repeated, tag = "17")]
    pub gpu_indices: Vec<u32>,
    /// The request that submitted the job: running that request again (after
    /// a server restart) finds this job instead of submitting another.
    #[prost(string, tag = "18")]
    pub request_id: String,
}

/// A job's process on one node.
#[derive(Clone, PartialEq, prost::Message)]
pub struct NodeProcess {
    #[prost(int32, tag = "1")]
    pub rank: i32,
    #[prost(uint32, tag = "2")]
    pub pid: u32,
    /// Process start time (clock ticks since boot), to tell a reused pid apart.
    #[prost(uint64, tag = "3")]
    pub start_ticks: u64,
}

/// A user of a deployed server.
#[derive(Clone, PartialEq, prost::Message)]
pub struct UserRecord {
    #[prost(string, tag = "1")]
    pub name: String,
    #[prost(string, tag = "2")]
    pub id: String,
    #[prost(enumeration = "skypilot_api::proto::skypilot::v1::Role", tag = "3")]
    pub role: i32,
    /// Argon2id PHC string.
    #[prost(string, tag = "4")]
    pub password_hash: String,
    #[prost(int64, tag = "5")]
    pub created_ms: i64,
}

/// A service-account token, stored under the SHA-256 of its secret.
#[derive(Clone, PartialEq, prost::Message)]
pub struct TokenRecord {
    #[prost(string, tag = "1")]
    pub token_id: String,
    #[prost(string, tag = "2")]
    pub name: String,
    #[prost(string, tag = "3")]
    pub user_name: String,
    #[prost(int64, tag = "4")]
    pub created_ms: i64,
    /// 0: never expires.
    #[prost(int64, tag = "5")]
    pub expires_ms: i64,
}

/// A managed job (`sky jobs launch`) as the controller keeps it. Every step
/// it takes is recorded here before it acts, so that after a restart it goes
/// on from the step it was at.
#[derive(Clone, PartialEq, prost::Message)]
pub struct ManagedJobRecord {
    #[prost(int64, tag = "1")]
    pub job_id: i64,
    #[prost(string, tag = "2")]
    pub name: String,
    #[prost(string, tag = "3")]
    pub user_name: String,
    #[prost(string, tag = "4")]
    pub user_id: String,
    #[prost(bool, tag = "5")]
    pub user_is_admin: bool,
    #[prost(enumeration = "skypilot_api::proto::skypilot::v1::ManagedJobStatus", tag = "6")]
    pub status: i32,
    /// The encoded `LaunchManagedJobRequest` holding the tasks, sealed.
    #[prost(bytes = "vec", tag = "7")]
    pub tasks: Vec<u8>,
    #[prost(int32, tag = "8")]
    pub num_tasks: i32,
    /// The task the job is at, from 0.
    #[prost(int32, tag = "9")]
    pub current_task: i32,
    /// Launches of the current task, from 1.
    #[prost(int32, tag = "10")]
    pub attempt: i32,
    #[prost(int32, tag = "11")]
    pub recovery_count: i32,
    /// Restarts after failures of the current task's code.
    #[prost(int32, tag = "12")]
    pub restarts_on_errors: i32,
    /// The job's cluster (one at a time, under this one name).
    #[prost(string, tag = "13")]
    pub cluster_name: String,
    /// The id of the current attempt's job on that cluster; 0 before it is submitted.
    #[prost(int64, tag = "14")]
    pub cluster_job_id: i64,
    #[prost(int64, tag = "15")]
    pub submitted_ms: i64,
    #[prost(int64, tag = "16")]
    pub started_ms: i64,
    #[prost(int64, tag = "17")]
    pub ended_ms: i64,
    /// When the current attempt started running; 0 when it is not running.
    #[prost(int64, tag = "18")]
    pub running_since_ms: i64,
    /// Running time of the attempts that ended.
    #[prost(int64, tag = "19")]
    pub job_duration_ms: i64,
    #[prost(string, tag = "20")]
    pub failure_reason: String,
    #[prost(bool, tag = "21")]
    pub cancel_requested: bool,
    /// A secret of this job: the idempotency keys of the requests the
    /// controller submits for it start with it.
    #[prost(string, tag = "22")]
    pub key: String,
    /// The request that submitted the job.
    #[prost(string, tag = "23")]
    pub request_id: String,
    /// What the controller does next (`managed::Step`).
    #[prost(int32, tag = "24")]
    pub step: i32,
    /// After a teardown: the status the job ends with, or UNSPECIFIED to launch again.
    #[prost(enumeration = "skypilot_api::proto::skypilot::v1::ManagedJobStatus", tag = "25")]
    pub final_status: i32,
    /// Launch requests made for the current attempt (each retry after a
    /// capacity shortage is a new one).
    #[prost(int32, tag = "26")]
    pub launch_tries: i32,
    /// Teardown requests made so far.
    #[prost(int32, tag = "27")]
    pub teardowns: i32,
    /// Where the current attempt's output starts in the job's output file.
    #[prost(int64, tag = "28")]
    pub output_base: i64,
}
