//! SkyPilot's spelling of request, cluster, job and managed job states, shared by the
//! server's messages and the CLI's tables; and the wire spelling of error
//! reasons (`google.rpc.ErrorInfo.reason`).

use crate::proto::skypilot::v1::{ClusterStatus, ErrorReason, JobStatus, ManagedJobStatus, RequestState};

/// The prefix of every `ErrorReason` value name in the protocol, which the
/// wire spelling leaves out.
const REASON_PREFIX: &str = "ERROR_REASON_";

/// The wire spelling of `reason`, e.g. "INVALID_ARGUMENT".
pub fn error_reason(reason: ErrorReason) -> &'static str {
    let name = reason.as_str_name();
    name.strip_prefix(REASON_PREFIX).unwrap_or(name)
}

/// The reason a wire spelling names; unknown ones (from a newer server)
/// read as `Internal`.
pub fn parse_error_reason(name: &str) -> ErrorReason {
    ErrorReason::from_str_name(&format!("{REASON_PREFIX}{name}"))
        .filter(|reason| *reason != ErrorReason::Unspecified)
        .unwrap_or(ErrorReason::Internal)
}

pub fn request_state(state: RequestState) -> &'static str {
    match state {
        RequestState::Unspecified => "UNKNOWN",
        RequestState::Pending => "PENDING",
        RequestState::Running => "RUNNING",
        RequestState::Succeeded => "SUCCEEDED",
        RequestState::Failed => "FAILED",
        RequestState::Cancelled => "CANCELLED",
    }
}

pub fn cluster_status(status: ClusterStatus) -> &'static str {
    match status {
        ClusterStatus::Unspecified => "TERMINATED",
        ClusterStatus::Init => "INIT",
        ClusterStatus::Up => "UP",
        ClusterStatus::Stopped => "STOPPED",
    }
}

pub fn job_status(status: JobStatus) -> &'static str {
    match status {
        JobStatus::Unspecified => "UNKNOWN",
        JobStatus::Pending => "PENDING",
        JobStatus::SettingUp => "SETTING_UP",
        JobStatus::Running => "RUNNING",
        JobStatus::Succeeded => "SUCCEEDED",
        JobStatus::Failed => "FAILED",
        JobStatus::FailedSetup => "FAILED_SETUP",
        JobStatus::Cancelled => "CANCELLED",
    }
}

pub fn managed_job_status(status: ManagedJobStatus) -> &'static str {
    match status {
        ManagedJobStatus::Unspecified => "UNKNOWN",
        ManagedJobStatus::Pending => "PENDING",
        ManagedJobStatus::Starting => "STARTING",
        ManagedJobStatus::Running => "RUNNING",
        ManagedJobStatus::Recovering => "RECOVERING",
        ManagedJobStatus::Succeeded => "SUCCEEDED",
        ManagedJobStatus::Failed => "FAILED",
        ManagedJobStatus::FailedSetup => "FAILED_SETUP",
        ManagedJobStatus::FailedNoResource => "FAILED_NO_RESOURCE",
        ManagedJobStatus::FailedController => "FAILED_CONTROLLER",
        ManagedJobStatus::Cancelling => "CANCELLING",
        ManagedJobStatus::Cancelled => "CANCELLED",
    }
}

pub fn role(role: crate::proto::skypilot::v1::Role) -> &'static str {
    match role {
        crate::proto::skypilot::v1::Role::Admin => "admin",
        _ => "user",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_error_reason_reads_back_from_its_wire_spelling() {
        for value in 1..=ErrorReason::Internal as i32 {
            let reason = ErrorReason::try_from(value).unwrap();
            assert!(!error_reason(reason).starts_with(REASON_PREFIX), "{reason:?}");
            assert_eq!(parse_error_reason(error_reason(reason)), reason);
        }
        assert_eq!(error_reason(ErrorReason::StorageFull), "STORAGE_FULL");
        assert_eq!(error_reason(ErrorReason::InterruptedByRestart), "INTERRUPTED_BY_RESTART");
        assert_eq!(parse_error_reason("NO_SUCH_REASON"), ErrorReason::Internal);
        assert_eq!(parse_error_reason("UNSPECIFIED"), ErrorReason::Internal);
    }
}
