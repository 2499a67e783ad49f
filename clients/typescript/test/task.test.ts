// Task YAML to TaskSpec, without a server.

import assert from "node:assert/strict";
import * as fs from "node:fs";
import * as path from "node:path";
import { test } from "node:test";

import { TaskError, pipelineFromYaml, taskFromYaml, taskToSpec, toTaskSpec } from "../src/index.js";
import { TEST_HOME } from "./harness.js";

test("a full task YAML maps to a TaskSpec", () => {
  const task = taskFromYaml(
    [
      "name: train",
      "workdir: .",
      "num_nodes: 2",
      "resources:",
      "  infra: local",
      "  cpus: 2+",
      "  memory: 4",
      "  accelerators: {A100: 2}",
      "  ports: [8080, 9000-9010]",
      "  autostop: {idle_minutes: 10, down: true}",
      "envs:",
      "  LR: 0.1",
      "  TOKEN: null",
      "secrets:",
      "  KEY: s3cret",
      "file_mounts:",
      "  /data: ./data",
      "setup: pip install x",
      "run: python train.py",
    ].join("\n"),
    { baseDir: "/base", envs: { TOKEN: "t" } },
  );
  const spec = taskToSpec(task);
  assert.equal(spec.$typeName, "skypilot.v1.TaskSpec");
  assert.equal(spec.name, "train");
  assert.equal(spec.workdir, "/base");
  assert.equal(spec.numNodes, 2);
  assert.equal(spec.resources?.infra, "local");
  assert.equal(spec.resources?.cpus, "2+");
  assert.equal(spec.resources?.memory, "4");
  assert.equal(spec.resources?.accelerators, "A100:2");
  assert.deepEqual(spec.resources?.ports, ["8080", "9000-9010"]);
  assert.equal(spec.resources?.autostopIdleMinutes, 10);
  assert.equal(spec.resources?.autostopDown, true);
  assert.deepEqual(spec.envs, { LR: "0.1", TOKEN: "t" });
  assert.deepEqual(spec.secrets, { KEY: "s3cret" });
  assert.deepEqual(spec.fileMounts, { "/data": "/base/data" });
  assert.equal(spec.setup, "pip install x");
  assert.equal(spec.run, "python train.py");
});

test("defaults: one node, no resources, autostop off", () => {
  const spec = taskToSpec(taskFromYaml("run: echo hi"));
  assert.equal(spec.numNodes, 1);
  assert.equal(spec.resources?.cpus, "");
  assert.equal(spec.resources?.autostopIdleMinutes, undefined);
  assert.equal(spec.run, "echo hi");
});

test("autostop forms: true, minutes, durations", () => {
  const minutes = (value: string) =>
    taskToSpec(taskFromYaml(`run: x\nresources:\n  autostop: ${value}`)).resources?.autostopIdleMinutes;
  assert.equal(minutes("true"), 5);
  assert.equal(minutes("false"), undefined);
  assert.equal(minutes("30"), 30);
  assert.equal(minutes("2h"), 120);
  assert.equal(minutes("{down: true}"), 5);
});

test("a YAML file: paths are resolved against its folder", () => {
  const dir = fs.mkdtempSync(path.join(TEST_HOME, "task-"));
  const file = path.join(dir, "task.yaml");
  fs.writeFileSync(file, "name: from-file\nworkdir: work\nrun: ls\n");
  const spec = toTaskSpec(file);
  assert.equal(spec.name, "from-file");
  assert.equal(spec.workdir, path.join(dir, "work"));
  assert.equal(taskToSpec(taskFromYaml("workdir: ~/code\nrun: ls")).workdir, path.join(TEST_HOME, "code"));
});

test("errors name the field", () => {
  const fails = (yaml: string, pattern: RegExp) =>
    assert.throws(
      () => taskFromYaml(yaml),
      (err: unknown) => err instanceof TaskError && pattern.test(err.message),
    );
  fails("nmae: x", /unknown field `nmae`/);
  fails("resources:\n  cpu: 2", /`resources.cpu`/);
  fails("resources:\n  cloud: aws", /`resources.cloud`: means nothing on the local infra/);
  fails("num_nodes: two", /`num_nodes`/);
  fails("envs: [A]", /`envs`/);
  fails("envs:\n  1BAD: x", /`envs.1BAD`/);
  fails("envs:\n  NEEDED: null\nrun: x", /`envs.NEEDED` is required/);
  fails("service: {}", /SkyServe/);
  fails("name: x\nrun: [unclosed\n", /line \d+, column \d+/);
  fails("just a string", /must be a mapping/);
  fails("run: x\nresources:\n  ports: [http]", /`resources.ports`/);
});

test("tasks built in code", () => {
  const spec = taskToSpec({
    run: "echo $X",
    envs: { X: 1 },
    resources: { cpus: 0.5, accelerators: { T4: 1 }, autostop: { idleMinutes: "15m", down: true } },
  });
  assert.equal(spec.resources?.cpus, "0.5");
  assert.equal(spec.resources?.accelerators, "T4:1");
  assert.equal(spec.resources?.autostopIdleMinutes, 15);
  assert.equal(spec.resources?.autostopDown, true);
  assert.deepEqual(spec.envs, { X: "1" });
  assert.throws(() => taskToSpec({ run: "x", numNodes: 0 }), TaskError);
  assert.equal(toTaskSpec(spec), spec, "a TaskSpec is passed through");
});

test("job_recovery (a strategy or a mapping, checked as the server checks it) and pipelines", () => {
  const recovery = (value: string) =>
    taskToSpec(taskFromYaml(`run: x\nresources:\n  job_recovery: ${value}`)).resources?.jobRecovery;
  assert.equal(recovery("failover")?.strategy, "failover");
  const mapping = recovery("{strategy: EAGER_NEXT_REGION, max_restarts_on_errors: 2}");
  assert.deepEqual([mapping?.strategy, mapping?.maxRestartsOnErrors], ["EAGER_NEXT_REGION", 2]);
  assert.equal(taskToSpec({ run: "x" }).resources?.jobRecovery, undefined);
  const inCode = taskToSpec({ run: "x", resources: { jobRecovery: { maxRestartsOnErrors: 3 } } });
  assert.equal(inCode.resources?.jobRecovery?.maxRestartsOnErrors, 3);

  const fails = (value: string, pattern: RegExp) =>
    assert.throws(
      () => taskFromYaml(`run: x\nresources:\n  job_recovery: ${value}`),
      (err: unknown) => err instanceof TaskError && pattern.test(err.message),
    );
  fails("SPOT_MAGIC", /`resources.job_recovery.strategy`: "SPOT_MAGIC" is not a recovery strategy.*FAILOVER/);
  fails("{max_restarts_on_errors: -1}", /`resources.job_recovery.max_restarts_on_errors`: .* 0 to 100, not -1/);
  fails("{max_restarts_on_errors: 1.5}", /`resources.job_recovery.max_restarts_on_errors`: must be a whole number/);
  fails("{retries: 1}", /unknown field `resources.job_recovery.retries`/);
  fails("7", /`resources.job_recovery`: must be a strategy name/);
  assert.throws(() => taskToSpec({ run: "x", resources: { jobRecovery: "sometimes" } }), TaskError);

  // A pipeline: tasks separated by dashes, with an optional name header.
  const pipeline = pipelineFromYaml("name: pipe\n---\nname: a\nrun: echo a\n---\nname: b\nrun: echo b\n");
  assert.equal(pipeline.name, "pipe");
  assert.deepEqual(pipeline.tasks.map((task) => task.name), ["a", "b"]);
  const single = pipelineFromYaml("name: only\nrun: echo\n");
  assert.deepEqual([single.name, single.tasks.map((task) => task.name)], ["", ["only"]]);
  assert.throws(
    () => pipelineFromYaml("run: a\n---\nrun: b\nbogus: 1\n"),
    (err: unknown) =>
      err instanceof TaskError && err.message.startsWith("task 2 of the pipeline: unknown field `bogus`"),
  );
  assert.throws(() => pipelineFromYaml("run: x\n---\n".repeat(33)), /more than 32 tasks/);
  assert.throws(() => pipelineFromYaml("run: [a\n---\nrun: b\n"), /malformed/);
});
