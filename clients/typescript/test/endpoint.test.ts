// Endpoint resolution, and what the client puts on the wire (headers, the
// idempotency key, retries of UNAVAILABLE only), checked against a stub
// HTTP/2 endpoint on loopback.

import assert from "node:assert/strict";
import * as fs from "node:fs";
import * as http2 from "node:http2";
import type { AddressInfo } from "node:net";
import * as path from "node:path";
import { afterEach, describe, test } from "node:test";

import { fromBinary } from "@bufbuild/protobuf";

import { Code, SkyError, createClient, resolveEndpoint } from "../src/index.js";
import { LaunchRequestSchema } from "../src/gen/skypilot/v1/clusters_pb.js";
import { TEST_HOME } from "./harness.js";

const CONFIG = path.join(TEST_HOME, ".sky", "skyconfig.yaml");

function writeConfig(text: string): void {
  fs.mkdirSync(path.dirname(CONFIG), { recursive: true });
  fs.writeFileSync(CONFIG, text);
}

describe("endpoint resolution", () => {
  afterEach(() => {
    fs.rmSync(CONFIG, { force: true });
    for (const name of [
      "SKYPILOT_API_SERVER_ENDPOINT",
      "SKYPILOT_API_SERVER_LOCAL_PORT",
      "SKYPILOT_SERVICE_ACCOUNT_TOKEN",
    ]) {
      delete process.env[name];
    }
  });

  test("the local default, or the port in SKYPILOT_API_SERVER_LOCAL_PORT", () => {
    assert.deepEqual(resolveEndpoint(), { baseUrl: "http://127.0.0.1:46580", tls: false, source: "default" });
    process.env.SKYPILOT_API_SERVER_LOCAL_PORT = "47001";
    assert.equal(resolveEndpoint().baseUrl, "http://127.0.0.1:47001");
    process.env.SKYPILOT_API_SERVER_LOCAL_PORT = "nope";
    assert.throws(() => resolveEndpoint(), /SKYPILOT_API_SERVER_LOCAL_PORT/);
  });

  test("api_server.endpoint in ~/.sky/skyconfig.yaml, with credentials, token and CA", () => {
    writeConfig(
      "other: kept\napi_server:\n  endpoint: https://alice:p%40ss@sky.example:8443\n" +
        "  service_account_token: sky_abc\n  ca_cert: /etc/ca.pem\n",
    );
    const endpoint = resolveEndpoint();
    assert.equal(endpoint.source, "config");
    assert.equal(endpoint.baseUrl, "https://sky.example:8443");
    assert.equal(endpoint.tls, true);
    assert.deepEqual(endpoint.basicAuth, { username: "alice", password: "p@ss" });
    assert.equal(endpoint.token, "sky_abc");
    assert.equal(endpoint.caCert, "/etc/ca.pem");
  });

  test("SKYPILOT_API_SERVER_ENDPOINT wins over the config, an argument over both", () => {
    writeConfig("api_server:\n  endpoint: http://config-host:1\n");
    process.env.SKYPILOT_API_SERVER_ENDPOINT = "http://env-host:2";
    process.env.SKYPILOT_SERVICE_ACCOUNT_TOKEN = "sky_env";
    assert.equal(resolveEndpoint().baseUrl, "http://env-host:2");
    assert.equal(resolveEndpoint().source, "env");
    assert.equal(resolveEndpoint().token, "sky_env");
    assert.equal(resolveEndpoint("http://arg-host:3").baseUrl, "http://arg-host:3");
    assert.equal(resolveEndpoint("http://arg-host:3").source, "argument");
  });

  test("invalid endpoints say where they came from", () => {
    process.env.SKYPILOT_API_SERVER_ENDPOINT = "ftp://x";
    assert.throws(() => resolveEndpoint(), /SKYPILOT_API_SERVER_ENDPOINT.*unsupported scheme/);
    delete process.env.SKYPILOT_API_SERVER_ENDPOINT;
    writeConfig("api_server:\n  endpoint: [1]\n");
    assert.throws(() => resolveEndpoint(), /api_server.endpoint/);
    writeConfig("api_server: {endpoint: 'http://h:1/path'}\n");
    assert.throws(() => resolveEndpoint(), /a path is not allowed/);
  });
});

/** A loopback HTTP/2 endpoint answering every call with the next gRPC status in `statuses`. */
async function stubServer(statuses: number[]) {
  const calls: { headers: http2.IncomingHttpHeaders; body: Buffer }[] = [];
  const server = http2.createServer();
  server.on("stream", (stream, headers) => {
    const parts: Buffer[] = [];
    stream.on("data", (part: Buffer) => parts.push(part));
    stream.on("end", () => {
      calls.push({ headers, body: Buffer.concat(parts) });
      const status = statuses[Math.min(calls.length - 1, statuses.length - 1)]!;
      stream.respond(
        { ":status": 200, "content-type": "application/grpc", "grpc-status": String(status), "grpc-message": "stub" },
        { endStream: true },
      );
    });
  });
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  const { port } = server.address() as AddressInfo;
  return {
    calls,
    endpoint: `http://127.0.0.1:${port}`,
    close: () => new Promise<void>((resolve) => server.close(() => resolve())),
  };
}

describe("on the wire", () => {
  test("headers, a filled-in idempotency key kept across UNAVAILABLE retries", async () => {
    const stub = await stubServer([Code.Unavailable, Code.Unavailable, Code.Unimplemented]);
    const client = createClient({ endpoint: stub.endpoint, token: "sky_tok", user: { name: "ann", id: "abcd1234" } });
    try {
      await assert.rejects(
        client.launch({ run: "echo" }, { clusterName: "c" }),
        (err: unknown) => err instanceof SkyError && err.code === Code.Unimplemented,
      );
      assert.equal(stub.calls.length, 3, "two UNAVAILABLE answers were retried");
      const [first] = stub.calls;
      assert.equal(first!.headers[":path"], "/skypilot.v1.ClusterService/Launch");
      assert.equal(first!.headers["x-skypilot-api-version"], "1");
      assert.equal(first!.headers["authorization"], "Bearer sky_tok");
      assert.equal(first!.headers["x-skypilot-user"], "ann");
      assert.equal(first!.headers["x-skypilot-user-id"], "abcd1234");
      assert.match(String(first!.headers["grpc-timeout"]), /^\d+m$/, "unary calls carry a deadline");
      const keys = stub.calls.map((call) => fromBinary(LaunchRequestSchema, call.body.subarray(5)).idempotencyKey);
      assert.match(keys[0]!, /^[0-9a-f-]{36}$/);
      assert.deepEqual(new Set(keys).size, 1, "retries reuse the key");
    } finally {
      client.close();
      await stub.close();
    }
  });

  test("other errors are not retried; basic credentials", async () => {
    const stub = await stubServer([Code.Internal]);
    const client = createClient({ endpoint: stub.endpoint, username: "bob", password: "pw", timeoutMs: 1234 });
    try {
      await assert.rejects(client.status(), (err: unknown) => err instanceof SkyError && err.code === Code.Internal);
      assert.equal(stub.calls.length, 1);
      assert.equal(stub.calls[0]!.headers["authorization"], `Basic ${Buffer.from("bob:pw").toString("base64")}`);
      assert.equal(stub.calls[0]!.headers["grpc-timeout"], "1234m");
    } finally {
      client.close();
      await stub.close();
    }
  });

  test("UNAVAILABLE is retried only for retryUnavailableForMs", async () => {
    const stub = await stubServer([Code.Unavailable]);
    const client = createClient({ endpoint: stub.endpoint, retryUnavailableForMs: 300 });
    try {
      await assert.rejects(
        client.serverInfo(),
        (err: unknown) => err instanceof SkyError && err.code === Code.Unavailable,
      );
      assert.ok(stub.calls.length >= 2 && stub.calls.length < 10, `${stub.calls.length} attempts`);
    } finally {
      client.close();
      await stub.close();
    }
  });
});
