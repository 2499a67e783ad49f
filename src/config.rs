//! `~/.sky/skyconfig.yaml`: reading the keys the client needs and editing the
//! `api_server` section while keeping every other key of the file.

use std::{
    fmt, fs, io,
    path::{Path, PathBuf},
};

use serde_yaml::{Mapping, Value};

/// `~/.sky`: where the client keeps its config, user id and local server data.
pub fn sky_dir() -> PathBuf {
    let home = std::env::var_os("HOME").unwrap_or_else(|| "/".into());
    PathBuf::from(home).join(".sky")
}

/// `~/.sky/skyconfig.yaml`.
pub fn config_path() -> PathBuf {
    sky_dir().join("skyconfig.yaml")
}

/// A problem with the config file; every variant names the file.
#[derive(Debug)]
pub enum ConfigError {
    Read { path: PathBuf, source: io::Error },
    Parse { path: PathBuf, message: String },
    InvalidKey { path: PathBuf, key: String, expected: &'static str },
    Write { path: PathBuf, source: io::Error },
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ConfigError::Read { path, source } => {
                write!(f, "cannot read {}: {source}", path.display())
            }
            ConfigError::Parse { path, message } => {
                write!(f, "{} is not valid YAML: {message}. Fix or remove the file.", path.display())
            }
            ConfigError::InvalidKey { path, key, expected } => write!(
                f,
                "invalid `{key}` in {}: expected {expected}. Fix the key or remove it.",
                path.display()
            ),
            ConfigError::Write { path, source } => {
                write!(f, "cannot write {}: {source}", path.display())
            }
        }
    }
}

impl std::error::Error for ConfigError {}

/// The parsed config file. A missing file reads as an empty config.
#[derive(Debug, Clone)]
pub struct SkyConfig {
    path: PathBuf,
    root: Mapping,
}

impl SkyConfig {
    /// Loads `~/.sky/skyconfig.yaml`.
    pub fn load() -> Result<SkyConfig, ConfigError> {
        SkyConfig::load_from(&config_path())
    }

    /// Loads the config at `path`.
    pub fn load_from(path: &Path) -> Result<SkyConfig, ConfigError> {
        let text = match fs::read_to_string(path) {
            Ok(text) => text,
            Err(err) if err.kind() == io::ErrorKind::NotFound => String::new(),
            Err(source) => {
                return Err(ConfigError::Read { path: path.to_path_buf(), source });
            }
        };
        let value: Value = serde_yaml::from_str(&text)
            .map_err(|err| ConfigError::Parse { path: path.to_path_buf(), message: err.to_string() })?;
        let root = match value {
            Value::Null => Mapping::new(),
            Value::Mapping(map) => map,
            _ => {
                return Err(ConfigError::InvalidKey {
                    path: path.to_path_buf(),
                    key: "(top level)".into(),
                    expected: "a mapping of keys to values",
                });
            }
        };
        Ok(SkyConfig { path: path.to_path_buf(), root })
    }

    /// The file this config was read from.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// `api_server.<key>` as a string, if set.
    pub fn api_server_str(&self, key: &str) -> Result<Option<String>, ConfigError> {
        let Some(section) = self.root.get("api_server") else {
            return Ok(None);
        };
        let section = match section {
            Value::Null => return Ok(None),
            Value::Mapping(map) => map,
            _ => return Err(self.invalid("api_server", "a mapping (e.g. `endpoint: URL`)")),
        };
        match section.get(key) {
            None | Some(Value::Null) => Ok(None),
            Some(Value::String(s)) => Ok(Some(s.clone())),
            Some(_) => Err(self.invalid(&format!("api_server.{key}"), "a string")),
        }
    }

    /// Sets `api_server.<key>`, creating the section if needed.
    pub fn set_api_server(&mut self, key: &str, value: &str) -> Result<(), ConfigError> {
        let entry =
            self.root.entry(Value::from("api_server")).or_insert_with(|| Value::Mapping(Mapping::new()));
        if entry.is_null() {
            *entry = Value::Mapping(Mapping::new());
        }
        let Value::Mapping(section) = entry else {
            return Err(self.invalid("api_server", "a mapping (e.g. `endpoint: URL`)"));
        };
        section.insert(Value::from(key), Value::from(value));
        Ok(())
    }

    /// Removes `api_server.<key>` (and the section when it becomes empty);
    /// returns the removed value.
    pub fn remove_api_server(&mut self, key: &str) -> Option<Value> {
        let Some(Value::Mapping(section)) = self.root.get_mut("api_server") else {
            return None;
        };
        let removed = section.remove(key);
        if section.is_empty() {
            self.root.remove("api_server");
        }
        removed
    }

    /// Writes the config back atomically, readable only by its owner.
    pub fn save(&self) -> Result<(), ConfigError> {
        let write_err = |source| ConfigError::Write { path: self.path.clone(), source };
        let text = if self.root.is_empty() {
            String::new()
        } else {
            serde_yaml::to_string(&self.root).map_err(|err| write_err(io::Error::other(err.to_string())))?
        };
        if let Some(parent) = self.path.parent() {
            fs::create_dir_all(parent).map_err(write_err)?;
        }
        let tmp = self.path.with_extension("yaml.tmp");
        fs::write(&tmp, text).map_err(write_err)?;
        set_owner_only(&tmp).map_err(write_err)?;
        fs::rename(&tmp, &self.path).map_err(write_err)
    }

    fn invalid(&self, key: &str, expected: &'static str) -> ConfigError {
        ConfigError::InvalidKey { path: self.path.clone(), key: key.to_string(), expected }
    }
}

fn set_owner_only(path: &Path) -> io::Result<()> {
    use std::os::unix::fs::PermissionsExt;
    fs::set_permissions(path, fs::Permissions::from_mode(0o600))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn editing_api_server_keeps_other_keys() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("skyconfig.yaml");
        fs::write(&path, "kubernetes:\n  context: dev\napi_server:\n  other: x\n").unwrap();
        let mut config = SkyConfig::load_from(&path).unwrap();
        config.set_api_server("endpoint", "http://10.0.0.1:46580").unwrap();
        config.save().unwrap();

        let reread = SkyConfig::load_from(&path).unwrap();
        assert_eq!(reread.api_server_str("endpoint").unwrap().as_deref(), Some("http://10.0.0.1:46580"));
        assert_eq!(reread.api_server_str("other").unwrap().as_deref(), Some("x"));
        let text = fs::read_to_string(&path).unwrap();
        assert!(text.contains("context: dev"), "{text}");
    }

    #[test]
    fn removing_the_last_key_removes_the_section() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("skyconfig.yaml");
        fs::write(&path, "api_server:\n  endpoint: http://h:1\nfoo: 1\n").unwrap();
        let mut config = SkyConfig::load_from(&path).unwrap();
        assert!(config.remove_api_server("endpoint").is_some());
        config.save().unwrap();
        assert_eq!(fs::read_to_string(&path).unwrap().trim(), "foo: 1");
    }

    #[test]
    fn invalid_yaml_names_the_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("skyconfig.yaml");
        fs::write(&path, "api_server: [unclosed\n").unwrap();
        let err = SkyConfig::load_from(&path).unwrap_err().to_string();
        assert!(err.contains("skyconfig.yaml"), "{err}");
    }

    #[test]
    fn wrong_type_names_the_key() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("skyconfig.yaml");
        fs::write(&path, "api_server:\n  endpoint: [1, 2]\n").unwrap();
        let config = SkyConfig::load_from(&path).unwrap();
        let err = config.api_server_str("endpoint").unwrap_err().to_string();
        assert!(err.contains("api_server.endpoint"), "{err}");
    }
}
