// SkyPilot tasks: built in code as a `Task`, or read from a task YAML with
// `taskFromYaml()`, and turned into the protocol's TaskSpec. The checks follow
// the `sky` CLI's: unknown fields are refused and every error names its field.
// `pipelineFromYaml()` reads a managed job's pipeline: task documents
// separated by `---`, run one after another.

import { create } from "@bufbuild/protobuf";
import * as fs from "node:fs";
import * as os from "node:os";
import * as path from "node:path";
import { YAMLParseError, parse as parseYaml, parseAllDocuments } from "yaml";

import {
  JobRecoverySchema,
  ResourcesSchema,
  TaskSpecSchema,
  type JobRecovery as JobRecoveryMessage,
  type TaskSpec,
} from "./gen/skypilot/v1/clusters_pb.js";

/** Autostop in a task: `true` (5 minutes), minutes, "10m" / "2h", or a mapping. */
export type Autostop = boolean | number | string | { idleMinutes?: number | string; down?: boolean };

/**
 * How a managed job recovers (`resources.job_recovery`): a strategy
 * ("FAILOVER" or "EAGER_NEXT_REGION", any case; empty for FAILOVER), or the
 * strategy with how many times the job is launched again when its own code
 * fails (0 to 100). Lost nodes are always recovered.
 */
export type JobRecovery = string | { strategy?: string; maxRestartsOnErrors?: number };

/** What a task needs on each node. */
export interface TaskResources {
  /** "local" (the only infra of this server) or empty for any. */
  infra?: string;
  /** CPUs per node: 2, "2" or "2+" (at least 2). */
  cpus?: number | string;
  /** Memory per node in GiB: 8, "8" or "8+". */
  memory?: number | string;
  /** GPUs per node: "A100:2" or `{ A100: 2 }`. */
  accelerators?: string | Record<string, number>;
  /** Ports to open: 8080 or "9000-9010". */
  ports?: Array<number | string>;
  autostop?: Autostop;
  /** Managed jobs only: how the job recovers. */
  jobRecovery?: JobRecovery;
}

/** A SkyPilot task, as in a task YAML (field names in camelCase). */
export interface Task {
  name?: string;
  /**
   * Directory synced to every node: a path on this machine, uploaded first
   * when the API server runs elsewhere (a local server reads it itself).
   */
  workdir?: string;
  numNodes?: number;
  resources?: TaskResources;
  envs?: Record<string, string | number | boolean>;
  /** Like envs, but never shown in listings or logs. */
  secrets?: Record<string, string | number | boolean>;
  /** Node path -> source (a file or folder on this machine, uploaded as the workdir is). */
  fileMounts?: Record<string, string>;
  setup?: string;
  run?: string;
}

/** A task that cannot be used; the message names the field. */
export class TaskError extends Error {
  override name = "TaskError";
}

const TASK_FIELDS = ["name", "workdir", "num_nodes", "resources", "envs", "secrets", "file_mounts", "setup", "run"];
const UNSUPPORTED_TASK_FIELDS: Record<string, string> = {
  service: "SkyServe services are not supported by this API server",
  volumes: "volumes are not supported on the local infra",
  config: "per-task config overrides are not supported by this API server",
  storage_mounts: "bucket mounts are not supported on the local infra",
};
const RESOURCE_FIELDS = ["infra", "cpus", "memory", "accelerators", "ports", "autostop", "use_spot", "job_recovery"];
const CLOUD_ONLY_RESOURCE_FIELDS = [
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
const DEFAULT_AUTOSTOP_MINUTES = 5;
/** Recovery strategies of managed jobs (SkyPilot's names, any case). */
export const JOB_RECOVERY_STRATEGIES = ["FAILOVER", "EAGER_NEXT_REGION"];
/** Most restarts on errors a managed job may ask for. */
export const MAX_RESTARTS_ON_ERRORS = 100;
/** Most tasks in one pipeline. */
export const MAX_PIPELINE_TASKS = 32;
const ENV_NAME = /^[A-Za-z_][A-Za-z0-9_]*$/;

/** Options of `taskFromYaml()`. */
export interface TaskYamlOptions {
  /** Folder that relative `workdir` and file-mount paths are resolved against
   * (default: the YAML file's folder, or the current directory for YAML text). */
  baseDir?: string;
  /** Values for envs (also those declared `null`, which are required), as `--env` gives them. */
  envs?: Record<string, string>;
  /** Values for secrets, as `--secret` gives them. */
  secrets?: Record<string, string>;
}

const isMapping = (value: unknown): value is Record<string, unknown> =>
  typeof value === "object" && value !== null && !Array.isArray(value);

function str(value: unknown, field: string): string | undefined {
  if (value === null || value === undefined) return undefined;
  if (typeof value !== "string") throw new TaskError(`\`${field}\`: must be a string`);
  return value;
}

function scalar(value: unknown, field: string): string | undefined {
  if (value === null || value === undefined) return undefined;
  if (typeof value === "string" || typeof value === "number" || typeof value === "boolean") return String(value);
  throw new TaskError(`\`${field}\`: must be a string or a number`);
}

function resolvePath(p: string, baseDir: string): string {
  if (p.startsWith("~/")) return path.join(process.env.HOME || os.homedir(), p.slice(2));
  return path.isAbsolute(p) ? p : path.join(baseDir, p);
}

function minutes(value: unknown, field: string): number {
  if (typeof value === "number") {
    if (Number.isInteger(value) && value >= 0) return value;
    throw new TaskError(`\`${field}\`: must be a whole number of minutes, not ${value}`);
  }
  if (typeof value === "string") {
    const match = /^\s*(\d+)\s*([mh]?)\s*$/.exec(value);
    if (match) return Number(match[1]) * (match[2] === "h" ? 60 : 1);
    throw new TaskError(`\`${field}\`: ${JSON.stringify(value)} is not a duration like 10, 10m or 2h`);
  }
  throw new TaskError(`\`${field}\`: wrong type`);
}

function autostop(value: unknown, field: string): { idleMinutes?: number; down: boolean } {
  if (value === null || value === undefined || value === false) return { down: false };
  if (value === true) return { idleMinutes: DEFAULT_AUTOSTOP_MINUTES, down: false };
  if (typeof value === "number" || typeof value === "string")
    return { idleMinutes: minutes(value, field), down: false };
  if (isMapping(value)) {
    const out = { idleMinutes: DEFAULT_AUTOSTOP_MINUTES, down: false };
    for (const [key, item] of Object.entries(value)) {
      if (key === "idle_minutes" || key === "idleMinutes") out.idleMinutes = minutes(item, `${field}.idle_minutes`);
      else if (key === "down") {
        if (typeof item !== "boolean") throw new TaskError(`\`${field}.down\`: wrong type`);
        out.down = item;
      } else throw new TaskError(`unknown field \`${field}.${key}\`; valid fields: idle_minutes, down`);
    }
    return out;
  }
  throw new TaskError(`\`${field}\`: must be true, a number of minutes, or {idle_minutes, down}`);
}

function accelerators(value: unknown, field: string): string {
  if (value === null || value === undefined) return "";
  if (typeof value === "string") return value;
  if (isMapping(value) && Object.keys(value).length === 1) {
    const [name, count] = Object.entries(value)[0]!;
    if (typeof count !== "number" || !Number.isInteger(count) || count < 0) {
      throw new TaskError(`\`${field}.${name}\`: the count must be a whole number`);
    }
    return `${name}:${count}`;
  }
  throw new TaskError(
    `\`${field}\`: must be NAME or NAME:COUNT (e.g. A100:2); lists of alternatives are not supported`,
  );
}

/** `job_recovery: STRATEGY` or `{strategy, max_restarts_on_errors}`, checked as the server checks it. */
function jobRecovery(value: unknown, field: string): JobRecoveryMessage | undefined {
  if (value === null || value === undefined) return undefined;
  let strategy = "";
  let restarts: unknown = 0;
  if (typeof value === "string") strategy = value;
  else if (isMapping(value)) {
    for (const [key, item] of Object.entries(value)) {
      if (key === "strategy") strategy = str(item, `${field}.strategy`) ?? "";
      else if (key === "max_restarts_on_errors") restarts = item ?? 0;
      else throw new TaskError(`unknown field \`${field}.${key}\`; valid fields: strategy, max_restarts_on_errors`);
    }
  } else throw new TaskError(`\`${field}\`: must be a strategy name or {strategy, max_restarts_on_errors}`);
  if (strategy !== "" && !JOB_RECOVERY_STRATEGIES.includes(strategy.toUpperCase())) {
    throw new TaskError(
      `\`${field}.strategy\`: ${JSON.stringify(strategy)} is not a recovery strategy; ` +
        `use one of ${JOB_RECOVERY_STRATEGIES.join(", ")}`,
    );
  }
  if (typeof restarts !== "number" || !Number.isInteger(restarts)) {
    const shown = typeof restarts === "number" ? `, not ${restarts}` : "";
    throw new TaskError(`\`${field}.max_restarts_on_errors\`: must be a whole number${shown}`);
  }
  if (restarts < 0 || restarts > MAX_RESTARTS_ON_ERRORS) {
    throw new TaskError(
      `\`${field}.max_restarts_on_errors\`: must be from 0 to ${MAX_RESTARTS_ON_ERRORS}, not ${restarts}`,
    );
  }
  return create(JobRecoverySchema, { strategy, maxRestartsOnErrors: restarts });
}

function ports(value: unknown, field: string): string[] {
  if (value === null || value === undefined) return [];
  const items = Array.isArray(value) ? value : [value];
  return items.map((item) => {
    const text = scalar(item, field) ?? "";
    const valid = text.split("-").every((part) => {
      const port = Number(part.trim());
      return part.trim() !== "" && Number.isInteger(port) && port > 0 && port <= 65535;
    });
    if (!valid) throw new TaskError(`\`${field}\`: ${JSON.stringify(text)} is not a port or a range like 8000-8010`);
    return text;
  });
}

function envMap(value: unknown, field: string, required: string[]): Record<string, string> {
  if (value === null || value === undefined) return {};
  if (!isMapping(value)) throw new TaskError(`\`${field}\`: must be a mapping of NAME: value`);
  const out: Record<string, string> = {};
  for (const [key, item] of Object.entries(value)) {
    if (!ENV_NAME.test(key)) throw new TaskError(`\`${field}.${key}\`: not a valid environment variable name`);
    if (item === null || item === undefined) required.push(key);
    else out[key] = scalar(item, `${field}.${key}`) ?? "";
  }
  return out;
}

function resourcesFromYaml(value: unknown): TaskResources {
  if (value === null || value === undefined) return {};
  if (!isMapping(value)) throw new TaskError("`resources`: must be a mapping (e.g. `cpus: 2`)");
  const out: TaskResources = {};
  for (const [key, item] of Object.entries(value)) {
    const field = `resources.${key}`;
    if (CLOUD_ONLY_RESOURCE_FIELDS.includes(key)) {
      throw new TaskError(
        `\`${field}\`: means nothing on the local infra, the only infra of this API server; remove it`,
      );
    }
    switch (key) {
      case "infra":
        out.infra = str(item, field);
        break;
      case "cpus":
        out.cpus = scalar(item, field);
        break;
      case "memory":
        out.memory = scalar(item, field);
        break;
      case "accelerators":
        out.accelerators = accelerators(item, field);
        break;
      case "ports":
        out.ports = ports(item, field);
        break;
      case "autostop": {
        const parsed = autostop(item, field);
        if (parsed.idleMinutes !== undefined) out.autostop = { idleMinutes: parsed.idleMinutes, down: parsed.down };
        break;
      }
      case "job_recovery": {
        const recovery = jobRecovery(item, field);
        if (recovery) {
          out.jobRecovery = { strategy: recovery.strategy, maxRestartsOnErrors: recovery.maxRestartsOnErrors };
        }
        break;
      }
      case "use_spot":
        if (item === true) {
          throw new TaskError("`resources.use_spot`: spot instances do not exist on the local infra; remove it");
        }
        if (item !== false && item !== null) throw new TaskError("`resources.use_spot`: must be true or false");
        break;
      default:
        throw new TaskError(`unknown field \`${field}\`; valid fields: ${RESOURCE_FIELDS.join(", ")}`);
    }
  }
  return out;
}

/** Whether a string names a YAML file rather than holding YAML text. */
function looksLikePath(textOrPath: string): boolean {
  if (textOrPath.includes("\n")) return false;
  return /\.ya?ml$/i.test(textOrPath.trim()) || fs.existsSync(textOrPath);
}

/**
 * Reads a SkyPilot task YAML (the text, or the path of a `.yaml` file).
 * Relative `workdir` and file-mount sources are resolved against the
 * YAML's folder; envs declared `null` must be given in `options.envs`.
 */
export function taskFromYaml(textOrPath: string, options: TaskYamlOptions = {}): Task {
  const { text, baseDir } = readYaml(textOrPath, options);
  let root: unknown;
  try {
    root = parseYaml(text);
  } catch (err) {
    throw malformed(err);
  }
  return taskFromValue(root, baseDir, options);
}

/** The YAML text, and the folder relative paths are resolved against. */
function readYaml(textOrPath: string, options: TaskYamlOptions): { text: string; baseDir: string } {
  if (looksLikePath(textOrPath)) {
    const file = textOrPath.trim();
    return { text: fs.readFileSync(file, "utf8"), baseDir: options.baseDir ?? path.dirname(path.resolve(file)) };
  }
  return { text: textOrPath, baseDir: options.baseDir ?? process.cwd() };
}

function malformed(err: unknown): TaskError {
  if (err instanceof YAMLParseError && err.linePos) {
    const { line, col } = err.linePos[0];
    return new TaskError(`the task YAML is malformed at line ${line}, column ${col}: ${err.message}`);
  }
  return new TaskError(`the task YAML is malformed: ${(err as Error).message}`);
}

/** A managed job's tasks, run one after another, and the job's name ("" when the YAML names none). */
export interface Pipeline {
  name: string;
  tasks: Task[];
}

/**
 * Reads a pipeline YAML (the text, or the path of a `.yaml` file), as
 * `sky jobs launch` does: task documents separated by `---`, at most 32;
 * when there are several, a first document holding only `name` names the
 * pipeline. A single task YAML is a pipeline of one task. `options` apply to
 * every task, as in `taskFromYaml()`; errors name the task
 * (`task 2 of the pipeline: ...`) and the field.
 */
export function pipelineFromYaml(textOrPath: string, options: TaskYamlOptions = {}): Pipeline {
  const { text, baseDir } = readYaml(textOrPath, options);
  const documents = parseAllDocuments(text);
  if (documents.length > MAX_PIPELINE_TASKS + 1) {
    throw new TaskError(`the pipeline has more than ${MAX_PIPELINE_TASKS} tasks`);
  }
  const parsed = documents.map((document) => {
    const [problem] = document.errors;
    if (problem) throw malformed(problem);
    return document.toJS() as unknown;
  });
  // An empty document (a trailing `---`) is no task.
  const values = parsed.filter((value, index) => index === 0 || (value !== null && value !== undefined));
  if (values.length === 0) values.push(null);
  let name = "";
  const [first] = values;
  if (values.length > 1 && isMapping(first) && Object.keys(first).length === 1 && "name" in first) {
    name = str(first.name, "name") ?? "";
    values.shift();
  }
  if (values.length > MAX_PIPELINE_TASKS) {
    throw new TaskError(`the pipeline has more than ${MAX_PIPELINE_TASKS} tasks`);
  }
  const tasks = values.map((value, index) => {
    try {
      return taskFromValue(value, baseDir, options);
    } catch (err) {
      if (index === 0 || !(err instanceof TaskError)) throw err;
      throw new TaskError(`task ${index + 1} of the pipeline: ${err.message}`);
    }
  });
  return { name, tasks };
}

function taskFromValue(parsed: unknown, baseDir: string, options: TaskYamlOptions): Task {
  let root = parsed;
  if (root === null || root === undefined) root = {};
  if (!isMapping(root)) {
    throw new TaskError(
      "the task YAML must be a mapping of fields (name, resources, setup, run, ...); " +
        "to run one shell command, pass a task such as { run: COMMAND }",
    );
  }
  const task: Task = { numNodes: 1 };
  const required: string[] = [];
  for (const [key, value] of Object.entries(root)) {
    if (key in UNSUPPORTED_TASK_FIELDS) throw new TaskError(`\`${key}\`: ${UNSUPPORTED_TASK_FIELDS[key]}`);
    switch (key) {
      case "name":
        task.name = str(value, key);
        break;
      case "workdir": {
        if (isMapping(value)) throw new TaskError("`workdir`: git workdirs are not supported; give a local directory");
        const workdir = str(value, key);
        if (workdir !== undefined) task.workdir = resolvePath(workdir, baseDir);
        break;
      }
      case "num_nodes":
        if (value === null) task.numNodes = 1;
        else if (typeof value === "number" && Number.isInteger(value) && value >= 1 && value <= 1024) {
          task.numNodes = value;
        } else
          throw new TaskError(`\`num_nodes\`: must be a whole number from 1 to 1024, not ${JSON.stringify(value)}`);
        break;
      case "resources":
        task.resources = resourcesFromYaml(value);
        break;
      case "envs":
        task.envs = envMap(value, "envs", required);
        break;
      case "secrets":
        task.secrets = envMap(value, "secrets", required);
        break;
      case "file_mounts": {
        if (value === null || value === undefined) break;
        if (!isMapping(value)) throw new TaskError("`file_mounts`: must be a mapping of /node/path: local/path");
        const mounts: Record<string, string> = {};
        for (const [dest, source] of Object.entries(value)) {
          if (isMapping(source)) {
            throw new TaskError(
              `\`file_mounts.${dest}\`: storage (bucket) mounts are not supported on the local infra`,
            );
          }
          if (typeof source !== "string") throw new TaskError(`\`file_mounts.${dest}\`: must be a local path`);
          if (source.includes("://")) {
            throw new TaskError(`\`file_mounts.${dest}\`: bucket and URL sources are not supported on the local infra`);
          }
          mounts[dest] = resolvePath(source, baseDir);
        }
        task.fileMounts = mounts;
        break;
      }
      case "setup":
        task.setup = str(value, key);
        break;
      case "run":
        task.run = str(value, key);
        break;
      default:
        throw new TaskError(`unknown field \`${key}\` in the task YAML; valid fields: ${TASK_FIELDS.join(", ")}`);
    }
  }
  if (options.envs) task.envs = { ...task.envs, ...options.envs };
  if (options.secrets) task.secrets = { ...task.secrets, ...options.secrets };
  for (const key of required) {
    if (!(key in (task.envs ?? {})) && !(key in (task.secrets ?? {}))) {
      throw new TaskError(
        `\`envs.${key}\` is required (declared null in the task YAML): pass it in options.envs or options.secrets`,
      );
    }
  }
  return task;
}

function stringMap(values: Record<string, string | number | boolean> | undefined, field: string) {
  const out: Record<string, string> = {};
  for (const [key, value] of Object.entries(values ?? {})) {
    if (!ENV_NAME.test(key)) throw new TaskError(`\`${field}.${key}\`: not a valid environment variable name`);
    out[key] = String(value);
  }
  return out;
}

/** The protocol's TaskSpec for a task. */
export function taskToSpec(task: Task): TaskSpec {
  const numNodes = task.numNodes ?? 1;
  if (!Number.isInteger(numNodes) || numNodes < 1) {
    throw new TaskError(`\`num_nodes\`: must be at least 1, not ${numNodes}`);
  }
  const r = task.resources ?? {};
  const stop = autostop(r.autostop, "resources.autostop");
  const resources = create(ResourcesSchema, {
    infra: r.infra ?? "",
    cpus: r.cpus === undefined ? "" : String(r.cpus),
    memory: r.memory === undefined ? "" : String(r.memory),
    accelerators: accelerators(r.accelerators, "resources.accelerators"),
    ports: ports(r.ports, "resources.ports"),
    autostopDown: stop.down,
    jobRecovery: jobRecovery(
      typeof r.jobRecovery === "object" && r.jobRecovery !== null
        ? { strategy: r.jobRecovery.strategy, max_restarts_on_errors: r.jobRecovery.maxRestartsOnErrors }
        : r.jobRecovery,
      "resources.job_recovery",
    ),
  });
  if (stop.idleMinutes !== undefined) resources.autostopIdleMinutes = stop.idleMinutes;
  return create(TaskSpecSchema, {
    name: task.name ?? "",
    workdir: task.workdir ?? "",
    numNodes,
    resources,
    envs: stringMap(task.envs, "envs"),
    secrets: stringMap(task.secrets, "secrets"),
    fileMounts: { ...task.fileMounts },
    setup: task.setup ?? "",
    run: task.run ?? "",
  });
}

/** A task that runs one shell command. */
export function commandTask(command: string): Task {
  return { run: command, numNodes: 1 };
}
