//! What CLI tests share: the outcome of one `sky` run and its assertions.
#![allow(dead_code)]

use std::process::Output;

/// A finished `sky` run.
pub struct Run {
    pub code: i32,
    pub stdout: String,
    pub stderr: String,
}

impl From<Output> for Run {
    fn from(output: Output) -> Run {
        Run {
            code: output.status.code().unwrap_or(-1),
            stdout: String::from_utf8_lossy(&output.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&output.stderr).into_owned(),
        }
    }
}

impl Run {
    #[track_caller]
    pub fn ok(self) -> Run {
        self.code(0)
    }

    #[track_caller]
    pub fn code(self, expected: i32) -> Run {
        assert_eq!(self.code, expected, "stdout:\n{}\nstderr:\n{}", self.stdout, self.stderr);
        self
    }

    /// Failed, and said why on stderr.
    #[track_caller]
    pub fn fails(self) -> Run {
        assert_ne!(self.code, 0, "unexpected success; stdout:\n{}", self.stdout);
        assert!(!self.stderr.trim().is_empty(), "a failure must say why");
        self
    }
}
