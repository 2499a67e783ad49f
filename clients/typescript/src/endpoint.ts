// Which API server to talk to, and as whom: SKYPILOT_API_SERVER_ENDPOINT,
// else `api_server.endpoint` in ~/.sky/skyconfig.yaml, else the local
// default http://127.0.0.1:46580 (the same order as the `sky` CLI).

import { randomBytes } from "node:crypto";
import * as fs from "node:fs";
import * as os from "node:os";
import * as path from "node:path";
import { parse as parseYaml } from "yaml";

/** Port of the local default API server. */
export const DEFAULT_PORT = 46580;
/** Environment variable naming the endpoint; it overrides the config file. */
export const ENDPOINT_ENV = "SKYPILOT_API_SERVER_ENDPOINT";
/** Environment variable holding a service-account token. */
export const TOKEN_ENV = "SKYPILOT_SERVICE_ACCOUNT_TOKEN";
/** Environment variable that moves the local default server to another port. */
export const LOCAL_PORT_ENV = "SKYPILOT_API_SERVER_LOCAL_PORT";

/** Where an endpoint came from. */
export type EndpointSource = "argument" | "env" | "config" | "default";

/** A resolved API server endpoint. */
export interface Endpoint {
  /** The URL calls go to, without credentials, e.g. `http://127.0.0.1:46580`. */
  baseUrl: string;
  /** True for `https://`. */
  tls: boolean;
  /** HTTP basic credentials, from the URL or from the options. */
  basicAuth?: { username: string; password: string };
  /** A service-account token, sent as a bearer token (it wins over basic credentials). */
  token?: string;
  /** A PEM file trusted besides the system roots for an `https://` server. */
  caCert?: string;
  source: EndpointSource;
}

/** `~/.sky`, where the client keeps its config and user id. */
export function skyDir(): string {
  return path.join(process.env.HOME || os.homedir(), ".sky");
}

/** `~/.sky/skyconfig.yaml`. */
export function configPath(): string {
  return path.join(skyDir(), "skyconfig.yaml");
}

/** The `api_server` section of ~/.sky/skyconfig.yaml (empty when there is no file). */
export function readApiServerConfig(file: string = configPath()): Record<string, unknown> {
  let text: string;
  try {
    text = fs.readFileSync(file, "utf8");
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === "ENOENT") return {};
    throw new Error(`cannot read ${file}: ${(err as Error).message}`);
  }
  let root: unknown;
  try {
    root = parseYaml(text);
  } catch (err) {
    throw new Error(`${file} is not valid YAML: ${(err as Error).message}. Fix or remove the file.`);
  }
  if (root === null || root === undefined) return {};
  if (typeof root !== "object" || Array.isArray(root)) {
    throw new Error(`${file} must be a mapping of keys. Fix or remove the file.`);
  }
  const section = (root as Record<string, unknown>).api_server;
  if (section === null || section === undefined) return {};
  if (typeof section !== "object" || Array.isArray(section)) {
    throw new Error(`invalid \`api_server\` in ${file}: expected a mapping. Fix the key or remove it.`);
  }
  return section as Record<string, unknown>;
}

function configString(section: Record<string, unknown>, key: string): string | undefined {
  const value = section[key];
  if (value === null || value === undefined) return undefined;
  if (typeof value !== "string") {
    throw new Error(`invalid \`api_server.${key}\` in ${configPath()}: expected a string.`);
  }
  return value.trim() === "" ? undefined : value.trim();
}

/**
 * Parses `http[s]://[user:password@]host[:port]`. Credentials in the URL
 * become basic auth; the port defaults to 80/443 as for any URL.
 */
export function parseEndpoint(value: string, source: EndpointSource, origin = "the endpoint"): Endpoint {
  const fail = (problem: string): never => {
    throw new Error(
      `invalid API server endpoint ${JSON.stringify(value)} in ${origin}: ${problem}. ` +
        "Expected http[s]://[user:password@]host[:port].",
    );
  };
  let url: URL;
  try {
    url = new URL(value.trim());
  } catch {
    return fail("not a URL");
  }
  if (url.protocol !== "http:" && url.protocol !== "https:") fail(`unsupported scheme ${url.protocol}`);
  if (!url.hostname) fail("no host");
  if ((url.pathname && url.pathname !== "/") || url.search || url.hash) fail("a path is not allowed");
  const endpoint: Endpoint = {
    baseUrl: `${url.protocol}//${url.host}`,
    tls: url.protocol === "https:",
    source,
  };
  if (url.username || url.password) {
    endpoint.basicAuth = {
      username: decodeURIComponent(url.username),
      password: decodeURIComponent(url.password),
    };
  }
  return endpoint;
}

/** `http://127.0.0.1:46580`, or the port in SKYPILOT_API_SERVER_LOCAL_PORT. */
export function localDefaultEndpoint(): Endpoint {
  let port = DEFAULT_PORT;
  const env = process.env[LOCAL_PORT_ENV];
  if (env !== undefined) {
    port = Number(env.trim());
    if (!Number.isInteger(port) || port < 1 || port > 65535) {
      throw new Error(`invalid ${LOCAL_PORT_ENV} ${JSON.stringify(env)}: not a port number from 1 to 65535`);
    }
  }
  return { baseUrl: `http://127.0.0.1:${port}`, tls: false, source: "default" };
}

/**
 * Resolves the endpoint: the given one, else SKYPILOT_API_SERVER_ENDPOINT,
 * else `api_server.endpoint` in ~/.sky/skyconfig.yaml, else the local default.
 * The token comes from SKYPILOT_SERVICE_ACCOUNT_TOKEN, else
 * `api_server.service_account_token`; the CA certificate from `api_server.ca_cert`.
 */
export function resolveEndpoint(explicit?: string): Endpoint {
  const config = readApiServerConfig();
  let endpoint: Endpoint;
  const env = process.env[ENDPOINT_ENV];
  const fromConfig = configString(config, "endpoint");
  if (explicit !== undefined && explicit.trim() !== "") {
    endpoint = parseEndpoint(explicit, "argument");
  } else if (env !== undefined && env.trim() !== "") {
    endpoint = parseEndpoint(env, "env", ENDPOINT_ENV);
  } else if (fromConfig !== undefined) {
    endpoint = parseEndpoint(fromConfig, "config", `api_server.endpoint of ${configPath()}`);
  } else {
    endpoint = localDefaultEndpoint();
  }
  const token = process.env[TOKEN_ENV]?.trim() || configString(config, "service_account_token");
  if (token) endpoint.token = token;
  const caCert = configString(config, "ca_cert");
  if (caCert) endpoint.caCert = caCert;
  return endpoint;
}

/** The user a local server records as the caller: $USER and ~/.sky/user_hash. */
export interface Identity {
  name: string;
  id: string;
}

/**
 * The current user, as the `sky` CLI presents it: `$USER` (else `$LOGNAME`,
 * else "user") and the id in ~/.sky/user_hash, created on first use, so that
 * the CLI and this client act as the same user.
 */
export function currentIdentity(): Identity {
  const name = (process.env.USER || process.env.LOGNAME || "").trim() || "user";
  const file = path.join(skyDir(), "user_hash");
  try {
    const existing = fs.readFileSync(file, "utf8").trim();
    if (existing) return { name, id: existing };
  } catch {
    // Not there yet: create it below.
  }
  const id = randomBytes(4).toString("hex");
  try {
    fs.mkdirSync(path.dirname(file), { recursive: true });
    // Another process may race us: keep whichever id reached the file first.
    const tmp = `${file}.tmp${process.pid}`;
    fs.writeFileSync(tmp, id);
    try {
      fs.linkSync(tmp, file);
    } catch {
      // Already created by someone else.
    }
    fs.rmSync(tmp, { force: true });
    return { name, id: fs.readFileSync(file, "utf8").trim() || id };
  } catch {
    return { name, id };
  }
}
