//! SkyPilot's spelling of request, cluster and job states, shared by the
//! server's messages and the CLI's tables.

use crate::proto::skypilot::v1::{ClusterStatus, JobStatus, RequestState};

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

pub fn role(role: crate::proto::skypilot::v1::Role) -> &'static str {
    match role {
        crate::proto::skypilot::v1::Role::Admin => "admin",
        _ => "user",
    }
}
