// Starts a real API server for a test: `$SKY_BIN api start --foreground
// --port 0` with a temporary data dir and HOME, ready once it logs "API
// server is serving", stopped with SIGTERM (after tearing clusters down).

import { spawn, type ChildProcess } from "node:child_process";
import * as fs from "node:fs";
import * as os from "node:os";
import * as path from "node:path";
import * as readline from "node:readline";
import { fileURLToPath } from "node:url";

import { createClient, type ClientOptions, type SkyClient } from "../src/index.js";

/** The folder of this package (clients/typescript), from src or dist. */
function packageRoot(): string {
  let dir = path.dirname(fileURLToPath(import.meta.url));
  while (!fs.existsSync(path.join(dir, "package.json"))) {
    const parent = path.dirname(dir);
    if (parent === dir) throw new Error("package.json not found above the tests");
    dir = parent;
  }
  return dir;
}

/** The `sky` binary: $SKY_BIN, default <repo root>/target/debug/sky. */
export const SKY_BIN = process.env.SKY_BIN || path.resolve(packageRoot(), "..", "..", "target", "debug", "sky");

/**
 * Points HOME at a temporary folder for this test process and drops
 * SKYPILOT_* variables, so that no test reads or writes the real ~/.sky.
 */
function isolateHome(): string {
  const home = fs.mkdtempSync(path.join(os.tmpdir(), "skypilot-ts-client-home-"));
  process.env.HOME = home;
  for (const name of Object.keys(process.env)) {
    if (name.startsWith("SKYPILOT_")) delete process.env[name];
  }
  process.once("exit", () => fs.rmSync(home, { recursive: true, force: true }));
  return home;
}

/** The HOME of the test process (a temporary folder). */
export const TEST_HOME = isolateHome();

/** Servers not stopped yet. */
const live = new Set<ChildProcess>();
process.once("exit", () => {
  for (const child of live) child.kill("SIGKILL");
});

/** Longest wait for a server to say it is serving. */
const READY_TIMEOUT_MS = 60_000;

/** A temporary folder, removed by `removeTemp`. */
export function tempDir(prefix: string): string {
  return fs.mkdtempSync(path.join(os.tmpdir(), `skypilot-ts-${prefix}-`));
}

/** The values of `sky api start --local-infra`. */
export type LocalInfra = "auto" | "off" | "shared-server-identity";

export interface ServerOptions {
  /** Start with --deploy and SKYPILOT_INITIAL_BASIC_AUTH=user:password. */
  basicAuth?: string;
  /** Start with --deploy --insecure-no-auth: a deployed server that asks for no credentials. */
  deployWithoutAuth?: boolean;
  /** More `sky api start` flags, e.g. ["--upload-max-mib", "1"]. */
  flags?: string[];
  /**
   * `--local-infra`. Default: "shared-server-identity" for a deployed server
   * (its local infra is otherwise off), so that tests can launch jobs on it;
   * for a local server, the server's own default (on). "off" keeps a real
   * deployment's default.
   */
  localInfra?: LocalInfra;
  /** Listen on this port (default 0: any free one). */
  port?: number;
  /** Reuse this data dir and HOME (to restart a server). */
  dataDir?: string;
  home?: string;
}

/** A running API server. */
export class TestServer {
  private exited: Promise<void>;
  private stopped = false;
  stderrTail: string[] = [];

  private constructor(
    readonly child: ChildProcess,
    readonly address: string,
    readonly dataDir: string,
    readonly home: string,
    readonly basicAuth: string | undefined,
    exited: Promise<void>,
  ) {
    this.exited = exited;
  }

  get port(): number {
    return Number(this.address.slice(this.address.lastIndexOf(":") + 1));
  }

  get endpoint(): string {
    return `http://${this.address}`;
  }

  /** Starts a server and resolves once it serves. */
  static async start(options: ServerOptions = {}): Promise<TestServer> {
    const dataDir = options.dataDir ?? tempDir("data");
    const home = options.home ?? tempDir("home");
    const args = ["api", "start", "--foreground", "--port", String(options.port ?? 0)];
    args.push("--data-dir", dataDir, "--log-format", "json", "--shutdown-grace-seconds", "2");
    const env: NodeJS.ProcessEnv = { ...process.env, HOME: home };
    for (const name of Object.keys(env)) {
      if (name.startsWith("SKYPILOT_")) delete env[name];
    }
    if (options.basicAuth) {
      args.push("--deploy", "--host", "127.0.0.1");
      env.SKYPILOT_INITIAL_BASIC_AUTH = options.basicAuth;
    } else if (options.deployWithoutAuth) {
      args.push("--deploy", "--host", "127.0.0.1", "--insecure-no-auth");
    }
    // Deployed test servers launch jobs to test auth and uploads, not
    // isolation, so their local infra (jobs run as the server's own user) is
    // turned on explicitly.
    const deployed = Boolean(options.basicAuth) || options.deployWithoutAuth === true;
    const localInfra = options.localInfra ?? (deployed ? "shared-server-identity" : undefined);
    if (localInfra) args.push("--local-infra", localInfra);
    args.push(...(options.flags ?? []));
    const child = spawn(SKY_BIN, args, { env, stdio: ["ignore", "ignore", "pipe"] });
    const exited = new Promise<void>((resolve) => child.once("exit", () => resolve()));
    // A server left running by a failed test must neither keep this process
    // alive nor outlive it: unreferenced, and killed when the process exits.
    live.add(child);
    child.once("exit", () => live.delete(child));
    child.unref();
    (child.stderr as unknown as { unref?: () => void }).unref?.();
    const tail: string[] = [];
    const lines = readline.createInterface({ input: child.stderr! });
    const address = await new Promise<string>((resolve, reject) => {
      const timer = setTimeout(() => {
        child.kill("SIGKILL");
        reject(new Error(`the server did not start within ${READY_TIMEOUT_MS} ms:\n${tail.join("\n")}`));
      }, READY_TIMEOUT_MS);
      child.once("error", (err) => {
        clearTimeout(timer);
        reject(new Error(`cannot run ${SKY_BIN} (set SKY_BIN): ${err.message}`));
      });
      child.once("exit", (code, signal) => {
        clearTimeout(timer);
        reject(new Error(`the server exited (${code ?? signal}) before serving:\n${tail.join("\n")}`));
      });
      lines.on("line", (line) => {
        tail.push(line);
        if (tail.length > 50) tail.shift();
        try {
          const record = JSON.parse(line) as { fields?: { message?: string; address?: string } };
          if (record.fields?.message === "API server is serving" && record.fields.address) {
            clearTimeout(timer);
            resolve(record.fields.address);
          }
        } catch {
          // Not a JSON line: keep it for the error message.
        }
      });
    });
    const server = new TestServer(child, address, dataDir, home, options.basicAuth, exited);
    server.stderrTail = tail;
    return server;
  }

  /** A client of this server. */
  client(options: ClientOptions = {}): SkyClient {
    return createClient({ endpoint: this.endpoint, retryUnavailableForMs: 20_000, ...options });
  }

  /** Stops the server with SIGTERM and waits for it to exit. */
  async stop(): Promise<void> {
    if (this.stopped) return;
    this.stopped = true;
    if (this.child.exitCode === null && this.child.signalCode === null) {
      this.child.ref(); // keep this process alive until the server is gone
      this.child.kill("SIGTERM");
    }
    await this.exited;
  }

  /** Tears down every cluster (through the Down RPC), then stops the server. */
  async shutdown(client?: SkyClient): Promise<void> {
    try {
      const own = client ?? this.client(this.basicAuth ? credentials(this.basicAuth) : {});
      try {
        await downAll(own);
      } finally {
        if (!client) own.close();
      }
    } finally {
      await this.stop();
    }
  }

  /** Stops the server and removes its data dir and HOME. */
  async dispose(client?: SkyClient): Promise<void> {
    try {
      await this.shutdown(client);
    } finally {
      fs.rmSync(this.dataDir, { recursive: true, force: true });
      fs.rmSync(this.home, { recursive: true, force: true });
    }
  }
}

/** `{username, password}` from "user:password". */
export function credentials(basicAuth: string): { username: string; password: string } {
  const [username, ...rest] = basicAuth.split(":");
  return { username: username!, password: rest.join(":") };
}

/**
 * Cancels every unfinished managed job (the server would otherwise launch
 * their clusters again), then tears every cluster down and waits for it.
 */
export async function downAll(client: SkyClient): Promise<void> {
  if ((await client.jobsQueue({ allUsers: true, skipFinished: true, limit: 1 })).length > 0) {
    await (await client.jobsCancel({ all: true, allUsers: true })).wait(120_000);
  }
  const clusters = await client.status({ allUsers: true });
  const ops = await Promise.all(clusters.map((cluster) => client.down(cluster.name)));
  await Promise.all(ops.map((op) => op.wait(60_000)));
}

/** Collects a log stream into text. */
export async function collect(chunks: AsyncIterable<{ data: Uint8Array }>): Promise<string> {
  const decoder = new TextDecoder();
  let text = "";
  for await (const chunk of chunks) text += decoder.decode(chunk.data, { stream: true });
  return text + decoder.decode();
}
