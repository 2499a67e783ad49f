//! The operation kinds this server runs, registered with the engine at start.

pub mod check;
pub mod cluster;

use std::sync::Arc;

use crate::{clusters::Clusters, ops::OperationKind};

/// Every kind the server registers.
pub fn all(clusters: &Clusters) -> Vec<Arc<dyn OperationKind>> {
    let mut kinds: Vec<Arc<dyn OperationKind>> = vec![Arc::new(check::Check)];
    kinds.extend(cluster::kinds(clusters));
    kinds
}
