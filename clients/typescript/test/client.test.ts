// The client against a real local API server, over gRPC (HTTP/2) and over
// gRPC-Web (HTTP/1.1): launch a task, watch its operation, stream the job's
// logs, exec, cancel, stop/start, tear down, and typed errors.

import assert from "node:assert/strict";
import { after, before, describe, test } from "node:test";

import {
  ClusterStatus,
  Code,
  ErrorReason,
  JobStatus,
  RequestState,
  ServerMode,
  SkyError,
  taskFromYaml,
  type SkyClient,
} from "../src/index.js";
import { TestServer, collect } from "./harness.js";

const HELLO_YAML = `
name: hello
resources:
  cpus: 0.5
envs:
  GREETING: hello
run: |
  echo "$GREETING from node $SKYPILOT_NODE_RANK of $SKYPILOT_NUM_NODES"
  for i in 1 2 3; do echo "step $i"; sleep 0.2; done
`;

for (const transport of ["grpc", "grpc-web"] as const) {
  describe(`client over ${transport}`, () => {
    let server: TestServer;
    let client: SkyClient;

    before(async () => {
      server = await TestServer.start();
      client = server.client({ transport });
    });

    after(async () => {
      try {
        await server?.dispose(client);
      } finally {
        client?.close();
      }
    });

    test("server info names the API version and the local mode", async () => {
      const info = await client.serverInfo();
      assert.equal(info.apiVersion, 1);
      assert.ok(info.minApiVersion <= 1);
      assert.equal(info.mode, ServerMode.LOCAL);
      assert.ok(info.version.length > 0);
    });

    test("launch, watch the operation, stream the job's logs", async () => {
      const cluster = `ts-${transport.replace("-", "")}`;
      const op = await client.launch(taskFromYaml(HELLO_YAML), { clusterName: cluster });
      assert.match(op.name, /^operations\/[0-9a-f-]+$/);
      assert.equal(op.id, op.name.slice("operations/".length));
      assert.equal(op.metadata?.requestName, "sky.launch");
      assert.equal(op.metadata?.clusterName, cluster);

      const states: RequestState[] = [];
      let last;
      for await (const snapshot of op.watch()) {
        last = snapshot;
        states.push(op.state);
      }
      assert.ok(last?.done, "the watch ends with the done snapshot");
      assert.equal(states.at(-1), RequestState.SUCCEEDED);

      const opLog = await collect(op.logs({ follow: true }));
      assert.match(opLog, new RegExp(`Cluster launched: ${cluster}`));

      const result = await op.result();
      assert.equal(result.clusterName, cluster);
      assert.ok(result.jobId >= 1n);

      const chunks = [];
      for await (const chunk of client.jobLogs(cluster, { jobId: result.jobId, follow: true })) chunks.push(chunk);
      const output = new TextDecoder().decode(Buffer.concat(chunks.map((c) => c.data)));
      assert.equal(output, "hello from node 0 of 1\nstep 1\nstep 2\nstep 3\n");
      const offsets = chunks.filter((c) => c.data.length > 0);
      let expected = 0;
      for (const chunk of offsets) {
        assert.equal(chunk.offset, expected, "chunks are contiguous");
        expected += chunk.data.length;
      }
      assert.equal(chunks.at(-1)?.job?.status, JobStatus.SUCCEEDED);

      const [job] = await client.queue(cluster);
      assert.equal(job?.jobId, result.jobId);
      assert.equal(job?.status, JobStatus.SUCCEEDED);

      const clusters = await client.status({ clusterNames: [cluster] });
      assert.equal(clusters.length, 1);
      assert.equal(clusters[0]?.status, ClusterStatus.UP);
      assert.equal(clusters[0]?.cpus, 0.5);

      // Reading the log again from an offset gives the rest of it.
      const rest = await collect(client.jobLogs(cluster, { jobId: result.jobId, follow: false, offset: 6 }));
      assert.equal(rest, output.slice(6));
    });

    test("exec a command, cancel a running job, stop, start and tear down", async () => {
      const cluster = `ts-ops-${transport.replace("-", "")}`;
      const launched = await (
        await client.launch({ run: "echo first", resources: { cpus: 0.5 } }, { clusterName: cluster })
      ).result(60_000);

      const exec = await client.exec(cluster, { run: "echo second: $SKYPILOT_NUM_NODES", resources: { cpus: 0.5 } });
      const execResult = await exec.result(60_000);
      assert.equal(execResult.jobId, launched.jobId + 1n);
      const execOutput = await collect(client.jobLogs(cluster, { jobId: execResult.jobId }));
      assert.equal(execOutput, "second: 1\n");

      const sleeper = await (
        await client.exec(cluster, { run: "echo started; sleep 60", resources: { cpus: 0.5 } })
      ).result(60_000);
      // Once the job has printed, it is running: cancel it.
      for await (const chunk of client.jobLogs(cluster, { jobId: sleeper.jobId })) {
        if (chunk.data.length > 0) break;
      }
      const cancelled = await (await client.cancelJobs(cluster, { jobIds: [sleeper.jobId] })).result(60_000);
      assert.deepEqual(cancelled.cancelledJobIds, [sleeper.jobId]);
      const jobs = await client.queue(cluster);
      assert.equal(jobs.find((job) => job.jobId === sleeper.jobId)?.status, JobStatus.CANCELLED);

      const stopped = await (await client.stop(cluster)).result(60_000);
      assert.equal(stopped.status, ClusterStatus.STOPPED);
      const started = await (await client.start(cluster)).result(60_000);
      assert.equal(started.status, ClusterStatus.UP);

      const check = await (await client.check()).result(60_000);
      assert.ok(check.infras.some((infra) => infra.name === "local" && infra.enabled));

      await (await client.down(cluster)).result(60_000);
      assert.deepEqual(await client.status({ clusterNames: [cluster] }), []);
    });

    test("down with purge tears down a cluster", async () => {
      const cluster = `ts-purge-${transport.replace("-", "")}`;
      await (await client.launch({ run: "true", resources: { cpus: 0.5 } }, { clusterName: cluster })).result(60_000);
      const down = await (await client.down(cluster, { purge: true })).result(60_000);
      assert.equal(down.clusterName, cluster);
      assert.deepEqual(await client.status({ clusterNames: [cluster] }), []);
    });

    test("the same idempotency key returns the same operation", async () => {
      const key = `key-${transport}-${Date.now()}`;
      const task = { run: "echo dry", resources: { cpus: 0.5 } };
      const first = await client.launch(task, { clusterName: "dry", dryrun: true, idempotencyKey: key });
      const again = await client.launch(task, { clusterName: "dry", dryrun: true, idempotencyKey: key });
      assert.equal(again.name, first.name);
      const result = await first.result(60_000);
      assert.equal(result.jobId, 0n);
      assert.match(result.summary, /Dry run/);
      // Without a key, every call is a new request.
      const other = await client.launch(task, { clusterName: "dry", dryrun: true });
      assert.notEqual(other.name, first.name);
      await other.wait(60_000);
    });

    test("errors are SkyErrors with the code and the ErrorInfo reason", async () => {
      const missing = await client.exec("no-such-cluster", { run: "echo hi" }).then(
        () => assert.fail("exec on a missing cluster succeeded"),
        (err: unknown) => err,
      );
      assert.ok(missing instanceof SkyError);
      assert.equal(missing.code, Code.NotFound);
      assert.equal(missing.codeName, "NOT_FOUND");
      assert.equal(missing.reason, "NOT_FOUND");
      assert.equal(missing.domain, "skypilot.v1");
      assert.equal(missing.retryable, false);
      assert.match(missing.message, /no-such-cluster/);

      const key = `reuse-${transport}-${Date.now()}`;
      await client.launch({ run: "echo a" }, { clusterName: "dry", dryrun: true, idempotencyKey: key });
      await assert.rejects(
        client.launch({ run: "echo b" }, { clusterName: "dry", dryrun: true, idempotencyKey: key }),
        (err: unknown) =>
          err instanceof SkyError && err.code === Code.AlreadyExists && err.reason === "IDEMPOTENCY_KEY_REUSED",
      );

      // An operation that fails: more CPUs than the host has.
      const tooBig = await client.launch(
        { run: "echo big", resources: { cpus: 4096 } },
        { clusterName: `big-${transport.replace("-", "")}` },
      );
      await assert.rejects(tooBig.result(60_000), (err: unknown) => {
        assert.ok(err instanceof SkyError);
        assert.equal(err.code, Code.ResourceExhausted);
        assert.equal(err.reason, "RESOURCE_EXHAUSTED");
        assert.equal(err.operation, tooBig.name);
        assert.equal(err.retryable, true);
        return true;
      });
      assert.equal(tooBig.state, RequestState.FAILED);
      await client.down(`big-${transport.replace("-", "")}`).then(
        (op) => op.wait(60_000),
        () => undefined,
      );

      await assert.rejects(
        client.operation("not-an-id").refresh(),
        (err: unknown) => err instanceof SkyError && err.code === Code.InvalidArgument,
      );
    });

    test("errors carry the generated ErrorReason", async () => {
      const reasonOf = (err: unknown): ErrorReason => {
        assert.ok(err instanceof SkyError, `not a SkyError: ${String(err)}`);
        return err.errorReason;
      };
      // An unknown request id.
      const unknown = await client.operation("ffffffff-0000").refresh().then(
        () => assert.fail("an unknown request id was found"),
        (err: unknown) => err,
      );
      assert.equal(reasonOf(unknown), ErrorReason.NOT_FOUND);
      assert.equal((unknown as SkyError).reason, "NOT_FOUND");
      // A malformed request id.
      await assert.rejects(client.operation("not-an-id").refresh(), (err: unknown) => {
        assert.equal(reasonOf(err), ErrorReason.INVALID_ARGUMENT);
        return true;
      });
      // An idempotency key reused for a different request.
      const key = `typed-${transport}-${Date.now()}`;
      const first = await client.launch({ run: "echo a" }, { clusterName: "dry", dryrun: true, idempotencyKey: key });
      await assert.rejects(
        client.launch({ run: "echo b" }, { clusterName: "dry", dryrun: true, idempotencyKey: key }),
        (err: unknown) => {
          assert.equal(reasonOf(err), ErrorReason.IDEMPOTENCY_KEY_REUSED);
          assert.equal((err as SkyError).reason, "IDEMPOTENCY_KEY_REUSED");
          return true;
        },
      );
      // Cancelling a finished request.
      await first.wait(60_000);
      await assert.rejects(first.cancel(), (err: unknown) => {
        assert.equal(reasonOf(err), ErrorReason.ALREADY_DONE);
        return true;
      });
    });

    test("a handle on an existing operation, and the request list", async () => {
      const op = await client.check();
      await op.wait(60_000);
      const byId = client.operation(op.id.slice(0, 13));
      const snapshot = await byId.refresh();
      assert.equal(snapshot.name, op.name);
      const result = await client.operation(op.name).result();
      assert.equal(result.$typeName, "skypilot.v1.CheckResponse");
      const requests = await client.requests({ includeFinished: true });
      assert.ok(requests.some((r) => r.name === op.name));
    });
  });
}
