//! CORS for gRPC-Web: lets web pages from the configured origins call the
//! server from a browser (preflight answered here, before authentication),
//! and lets them read the gRPC status headers of the answers.

use http::{HeaderName, HeaderValue, Method};
use tower_http::cors::{AllowOrigin, Any, CorsLayer};

/// Response headers a gRPC-Web client must be able to read.
const EXPOSED: &[&str] =
    &["grpc-status", "grpc-message", "grpc-status-details-bin", "x-skypilot-api-version"];

/// The layer for `origins`, or an error naming the origin that is not valid;
/// None when no origin is allowed.
pub fn cors_layer(origins: &[String]) -> Result<Option<CorsLayer>, String> {
    if origins.is_empty() {
        return Ok(None);
    }
    let allow = if origins.iter().any(|origin| origin == "*") {
        AllowOrigin::any()
    } else {
        let values = origins
            .iter()
            .map(|origin| {
                HeaderValue::from_str(origin.trim_end_matches('/')).map_err(|_| {
                    format!("invalid CORS origin {origin:?}: expected e.g. https://app.example.com")
                })
            })
            .collect::<Result<Vec<_>, _>>()?;
        AllowOrigin::list(values)
    };
    Ok(Some(
        CorsLayer::new()
            .allow_origin(allow)
            .allow_methods([Method::POST, Method::OPTIONS])
            .allow_headers(Any)
            .expose_headers(EXPOSED.iter().map(|name| HeaderName::from_static(name)).collect::<Vec<_>>())
            .max_age(std::time::Duration::from_secs(24 * 3600)),
    ))
}
