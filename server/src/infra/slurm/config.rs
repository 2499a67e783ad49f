//! SkyPilot's Slurm configuration, `~/.slurm/config`: one `Host` block per
//! Slurm cluster, in SSH-config style, naming the cluster's login node and
//! how to log in to it. A `Host *` block gives defaults to the others.
//!
//! ```text
//! Host mycluster
//!     HostName login.mycluster.example.com
//!     User alice
//!     IdentityFile ~/.ssh/id_ed25519
//!     Port 22
//! ```
//!
//! Every error names the file's line and the fix.

use std::path::Path;

use crate::infra::ssh::pools::{Host, expand, is_pool_name};

/// One Slurm cluster: its name (`slurm/<name>`) and its login node.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SlurmCluster {
    pub name: String,
    pub login: Host,
}

/// Keywords of SSH's configuration that this server cannot honour, with why.
const REFUSED: &[(&str, &str)] = &[
    ("password", "password login is not supported: use IdentityFile"),
    ("proxycommand", "not supported: put the proxy in the server user's ~/.ssh/config for the HostName"),
    ("proxyjump", "not supported: put the jump host in the server user's ~/.ssh/config for the HostName"),
];

/// Reads the clusters in `path`. `home` expands `~/` in identity files;
/// `default_user` logs in where a block names no `User`.
pub fn load(path: &Path, home: &Path, default_user: &str) -> Result<Vec<SlurmCluster>, String> {
    let text = std::fs::read_to_string(path)
        .map_err(|err| format!("cannot read the Slurm configuration {}: {err}", path.display()))?;
    parse(&text, home, default_user).map_err(|err| format!("Slurm configuration {}: {err}", path.display()))
}

/// The clusters of a configuration's text, in the order of their blocks.
pub fn parse(text: &str, home: &Path, default_user: &str) -> Result<Vec<SlurmCluster>, String> {
    // (name, line of its Host, fields given) per block; "*" holds the defaults.
    let mut blocks: Vec<(String, usize, Vec<Field>)> = Vec::new();
    for (index, raw) in text.lines().enumerate() {
        let line_no = index + 1;
        let line = raw.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let (keyword, value) = split_keyword(line).ok_or_else(|| {
            format!("line {line_no}: expected `Keyword value` (as in `HostName login.example.com`)")
        })?;
        let keyword = keyword.to_ascii_lowercase();
        if keyword == "host" {
            let names: Vec<&str> = value.split_whitespace().collect();
            let [name] = names.as_slice() else {
                return Err(format!("line {line_no}: give one name per Host block (the cluster's name)"));
            };
            if *name != "*" && !is_pool_name(name) {
                return Err(format!(
                    "line {line_no}: Host {name:?}: cluster names hold letters, digits, '-' and '_' (at most \
                     63), starting with a letter"
                ));
            }
            if blocks.iter().any(|(known, _, _)| known.eq_ignore_ascii_case(name)) {
                return Err(format!("line {line_no}: Host {name:?} is given twice"));
            }
            blocks.push((name.to_ascii_lowercase(), line_no, Vec::new()));
            continue;
        }
        if let Some((_, why)) = REFUSED.iter().find(|(refused, _)| *refused == keyword) {
            return Err(format!("line {line_no}: {keyword}: {why}"));
        }
        let Some((_, _, fields)) = blocks.last_mut() else {
            return Err(format!("line {line_no}: {keyword} comes before any `Host NAME` line"));
        };
        fields.push((keyword, value.to_string(), line_no));
    }
    let defaults = blocks.iter().find(|(name, _, _)| name == "*").map(|(_, _, fields)| fields.clone());
    blocks
        .iter()
        .filter(|(name, _, _)| name != "*")
        .map(|(name, line, fields)| {
            let mut all = defaults.clone().unwrap_or_default();
            all.extend(fields.iter().cloned());
            cluster(name, *line, &all, home, default_user)
        })
        .collect()
}

/// A keyword (lowercase), its value, and the line it is on.
type Field = (String, String, usize);

/// `Keyword value` or `Keyword=value`.
fn split_keyword(line: &str) -> Option<(&str, &str)> {
    let split = line.find(|c: char| c.is_whitespace() || c == '=')?;
    let (keyword, rest) = line.split_at(split);
    let value = rest.trim_start().strip_prefix('=').unwrap_or(rest).trim();
    let value = value.strip_prefix('"').and_then(|v| v.strip_suffix('"')).unwrap_or(value);
    (!value.is_empty()).then_some((keyword, value))
}

fn cluster(
    name: &str,
    line: usize,
    fields: &[Field],
    home: &Path,
    default_user: &str,
) -> Result<SlurmCluster, String> {
    // As in SSH's configuration, the last value given wins over a default
    // given earlier (the block's own fields come after `Host *`'s).
    let field = |keyword: &str| fields.iter().rev().find(|(k, _, _)| k == keyword).map(|(_, v, l)| (v, *l));
    let address = field("hostname").map_or(name.to_string(), |(value, _)| value.clone());
    let user = field("user").map_or(default_user.to_string(), |(value, _)| value.clone());
    let port = match field("port") {
        None => 22,
        Some((value, line)) => match value.parse::<u16>() {
            Ok(port) if port > 0 => port,
            _ => return Err(format!("line {line}: Port {value:?} is not a port (1 to 65535)")),
        },
    };
    let identity_file = field("identityfile").map(|(value, _)| expand(value, home));
    let plain = |text: &str| {
        !text.is_empty() && !text.starts_with('-') && text.chars().all(|c| c.is_ascii_graphic() && c != '@')
    };
    if !plain(&address) {
        return Err(format!("Host {name} (line {line}): HostName {address:?} is not a host address or name"));
    }
    if !plain(&user) {
        return Err(format!("Host {name} (line {line}): User {user:?} is not a user name"));
    }
    Ok(SlurmCluster { name: name.to_string(), login: Host { address, user, port, identity_file } })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parsed(text: &str) -> Result<Vec<SlurmCluster>, String> {
        parse(text, Path::new("/home/me"), "me")
    }

    #[test]
    fn blocks_name_clusters_and_host_star_gives_their_defaults() {
        let clusters = parsed(
            "# the team's clusters\nHost *\n  User alice\n  IdentityFile ~/.ssh/id_slurm\n\n\
             Host Big-GPU\n  HostName login.example.com\n  Port=2222\n\nHost small\n  User bob\n",
        )
        .unwrap();
        assert_eq!(clusters.len(), 2);
        assert_eq!(clusters[0].name, "big-gpu");
        assert_eq!(clusters[0].login.address, "login.example.com");
        assert_eq!(clusters[0].login.port, 2222);
        assert_eq!(clusters[0].login.user, "alice");
        assert_eq!(clusters[0].login.identity_file.as_deref(), Some(Path::new("/home/me/.ssh/id_slurm")));
        assert_eq!(clusters[1].login.address, "small", "HostName defaults to the Host's name");
        assert_eq!(clusters[1].login.user, "bob");
        assert_eq!(clusters[1].login.port, 22);
    }

    #[test]
    fn bad_configurations_name_the_line_and_the_fix() {
        for (text, expected) in [
            ("User alice\n", "line 1: user comes before any `Host NAME` line"),
            ("Host a b\n", "line 1: give one name per Host block"),
            ("Host 9lives\n", "line 1: Host \"9lives\": cluster names"),
            ("Host a\nHost A\n", "line 2: Host \"A\" is given twice"),
            ("Host a\n  Port 70000\n", "line 2: Port \"70000\" is not a port"),
            ("Host a\n  Port\n", "line 2: expected `Keyword value`"),
            ("Host a\n  ProxyJump gw\n", "line 2: proxyjump: not supported"),
            ("Host a\n  HostName -oProxyCommand=x\n", "HostName \"-oProxyCommand=x\" is not a host"),
            ("Host a\n  User a@b\n", "User \"a@b\" is not a user name"),
        ] {
            let err = parsed(text).unwrap_err();
            assert!(err.contains(expected), "{text:?}: {err}");
        }
        assert_eq!(parsed("# nothing yet\n").unwrap(), Vec::new());
    }
}
