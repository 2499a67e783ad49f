//! Resource values as SkyPilot writes them: amounts ("2", "2+", 0.5) and
//! accelerators ("A100:2").

/// An amount per node: exactly `value`, or at least `value` ("N+").
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Amount {
    pub value: f64,
    pub at_least: bool,
}

/// Parses "2", "2.5", "2+".
pub fn parse_amount(text: &str) -> Result<Amount, String> {
    let text = text.trim();
    let (number, at_least) = match text.strip_suffix('+') {
        Some(number) => (number.trim(), true),
        None => (text, false),
    };
    let value: f64 =
        number.parse().map_err(|_| format!("{text:?} is not a number or \"N+\" (e.g. 4 or 4+)"))?;
    if !value.is_finite() || value <= 0.0 {
        return Err(format!("{text:?} must be more than 0"));
    }
    Ok(Amount { value, at_least })
}

/// GPUs per node.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Accelerators {
    pub name: String,
    pub count: u32,
}

/// Parses "A100" (one) or "A100:2".
pub fn parse_accelerators(text: &str) -> Result<Accelerators, String> {
    let text = text.trim();
    let (name, count) =
        match text.split_once(':') {
            Some((name, count)) => {
                let count =
                    count.trim().parse::<u32>().ok().filter(|c| *c > 0).ok_or_else(|| {
                        format!("{text:?}: the count after ':' must be a whole number above 0")
                    })?;
                (name.trim(), count)
            }
            None => (text, 1),
        };
    if name.is_empty() || !name.chars().all(|c| c.is_ascii_alphanumeric() || "-_.".contains(c)) {
        return Err(format!("{text:?} is not NAME or NAME:COUNT (e.g. A100:2)"));
    }
    Ok(Accelerators { name: name.to_string(), count })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn amounts_accept_exact_and_at_least_forms() {
        assert_eq!(parse_amount("2").unwrap(), Amount { value: 2.0, at_least: false });
        assert_eq!(parse_amount("0.5+").unwrap(), Amount { value: 0.5, at_least: true });
        assert!(parse_amount("two").is_err());
        assert!(parse_amount("0").is_err());
    }

    #[test]
    fn accelerators_default_to_one() {
        assert_eq!(parse_accelerators("A100").unwrap().count, 1);
        assert_eq!(parse_accelerators("H100:8").unwrap(), Accelerators { name: "H100".into(), count: 8 });
        assert!(parse_accelerators("A100:0").is_err());
        assert!(parse_accelerators("").is_err());
    }
}
