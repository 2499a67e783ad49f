//! Browsers and gRPC-Web: CORS for the configured origins (preflight
//! answered before authentication, gRPC status headers readable), and a guard
//! that refuses pages from any other origin than those and the server's own
//! (the dashboard), and, on a loopback server, calls
//! addressed to a host name other than a loopback one (DNS rebinding).

use std::sync::Arc;

use http::{HeaderName, HeaderValue, Method};

use super::answers::{Answer, AnswerLayer, ReplyFuture, ready, reply};
use tonic::Status;
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
    let allow = if origins.iter().any(|origin| origin.trim() == "*") {
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

/// `scheme://host[:port]` without surrounding spaces or a trailing slash, or
/// None when `origin` is not of that form.
fn normal_origin(origin: &str) -> Option<String> {
    let origin = origin.trim().trim_end_matches('/');
    let (scheme, host) = origin.split_once("://")?;
    let valid = matches!(scheme, "http" | "https")
        && !host.is_empty()
        && !host.contains('/')
        && host.bytes().all(|b| b.is_ascii_graphic());
    valid.then(|| origin.to_string())
}

/// Refuses calls from web pages whose origin is not allowed, and, on a
/// loopback server, calls addressed to a host that is not a loopback one.
///
/// A page of the server's own origin (the dashboard) may call it when the
/// server listens on loopback only or asks every caller for credentials. On
/// a server that listens beyond loopback without authentication, a page
/// whose name was made to resolve to the server (DNS rebinding) would also
/// be "same origin" and could act for anyone, so there the dashboard's
/// origin must be allowed by name with `--cors-allow-origin`.
#[derive(Debug, Clone)]
pub struct BrowserGuard {
    rules: Arc<Rules>,
}

/// The guard in front of a service.
pub type BrowserGuardLayer = AnswerLayer<BrowserGuard>;

#[derive(Debug)]
struct Rules {
    any_origin: bool,
    origins: Vec<String>,
    loopback_only: bool,
    own_origin_allowed: bool,
}

impl BrowserGuardLayer {
    /// `origins` as given to `--cors-allow-origin`; `loopback` when the server
    /// listens on a loopback address; `require_auth` when every call needs
    /// credentials.
    pub fn new(origins: &[String], loopback: bool, require_auth: bool) -> BrowserGuardLayer {
        let rules = Rules {
            any_origin: origins.iter().any(|origin| origin.trim() == "*"),
            origins: origins.iter().filter_map(|origin| normal_origin(origin)).collect(),
            loopback_only: loopback,
            own_origin_allowed: loopback || require_auth,
        };
        AnswerLayer(BrowserGuard { rules: Arc::new(rules) })
    }
}

impl Rules {
    fn refusal<B>(&self, request: &http::Request<B>) -> Option<String> {
        let host = request
            .uri()
            .authority()
            .map(|authority| authority.as_str().to_string())
            .or_else(|| request.headers().get(http::header::HOST)?.to_str().ok().map(str::to_string));
        if let Some(origin) = request.headers().get(http::header::ORIGIN) {
            let origin = origin.to_str().unwrap_or("?");
            // The server's own pages (the dashboard) call it from its own origin.
            let same_origin =
                self.own_origin_allowed && host.as_deref().is_some_and(|host| same_authority(origin, host));
            if !same_origin && !self.any_origin && !self.origins.iter().any(|allowed| allowed == origin) {
                return Some(format!(
                    "calls from web pages of {origin} are not allowed; start the API server with \
                     --cors-allow-origin {origin} to allow them"
                ));
            }
        }
        if self.loopback_only
            && let Some(host) = host.filter(|host| !is_loopback_host(host))
        {
            return Some(format!(
                "this local API server answers only calls addressed to localhost, not to {host}"
            ));
        }
        None
    }
}

/// Whether `origin` (`scheme://host[:port]`) names the host and port
/// `authority` (the request's `Host`), with the scheme's default port when it
/// names none.
fn same_authority(origin: &str, authority: &str) -> bool {
    let Some((scheme, origin_authority)) = origin.split_once("://") else {
        return false;
    };
    let default_port = match scheme {
        "http" => "80",
        "https" => "443",
        _ => return false,
    };
    let with_port = |authority: &str| {
        let authority = authority.to_ascii_lowercase();
        let has_port = authority.rsplit_once(':').is_some_and(|(_, port)| !port.contains(']'))
            && (authority.starts_with('[') || authority.matches(':').count() == 1);
        if has_port { authority } else { format!("{authority}:{default_port}") }
    };
    with_port(origin_authority) == with_port(authority)
}

/// `localhost`, `127.x.x.x` or `::1`, with or without a port or brackets.
pub fn is_loopback_host(authority: &str) -> bool {
    let host = if let Some(rest) = authority.strip_prefix('[') {
        rest.split(']').next().unwrap_or(rest)
    } else if authority.matches(':').count() == 1 {
        authority.split(':').next().unwrap_or(authority)
    } else {
        authority
    };
    host.eq_ignore_ascii_case("localhost")
        || host.parse::<std::net::IpAddr>().is_ok_and(|ip| ip.is_loopback())
}

impl Answer for BrowserGuard {
    fn answer<B>(&self, request: &http::Request<B>) -> Option<ReplyFuture> {
        let why = self.rules.refusal(request)?;
        let grpc = request
            .headers()
            .get(http::header::CONTENT_TYPE)
            .and_then(|value| value.to_str().ok())
            .is_some_and(|value| value.starts_with("application/grpc"));
        // A call gets a gRPC status; a page (a browser's GET) a readable 403.
        let response = if grpc {
            Status::permission_denied(why).into_http()
        } else {
            let mut page = reply(403, &format!("{why}\n"));
            page.headers_mut()
                .insert(http::header::CONTENT_TYPE, HeaderValue::from_static("text/plain; charset=utf-8"));
            page
        };
        Some(ready(response))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn origins_are_normalised_and_malformed_ones_refused() {
        assert_eq!(normal_origin(" https://app.example/ ").as_deref(), Some("https://app.example"));
        assert_eq!(normal_origin("http://localhost:3000").as_deref(), Some("http://localhost:3000"));
        for bad in ["app.example", "ftp://x", "https://", "https://a/b", "https://a b"] {
            assert_eq!(normal_origin(bad), None, "{bad}");
        }
    }

    #[test]
    fn a_page_of_the_server_itself_is_same_origin() {
        assert!(same_authority("http://127.0.0.1:46580", "127.0.0.1:46580"));
        assert!(same_authority("https://Sky.Example.com", "sky.example.com:443"));
        assert!(same_authority("http://[::1]:8080", "[::1]:8080"));
        assert!(same_authority("http://[::1]", "[::1]:80"));
        for (origin, host) in [
            ("http://127.0.0.1:3000", "127.0.0.1:46580"),
            ("http://evil.example", "sky.example.com"),
            ("https://sky.example.com", "sky.example.com:80"),
            ("ftp://sky.example.com", "sky.example.com"),
            ("null", "sky.example.com"),
        ] {
            assert!(!same_authority(origin, host), "{origin} {host}");
        }
    }

    fn call_from(origin: &str, host: &str) -> http::Request<()> {
        http::Request::builder()
            .method("POST")
            .uri("/skypilot.v1.ServerService/GetServerInfo")
            .header("origin", origin)
            .header("host", host)
            .body(())
            .unwrap()
    }

    #[test]
    fn the_own_origin_is_trusted_only_where_rebinding_cannot_act_for_anyone() {
        let own = call_from("http://127.0.0.1:46580", "127.0.0.1:46580");
        let rebound = call_from("http://evil.example:46580", "evil.example:46580");
        let local = BrowserGuardLayer::new(&[], true, false);
        assert_eq!(local.0.rules.refusal(&own), None);
        assert!(local.0.rules.refusal(&rebound).is_some(), "a loopback server answers loopback names only");
        let deployed = BrowserGuardLayer::new(&[], false, true);
        assert_eq!(deployed.0.rules.refusal(&rebound), None, "credentials are still required");
        // Beyond loopback without authentication, a rebound page would act for anyone.
        let open = BrowserGuardLayer::new(&[], false, false);
        let why = open.0.rules.refusal(&rebound).unwrap();
        assert!(why.contains("--cors-allow-origin http://evil.example:46580"), "{why}");
        let named = BrowserGuardLayer::new(&["http://sky.internal:46580".into()], false, false);
        assert_eq!(
            named.0.rules.refusal(&call_from("http://sky.internal:46580", "sky.internal:46580")),
            None
        );
    }

    #[test]
    fn only_loopback_hosts_reach_a_loopback_server() {
        for host in ["localhost", "LOCALHOST:46580", "127.0.0.1:1", "127.1.2.3", "[::1]:46580", "::1"] {
            assert!(is_loopback_host(host), "{host}");
        }
        for host in ["rebind.evil.example:46580", "10.0.0.1", "[2001:db8::1]:80", "localhost.evil"] {
            assert!(!is_loopback_host(host), "{host}");
        }
    }
}
