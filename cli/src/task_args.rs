//! The task options shared by `sky launch`, `sky exec` and `sky jobs launch`,
//! and turning an ENTRYPOINT (a task YAML, a pipeline YAML, or a shell
//! command) plus options into a `TaskSpec` (or a managed job's tasks).

use std::path::{Path, PathBuf};

use skypilot_api::{
    proto::skypilot::v1::TaskSpec,
    task::{Overrides, command_task, parse_env_arg, parse_env_file, parse_pipeline_yaml, parse_task_yaml},
};

use crate::error::{CliError, CliResult};

/// SkyPilot's task options.
#[derive(Debug, clap::Args)]
pub struct TaskOptions {
    /// Task name.
    #[arg(short = 'n', long)]
    pub name: Option<String>,
    /// Directory synced to ~/sky_workdir on every node.
    #[arg(long)]
    pub workdir: Option<PathBuf>,
    /// Number of nodes.
    #[arg(long)]
    pub num_nodes: Option<i32>,
    /// CPUs per node, e.g. 2 or 2+.
    #[arg(long)]
    pub cpus: Option<String>,
    /// Memory per node in GiB, e.g. 8 or 8+.
    #[arg(long)]
    pub memory: Option<String>,
    /// GPUs per node, e.g. A100:2.
    #[arg(long)]
    pub gpus: Option<String>,
    /// Infra to run on (local).
    #[arg(long)]
    pub infra: Option<String>,
    /// Environment variable: KEY=VALUE, or KEY to take it from your environment.
    #[arg(long = "env")]
    pub envs: Vec<String>,
    /// A dotenv file of environment variables.
    #[arg(long)]
    pub env_file: Option<PathBuf>,
    /// Secret: like --env, but never shown.
    #[arg(long = "secret")]
    pub secrets: Vec<String>,
}

/// Builds the task from ENTRYPOINT words and options.
pub fn build_task(entrypoint: &[String], options: &TaskOptions) -> CliResult<TaskSpec> {
    let cwd = std::env::current_dir()?;
    let (task, required) = match entrypoint {
        [] => (TaskSpec { num_nodes: 1, ..Default::default() }, Vec::new()),
        [single] if looks_like_yaml(single) => parse_task_yaml(&read_yaml(single)?, &cwd)
            .map_err(|err| CliError::new(format!("{single}: {err}")))?,
        words => (command_task(&words.join(" ")), Vec::new()),
    };
    overrides(options, &cwd)?.apply(task, &required).map_err(|e| CliError::new(e.to_string()))
}

/// Builds a managed job's tasks (a pipeline YAML runs its tasks one after
/// another) and its name. Envs and secrets given as options go to every
/// task; resource options only to a job of one task.
pub fn build_pipeline(entrypoint: &[String], options: &TaskOptions) -> CliResult<(String, Vec<TaskSpec>)> {
    let cwd = std::env::current_dir()?;
    let pipeline = match entrypoint {
        [single] if looks_like_yaml(single) => parse_pipeline_yaml(&read_yaml(single)?, &cwd)
            .map_err(|err| CliError::new(format!("{single}: {err}")))?,
        _ => return Ok((String::new(), vec![build_task(entrypoint, options)?])),
    };
    let overrides = overrides(options, &cwd)?;
    let name = options.name.clone().unwrap_or(pipeline.name);
    if pipeline.tasks.len() == 1 {
        let (task, required) = pipeline.tasks.into_iter().next().expect("one task");
        let task = overrides.apply(task, &required).map_err(|e| CliError::new(e.to_string()))?;
        return Ok((name, vec![task]));
    }
    let per_task = [
        ("--workdir", options.workdir.is_some()),
        ("--num-nodes", options.num_nodes.is_some()),
        ("--cpus", options.cpus.is_some()),
        ("--memory", options.memory.is_some()),
        ("--gpus", options.gpus.is_some()),
        ("--infra", options.infra.is_some()),
    ];
    if let Some((flag, _)) = per_task.iter().find(|(_, given)| *given) {
        return Err(CliError::new(format!(
            "{flag} cannot be used with a pipeline of {} tasks: set it in each task of the YAML",
            pipeline.tasks.len()
        )));
    }
    let shared = Overrides { name: None, ..overrides };
    let tasks = pipeline
        .tasks
        .into_iter()
        .enumerate()
        .map(|(index, (task, required))| {
            shared
                .apply(task, &required)
                .map_err(|e| CliError::new(format!("task {} of the pipeline: {e}", index + 1)))
        })
        .collect::<CliResult<Vec<_>>>()?;
    Ok((name, tasks))
}

fn read_yaml(path: &str) -> CliResult<String> {
    std::fs::read_to_string(path).map_err(|err| CliError::new(format!("cannot read task YAML {path}: {err}")))
}

/// The task options as overrides of what the YAML says.
fn overrides(options: &TaskOptions, cwd: &Path) -> CliResult<Overrides> {
    let lookup = |key: &str| std::env::var(key).ok();
    let mut envs = Vec::new();
    if let Some(file) = &options.env_file {
        let text = std::fs::read_to_string(file)
            .map_err(|err| CliError::new(format!("cannot read --env-file {}: {err}", file.display())))?;
        envs.extend(
            parse_env_file(&text, &file.display().to_string()).map_err(|e| CliError::new(e.to_string()))?,
        );
    }
    for arg in &options.envs {
        envs.push(parse_env_arg(arg, "--env", lookup).map_err(|e| CliError::new(e.to_string()))?);
    }
    let secrets = options
        .secrets
        .iter()
        .map(|arg| parse_env_arg(arg, "--secret", lookup))
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| CliError::new(e.to_string()))?;
    Ok(Overrides {
        name: options.name.clone(),
        workdir: options.workdir.as_ref().map(|w| cwd.join(w).to_string_lossy().into_owned()),
        num_nodes: options.num_nodes,
        cpus: options.cpus.clone(),
        memory: options.memory.clone(),
        gpus: options.gpus.clone(),
        infra: options.infra.clone(),
        envs,
        secrets,
    })
}

/// An ENTRYPOINT is a task YAML when it names a .yaml/.yml file.
fn looks_like_yaml(word: &str) -> bool {
    !word.contains(char::is_whitespace) && (word.ends_with(".yaml") || word.ends_with(".yml"))
}
