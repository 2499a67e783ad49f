//! Which API server to talk to: `SKYPILOT_API_SERVER_ENDPOINT`, else
//! `api_server.endpoint` in `~/.sky/skyconfig.yaml`, else the local default
//! `http://127.0.0.1:46580` (the only one the CLI starts by itself).

use std::{fmt, path::PathBuf};

use crate::config::{ConfigError, SkyConfig};

/// Port of the local default API server.
pub const DEFAULT_PORT: u16 = 46580;
/// Environment variable naming the endpoint; it overrides the config file.
pub const ENDPOINT_ENV: &str = "SKYPILOT_API_SERVER_ENDPOINT";
/// Environment variable holding a service-account token.
pub const TOKEN_ENV: &str = "SKYPILOT_SERVICE_ACCOUNT_TOKEN";
/// Environment variable that moves the local default server to another port
/// (so that tests and side-by-side installs do not collide).
pub const LOCAL_PORT_ENV: &str = "SKYPILOT_API_SERVER_LOCAL_PORT";

/// Where the endpoint came from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum EndpointSource {
    /// The `SKYPILOT_API_SERVER_ENDPOINT` environment variable.
    Env,
    /// `api_server.endpoint` in this config file.
    ConfigFile(PathBuf),
    /// Nothing configured: the local server.
    LocalDefault,
}

impl fmt::Display for EndpointSource {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            EndpointSource::Env => write!(f, "from {ENDPOINT_ENV}"),
            EndpointSource::ConfigFile(path) => write!(f, "from {}", path.display()),
            EndpointSource::LocalDefault => write!(f, "local default"),
        }
    }
}

/// A parsed API server endpoint.
#[derive(Clone, PartialEq, Eq)]
pub struct Endpoint {
    /// True for `https://`.
    pub tls: bool,
    pub host: String,
    pub port: u16,
    /// HTTP basic credentials from `http://user:pass@host:port`.
    pub basic_auth: Option<(String, String)>,
    /// A service-account token, sent as a bearer token (it wins over basic credentials).
    pub token: Option<String>,
    /// A CA certificate (PEM file) to verify an `https://` server with,
    /// besides the system roots (`api_server.ca_cert`).
    pub ca_cert: Option<PathBuf>,
    pub source: EndpointSource,
}

impl fmt::Debug for Endpoint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Endpoint({} {})", self.display(), self.source)
    }
}

/// An endpoint that could not be used; names where it came from.
#[derive(Debug)]
pub enum EndpointError {
    Invalid { origin: String, value: String, problem: String },
    Config(ConfigError),
}

impl fmt::Display for EndpointError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            EndpointError::Invalid { origin, value, problem } => write!(
                f,
                "invalid API server endpoint {value:?} in {origin}: {problem}. \
                 Expected http[s]://[user:password@]host[:port]."
            ),
            EndpointError::Config(err) => err.fmt(f),
        }
    }
}

impl std::error::Error for EndpointError {}

impl From<ConfigError> for EndpointError {
    fn from(err: ConfigError) -> Self {
        EndpointError::Config(err)
    }
}

impl Endpoint {
    /// Resolves the endpoint from the environment, the config file, or the default.
    pub fn resolve() -> Result<Endpoint, EndpointError> {
        let mut endpoint = Endpoint::resolve_address()?;
        let config = SkyConfig::load()?;
        endpoint.ca_cert = config.api_server_str("ca_cert")?.map(PathBuf::from);
        endpoint.token = match std::env::var(TOKEN_ENV) {
            Ok(token) if !token.trim().is_empty() => Some(token.trim().to_string()),
            _ => config.api_server_str("service_account_token")?,
        };
        Ok(endpoint)
    }

    fn resolve_address() -> Result<Endpoint, EndpointError> {
        if let Ok(value) = std::env::var(ENDPOINT_ENV)
            && !value.trim().is_empty()
        {
            return Endpoint::parse(&value, EndpointSource::Env).map_err(|problem| EndpointError::Invalid {
                origin: ENDPOINT_ENV.into(),
                value,
                problem,
            });
        }
        let config = SkyConfig::load()?;
        if let Some(value) = config.api_server_str("endpoint")? {
            let path = config.path().to_path_buf();
            return Endpoint::parse(&value, EndpointSource::ConfigFile(path.clone())).map_err(|problem| {
                EndpointError::Invalid {
                    origin: format!("api_server.endpoint of {}", path.display()),
                    value,
                    problem,
                }
            });
        }
        Endpoint::local_default()
    }

    /// `http://127.0.0.1:46580`, or the port in `SKYPILOT_API_SERVER_LOCAL_PORT`.
    pub fn local_default() -> Result<Endpoint, EndpointError> {
        let port = match std::env::var(LOCAL_PORT_ENV) {
            Ok(value) => value.trim().parse::<u16>().ok().filter(|p| *p != 0).ok_or_else(|| {
                EndpointError::Invalid {
                    origin: LOCAL_PORT_ENV.into(),
                    value: value.clone(),
                    problem: "not a port number from 1 to 65535".into(),
                }
            })?,
            Err(_) => DEFAULT_PORT,
        };
        Ok(Endpoint {
            tls: false,
            host: "127.0.0.1".into(),
            port,
            basic_auth: None,
            token: None,
            ca_cert: None,
            source: EndpointSource::LocalDefault,
        })
    }

    /// Parses `http[s]://[user:password@]host[:port][/]`.
    pub fn parse(url: &str, source: EndpointSource) -> Result<Endpoint, String> {
        let url = url.trim();
        let (tls, rest) = if let Some(rest) = url.strip_prefix("http://") {
            (false, rest)
        } else if let Some(rest) = url.strip_prefix("https://") {
            (true, rest)
        } else {
            return Err("it must start with http:// or https://".into());
        };
        let (authority, path) = rest.split_once('/').unwrap_or((rest, ""));
        if !path.is_empty() {
            return Err(format!("a path (/{path}) is not supported, give only the host and port"));
        }
        let (userinfo, hostport) = match authority.rsplit_once('@') {
            Some((userinfo, hostport)) => (Some(userinfo), hostport),
            None => (None, authority),
        };
        let basic_auth = userinfo
            .map(|info| {
                let (user, pass) = info.split_once(':').unwrap_or((info, ""));
                if user.is_empty() {
                    return Err("the user name before '@' is empty".to_string());
                }
                Ok((percent_decode(user)?, percent_decode(pass)?))
            })
            .transpose()?;
        let (host, port) = split_host_port(hostport)?;
        let port = match port {
            Some(port) => port,
            None if tls => 443,
            None => 80,
        };
        Ok(Endpoint { tls, host, port, basic_auth, token: None, ca_cert: None, source })
    }

    /// The URI to connect to, without credentials.
    pub fn uri(&self) -> String {
        let scheme = if self.tls { "https" } else { "http" };
        if self.host.contains(':') {
            format!("{scheme}://[{}]:{}", self.host, self.port)
        } else {
            format!("{scheme}://{}:{}", self.host, self.port)
        }
    }

    /// The endpoint as shown to users: the password masked.
    pub fn display(&self) -> String {
        match &self.basic_auth {
            None => self.uri(),
            Some((user, _)) => {
                let uri = self.uri();
                let (scheme, rest) = uri.split_once("://").unwrap_or(("http", &uri));
                format!("{scheme}://{user}:****@{rest}")
            }
        }
    }

    /// Whether this is the local default server, which the CLI may start.
    pub fn is_local_default(&self) -> bool {
        self.source == EndpointSource::LocalDefault
    }
}

fn split_host_port(hostport: &str) -> Result<(String, Option<u16>), String> {
    let (host, port) = if let Some(rest) = hostport.strip_prefix('[') {
        let (host, after) = rest.split_once(']').ok_or("an IPv6 address misses its ']'")?;
        match after.strip_prefix(':') {
            Some(port) => (host, Some(port)),
            None if after.is_empty() => (host, None),
            None => return Err(format!("unexpected {after:?} after the IPv6 address")),
        }
    } else {
        match hostport.split_once(':') {
            Some((host, port)) => (host, Some(port)),
            None => (hostport, None),
        }
    };
    if host.is_empty() {
        return Err("the host is empty".into());
    }
    if !host.chars().all(|c| c.is_ascii_alphanumeric() || "-._:".contains(c)) {
        return Err(format!("{host:?} is not a valid host name"));
    }
    let port = port
        .map(|p| {
            p.parse::<u16>()
                .ok()
                .filter(|p| *p != 0)
                .ok_or_else(|| format!("{p:?} is not a port number from 1 to 65535"))
        })
        .transpose()?;
    Ok((host.to_string(), port))
}

fn percent_decode(text: &str) -> Result<String, String> {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' {
            let hex = text.get(i + 1..i + 3).ok_or("a '%' escape is cut short")?;
            out.push(u8::from_str_radix(hex, 16).map_err(|_| format!("bad '%' escape %{hex}"))?);
            i += 3;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    String::from_utf8(out).map_err(|_| "credentials are not UTF-8".to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(url: &str) -> Result<Endpoint, String> {
        Endpoint::parse(url, EndpointSource::Env)
    }

    #[test]
    fn basic_credentials_are_split_off_and_masked() {
        let ep = parse("http://skypilot:p%40ss@1.2.3.4:30050").unwrap();
        assert_eq!(ep.basic_auth, Some(("skypilot".into(), "p@ss".into())));
        assert_eq!(ep.uri(), "http://1.2.3.4:30050");
        assert_eq!(ep.display(), "http://skypilot:****@1.2.3.4:30050");
    }

    #[test]
    fn default_ports_follow_the_scheme() {
        assert_eq!(parse("https://api.example.com").unwrap().port, 443);
        assert_eq!(parse("http://api.example.com/").unwrap().port, 80);
        assert_eq!(parse("http://[::1]:9000").unwrap().uri(), "http://[::1]:9000");
    }

    #[test]
    fn malformed_endpoints_say_what_is_wrong() {
        assert!(parse("127.0.0.1:46580").unwrap_err().contains("http://"));
        assert!(parse("http://host:99999").unwrap_err().contains("port"));
        assert!(parse("http://:80").unwrap_err().contains("host"));
        assert!(parse("http://h:1/api").unwrap_err().contains("path"));
    }
}
