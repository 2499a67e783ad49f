// SSH node pools and cluster nodes through the client, against a local API
// server that has no SSH node pools: `sshUp` and `sshDown` are refused with
// FAILED_PRECONDITION, and `status({ refresh })` reaches a local cluster's node.

import assert from "node:assert/strict";
import { after, before, describe, test } from "node:test";

import { ClusterStatus, Code, ErrorReason, SkyError, type Operation, type SkyClient } from "../src/index.js";
import { TestServer } from "./harness.js";

/** Asserts that `err` is the refusal of a server without SSH node pools. */
function isNoSshNodePools(what: string, err: unknown): true {
  assert.ok(err instanceof SkyError, `${what}: not a SkyError: ${String(err)}`);
  assert.equal(err.code, Code.FailedPrecondition, what);
  assert.equal(err.reason, "FAILED_PRECONDITION", what);
  assert.equal(err.errorReason, ErrorReason.FAILED_PRECONDITION, what);
  assert.match(err.message, /no SSH node pools/, what);
  assert.match(err.message, /ssh_node_pools\.yaml/, what);
  return true;
}

for (const transport of ["grpc", "grpc-web"] as const) {
  describe(`SSH node pools over ${transport}`, () => {
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

    test("sshUp and sshDown fail with FAILED_PRECONDITION on a server without pools", async () => {
      const calls: Record<string, () => Promise<Operation>> = {
        "up, every pool": () => client.sshUp(),
        "up, one pool": () => client.sshUp({ infra: "ssh/lab" }),
        "down, every pool": () => client.sshDown(),
        "down, an unknown pool": () => client.sshDown({ infra: "gpus" }),
      };
      for (const [what, call] of Object.entries(calls)) {
        await assert.rejects(
          async () => (await call()).result(60_000),
          (err: unknown) => isNoSshNodePools(what, err),
        );
      }
    });

    test("status with refresh reaches the node of a local cluster", async () => {
      const cluster = `ts-nodes-${transport.replace("-", "")}`;
      await (await client.launch({ run: "true", resources: { cpus: 0.5 } }, { clusterName: cluster })).result(60_000);
      for (const refresh of [false, true]) {
        const clusters = await client.status({ clusterNames: [cluster], refresh });
        assert.equal(clusters.length, 1, `refresh ${refresh}`);
        assert.equal(clusters[0]!.status, ClusterStatus.UP, `refresh ${refresh}`);
        const nodes = clusters[0]!.nodes.map(({ rank, host, reachable, detail }) => ({ rank, host, reachable, detail }));
        assert.deepEqual(nodes, [{ rank: 0, host: "local", reachable: true, detail: "" }], `refresh ${refresh}`);
        assert.ok(clusters[0]!.nodes[0]!.address.length > 0, `refresh ${refresh}`);
      }
      await (await client.down(cluster)).result(60_000);
      assert.deepEqual(await client.status({ clusterNames: [cluster], refresh: true }), []);
    });
  });
}
