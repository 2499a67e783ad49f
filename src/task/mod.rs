//! SkyPilot task YAML: parsing into a `TaskSpec`, with errors that name the
//! field path (or the line and column for malformed YAML), command-line
//! overrides, and the checks shared by the CLI and the server.

#[cfg(test)]
mod fuzz;
mod parse;
mod values;

use std::fmt;

pub use parse::{MAX_PIPELINE_TASKS, Pipeline, parse_pipeline_yaml, parse_task_yaml};
pub use values::{Accelerators, Amount, parse_accelerators, parse_amount};

use crate::proto::skypilot::v1::{JobRecovery, TaskSpec};

/// A task that cannot be used; the message names the field and the fix.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TaskError(pub String);

impl fmt::Display for TaskError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for TaskError {}

pub(crate) fn err<T>(message: impl Into<String>) -> Result<T, TaskError> {
    Err(TaskError(message.into()))
}

/// Command-line settings that override the YAML (SkyPilot's task options).
#[derive(Debug, Clone, Default)]
pub struct Overrides {
    pub name: Option<String>,
    pub workdir: Option<String>,
    pub num_nodes: Option<i32>,
    pub cpus: Option<String>,
    pub memory: Option<String>,
    pub gpus: Option<String>,
    pub infra: Option<String>,
    /// `KEY=VALUE` pairs (from --env and --env-file), later ones win.
    pub envs: Vec<(String, String)>,
    pub secrets: Vec<(String, String)>,
}

impl Overrides {
    /// Applies the overrides, then checks that no env or secret is still
    /// required (declared `null`) and that the resources are well-formed.
    pub fn apply(&self, mut task: TaskSpec, required: &[String]) -> Result<TaskSpec, TaskError> {
        if let Some(name) = &self.name {
            task.name = name.clone();
        }
        if let Some(workdir) = &self.workdir {
            task.workdir = workdir.clone();
        }
        if let Some(nodes) = self.num_nodes {
            task.num_nodes = nodes;
        }
        let resources = task.resources.get_or_insert_with(Default::default);
        if let Some(cpus) = &self.cpus {
            resources.cpus = cpus.clone();
        }
        if let Some(memory) = &self.memory {
            resources.memory = memory.clone();
        }
        if let Some(gpus) = &self.gpus {
            resources.accelerators = gpus.clone();
        }
        if let Some(infra) = &self.infra {
            resources.infra = infra.clone();
        }
        for (key, value) in &self.envs {
            task.envs.insert(key.clone(), value.clone());
        }
        for (key, value) in &self.secrets {
            task.secrets.insert(key.clone(), value.clone());
        }
        for key in required {
            if !task.envs.contains_key(key) && !task.secrets.contains_key(key) {
                return err(format!(
                    "`envs.{key}` is required (declared null in the task YAML): pass it with --env {key}=VALUE"
                ));
            }
        }
        validate(&task)?;
        Ok(task)
    }
}

/// Checks a task as the server receives it.
pub fn validate(task: &TaskSpec) -> Result<(), TaskError> {
    if !task.name.is_empty() && !is_task_name(&task.name) {
        return err(format!(
            "`name`: {:?} is not a valid task name: use up to {MAX_TASK_NAME_CHARS} ASCII letters, \
             digits, underscores, periods and dashes, starting and ending with a letter or digit, \
             with no more than two of `._-` in a row",
            task.name
        ));
    }
    if task.num_nodes < 1 {
        return err(format!("`num_nodes` must be at least 1, not {}", task.num_nodes));
    }
    let resources = task.resources.clone().unwrap_or_default();
    if !resources.infra.is_empty() {
        let infra = resources.infra.to_ascii_lowercase();
        let (kind, pool) = infra.split_once('/').unwrap_or((&infra, ""));
        let known = match kind {
            "local" => pool.is_empty(),
            "ssh" => {
                pool.is_empty() || pool.chars().all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
            }
            // slurm/<cluster>[/<partition>]
            "slurm" => {
                let (cluster, partition) = pool.split_once('/').unwrap_or((pool, ""));
                cluster.chars().all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
                    && (pool.is_empty() || !cluster.is_empty())
                    && partition.chars().all(|c| c.is_ascii_alphanumeric() || "-_.".contains(c))
            }
            _ => false,
        };
        if !known {
            return err(format!(
                "`resources.infra`: {:?} is not available on this API server (available: local, \
                 ssh/<pool> for its SSH node pools and slurm/<cluster>[/<partition>] for its Slurm clusters; `sky check` \
                 lists them)",
                resources.infra
            ));
        }
    }
    if !resources.cpus.is_empty() {
        parse_amount(&resources.cpus).map_err(|e| TaskError(format!("`resources.cpus`: {e}")))?;
    }
    if !resources.memory.is_empty() {
        parse_amount(&resources.memory).map_err(|e| TaskError(format!("`resources.memory`: {e}")))?;
    }
    if !resources.accelerators.is_empty() {
        parse_accelerators(&resources.accelerators)
            .map_err(|e| TaskError(format!("`resources.accelerators`: {e}")))?;
    }
    if let Some(recovery) = &resources.job_recovery {
        validate_job_recovery(recovery)?;
    }
    for (key, _) in task.envs.iter().chain(&task.secrets) {
        if !is_env_name(key) {
            return err(format!("`envs.{key}`: not a valid environment variable name"));
        }
    }
    Ok(())
}

/// Recovery strategies of managed jobs (SkyPilot's names).
pub const JOB_RECOVERY_STRATEGIES: &[&str] = &["FAILOVER", "EAGER_NEXT_REGION"];
/// Most restarts on errors a managed job may ask for.
pub const MAX_RESTARTS_ON_ERRORS: i32 = 100;

/// Checks `resources.job_recovery`.
pub fn validate_job_recovery(recovery: &JobRecovery) -> Result<(), TaskError> {
    let strategy = recovery.strategy.to_ascii_uppercase();
    if !strategy.is_empty() && !JOB_RECOVERY_STRATEGIES.contains(&strategy.as_str()) {
        return err(format!(
            "`resources.job_recovery.strategy`: {:?} is not a recovery strategy; use one of {}",
            recovery.strategy,
            JOB_RECOVERY_STRATEGIES.join(", ")
        ));
    }
    if !(0..=MAX_RESTARTS_ON_ERRORS).contains(&recovery.max_restarts_on_errors) {
        return err(format!(
            "`resources.job_recovery.max_restarts_on_errors`: must be from 0 to {MAX_RESTARTS_ON_ERRORS}, not {}",
            recovery.max_restarts_on_errors
        ));
    }
    Ok(())
}

/// Longest task name accepted.
pub const MAX_TASK_NAME_CHARS: usize = 128;

/// SkyPilot's rule for task names: `[a-zA-Z0-9]+(?:[._-]{1,2}[a-zA-Z0-9]+)*`.
pub fn is_task_name(name: &str) -> bool {
    let bytes = name.as_bytes();
    if bytes.len() > MAX_TASK_NAME_CHARS
        || !bytes.first().is_some_and(u8::is_ascii_alphanumeric)
        || !bytes.last().is_some_and(u8::is_ascii_alphanumeric)
    {
        return false;
    }
    let mut separators = 0;
    for byte in bytes {
        if byte.is_ascii_alphanumeric() {
            separators = 0;
        } else if matches!(byte, b'.' | b'_' | b'-') && separators < 2 {
            separators += 1;
        } else {
            return false;
        }
    }
    true
}

/// Whether `name` can be an environment variable name.
pub fn is_env_name(name: &str) -> bool {
    let mut chars = name.chars();
    chars.next().is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
}

/// Parses `KEY=VALUE` or `KEY` (taking VALUE from `lookup`), as `--env` does.
pub fn parse_env_arg(
    arg: &str,
    flag: &str,
    lookup: impl Fn(&str) -> Option<String>,
) -> Result<(String, String), TaskError> {
    let (key, value) = match arg.split_once('=') {
        Some((key, value)) => (key.to_string(), value.to_string()),
        None => {
            let value = lookup(arg).ok_or_else(|| {
                TaskError(format!(
                    "{flag} {arg}: {arg} is not set in your environment; use {flag} {arg}=VALUE"
                ))
            })?;
            (arg.to_string(), value)
        }
    };
    if !is_env_name(&key) {
        return err(format!("{flag} {arg}: {key:?} is not a valid environment variable name"));
    }
    Ok((key, value))
}

/// Parses a dotenv file's `KEY=VALUE` lines (blank lines and `#` comments skipped).
pub fn parse_env_file(text: &str, path: &str) -> Result<Vec<(String, String)>, TaskError> {
    let mut pairs = Vec::new();
    for (number, line) in text.lines().enumerate() {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let line = line.strip_prefix("export ").unwrap_or(line);
        let Some((key, value)) = line.split_once('=') else {
            return err(format!("{path}:{}: expected KEY=VALUE", number + 1));
        };
        let key = key.trim();
        if !is_env_name(key) {
            return err(format!("{path}:{}: {key:?} is not a valid variable name", number + 1));
        }
        let value = value.trim();
        let value = value
            .strip_prefix('"')
            .and_then(|v| v.strip_suffix('"'))
            .or_else(|| value.strip_prefix('\'').and_then(|v| v.strip_suffix('\'')))
            .unwrap_or(value);
        pairs.push((key.to_string(), value.to_string()));
    }
    Ok(pairs)
}

/// A task that runs one shell command (an ENTRYPOINT that is not a YAML file).
pub fn command_task(command: &str) -> TaskSpec {
    TaskSpec { run: command.to_string(), num_nodes: 1, ..Default::default() }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn task_names_follow_skypilot_rules() {
        for good in ["train", "my-task_2", "a.b", "a--b", "Eval.v2", "x"] {
            assert!(is_task_name(good), "{good}");
        }
        let too_long = "a".repeat(MAX_TASK_NAME_CHARS + 1);
        for bad in
            ["", "-a", "a-", "a---b", "a b", "tab\there", "\u{1b}]0;pwned\u{7}", "é", too_long.as_str()]
        {
            assert!(!is_task_name(bad), "{bad:?}");
        }
    }

    #[test]
    fn a_task_with_control_characters_in_its_name_is_refused() {
        let task = TaskSpec { name: "job\u{1b}[2J".into(), num_nodes: 1, ..Default::default() };
        let err = validate(&task).unwrap_err();
        assert!(err.to_string().contains("`name`"), "{err}");
    }
}
