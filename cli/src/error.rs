//! The CLI's error: a one-line message for stderr and an exit code.

use std::fmt;

use skypilot_api::{ClientError, config::ConfigError, endpoint::EndpointError};

/// Exit code of a command that failed.
pub const EXIT_FAILURE: u8 = 1;
/// Exit code when the user detached with Ctrl-C (the request goes on).
pub const EXIT_DETACHED: u8 = 130;

#[derive(Debug)]
pub struct CliError {
    pub message: String,
    pub exit_code: u8,
}

impl CliError {
    pub fn new(message: impl Into<String>) -> CliError {
        CliError { message: message.into(), exit_code: EXIT_FAILURE }
    }
}

impl fmt::Display for CliError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

impl From<ClientError> for CliError {
    fn from(err: ClientError) -> CliError {
        CliError::new(err.to_string())
    }
}

impl From<EndpointError> for CliError {
    fn from(err: EndpointError) -> CliError {
        CliError::new(err.to_string())
    }
}

impl From<ConfigError> for CliError {
    fn from(err: ConfigError) -> CliError {
        CliError::new(err.to_string())
    }
}

impl From<std::io::Error> for CliError {
    fn from(err: std::io::Error) -> CliError {
        CliError::new(err.to_string())
    }
}

pub type CliResult<T = ()> = Result<T, CliError>;
