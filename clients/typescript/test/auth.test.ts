// A deployed server (--deploy) requires credentials: basic auth from the
// options or from the endpoint URL, or a service-account bearer token.

import assert from "node:assert/strict";
import { after, before, describe, test } from "node:test";

import { Code, SkyError, type SkyClient } from "../src/index.js";
import { TestServer } from "./harness.js";

const ADMIN = "admin";
const PASSWORD = "s3cret-Pass";

describe("a deployed server", () => {
  let server: TestServer;
  const clients: SkyClient[] = [];
  const client = (options: Parameters<TestServer["client"]>[0] = {}) => {
    const c = server.client(options);
    clients.push(c);
    return c;
  };

  before(async () => {
    server = await TestServer.start({ basicAuth: `${ADMIN}:${PASSWORD}` });
  });

  after(async () => {
    try {
      await server?.dispose();
    } finally {
      for (const c of clients) c.close();
    }
  });

  test("refuses a call without credentials, with the UNAUTHENTICATED reason", async () => {
    await assert.rejects(client().serverInfo(), (err: unknown) => {
      assert.ok(err instanceof SkyError);
      assert.equal(err.code, Code.Unauthenticated);
      assert.equal(err.reason, "UNAUTHENTICATED");
      return true;
    });
    await assert.rejects(
      client({ username: ADMIN, password: "wrong" }).whoami(),
      (err: unknown) => err instanceof SkyError && err.code === Code.Unauthenticated,
    );
  });

  for (const transport of ["grpc", "grpc-web"] as const) {
    test(`accepts basic credentials over ${transport}`, async () => {
      const me = await client({ transport, username: ADMIN, password: PASSWORD }).whoami();
      assert.equal(me?.name, ADMIN);
      const fromUrl = client({ transport, endpoint: `http://${ADMIN}:${PASSWORD}@${server.address}` });
      assert.equal(fromUrl.endpoint.baseUrl, server.endpoint);
      assert.equal((await fromUrl.whoami())?.name, ADMIN);
    });
  }

  test("accepts a service-account token as a bearer token", async () => {
    const admin = client({ username: ADMIN, password: PASSWORD });
    const created = await admin.unary((options) => admin.raw.users.createToken({ name: "ci" }, options));
    assert.match(created.secret, /^sky_/);
    const withToken = client({ token: created.secret });
    assert.equal((await withToken.whoami())?.name, ADMIN);
    const info = await withToken.serverInfo();
    assert.equal(info.user?.name, ADMIN);
  });

  test("runs an authenticated user's job (the harness turns its local infra on)", async () => {
    const admin = client({ username: ADMIN, password: PASSWORD });
    const launched = await (
      await admin.launch({ run: "echo hi", resources: { cpus: 0.5 } }, { clusterName: "ts-auth" })
    ).result(60_000);
    assert.equal(launched.clusterName, "ts-auth");
    await (await admin.down("ts-auth")).result(60_000);
  });
});

describe("a deployed server with its local infra off (a real deployment's default)", () => {
  let server: TestServer;
  let admin: SkyClient;

  before(async () => {
    server = await TestServer.start({ basicAuth: `${ADMIN}:${PASSWORD}`, localInfra: "off" });
    admin = server.client({ username: ADMIN, password: PASSWORD });
  });

  after(async () => {
    try {
      await server?.dispose(admin);
    } finally {
      admin?.close();
    }
  });

  test("reports the local infra disabled and refuses launches with FAILED_PRECONDITION", async () => {
    const check = await (await admin.check()).result(60_000);
    const local = check.infras.find((infra) => infra.name === "local");
    assert.equal(local?.enabled, false);
    assert.match(local?.reason ?? "", /server\.localInfra/);
    await assert.rejects(
      async () => (await admin.launch({ run: "true", resources: { cpus: 0.5 } }, { clusterName: "ts-off" })).result(60_000),
      (err: unknown) => {
        assert.ok(err instanceof SkyError);
        assert.equal(err.code, Code.FailedPrecondition);
        assert.equal(err.reason, "FAILED_PRECONDITION");
        assert.match(err.message, /--local-infra shared-server-identity/);
        return true;
      },
    );
    assert.deepEqual(await admin.status({ allUsers: true }), []);
  });
});
