//! SSH node pools as SkyPilot defines them (`~/.sky/ssh_node_pools.yaml`):
//! each pool names its hosts, as an address or `{ip, user, identity_file,
//! port}`, with pool-level `user`, `identity_file` and `port` defaults.
//!
//! ```yaml
//! my-box:
//!   user: ubuntu
//!   identity_file: ~/.ssh/id_ed25519
//!   hosts:
//!     - 10.0.0.5
//!     - ip: 10.0.0.6
//!       port: 2222
//! ```
//!
//! Every error names the file, the pool, the host and the field.

use std::path::{Path, PathBuf};

use serde_yaml::{Mapping, Value};

/// One pool of hosts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Pool {
    pub name: String,
    pub hosts: Vec<Host>,
}

/// One host of a pool, as the API server reaches it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Host {
    /// An address or a name the server's SSH configuration resolves.
    pub address: String,
    pub user: String,
    pub port: u16,
    /// None: the server's SSH agent or default keys.
    pub identity_file: Option<PathBuf>,
}

impl Host {
    /// `user@address:port`, as messages show it.
    pub fn label(&self) -> String {
        format!("{}@{}:{}", self.user, self.address, self.port)
    }
}

const POOL_FIELDS: &[&str] = &["hosts", "user", "identity_file", "port"];
const HOST_FIELDS: &[&str] = &["ip", "user", "identity_file", "port"];
/// SkyPilot fields this server refuses, with why.
const REFUSED_FIELDS: &[(&str, &str)] = &[("password", "password login is not supported: use identity_file")];

/// Reads the pools in `path`. `home` expands `~/` in identity files;
/// `default_user` is the user of hosts that name none.
pub fn load(path: &Path, home: &Path, default_user: &str) -> Result<Vec<Pool>, String> {
    let text = std::fs::read_to_string(path)
        .map_err(|err| format!("cannot read SSH node pools file {}: {err}", path.display()))?;
    parse(&text, home, default_user).map_err(|err| format!("SSH node pools file {}: {err}", path.display()))
}

/// The pools of a pool file's text.
pub fn parse(text: &str, home: &Path, default_user: &str) -> Result<Vec<Pool>, String> {
    let value: Value = serde_yaml::from_str(text).map_err(|err| format!("not valid YAML: {err}"))?;
    let pools = match value {
        Value::Null => return Ok(Vec::new()),
        Value::Mapping(pools) => pools,
        _ => return Err("expected a mapping from pool names to pools".into()),
    };
    let mut parsed = Vec::new();
    for (name, pool) in &pools {
        let name = name.as_str().ok_or("pool names must be strings")?;
        if !is_pool_name(name) {
            return Err(format!(
                "pool {name:?}: names may hold letters, digits, '-' and '_' (at most 63), starting with a letter"
            ));
        }
        let pool = parse_pool(pool, home, default_user).map_err(|err| format!("pool {name:?}: {err}"))?;
        parsed.push(Pool { name: name.to_string(), hosts: pool });
    }
    Ok(parsed)
}

fn parse_pool(value: &Value, home: &Path, default_user: &str) -> Result<Vec<Host>, String> {
    let pool = value.as_mapping().ok_or("expected a mapping with `hosts`")?;
    check_fields(pool, POOL_FIELDS)?;
    let defaults = Host {
        address: String::new(),
        user: string_field(pool, "user")?.unwrap_or_else(|| default_user.to_string()),
        port: port_field(pool)?.unwrap_or(22),
        identity_file: string_field(pool, "identity_file")?.map(|file| expand(&file, home)),
    };
    let hosts = match pool.get("hosts") {
        Some(Value::Sequence(hosts)) if !hosts.is_empty() => hosts,
        Some(Value::Sequence(_)) | None => return Err("field `hosts`: list at least one host".into()),
        Some(_) => {
            return Err(
                "field `hosts`: expected a list of addresses or {ip, user, identity_file, port}".into()
            );
        }
    };
    let mut parsed: Vec<Host> = Vec::new();
    for (index, host) in hosts.iter().enumerate() {
        let host = parse_host(host, &defaults, home).map_err(|err| format!("host {}: {err}", index + 1))?;
        if parsed.iter().any(|other| other.address == host.address && other.port == host.port) {
            return Err(format!("host {} ({}): listed twice", index + 1, host.label()));
        }
        parsed.push(host);
    }
    Ok(parsed)
}

fn parse_host(value: &Value, defaults: &Host, home: &Path) -> Result<Host, String> {
    let host = match value {
        Value::String(address) => Host { address: address.clone(), ..defaults.clone() },
        Value::Mapping(fields) => {
            check_fields(fields, HOST_FIELDS)?;
            Host {
                address: string_field(fields, "ip")?.ok_or("field `ip`: missing")?,
                user: string_field(fields, "user")?.unwrap_or_else(|| defaults.user.clone()),
                port: port_field(fields)?.unwrap_or(defaults.port),
                identity_file: match string_field(fields, "identity_file")? {
                    Some(file) => Some(expand(&file, home)),
                    None => defaults.identity_file.clone(),
                },
            }
        }
        _ => return Err("expected an address or {ip, user, identity_file, port}".into()),
    };
    let plain = |text: &str| {
        !text.is_empty() && !text.starts_with('-') && text.chars().all(|c| c.is_ascii_graphic() && c != '@')
    };
    if !plain(&host.address) {
        return Err(format!("field `ip`: {:?} is not a host address or name", host.address));
    }
    if !plain(&host.user) {
        return Err(format!("field `user`: {:?} is not a user name", host.user));
    }
    Ok(host)
}

fn check_fields(fields: &Mapping, known: &[&str]) -> Result<(), String> {
    for key in fields.keys() {
        let key = key.as_str().ok_or("field names must be strings")?;
        if let Some((_, why)) = REFUSED_FIELDS.iter().find(|(field, _)| *field == key) {
            return Err(format!("field `{key}`: {why}"));
        }
        if !known.contains(&key) {
            return Err(format!("unknown field `{key}` (known: {})", known.join(", ")));
        }
    }
    Ok(())
}

fn string_field(fields: &Mapping, name: &str) -> Result<Option<String>, String> {
    match fields.get(name) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(text)) if !text.trim().is_empty() => Ok(Some(text.trim().to_string())),
        Some(Value::Number(number)) if name == "ip" => Ok(Some(number.to_string())),
        Some(_) => Err(format!("field `{name}`: expected a non-empty string")),
    }
}

fn port_field(fields: &Mapping) -> Result<Option<u16>, String> {
    match fields.get("port") {
        None | Some(Value::Null) => Ok(None),
        Some(Value::Number(number)) => match number.as_u64().and_then(|port| u16::try_from(port).ok()) {
            Some(port) if port > 0 => Ok(Some(port)),
            _ => Err(format!("field `port`: {number} is not a port (1 to 65535)")),
        },
        Some(_) => Err("field `port`: expected a number from 1 to 65535".into()),
    }
}

/// `~/x` under `home`; other paths as they are.
pub(crate) fn expand(path: &str, home: &Path) -> PathBuf {
    match path.strip_prefix("~/") {
        Some(rest) => home.join(rest),
        None => PathBuf::from(path),
    }
}

pub(crate) fn is_pool_name(name: &str) -> bool {
    name.len() <= 63
        && name.starts_with(|c: char| c.is_ascii_alphabetic())
        && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parsed(text: &str) -> Result<Vec<Pool>, String> {
        parse(text, Path::new("/home/me"), "me")
    }

    #[test]
    fn hosts_take_the_pools_defaults_and_their_own_fields() {
        let pools = parsed(
            "gpus:\n  user: ubuntu\n  identity_file: ~/.ssh/pool\n  hosts:\n    - 10.0.0.5\n    - ip: 10.0.0.6\n      \
             port: 2222\n      user: admin\n      identity_file: /keys/six\ncpus:\n  hosts: [box.internal]\n",
        )
        .unwrap();
        assert_eq!(pools.len(), 2);
        assert_eq!(pools[0].name, "gpus");
        let key = Some(PathBuf::from("/home/me/.ssh/pool"));
        let first = Host { address: "10.0.0.5".into(), user: "ubuntu".into(), port: 22, identity_file: key };
        assert_eq!(pools[0].hosts[0], first);
        assert_eq!(pools[0].hosts[1].label(), "admin@10.0.0.6:2222");
        assert_eq!(pools[0].hosts[1].identity_file, Some(PathBuf::from("/keys/six")));
        assert_eq!(pools[1].hosts[0].label(), "me@box.internal:22");
        assert!(parsed("").unwrap().is_empty());
    }

    #[test]
    fn bad_files_name_the_pool_the_host_and_the_field() {
        for (text, expected) in [
            ("gpus: [1, 2]", "pool \"gpus\": expected a mapping"),
            ("gpus:\n  hosts: []", "pool \"gpus\": field `hosts`: list at least one host"),
            (
                "gpus:\n  hosts:\n    - ip: 10.0.0.1\n      port: 70000",
                "pool \"gpus\": host 1: field `port`: 70000",
            ),
            ("gpus:\n  hosts:\n    - a\n    - user: x", "pool \"gpus\": host 2: field `ip`: missing"),
            ("gpus:\n  hosts:\n    - ip: a\n      password: x", "host 1: field `password`: password login"),
            ("gpus:\n  hosts: [a]\n  zone: x", "pool \"gpus\": unknown field `zone`"),
            ("gpus:\n  hosts: [a, a]", "host 2 (me@a:22): listed twice"),
            ("gpus:\n  hosts: ['-oProxyCommand=x']", "host 1: field `ip`"),
            ("9lives:\n  hosts: [a]", "pool \"9lives\": names may hold"),
            ("gpus: {hosts: [a]", "not valid YAML"),
        ] {
            let err = parsed(text).unwrap_err();
            assert!(err.contains(expected), "{text:?}: {err}");
        }
    }
}
