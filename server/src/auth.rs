//! Who is calling. A local server trusts the identity the client presents
//! (user name and stable id headers), as SkyPilot's local server does.

/// The user on whose behalf a request runs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Caller {
    pub name: String,
    pub id: String,
}
