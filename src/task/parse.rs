//! From task YAML text to a `TaskSpec`. Every error names the field path;
//! malformed YAML names the line and column. Fields that are valid SkyPilot
//! but mean nothing on this server's infra are refused, never ignored.

use std::path::Path;

use serde::Deserialize as _;
use serde_yaml::{Mapping, Value};

use super::{TaskError, err};
use crate::proto::skypilot::v1::{JobRecovery, Resources, TaskSpec};

/// Largest task YAML accepted.
const MAX_YAML_BYTES: usize = 1024 * 1024;
/// Deepest nesting accepted.
const MAX_YAML_DEPTH: usize = 32;

/// Bracket nesting that is refused before parsing.
const MAX_BRACKET_DEPTH: usize = 256;

fn bracket_depth(text: &str) -> usize {
    let (mut depth, mut deepest) = (0usize, 0usize);
    for byte in text.bytes() {
        match byte {
            b'[' | b'{' => {
                depth += 1;
                deepest = deepest.max(depth);
            }
            b']' | b'}' => depth = depth.saturating_sub(1),
            _ => {}
        }
    }
    deepest
}

fn depth(value: &Value) -> usize {
    match value {
        Value::Sequence(items) => 1 + items.iter().map(depth).max().unwrap_or(0),
        Value::Mapping(map) => 1 + map.iter().map(|(k, v)| depth(k).max(depth(v))).max().unwrap_or(0),
        Value::Tagged(tagged) => 1 + depth(&tagged.value),
        _ => 0,
    }
}

const TASK_FIELDS: &[&str] =
    &["name", "workdir", "num_nodes", "resources", "envs", "secrets", "file_mounts", "setup", "run"];
/// SkyPilot task fields this server does not offer.
const UNSUPPORTED_TASK_FIELDS: &[(&str, &str)] = &[
    ("service", "SkyServe services are not supported by this API server"),
    ("volumes", "volumes are not supported on the local infra"),
    ("config", "per-task config overrides are not supported by this API server"),
    ("storage_mounts", "bucket mounts are not supported on the local infra"),
];
const RESOURCE_FIELDS: &[&str] =
    &["infra", "cpus", "memory", "accelerators", "ports", "autostop", "use_spot", "job_recovery"];
/// SkyPilot resource fields that mean nothing on the local infra.
const CLOUD_ONLY_RESOURCE_FIELDS: &[&str] = &[
    "cloud",
    "region",
    "zone",
    "instance_type",
    "image_id",
    "disk_size",
    "disk_tier",
    "network_tier",
    "labels",
    "any_of",
    "ordered",
    "accelerator_args",
];

/// Parses a task YAML. Relative `workdir` and file-mount sources are
/// resolved against `base_dir` (the YAML's folder). Returns the task and the
/// names of envs and secrets declared `null` (required from the command line).
pub fn parse_task_yaml(text: &str, base_dir: &Path) -> Result<(TaskSpec, Vec<String>), TaskError> {
    check_size(text)?;
    let value: Value = serde_yaml::from_str(text).map_err(malformed)?;
    task_from_value(value, base_dir)
}

/// Parses a pipeline YAML (`sky jobs launch`): task documents separated by
/// `---`, run one after another; a first document holding only `name` names
/// the pipeline. Returns the pipeline's name (empty when none) and each
/// task with the names of its required envs and secrets.
pub fn parse_pipeline_yaml(text: &str, base_dir: &Path) -> Result<Pipeline, TaskError> {
    check_size(text)?;
    let too_many = || err(format!("the pipeline has more than {MAX_PIPELINE_TASKS} tasks"));
    let mut documents = Vec::new();
    for document in serde_yaml::Deserializer::from_str(text) {
        let value = Value::deserialize(document).map_err(malformed)?;
        // An empty document (a trailing `---`) is no task.
        if !value.is_null() || documents.is_empty() {
            documents.push(value);
        }
        if documents.len() > MAX_PIPELINE_TASKS + 1 {
            return too_many(); // (one more document may be the name header)
        }
    }
    let mut name = String::new();
    if documents.len() > 1
        && let Some(Value::Mapping(header)) = documents.first()
        && header.len() == 1
        && header.contains_key("name")
    {
        name = string(&header["name"], "name")?.unwrap_or_default();
        documents.remove(0);
    }
    if documents.len() > MAX_PIPELINE_TASKS {
        return too_many();
    }
    let tasks = documents
        .into_iter()
        .enumerate()
        .map(|(index, value)| {
            task_from_value(value, base_dir).map_err(|e| match index {
                0 => e,
                _ => TaskError(format!("task {} of the pipeline: {e}", index + 1)),
            })
        })
        .collect::<Result<Vec<_>, _>>()?;
    Ok(Pipeline { name, tasks })
}

/// A pipeline as parsed: its name and its tasks, each with its required envs.
#[derive(Debug, Clone)]
pub struct Pipeline {
    pub name: String,
    pub tasks: Vec<(TaskSpec, Vec<String>)>,
}

/// Most tasks in one pipeline.
pub const MAX_PIPELINE_TASKS: usize = 32;

fn check_size(text: &str) -> Result<(), TaskError> {
    if text.len() > MAX_YAML_BYTES {
        return err(format!(
            "the task YAML is larger than {} KiB; keep data out of it",
            MAX_YAML_BYTES / 1024
        ));
    }
    // The YAML parser is slow on absurdly nested flow collections: refuse
    // them before parsing (brackets in quoted strings count too, which only
    // matters far beyond any real task).
    if bracket_depth(text) > MAX_BRACKET_DEPTH {
        return err(format!("the task YAML nests deeper than {MAX_YAML_DEPTH} levels"));
    }
    Ok(())
}

fn malformed(e: serde_yaml::Error) -> TaskError {
    let at =
        e.location().map(|l| format!(" at line {}, column {}", l.line(), l.column())).unwrap_or_default();
    TaskError(format!("the task YAML is malformed{at}: {e}"))
}

fn task_from_value(value: Value, base_dir: &Path) -> Result<(TaskSpec, Vec<String>), TaskError> {
    if depth(&value) > MAX_YAML_DEPTH {
        return err(format!("the task YAML nests deeper than {MAX_YAML_DEPTH} levels"));
    }
    let root = match value {
        Value::Null => Mapping::new(),
        Value::Mapping(map) => map,
        _ => return err("the task YAML must be a mapping of fields (name, resources, setup, run, ...)"),
    };
    let mut task = TaskSpec { num_nodes: 1, ..Default::default() };
    let mut required = Vec::new();
    for (key, value) in &root {
        let key = key_str(key, "")?;
        if let Some((_, why)) = UNSUPPORTED_TASK_FIELDS.iter().find(|(name, _)| *name == key) {
            return err(format!("`{key}`: {why}"));
        }
        match key {
            "name" => task.name = string(value, "name")?.unwrap_or_default(),
            "workdir" => {
                if value.is_mapping() {
                    return err("`workdir`: git workdirs are not supported; give a local directory");
                }
                task.workdir = string(value, "workdir")?.map(|p| resolve(&p, base_dir)).unwrap_or_default();
            }
            "num_nodes" => {
                task.num_nodes = match value {
                    Value::Null => 1,
                    Value::Number(n) => n.as_i64().filter(|n| (1..=1024).contains(n)).ok_or_else(|| {
                        TaskError(format!("`num_nodes`: must be a whole number from 1 to 1024, not {n}"))
                    })? as i32,
                    _ => return err("`num_nodes`: must be a whole number"),
                }
            }
            "resources" => task.resources = Some(resources(value)?),
            "envs" => task.envs = env_map(value, "envs", &mut required)?,
            "secrets" => task.secrets = env_map(value, "secrets", &mut required)?,
            "file_mounts" => task.file_mounts = file_mounts(value, base_dir)?,
            "setup" => task.setup = string(value, "setup")?.unwrap_or_default(),
            "run" => task.run = string(value, "run")?.unwrap_or_default(),
            other => {
                return err(format!(
                    "unknown field `{other}` in the task YAML; valid fields: {}",
                    TASK_FIELDS.join(", ")
                ));
            }
        }
    }
    Ok((task, required))
}

fn resources(value: &Value) -> Result<Resources, TaskError> {
    let map = match value {
        Value::Null => return Ok(Resources::default()),
        Value::Mapping(map) => map,
        _ => return err("`resources`: must be a mapping (e.g. `cpus: 2`)"),
    };
    let mut resources = Resources::default();
    for (key, value) in map {
        let key = key_str(key, "resources.")?;
        let path = format!("resources.{key}");
        if CLOUD_ONLY_RESOURCE_FIELDS.contains(&key) {
            return err(format!(
                "`{path}`: means nothing on the local infra, the only infra of this API server; remove it"
            ));
        }
        match key {
            "infra" => resources.infra = string(value, &path)?.unwrap_or_default(),
            "cpus" => resources.cpus = scalar(value, &path)?.unwrap_or_default(),
            "memory" => resources.memory = scalar(value, &path)?.unwrap_or_default(),
            "accelerators" => resources.accelerators = accelerators(value, &path)?,
            "ports" => resources.ports = ports(value, &path)?,
            "autostop" => autostop(value, &path, &mut resources)?,
            "job_recovery" => resources.job_recovery = job_recovery(value, &path)?,
            "use_spot" => {
                if value.as_bool() == Some(true) {
                    return err(
                        "`resources.use_spot`: spot instances do not exist on the local infra; remove it",
                    );
                }
                if !matches!(value, Value::Bool(_) | Value::Null) {
                    return err("`resources.use_spot`: must be true or false");
                }
            }
            other => {
                return err(format!(
                    "unknown field `resources.{other}`; valid fields: {}",
                    RESOURCE_FIELDS.join(", ")
                ));
            }
        }
    }
    Ok(resources)
}

fn accelerators(value: &Value, path: &str) -> Result<String, TaskError> {
    match value {
        Value::Null => Ok(String::new()),
        Value::String(s) => Ok(s.clone()),
        Value::Mapping(map) if map.len() == 1 => {
            let (name, count) = map.iter().next().expect("one entry");
            let name = key_str(name, "resources.accelerators.")?;
            match count {
                Value::Number(n) if n.as_u64().is_some() => Ok(format!("{name}:{n}")),
                _ => err(format!("`{path}.{name}`: the count must be a whole number")),
            }
        }
        _ => err(format!(
            "`{path}`: must be NAME or NAME:COUNT (e.g. A100:2); lists of alternatives are not supported"
        )),
    }
}

fn ports(value: &Value, path: &str) -> Result<Vec<String>, TaskError> {
    let items = match value {
        Value::Null => return Ok(Vec::new()),
        Value::Sequence(items) => items.clone(),
        other => vec![other.clone()],
    };
    items
        .iter()
        .map(|item| {
            let text = scalar(item, path)?.unwrap_or_default();
            let valid = text.split('-').all(|p| p.trim().parse::<u16>().is_ok_and(|p| p > 0));
            if !valid {
                return err(format!("`{path}`: {text:?} is not a port or a range like 8000-8010"));
            }
            Ok(text)
        })
        .collect()
}

fn autostop(value: &Value, path: &str, resources: &mut Resources) -> Result<(), TaskError> {
    const DEFAULT_IDLE_MINUTES: i32 = 5;
    match value {
        Value::Null | Value::Bool(false) => {}
        Value::Bool(true) => resources.autostop_idle_minutes = Some(DEFAULT_IDLE_MINUTES),
        Value::Number(n) => resources.autostop_idle_minutes = Some(minutes_number(n, path)?),
        Value::String(s) => resources.autostop_idle_minutes = Some(minutes_text(s, path)?),
        Value::Mapping(map) => {
            resources.autostop_idle_minutes = Some(DEFAULT_IDLE_MINUTES);
            for (key, value) in map {
                let key = key_str(key, "resources.autostop.")?;
                match (key, value) {
                    ("idle_minutes", Value::Number(n)) => {
                        resources.autostop_idle_minutes =
                            Some(minutes_number(n, &format!("{path}.idle_minutes"))?)
                    }
                    ("idle_minutes", Value::String(s)) => {
                        resources.autostop_idle_minutes =
                            Some(minutes_text(s, &format!("{path}.idle_minutes"))?)
                    }
                    ("down", Value::Bool(down)) => resources.autostop_down = *down,
                    ("idle_minutes" | "down", _) => return err(format!("`{path}.{key}`: wrong type")),
                    (other, _) => {
                        return err(format!(
                            "unknown field `{path}.{other}`; valid fields: idle_minutes, down"
                        ));
                    }
                }
            }
        }
        _ => return err(format!("`{path}`: must be true, a number of minutes, or {{idle_minutes, down}}")),
    }
    Ok(())
}

/// `job_recovery: STRATEGY` or `{strategy, max_restarts_on_errors}`.
fn job_recovery(value: &Value, path: &str) -> Result<Option<JobRecovery>, TaskError> {
    let mut recovery = JobRecovery::default();
    match value {
        Value::Null => return Ok(None),
        Value::String(strategy) => recovery.strategy = strategy.clone(),
        Value::Mapping(map) => {
            for (key, value) in map {
                let key = key_str(key, "resources.job_recovery.")?;
                match key {
                    "strategy" => {
                        recovery.strategy = string(value, &format!("{path}.strategy"))?.unwrap_or_default()
                    }
                    "max_restarts_on_errors" => {
                        recovery.max_restarts_on_errors = match value {
                            Value::Null => 0,
                            Value::Number(n) => {
                                n.as_i64().and_then(|n| i32::try_from(n).ok()).ok_or_else(|| {
                                    TaskError(format!(
                                        "`{path}.max_restarts_on_errors`: must be a whole number, not {n}"
                                    ))
                                })?
                            }
                            _ => {
                                return err(format!(
                                    "`{path}.max_restarts_on_errors`: must be a whole number"
                                ));
                            }
                        }
                    }
                    other => {
                        return err(format!(
                            "unknown field `{path}.{other}`; valid fields: strategy, max_restarts_on_errors"
                        ));
                    }
                }
            }
        }
        _ => {
            return err(format!("`{path}`: must be a strategy name or {{strategy, max_restarts_on_errors}}"));
        }
    }
    super::validate_job_recovery(&recovery)?;
    Ok(Some(recovery))
}

fn minutes_number(n: &serde_yaml::Number, path: &str) -> Result<i32, TaskError> {
    n.as_i64()
        .filter(|m| (0..=i32::MAX as i64).contains(m))
        .map(|m| m as i32)
        .ok_or_else(|| TaskError(format!("`{path}`: must be a whole number of minutes, not {n}")))
}

fn minutes_text(text: &str, path: &str) -> Result<i32, TaskError> {
    let text = text.trim();
    let (number, factor) = if let Some(hours) = text.strip_suffix('h') {
        (hours, 60)
    } else if let Some(minutes) = text.strip_suffix('m') {
        (minutes, 1)
    } else {
        (text, 1)
    };
    number
        .trim()
        .parse::<i32>()
        .ok()
        .filter(|m| *m >= 0)
        .map(|m| m * factor)
        .ok_or_else(|| TaskError(format!("`{path}`: {text:?} is not a duration like 10, 10m or 2h")))
}

fn env_map(
    value: &Value,
    field: &str,
    required: &mut Vec<String>,
) -> Result<std::collections::HashMap<String, String>, TaskError> {
    let map = match value {
        Value::Null => return Ok(Default::default()),
        Value::Mapping(map) => map,
        _ => return err(format!("`{field}`: must be a mapping of NAME: value")),
    };
    let mut out = std::collections::HashMap::new();
    for (key, value) in map {
        let key = key_str(key, &format!("{field}."))?;
        if !super::is_env_name(key) {
            return err(format!("`{field}.{key}`: not a valid environment variable name"));
        }
        match value {
            Value::Null => required.push(key.to_string()),
            _ => {
                let text = scalar(value, &format!("{field}.{key}"))?.unwrap_or_default();
                out.insert(key.to_string(), text);
            }
        }
    }
    Ok(out)
}

fn file_mounts(
    value: &Value,
    base_dir: &Path,
) -> Result<std::collections::HashMap<String, String>, TaskError> {
    let map = match value {
        Value::Null => return Ok(Default::default()),
        Value::Mapping(map) => map,
        _ => return err("`file_mounts`: must be a mapping of /node/path: local/path"),
    };
    let mut out = std::collections::HashMap::new();
    for (key, value) in map {
        let dest = key_str(key, "file_mounts.")?;
        let path = format!("file_mounts.{dest}");
        match value {
            Value::String(source) => {
                if source.contains("://") {
                    return err(format!(
                        "`{path}`: bucket and URL sources are not supported on the local infra"
                    ));
                }
                out.insert(dest.to_string(), resolve(source, base_dir));
            }
            Value::Mapping(_) => {
                return err(format!(
                    "`{path}`: storage (bucket) mounts are not supported on the local infra"
                ));
            }
            _ => return err(format!("`{path}`: must be a local path")),
        }
    }
    Ok(out)
}

fn key_str<'a>(key: &'a Value, prefix: &str) -> Result<&'a str, TaskError> {
    key.as_str().ok_or_else(|| TaskError(format!("`{prefix}{key:?}`: field names must be strings")))
}

fn string(value: &Value, path: &str) -> Result<Option<String>, TaskError> {
    match value {
        Value::Null => Ok(None),
        Value::String(s) => Ok(Some(s.clone())),
        _ => err(format!("`{path}`: must be a string")),
    }
}

fn scalar(value: &Value, path: &str) -> Result<Option<String>, TaskError> {
    match value {
        Value::Null => Ok(None),
        Value::String(s) => Ok(Some(s.clone())),
        Value::Number(n) => Ok(Some(n.to_string())),
        Value::Bool(b) => Ok(Some(b.to_string())),
        _ => err(format!("`{path}`: must be a string or a number")),
    }
}

/// `~/x` and relative paths to absolute ones.
fn resolve(path: &str, base_dir: &Path) -> String {
    if let Some(rest) = path.strip_prefix("~/") {
        let home = std::env::var_os("HOME").unwrap_or_default();
        return Path::new(&home).join(rest).to_string_lossy().into_owned();
    }
    let path = Path::new(path);
    if path.is_absolute() {
        path.to_string_lossy().into_owned()
    } else {
        base_dir.join(path).to_string_lossy().into_owned()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> Result<(TaskSpec, Vec<String>), TaskError> {
        parse_task_yaml(text, Path::new("/base"))
    }

    #[test]
    fn a_full_task_parses() {
        let (task, required) = parse(
            "name: train\nworkdir: .\nnum_nodes: 2\nresources:\n  infra: local\n  cpus: 2+\n  memory: 4\n  \
             accelerators: {A100: 2}\n  ports: [8080, 9000-9010]\n  autostop: {idle_minutes: 10, down: true}\n\
             envs:\n  LR: 0.1\n  TOKEN: null\nsecrets:\n  KEY: s3cret\nfile_mounts:\n  /data: ./data\n\
             setup: pip install x\nrun: python train.py\n",
        )
        .unwrap();
        assert_eq!(task.name, "train");
        assert_eq!(task.workdir, "/base/.");
        assert_eq!(task.num_nodes, 2);
        let resources = task.resources.unwrap();
        assert_eq!((resources.cpus.as_str(), resources.memory.as_str()), ("2+", "4"));
        assert_eq!(resources.accelerators, "A100:2");
        assert_eq!(resources.ports, ["8080", "9000-9010"]);
        assert_eq!((resources.autostop_idle_minutes, resources.autostop_down), (Some(10), true));
        assert_eq!(task.envs["LR"], "0.1");
        assert_eq!(required, ["TOKEN"]);
        assert_eq!(task.secrets["KEY"], "s3cret");
        assert_eq!(task.file_mounts["/data"], "/base/./data");
    }

    #[test]
    fn malformed_yaml_names_the_line_and_column() {
        let e = parse("name: x\nrun: [unclosed\n").unwrap_err();
        assert!(e.0.contains("line") && e.0.contains("column"), "{e}");
    }

    #[test]
    fn unknown_and_mistyped_fields_name_their_path() {
        assert!(parse("nmae: x").unwrap_err().0.contains("unknown field `nmae`"));
        assert!(parse("resources:\n  cpu: 2").unwrap_err().0.contains("`resources.cpu`"));
        assert!(parse("num_nodes: two").unwrap_err().0.contains("`num_nodes`"));
        assert!(parse("envs: [A]").unwrap_err().0.contains("`envs`"));
    }

    #[test]
    fn cloud_only_fields_are_refused_not_ignored() {
        assert!(
            parse("resources:\n  region: us-east-1")
                .unwrap_err()
                .0
                .contains("means nothing on the local infra")
        );
        assert!(parse("resources:\n  use_spot: true").unwrap_err().0.contains("spot"));
        assert!(parse("resources:\n  use_spot: false").is_ok());
        assert!(parse("service: {}").unwrap_err().0.contains("SkyServe"));
    }

    #[test]
    fn oversized_and_deeply_nested_yaml_is_refused() {
        let big = format!("run: \"{}\"", "x".repeat(2 * 1024 * 1024));
        assert!(parse(&big).unwrap_err().0.contains("larger than"));
        let nested = format!("envs: {}{}", "[".repeat(100), "]".repeat(100));
        assert!(parse(&nested).is_err());
        let very_nested = format!("run: {}{}", "[".repeat(100_000), "]".repeat(100_000));
        assert!(parse(&very_nested).is_err());
    }

    /// Random edits of a valid task never make the parser panic or hang.
    #[test]
    fn mangled_task_yaml_gets_an_error_or_a_task_never_a_panic() {
        let valid = "name: t\nworkdir: .\nnum_nodes: 2\nresources:\n  cpus: 2+\n  accelerators: {A100: 2}\n  \
                     autostop: {idle_minutes: 10, down: true}\nenvs:\n  A: 1\n  B: null\nfile_mounts:\n  \
                     ~/d: ./d\nsetup: echo s\nrun: echo r\n";
        let alphabet = b" :-[]{}\n\"'&*!|>#%@,?0123456789abcdefghijklmnopqrstuvwxyz+.~/";
        let mut state = 0x2545_f491_4f6c_dd1du64;
        let mut next = move || {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            state
        };
        for _ in 0..3000 {
            let mut bytes = valid.as_bytes().to_vec();
            for _ in 0..(1 + next() % 6) {
                let at = (next() % bytes.len() as u64) as usize;
                let byte = alphabet[(next() % alphabet.len() as u64) as usize];
                match next() % 3 {
                    0 => bytes[at] = byte,
                    1 => bytes.insert(at, byte),
                    _ => {
                        bytes.remove(at);
                    }
                }
            }
            let text = String::from_utf8_lossy(&bytes);
            let _ = parse(&text);
        }
    }

    #[test]
    fn job_recovery_is_a_strategy_or_a_mapping_and_bad_values_are_named() {
        let (task, _) = parse("resources:\n  job_recovery: failover\n").unwrap();
        assert_eq!(task.resources.unwrap().job_recovery.unwrap().strategy, "failover");
        let text =
            "resources:\n  job_recovery:\n    strategy: EAGER_NEXT_REGION\n    max_restarts_on_errors: 2\n";
        let recovery = parse(text).unwrap().0.resources.unwrap().job_recovery.unwrap();
        assert_eq!((recovery.strategy.as_str(), recovery.max_restarts_on_errors), ("EAGER_NEXT_REGION", 2));
        let unknown = parse("resources:\n  job_recovery: SPOT_MAGIC\n").unwrap_err().0;
        assert!(unknown.contains("job_recovery.strategy") && unknown.contains("FAILOVER"), "{unknown}");
        let negative = parse("resources:\n  job_recovery: {max_restarts_on_errors: -1}\n").unwrap_err().0;
        assert!(negative.contains("max_restarts_on_errors") && negative.contains("-1"), "{negative}");
        let field = parse("resources:\n  job_recovery: {retries: 1}\n").unwrap_err().0;
        assert!(field.contains("unknown field `resources.job_recovery.retries`"), "{field}");
    }

    #[test]
    fn a_pipeline_is_tasks_separated_by_dashes_with_an_optional_name_header() {
        let text = "name: pipe\n---\nname: a\nrun: echo a\n---\nname: b\nrun: echo b\n";
        let pipeline = parse_pipeline_yaml(text, Path::new("/base")).unwrap();
        assert_eq!(pipeline.name, "pipe");
        let names: Vec<_> = pipeline.tasks.iter().map(|(task, _)| task.name.as_str()).collect();
        assert_eq!(names, ["a", "b"]);
        let single = parse_pipeline_yaml("name: only\nrun: echo\n", Path::new("/base")).unwrap();
        assert_eq!((single.name.as_str(), single.tasks.len()), ("", 1));
        let bad = parse_pipeline_yaml("run: a\n---\nrun: b\nbogus: 1\n", Path::new("/base")).unwrap_err().0;
        assert!(bad.starts_with("task 2 of the pipeline: unknown field `bogus`"), "{bad}");
        let many = "run: x\n---\n".repeat(MAX_PIPELINE_TASKS + 1);
        assert!(parse_pipeline_yaml(&many, Path::new("/base")).is_err());
        let most = format!("name: p\n---\n{}", "run: x\n---\n".repeat(MAX_PIPELINE_TASKS));
        assert_eq!(parse_pipeline_yaml(&most, Path::new("/base")).unwrap().tasks.len(), MAX_PIPELINE_TASKS);
        let trailing = parse_pipeline_yaml("run: a\n---\n", Path::new("/base")).unwrap();
        assert_eq!(trailing.tasks.len(), 1, "a trailing `---` adds no task");
    }
}
