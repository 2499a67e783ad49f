// Managed jobs (`sky jobs`) against a real local API server: each job runs
// on a cluster of its own, which is gone once the job is over; restarts on
// errors; cancelling; typed errors.

import assert from "node:assert/strict";
import { randomUUID } from "node:crypto";
import { after, before, describe, test } from "node:test";

import {
  Code,
  ErrorReason,
  JobWaitTimeoutError,
  ManagedJobStatus,
  SkyError,
  pipelineFromYaml,
  type SkyClient,
} from "../src/index.js";
import { TestServer, collect } from "./harness.js";

const unique = (prefix: string) => `${prefix}-${randomUUID().slice(0, 8)}`;

describe("managed jobs", () => {
  let server: TestServer;
  let client: SkyClient;

  before(async () => {
    server = await TestServer.start();
    client = server.client();
  });

  after(async () => {
    try {
      await server?.dispose(client);
    } finally {
      client?.close();
    }
  });

  /** The clusters of the jobs named `name` (`<name>-<id>-<4 characters>`). */
  async function jobClusters(name: string): Promise<string[]> {
    const clusters = await client.status({ allUsers: true });
    return clusters.map((cluster) => cluster.name).filter((cluster) => cluster.startsWith(`${name}-`));
  }

  test("a pipeline runs its tasks in order on a cluster that is gone afterwards", async () => {
    const name = unique("ts-pipe");
    const pipeline = pipelineFromYaml(
      `name: ${name}\n---\nname: prepare\nrun: echo step one\n---\n` +
        "name: train\nresources: {cpus: 0.5}\nrun: echo step two\n",
    );
    const op = await client.jobsLaunch(pipeline);
    assert.equal(op.metadata?.requestName, "sky.jobs.launch");
    const launched = await op.result(60_000);
    assert.equal(launched.name, name);
    assert.ok(launched.jobId >= 1n);

    const job = await client.jobsWait(launched.jobId, { timeoutMs: 120_000 });
    assert.equal(job.status, ManagedJobStatus.SUCCEEDED);
    assert.equal(job.numTasks, 2);
    assert.equal(job.taskName, "train");
    assert.deepEqual(await jobClusters(name), [], "the job's cluster is torn down");

    const chunks = [];
    for await (const chunk of client.jobsLogs({ jobId: launched.jobId })) chunks.push(chunk);
    const output = new TextDecoder().decode(Buffer.concat(chunks.map((c) => c.data)));
    assert.ok(output.indexOf("step one") < output.indexOf("step two"), output);
    assert.match(output, /Task 2\/2 'train'/);
    assert.equal(chunks.at(-1)?.job?.status, ManagedJobStatus.SUCCEEDED);
    const controller = await collect(client.jobsLogs({ jobId: launched.jobId, controller: true, follow: false }));
    assert.match(controller, /The job succeeded\./);

    const [listed] = await client.jobsQueue({ jobIds: [launched.jobId] });
    assert.equal(listed?.status, ManagedJobStatus.SUCCEEDED);
    const unfinished = await client.jobsQueue({ skipFinished: true });
    assert.ok(!unfinished.some((queued) => queued.jobId === launched.jobId));
  });

  test("a failing run is restarted as job_recovery allows, then ends FAILED", async () => {
    const name = unique("ts-flaky");
    const yaml = [
      `name: ${name}`,
      "resources:",
      "  cpus: 0.5",
      "  job_recovery:",
      "    max_restarts_on_errors: 1",
      "run: echo attempt; exit 3",
    ].join("\n");
    const launched = await (await client.jobsLaunch(yaml)).result(60_000);
    const job = await client.jobsWait(launched.jobId, { timeoutMs: 180_000 });
    assert.equal(job.status, ManagedJobStatus.FAILED);
    assert.equal(job.recoveryCount, 1);
    assert.match(job.failureReason, /the task failed/);
    const output = await collect(client.jobsLogs({ jobId: launched.jobId }));
    assert.equal(output.split("\n").filter((line) => line === "attempt").length, 2, output);
    assert.deepEqual(await jobClusters(name), []);
  });

  test("cancel a running job; a finished or unknown job is refused", async () => {
    const name = unique("ts-long");
    const launched = await (
      await client.jobsLaunch({ run: "echo started; sleep 120", resources: { cpus: 0.5 } }, { name })
    ).result(60_000);
    // Once it has printed, it runs.
    let seen = "";
    for await (const chunk of client.jobsLogs({ jobId: launched.jobId })) {
      seen += new TextDecoder().decode(chunk.data);
      if (seen.includes("started\n")) break;
    }
    // The controller says so once it has recorded the job RUNNING.
    let noted = "";
    for await (const chunk of client.jobsLogs({ jobId: launched.jobId, controller: true })) {
      noted += new TextDecoder().decode(chunk.data);
      if (noted.includes("is running")) break;
    }
    const [running] = await client.jobsQueue({ jobIds: [launched.jobId] });
    assert.equal(running?.status, ManagedJobStatus.RUNNING);
    assert.deepEqual(await jobClusters(name), [running?.clusterName], "a cluster of its own");
    await assert.rejects(
      client.jobsWait(launched.jobId, { timeoutMs: 500 }),
      (err: unknown) => err instanceof JobWaitTimeoutError && err.jobId === launched.jobId,
    );

    const cancelled = await (await client.jobsCancel({ jobIds: [launched.jobId] })).result(120_000);
    assert.deepEqual(cancelled.cancelledJobIds, [launched.jobId]);
    const job = await client.jobsWait(launched.jobId, { timeoutMs: 60_000 });
    assert.equal(job.status, ManagedJobStatus.CANCELLED);
    assert.deepEqual(await jobClusters(name), []);

    await assert.rejects(client.jobsCancel({ jobIds: [launched.jobId] }), (err: unknown) => {
      assert.ok(err instanceof SkyError);
      assert.equal(err.errorReason, ErrorReason.ALREADY_DONE);
      assert.match(err.message, /already finished \(CANCELLED\)/);
      return true;
    });
    const unknown = 1_000_000_000n;
    for (const call of [
      () => client.jobsWait(unknown),
      () => collect(client.jobsLogs({ jobId: unknown, follow: false })),
      () => client.jobsCancel({ jobIds: [unknown] }),
    ]) {
      await assert.rejects(call(), (err: unknown) => {
        assert.ok(err instanceof SkyError);
        assert.equal(err.code, Code.NotFound);
        assert.equal(err.errorReason, ErrorReason.NOT_FOUND);
        return true;
      });
    }
    assert.deepEqual(await client.jobsQueue({ jobIds: [unknown] }), []);
  });
});
