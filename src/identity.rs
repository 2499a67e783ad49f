//! Who the caller is: the user name from the environment and a stable user id
//! kept in `~/.sky/user_hash`, as SkyPilot does.

use std::{fs, io, io::Read, path::Path};

use crate::config::sky_dir;

/// A user as a client presents itself.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Identity {
    pub name: String,
    pub id: String,
}

impl Identity {
    /// The current user: `$USER` (else `$LOGNAME`, else "user") and the id in
    /// `~/.sky/user_hash`, created on first use.
    pub fn current() -> io::Result<Identity> {
        let name = std::env::var("USER")
            .or_else(|_| std::env::var("LOGNAME"))
            .ok()
            .filter(|name| !name.trim().is_empty())
            .unwrap_or_else(|| "user".to_string());
        let id = user_hash(&sky_dir().join("user_hash"))?;
        Ok(Identity { name, id })
    }
}

/// Reads the user id from `path`, or creates it: 8 random hex digits.
fn user_hash(path: &Path) -> io::Result<String> {
    if let Ok(existing) = fs::read_to_string(path) {
        let existing = existing.trim();
        if !existing.is_empty() {
            return Ok(existing.to_string());
        }
    }
    let id = random_hex(4)?;
    if let Some(parent) = path.parent() {
        fs::create_dir_all(parent)?;
    }
    // Another process may have raced us: write to a temporary file and keep
    // whichever id reached the final path first.
    let tmp = path.with_extension(format!("tmp{}", std::process::id()));
    fs::write(&tmp, &id)?;
    match fs::hard_link(&tmp, path) {
        Ok(()) => {
            fs::remove_file(&tmp)?;
            Ok(id)
        }
        Err(err) if err.kind() == io::ErrorKind::AlreadyExists => {
            fs::remove_file(&tmp)?;
            Ok(fs::read_to_string(path)?.trim().to_string())
        }
        Err(err) => {
            let _ = fs::remove_file(&tmp);
            Err(err)
        }
    }
}

/// `n` random bytes as hex, from the system's random source.
pub fn random_hex(n: usize) -> io::Result<String> {
    let mut bytes = vec![0u8; n];
    fs::File::open("/dev/urandom")?.read_exact(&mut bytes)?;
    Ok(hex(&bytes))
}

/// Lowercase hex of `bytes`.
pub fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn user_hash_is_created_once_and_then_kept() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("user_hash");
        let first = user_hash(&path).unwrap();
        assert_eq!(first.len(), 8);
        assert!(first.chars().all(|c| c.is_ascii_hexdigit()));
        assert_eq!(user_hash(&path).unwrap(), first);
    }
}
