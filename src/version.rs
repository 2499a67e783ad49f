//! Versions and the metadata headers that carry them between client and server.

/// Release version of this build.
pub const VERSION: &str = env!("CARGO_PKG_VERSION");
/// Source commit this build was made from.
pub const COMMIT: &str = env!("SKYPILOT_BUILD_COMMIT");

/// Version of the gRPC API this build speaks. Raise it when adding calls or
/// fields whose absence the other side must know about.
pub const API_VERSION: i32 = 1;
/// Oldest API version of the other side (client or server) this build works with.
pub const MIN_API_VERSION: i32 = 1;

/// Request and response header carrying the sender's `API_VERSION`.
pub const API_VERSION_HEADER: &str = "x-skypilot-api-version";
/// Request header with the caller's user name (trusted only by a local server).
pub const USER_NAME_HEADER: &str = "x-skypilot-user";
/// Request header with the caller's stable user id.
pub const USER_ID_HEADER: &str = "x-skypilot-user-id";
