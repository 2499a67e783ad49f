//! Terminal output helpers: the output formats of listing commands,
//! SkyPilot-style tables, relative times, and the fields of a request shown
//! to users.

use std::time::{SystemTime, UNIX_EPOCH};

use skypilot_api::proto::skypilot::v1::RequestMetadata;

/// `text` with every control character written as its escape (`\u{1b}`,
/// `\n` ...), so that it prints as one inert line.
pub fn printable(text: &str) -> String {
    if !text.chars().any(char::is_control) {
        return text.to_string();
    }
    text.chars()
        .map(|c| if c.is_control() { c.escape_default().to_string() } else { c.to_string() })
        .collect()
}

/// Output formats of listing commands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Format {
    Table,
    Json,
}

/// Left-aligned columns separated by two spaces, like SkyPilot's tables.
/// Control characters in cells (names come from other users) are shown
/// escaped, so that no cell can move the cursor or retitle the terminal.
pub fn table(headers: &[&str], rows: &[Vec<String>]) -> String {
    let rows: Vec<Vec<String>> =
        rows.iter().map(|row| row.iter().map(|cell| printable(cell)).collect()).collect();
    let mut widths: Vec<usize> = headers.iter().map(|h| h.chars().count()).collect();
    for row in &rows {
        for (width, cell) in widths.iter_mut().zip(row) {
            *width = (*width).max(cell.chars().count());
        }
    }
    let mut out = String::new();
    let mut line = |cells: Vec<&str>| {
        let mut text = String::new();
        for (i, (cell, width)) in cells.iter().zip(&widths).enumerate() {
            if i + 1 == cells.len() {
                text.push_str(cell);
            } else {
                text.push_str(&format!("{cell:<width$}  "));
            }
        }
        out.push_str(text.trim_end());
        out.push('\n');
    };
    line(headers.to_vec());
    for row in &rows {
        line(row.iter().map(String::as_str).collect());
    }
    out
}

/// "just now", "5 secs ago", "3 mins ago", "2 hrs ago", "4 days ago".
pub fn ago(timestamp: Option<&prost_types::Timestamp>) -> String {
    let Some(ts) = timestamp else {
        return "-".into();
    };
    let now = SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_secs() as i64).unwrap_or(0);
    let secs = (now - ts.seconds).max(0);
    let (n, unit) = match secs {
        0 => return "just now".into(),
        1..=59 => (secs, "sec"),
        60..=3599 => (secs / 60, "min"),
        3600..=86399 => (secs / 3600, "hr"),
        _ => (secs / 86400, "day"),
    };
    format!("{n} {unit}{} ago", if n == 1 { "" } else { "s" })
}

/// A span of seconds as the job tables show it: "42s", "3m 5s", "2h 10m".
pub fn duration_text(secs: i64) -> String {
    let secs = secs.max(0);
    if secs < 60 {
        format!("{secs}s")
    } else if secs < 3600 {
        format!("{}m {}s", secs / 60, secs % 60)
    } else {
        format!("{}h {}m", secs / 3600, secs % 3600 / 60)
    }
}

/// SkyPilot's spelling of a request's state.
pub fn state(metadata: &RequestMetadata) -> &'static str {
    skypilot_api::names::request_state(metadata.state())
}

/// Seconds since the epoch as a float, for JSON output.
pub fn epoch_seconds(timestamp: Option<&prost_types::Timestamp>) -> Option<f64> {
    timestamp.map(|ts| ts.seconds as f64 + f64::from(ts.nanos) / 1e9)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn control_characters_in_cells_are_printed_escaped() {
        let rows = vec![vec!["\u{1b}]0;pwned\u{7}".to_string(), "ok".to_string()]];
        let out = table(&["NAME", "STATUS"], &rows);
        assert!(!out.chars().any(|c| c.is_control() && c != '\n'), "{out:?}");
        assert!(out.contains("\\u{1b}]0;pwned\\u{7}"), "{out}");
        assert_eq!(printable("plain"), "plain");
    }

    #[test]
    fn table_columns_align_and_trailing_space_is_trimmed() {
        let text = table(&["ID", "Name"], &[vec!["abc".into(), "sky.check".into()]]);
        assert_eq!(text, "ID   Name\nabc  sky.check\n");
    }

    #[test]
    fn relative_times_use_singular_and_plural() {
        let now = SystemTime::now().duration_since(UNIX_EPOCH).unwrap().as_secs() as i64;
        let at = |secs_ago: i64| prost_types::Timestamp { seconds: now - secs_ago, nanos: 0 };
        assert_eq!(ago(Some(&at(1))), "1 sec ago");
        assert_eq!(ago(Some(&at(125))), "2 mins ago");
        assert_eq!(ago(None), "-");
    }
}
