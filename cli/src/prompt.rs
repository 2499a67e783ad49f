//! Questions for the user: a line of text, or a yes/no confirmation. Each is
//! asked on stderr and answered with a line on stdin; at the end of input the
//! answer is empty.

use std::io::Write;

use crate::error::CliResult;

/// The answer an empty line (or the end of input) gives to `confirm`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DefaultAnswer {
    /// `[Y/n]`: an empty answer is yes.
    Yes,
    /// `[y/N]`: an empty answer is no.
    No,
}

/// Asks `question` and returns the line answered, its line ending included.
pub fn line(question: &str) -> CliResult<String> {
    eprint!("{question}");
    std::io::stderr().flush()?;
    let mut answer = String::new();
    std::io::stdin().read_line(&mut answer)?;
    Ok(answer)
}

/// Asks `question` and returns the answer without surrounding whitespace.
pub fn ask(question: &str) -> CliResult<String> {
    Ok(line(question)?.trim().to_string())
}

/// Asks a yes/no `question`: "y" or "yes" (any case) is yes, an empty
/// answer is `default`, anything else is no.
pub fn confirm(question: &str, default: DefaultAnswer) -> CliResult<bool> {
    let choices = match default {
        DefaultAnswer::Yes => "[Y/n]",
        DefaultAnswer::No => "[y/N]",
    };
    Ok(means_yes(&ask(&format!("{question} {choices}: "))?, default))
}

fn means_yes(answer: &str, default: DefaultAnswer) -> bool {
    match answer.to_ascii_lowercase().as_str() {
        "" => default == DefaultAnswer::Yes,
        "y" | "yes" => true,
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_empty_answer_takes_the_default_and_only_y_or_yes_is_yes() {
        for default in [DefaultAnswer::Yes, DefaultAnswer::No] {
            assert_eq!(means_yes("", default), default == DefaultAnswer::Yes);
            for yes in ["y", "Y", "yes", "YES"] {
                assert!(means_yes(yes, default), "{yes}");
            }
            for no in ["n", "N", "no", "maybe"] {
                assert!(!means_yes(no, default), "{no}");
            }
        }
    }
}
