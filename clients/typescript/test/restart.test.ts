// The client rides out a server restart: a followed job log resumes from the
// last offset (nothing lost, nothing repeated), and calls made while the
// server is down are retried until it is back.

import assert from "node:assert/strict";
import { after, before, describe, test } from "node:test";

import { JobStatus, type SkyClient } from "../src/index.js";
import { TestServer } from "./harness.js";

const LINES = 12;
const SLOW_TASK = {
  name: "slow",
  resources: { cpus: 0.5 },
  run: `for i in $(seq 1 ${LINES}); do echo "line $i"; sleep 0.25; done`,
};

for (const transport of ["grpc", "grpc-web"] as const) {
  describe(`a server restart over ${transport}`, () => {
    let server: TestServer;
    let client: SkyClient;

    before(async () => {
      server = await TestServer.start();
      client = server.client({ transport, retryUnavailableForMs: 30_000 });
    });

    after(async () => {
      try {
        await server?.dispose(client);
      } finally {
        client?.close();
      }
    });

    async function restart(): Promise<void> {
      await server.stop();
      server = await TestServer.start({ port: server.port, dataDir: server.dataDir, home: server.home });
    }

    test("a followed job log resumes from the last offset", async () => {
      const cluster = `restart-${transport.replace("-", "")}`;
      const launched = await (await client.launch(SLOW_TASK, { clusterName: cluster })).result(60_000);

      const decoder = new TextDecoder();
      let output = "";
      let restarted = false;
      let last;
      for await (const chunk of client.jobLogs(cluster, { jobId: launched.jobId, follow: true })) {
        output += decoder.decode(chunk.data, { stream: true });
        last = chunk;
        if (!restarted && output.includes("line 1\n")) {
          restarted = true;
          await restart();
        }
      }
      assert.ok(restarted);
      const expected = Array.from({ length: LINES }, (_, i) => `line ${i + 1}\n`).join("");
      assert.equal(output, expected);
      assert.equal(last?.job?.status, JobStatus.SUCCEEDED);
    });

    test("calls made while the server is down are retried until it is back", async () => {
      await server.stop();
      const pending = client.serverInfo().then(
        (info) => ({ info }),
        (error: unknown) => ({ error }),
      );
      server = await TestServer.start({ port: server.port, dataDir: server.dataDir, home: server.home });
      const outcome = await pending;
      if ("error" in outcome) throw outcome.error;
      const { info } = outcome;
      assert.equal(info.apiVersion, 1);
      // And the cluster launched before both restarts is still there.
      const [cluster] = await client.status();
      assert.equal(cluster?.name, `restart-${transport.replace("-", "")}`);
    });
  });
}
