//! Who is calling and what they may do. A local server trusts the identity
//! the client presents (user name and stable id headers) and treats it as an
//! admin, as SkyPilot's local server does. A deployed server authenticates
//! every call but health checks and reflection (HTTP basic credentials or a
//! service-account token, see `accounts`) through `AuthLayer`.

mod accounts;
mod layer;
mod passwords;
mod throttle;

pub use accounts::{Accounts, FirstAdmin};
pub use layer::{AuthLayer, peer_ip};
pub use skypilot_api::proto::skypilot::v1::Role;

use crate::error::{Error, ErrorReason, Result};

/// The user on whose behalf a request runs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Caller {
    pub name: String,
    pub id: String,
    pub role: Role,
    /// The call came from the API server's own host (loopback), so paths it
    /// names there are the caller's own: a workdir or file mount may be read
    /// from them. False for remote callers and for work the server does on
    /// someone's behalf.
    pub on_server_host: bool,
}

impl Caller {
    /// A user of a local server: trusted, and an admin of it.
    pub fn local(name: impl Into<String>, id: impl Into<String>) -> Caller {
        Caller { name: name.into(), id: id.into(), role: Role::Admin, on_server_host: false }
    }

    /// The owner recorded on a request, cluster or job.
    pub fn owner(name: impl Into<String>, id: impl Into<String>) -> Caller {
        Caller { name: name.into(), id: id.into(), role: Role::User, on_server_host: false }
    }

    pub fn is_admin(&self) -> bool {
        self.role == Role::Admin
    }

    /// Refuses unless the caller owns the thing (`owner_id`) or is an admin.
    pub fn ensure_may_manage(&self, owner_id: &str, owner_name: &str, what: &str) -> Result<()> {
        if self.is_admin() || self.id == owner_id {
            return Ok(());
        }
        Err(Error::new(
            ErrorReason::PermissionDenied,
            format!("{what} belongs to {owner_name}; only its owner or an admin may change it"),
        ))
    }

    /// Refuses unless the caller is an admin.
    pub fn ensure_admin(&self, action: &str) -> Result<()> {
        if self.is_admin() {
            return Ok(());
        }
        Err(Error::new(
            ErrorReason::PermissionDenied,
            format!("only admins may {action}; {} is a user", self.name),
        ))
    }
}
