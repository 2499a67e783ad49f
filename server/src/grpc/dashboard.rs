//! The dashboard's files at `/dashboard/`, answered before anything gRPC
//! sees the request. They are built beside the TypeScript client
//! (`clients/typescript/dashboard`) and embedded here, so building the server
//! needs no Node.js. The files hold no data: the page signs in and reads
//! everything over gRPC-Web with the viewer's credentials, so they are served
//! to anyone, with a policy that lets the page load nothing but itself.

use std::{
    path::PathBuf,
    sync::{Arc, LazyLock},
};

use http::{HeaderValue, Method, header};
use sha2::{Digest, Sha256};

use super::answers::{Answer, AnswerLayer, Reply, ReplyFuture, ready, reply};

/// Where the page is.
pub const DASHBOARD_PATH: &str = "/dashboard/";

/// The page may load and call only its own origin, and no other page may
/// frame it.
const CONTENT_SECURITY_POLICY: &str = "default-src 'self'; script-src 'self'; style-src 'self'; \
     img-src 'self' data:; connect-src 'self'; frame-ancestors 'none'; base-uri 'none'; form-action 'none'";

/// The built files: name under `/dashboard/`, content type, content.
const EMBEDDED: &[(&str, &str, &[u8])] = &[
    (
        "index.html",
        "text/html; charset=utf-8",
        include_bytes!("../../../clients/typescript/dashboard/dist/index.html"),
    ),
    (
        "app.js",
        "text/javascript; charset=utf-8",
        include_bytes!("../../../clients/typescript/dashboard/dist/app.js"),
    ),
    (
        "app.css",
        "text/css; charset=utf-8",
        include_bytes!("../../../clients/typescript/dashboard/dist/app.css"),
    ),
];

/// Entity tags of the embedded files, in the order of EMBEDDED: worked out
/// on the first request for them, not at every start.
static EMBEDDED_TAGS: LazyLock<Vec<String>> =
    LazyLock::new(|| EMBEDDED.iter().map(|(_, _, bytes)| entity_tag(bytes)).collect());

/// How many bytes the embedded dashboard adds to the binary.
pub fn embedded_size() -> usize {
    EMBEDDED.iter().map(|(_, _, bytes)| bytes.len()).sum()
}

/// Serves the dashboard: the embedded build, or the files of `dir` (read on
/// every request, for working on the dashboard without rebuilding the server).
#[derive(Clone)]
pub struct Dashboard {
    files: Arc<Files>,
}

/// The dashboard in front of a service.
pub type DashboardLayer = AnswerLayer<Dashboard>;

struct Files {
    dir: Option<PathBuf>,
}

impl DashboardLayer {
    /// The embedded dashboard, or the one in `dir`: an error names a file
    /// the folder lacks.
    pub fn new(dir: Option<PathBuf>) -> Result<DashboardLayer, String> {
        if let Some(dir) = &dir {
            for (name, _, _) in EMBEDDED {
                if !dir.join(name).is_file() {
                    return Err(format!(
                        "--dashboard-dir {}: no {name} there; build the dashboard first (npm run \
                         build:dashboard in clients/typescript) and give its dist folder",
                        dir.display()
                    ));
                }
            }
        }
        Ok(AnswerLayer(Dashboard { files: Arc::new(Files { dir }) }))
    }
}

fn entity_tag(bytes: &[u8]) -> String {
    format!("\"{}\"", skypilot_api::identity::hex(&Sha256::digest(bytes)[..8]))
}

impl Files {
    /// The answer to a request of `path`, or None when the path is not the
    /// dashboard's.
    fn answer(&self, method: &Method, path: &str, if_none_match: Option<&str>) -> Option<Reply> {
        if path == "/" || path == "/dashboard" {
            let mut response = with_headers(reply(308, ""), "text/plain; charset=utf-8");
            response.headers_mut().insert(header::LOCATION, HeaderValue::from_static(DASHBOARD_PATH));
            return Some(response);
        }
        let name = path.strip_prefix(DASHBOARD_PATH)?;
        let text = "text/plain; charset=utf-8";
        if method != Method::GET && method != Method::HEAD {
            let mut response = with_headers(reply(405, "the dashboard answers GET only\n"), text);
            response.headers_mut().insert(header::ALLOW, HeaderValue::from_static("GET, HEAD"));
            return Some(response);
        }
        let name = if name.is_empty() { "index.html" } else { name };
        let Some(index) = EMBEDDED.iter().position(|(file, _, _)| *file == name) else {
            return Some(with_headers(reply(404, "no such file of the dashboard\n"), text));
        };
        let (_, content_type, embedded) = EMBEDDED[index];
        let (body, tag) = match &self.dir {
            Some(dir) => match std::fs::read(dir.join(name)) {
                Ok(bytes) => {
                    let tag = entity_tag(&bytes);
                    (bytes, tag)
                }
                Err(err) => {
                    // The folder is the operator's business, not the visitor's.
                    tracing::error!(file = %dir.join(name).display(), error = %err, "cannot read a dashboard file");
                    return Some(with_headers(reply(500, "the dashboard is not available\n"), text));
                }
            },
            None => (embedded.to_vec(), EMBEDDED_TAGS[index].clone()),
        };
        let unchanged = if_none_match.is_some_and(|tags| {
            tags.split(',')
                .any(|candidate| candidate.trim().trim_start_matches("W/") == tag || candidate.trim() == "*")
        });
        let length = body.len();
        let mut response = if unchanged {
            reply(304, "")
        } else if method == Method::HEAD {
            let mut response = reply(200, "");
            response.headers_mut().insert(header::CONTENT_LENGTH, HeaderValue::from(length));
            response
        } else {
            http::Response::new(tonic::body::Body::new(http_body_util::Full::new(bytes::Bytes::from(body))))
        };
        if let Ok(tag) = HeaderValue::from_str(&tag) {
            response.headers_mut().insert(header::ETAG, tag);
        }
        // Asked again each time (a 304 when unchanged), so an upgraded server
        // never serves a page with the old script.
        response.headers_mut().insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
        Some(with_headers(response, content_type))
    }
}

/// `response` with its content type and the headers every answer of the
/// dashboard carries.
fn with_headers(mut response: Reply, content_type: &'static str) -> Reply {
    let headers = response.headers_mut();
    headers.insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
    headers.insert(header::CONTENT_SECURITY_POLICY, HeaderValue::from_static(CONTENT_SECURITY_POLICY));
    headers.insert(header::X_CONTENT_TYPE_OPTIONS, HeaderValue::from_static("nosniff"));
    headers.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    headers.insert(header::REFERRER_POLICY, HeaderValue::from_static("no-referrer"));
    response
}

impl Answer for Dashboard {
    fn answer<B>(&self, request: &http::Request<B>) -> Option<ReplyFuture> {
        // gRPC calls are POSTs to /package.Service/Method: only other
        // requests can be the dashboard's.
        if request.method() == Method::POST && !request.uri().path().starts_with("/dashboard") {
            return None;
        }
        let if_none_match = request.headers().get(header::IF_NONE_MATCH).and_then(|v| v.to_str().ok());
        self.files.answer(request.method(), request.uri().path(), if_none_match).map(ready)
    }
}
