// The connection to the API server: a gRPC-Web transport to this page's own
// origin, the credentials the user signed in with (kept in sessionStorage, so
// a reload keeps them and closing the tab forgets them; a password is traded
// for a short-lived token at sign-in when the server allows it), the
// generated service clients, and error text.

import { anyUnpack } from "@bufbuild/protobuf/wkt";
import { Code, ConnectError, createClient, type CallOptions, type Interceptor } from "@connectrpc/connect";
import { createGrpcWebTransport } from "@connectrpc/connect-web";

import { Operations, type Operation } from "../../src/gen/google/longrunning/operations_pb.js";
import { ClusterService, JobService } from "../../src/gen/skypilot/v1/clusters_pb.js";
import { InfraService } from "../../src/gen/skypilot/v1/infra_pb.js";
import { ManagedJobService } from "../../src/gen/skypilot/v1/managed_jobs_pb.js";
import {
  RequestMetadataSchema,
  RequestState,
  RequestService,
  type RequestMetadata,
} from "../../src/gen/skypilot/v1/requests_pb.js";
import { Role, UserService, type UserInfo } from "../../src/gen/skypilot/v1/users_pb.js";
import { API_VERSION, API_VERSION_HEADER } from "../../src/version.js";

/**
 * How the user signed in: a user name and password, or a service-account
 * token; `tokenId` marks a token the dashboard created at a password sign-in
 * (revoked again at sign-out).
 */
export type Credentials =
  | { kind: "basic"; user: string; password: string }
  | { kind: "token"; token: string; tokenId?: string };

const STORAGE_KEY = "skypilot.dashboard.credentials";

export function loadCredentials(): Credentials | undefined {
  try {
    const raw = sessionStorage.getItem(STORAGE_KEY);
    if (!raw) return undefined;
    const c = JSON.parse(raw) as Credentials;
    if (c.kind === "basic" && typeof c.user === "string" && typeof c.password === "string") return c;
    if (c.kind === "token" && typeof c.token === "string") {
      const tokenId = typeof c.tokenId === "string" ? c.tokenId : undefined;
      return tokenId ? { kind: "token", token: c.token, tokenId } : { kind: "token", token: c.token };
    }
  } catch {
    // No storage (private mode) or a damaged entry: signed out.
  }
  return undefined;
}

export function saveCredentials(c: Credentials): void {
  try {
    sessionStorage.setItem(STORAGE_KEY, JSON.stringify(c));
  } catch {
    // Without storage the session lasts until the next reload.
  }
}

export function clearCredentials(): void {
  try {
    sessionStorage.removeItem(STORAGE_KEY);
  } catch {
    // Nothing stored.
  }
}

/** The `authorization` header value of some credentials. */
export function authorization(c: Credentials): string {
  if (c.kind === "token") return `Bearer ${c.token}`;
  const utf8 = new TextEncoder().encode(`${c.user}:${c.password}`);
  let binary = "";
  for (const b of utf8) binary += String.fromCharCode(b);
  return `Basic ${btoa(binary)}`;
}

let current: Credentials | undefined;

/** Sets the credentials every following call carries. */
export function useCredentials(c: Credentials | undefined): void {
  current = c;
}

/** The credentials calls carry now. */
export function currentCredentials(): Credentials | undefined {
  return current;
}

const headers: Interceptor = (next) => (request) => {
  request.header.set(API_VERSION_HEADER, String(API_VERSION));
  if (current && !request.header.has("authorization")) request.header.set("authorization", authorization(current));
  return next(request);
};

const transport = createGrpcWebTransport({
  baseUrl: location.origin,
  useBinaryFormat: true,
  interceptors: [headers],
});

export const api = {
  clusters: createClient(ClusterService, transport),
  jobs: createClient(JobService, transport),
  managed: createClient(ManagedJobService, transport),
  infra: createClient(InfraService, transport),
  requests: createClient(RequestService, transport),
  operations: createClient(Operations, transport),
  users: createClient(UserService, transport),
};

/** Options of a unary call: a 30 s deadline, cancelled with the page. */
export function unary(signal: AbortSignal): CallOptions {
  return { signal, timeoutMs: 30_000 };
}

/** Options of a stream: no deadline, cancelled with the page. */
export function stream(signal: AbortSignal, onHeader?: () => void): CallOptions {
  return { signal, onHeader };
}

/** How long the token of a password sign-in lasts. */
const SESSION_TOKEN_SECONDS = 12 * 60 * 60;

/**
 * Trades a user name and password for a token of that user (CreateToken,
 * named "dashboard", 12 hours), so that the password itself is not kept in
 * the tab. Returns the password credentials unchanged when the server
 * refuses or cannot create one.
 */
export async function sessionCredentials(c: Credentials, signal: AbortSignal): Promise<Credentials> {
  if (c.kind !== "basic") return c;
  try {
    const callOptions = unary(signal);
    callOptions.headers = { authorization: authorization(c) };
    const res = await api.users.createToken(
      { name: "dashboard", expiresInSeconds: BigInt(SESSION_TOKEN_SECONDS) },
      callOptions,
    );
    if (!res.secret || !res.token?.tokenId) return c;
    return { kind: "token", token: res.secret, tokenId: res.token.tokenId };
  } catch (err) {
    if (signal.aborted) throw err;
    return c;
  }
}

/** Revokes the token a password sign-in created (best effort: a few seconds at most). */
export async function revokeSessionToken(c: Credentials | undefined): Promise<void> {
  if (c?.kind !== "token" || !c.tokenId) return;
  try {
    await api.users.revokeToken(
      { tokenId: c.tokenId },
      { timeoutMs: 5_000, headers: { authorization: authorization(c) } },
    );
  } catch {
    // Expired or revoked already, or the server is gone: it lapses on its own.
  }
}

/** Who is signed in, and what they may do. */
export interface Session {
  user: UserInfo;
  admin: boolean;
  /** The server answered without credentials: a local server, no sign-in. */
  noAuth: boolean;
}

let session: Session | undefined;

export function setSession(s: Session | undefined): void {
  session = s;
}

export function getSession(): Session | undefined {
  return session;
}

export function isAdmin(): boolean {
  return session?.admin ?? false;
}

/** Whether the viewer may stop, cancel ... what the user with this id owns. */
export function canManage(userId: string): boolean {
  if (!session) return false;
  return session.noAuth || session.admin || userId === session.user.id;
}

/** Asks the server who these credentials (or none) are. */
export async function whoAmI(c: Credentials | undefined, signal: AbortSignal): Promise<Session> {
  const callOptions = unary(signal);
  if (c) callOptions.headers = { authorization: authorization(c) };
  const res = await api.users.whoAmI({}, callOptions);
  if (!res.user) throw new ConnectError("the server did not say who you are", Code.Internal);
  return { user: res.user, admin: res.user.role === Role.ADMIN, noAuth: c === undefined };
}

/** The upper-snake name of a gRPC code, e.g. `NOT_FOUND`. */
export function codeName(code: Code): string {
  if (code === Code.Canceled) return "CANCELLED";
  return (Code[code] ?? "UNKNOWN").replace(/([a-z])([A-Z])/g, "$1_$2").toUpperCase();
}

/** What failed: the server's message and the code's name. */
export function describe(err: unknown): { code: Code; codeName: string; message: string } {
  const e = ConnectError.from(err);
  return { code: e.code, codeName: codeName(e.code), message: e.rawMessage || codeName(e.code) };
}

export function isUnauthenticated(err: unknown): boolean {
  return ConnectError.from(err).code === Code.Unauthenticated;
}

/** A random idempotency key (a UUID v4; also where crypto.randomUUID is missing, off https). */
export function newKey(): string {
  const b = crypto.getRandomValues(new Uint8Array(16));
  b[6] = (b[6]! & 0x0f) | 0x40;
  b[8] = (b[8]! & 0x3f) | 0x80;
  const hex = Array.from(b, (x) => x.toString(16).padStart(2, "0")).join("");
  return `${hex.slice(0, 8)}-${hex.slice(8, 12)}-${hex.slice(12, 16)}-${hex.slice(16, 20)}-${hex.slice(20)}`;
}

/** "operations/<id>" -> "<id>". */
export function operationId(name: string): string {
  return name.startsWith("operations/") ? name.slice("operations/".length) : name;
}

/** The RequestMetadata packed in an operation, if any. */
export function requestMetadata(op: Operation): RequestMetadata | undefined {
  return op.metadata ? anyUnpack(op.metadata, RequestMetadataSchema) : undefined;
}

/**
 * The state of an operation: its metadata's, or else what `done` and the
 * outcome say (an error with code CANCELLED is a cancellation).
 */
export function operationState(op: Operation, meta = requestMetadata(op)): RequestState {
  if (meta && meta.state !== RequestState.UNSPECIFIED) return meta.state;
  if (!op.done) return RequestState.PENDING;
  if (op.result.case === "error") {
    return op.result.value.code === Code.Canceled ? RequestState.CANCELLED : RequestState.FAILED;
  }
  return RequestState.SUCCEEDED;
}

/** Resolves after `ms`, or at once when the signal aborts. */
export function sleep(ms: number, signal: AbortSignal): Promise<void> {
  return new Promise((resolve) => {
    if (signal.aborted) return resolve();
    const timer = setTimeout(done, ms);
    signal.addEventListener("abort", done, { once: true });
    function done(): void {
      clearTimeout(timer);
      signal.removeEventListener("abort", done);
      resolve();
    }
  });
}

/** Whether a failed stream is worth opening again (the network or the server went away). */
export function retryable(err: unknown): boolean {
  const code = ConnectError.from(err).code;
  return ![
    Code.InvalidArgument,
    Code.NotFound,
    Code.PermissionDenied,
    Code.Unauthenticated,
    Code.FailedPrecondition,
    Code.Unimplemented,
    Code.AlreadyExists,
    Code.OutOfRange,
  ].includes(code);
}

/**
 * Follows an operation with WatchOperation until it is done (opening the
 * stream again when it breaks) and returns the done snapshot; undefined when
 * the signal aborts. Throws when the server refuses (not found, denied ...).
 */
export async function watchOperation(
  name: string,
  signal: AbortSignal,
  onSnapshot: (op: Operation) => void = () => undefined,
): Promise<Operation | undefined> {
  let backoffMs = 500;
  while (!signal.aborted) {
    try {
      for await (const r of api.requests.watchOperation({ name }, stream(signal))) {
        if (!r.operation) continue;
        backoffMs = 500;
        onSnapshot(r.operation);
        if (r.operation.done) return r.operation;
      }
    } catch (err) {
      if (signal.aborted) return undefined;
      if (!retryable(err)) throw err;
    }
    await sleep(backoffMs, signal);
    backoffMs = Math.min(backoffMs * 2, 5000);
  }
  return undefined;
}

/** The error of a failed operation as a ConnectError (its google.rpc.Status). */
export function operationError(op: Operation): ConnectError | undefined {
  return op.result.case === "error"
    ? new ConnectError(op.result.value.message, op.result.value.code as Code)
    : undefined;
}
