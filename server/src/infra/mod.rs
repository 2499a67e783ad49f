//! Where clusters run. For now the only infra is `local`, the API server's
//! own host; this module answers which infras exist and whether they work.

pub mod local;

use crate::error::{Error, Result};

/// Names of every infra this server knows.
pub const INFRAS: &[&str] = &["local"];

/// Whether one infra is usable, and why (not).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InfraStatus {
    pub name: &'static str,
    pub enabled: bool,
    /// What it offers when enabled, or why it is disabled.
    pub detail: String,
}

/// Checks that every name in `names` is a known infra; empty means all.
pub fn select(names: &[String]) -> Result<Vec<&'static str>> {
    if names.is_empty() {
        return Ok(INFRAS.to_vec());
    }
    names
        .iter()
        .map(|name| {
            let wanted = name.trim().to_ascii_lowercase();
            INFRAS.iter().copied().find(|known| *known == wanted).ok_or_else(|| {
                Error::invalid(
                    "infras",
                    format!("unknown infra {name:?}; this server supports: {}", INFRAS.join(", ")),
                )
            })
        })
        .collect()
}

/// Checks one infra.
pub fn check(name: &'static str) -> InfraStatus {
    match name {
        "local" => local::check(),
        _ => InfraStatus { name, enabled: false, detail: "not supported by this server".into() },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unknown_infra_names_are_refused_with_the_supported_list() {
        let err = select(&["aws".into()]).unwrap_err();
        assert!(err.message.contains("`infras`") && err.message.contains("local"), "{err}");
        assert_eq!(select(&["Local".into()]).unwrap(), ["local"]);
        assert_eq!(select(&[]).unwrap(), INFRAS);
    }
}
