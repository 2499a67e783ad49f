//! The operation kinds this server runs, registered with the engine at start.

pub mod check;

use std::sync::Arc;

use crate::ops::OperationKind;

/// Every kind the server registers.
pub fn all() -> Vec<Arc<dyn OperationKind>> {
    vec![Arc::new(check::Check)]
}
