//! Conversions between the store's records and the wire's messages.

use prost::Message;
use skypilot_api::proto::{
    google::longrunning::{Operation, operation},
    skypilot::v1::RequestMetadata,
};

use super::status::rpc_status;
use crate::store::OpRecord;

/// The `google.longrunning.Operation` for a record.
pub fn operation(record: &OpRecord) -> Operation {
    let result = if !record.is_done() {
        None
    } else if let Some(error) = &record.error {
        Some(operation::Result::Error(rpc_status(error)))
    } else {
        Some(operation::Result::Response(prost_types::Any {
            type_url: record.response_type_url.clone(),
            value: record.response.clone(),
        }))
    };
    Operation {
        name: format!("operations/{}", record.id),
        metadata: Some(prost_types::Any {
            type_url: "type.googleapis.com/skypilot.v1.RequestMetadata".into(),
            value: metadata(record).encode_to_vec(),
        }),
        done: record.is_done(),
        result,
    }
}

/// The `RequestMetadata` for a record.
pub fn metadata(record: &OpRecord) -> RequestMetadata {
    RequestMetadata {
        request_id: record.id.clone(),
        request_name: record.kind.clone(),
        state: record.state,
        user_name: record.user_name.clone(),
        user_id: record.user_id.clone(),
        cluster_name: record.cluster.clone(),
        schedule: record.schedule,
        create_time: timestamp(record.created_ms),
        start_time: timestamp(record.started_ms),
        finish_time: timestamp(record.finished_ms),
        status_message: record.status_message.clone(),
        log_size: record.log_size,
        retryable: record.error.as_ref().is_some_and(|e| e.retryable),
    }
}

pub fn timestamp(ms: i64) -> Option<prost_types::Timestamp> {
    (ms > 0).then(|| prost_types::Timestamp {
        seconds: ms.div_euclid(1000),
        nanos: (ms.rem_euclid(1000) * 1_000_000) as i32,
    })
}

/// The wire `Cluster` for a record.
pub fn cluster(
    record: &crate::store::ClusterRecord,
    nodes: Vec<crate::infra::NodeState>,
) -> skypilot_api::proto::skypilot::v1::Cluster {
    let nodes = nodes
        .into_iter()
        .enumerate()
        .map(|(rank, node)| skypilot_api::proto::skypilot::v1::ClusterNode {
            rank: rank as i32,
            address: record.node_ips.get(rank).cloned().unwrap_or_default(),
            host: node.host,
            reachable: node.reachable,
            detail: node.detail,
        })
        .collect();
    skypilot_api::proto::skypilot::v1::Cluster {
        nodes,
        name: record.name.clone(),
        infra: crate::clusters::infra_name(record).to_string(),
        status: record.status,
        num_nodes: record.num_nodes,
        cpus: record.cpus,
        memory_gib: record.memory_gib,
        accelerators: record.accelerators.clone(),
        autostop_idle_minutes: record.autostop_idle_minutes,
        autostop_down: record.autostop_down,
        launched_at: timestamp(record.launched_ms),
        user_name: record.user_name.clone(),
        user_id: record.user_id.clone(),
        idle_since: timestamp(record.idle_since_ms),
    }
}

/// The wire `Job` for a record (its task, with envs and secrets, stays inside).
pub fn job(record: &crate::store::JobRecord) -> skypilot_api::proto::skypilot::v1::Job {
    let accelerators = if record.gpus > 0 { format!("GPU:{}", record.gpus) } else { String::new() };
    skypilot_api::proto::skypilot::v1::Job {
        job_id: record.job_id,
        cluster_name: record.cluster.clone(),
        name: record.name.clone(),
        status: record.status,
        user_name: record.user_name.clone(),
        user_id: record.user_id.clone(),
        submitted_at: timestamp(record.submitted_ms),
        started_at: timestamp(record.started_ms),
        ended_at: timestamp(record.ended_ms),
        cpus: record.cpus,
        accelerators,
        exit_code: record.exit_code,
        message: record.message.clone(),
    }
}

pub fn managed_job(
    record: &crate::store::ManagedJobRecord,
    summary: crate::managed::JobSummary,
) -> skypilot_api::proto::skypilot::v1::ManagedJob {
    skypilot_api::proto::skypilot::v1::ManagedJob {
        job_id: record.job_id,
        name: record.name.clone(),
        user_name: record.user_name.clone(),
        user_id: record.user_id.clone(),
        status: record.status,
        resources: summary.resources,
        submitted_at: timestamp(record.submitted_ms),
        started_at: timestamp(record.started_ms),
        ended_at: timestamp(record.ended_ms),
        job_duration_ms: summary.job_duration_ms,
        recovery_count: record.recovery_count,
        cluster_name: record.cluster_name.clone(),
        failure_reason: record.failure_reason.clone(),
        current_task: record.current_task,
        num_tasks: record.num_tasks,
        task_name: summary.task_name,
        infra: summary.infra,
    }
}
