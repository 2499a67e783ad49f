// SkyError: every failed call and every failed or cancelled operation, with
// the gRPC code, the stable google.rpc.ErrorInfo reason (as sent, and as the
// generated ErrorReason enum) and whether trying again may succeed.

import { anyUnpack, durationMs } from "@bufbuild/protobuf/wkt";
import { Code, ConnectError } from "@connectrpc/connect";

import { ErrorInfoSchema, RetryInfoSchema } from "./gen/google/rpc/error_details_pb.js";
import type { Status } from "./gen/google/rpc/status_pb.js";
import { ErrorReason, ErrorReasonSchema } from "./gen/skypilot/v1/errors_pb.js";

export { Code, ErrorReason };

/** The domain of every ErrorInfo the API server sends. */
export const ERROR_DOMAIN = "skypilot.v1";

/**
 * What the wire spelling of a reason drops from its proto value name:
 * `ERROR_REASON_NOT_FOUND` travels as `NOT_FOUND` (the TypeScript enum member,
 * `ErrorReason.NOT_FOUND`, has the same name).
 */
export const ERROR_REASON_PREFIX = "ERROR_REASON_";

const REASONS_BY_NAME: ReadonlyMap<string, ErrorReason> = new Map(
  ErrorReasonSchema.values
    .filter((value) => value.number !== ErrorReason.UNSPECIFIED && value.name.startsWith(ERROR_REASON_PREFIX))
    .map((value) => [value.name.slice(ERROR_REASON_PREFIX.length), value.number as ErrorReason]),
);

/**
 * The `ErrorReason` of a `google.rpc.ErrorInfo.reason` as the server spells it
 * (the proto value name without `ERROR_REASON_`), e.g.
 * `parseErrorReason("NOT_FOUND") === ErrorReason.NOT_FOUND`.
 *
 * No reason (`""` or undefined) gives `ErrorReason.UNSPECIFIED`; any other name
 * this client does not know (a reason added to the server later, or
 * `"UNSPECIFIED"` itself, which the server never sends) gives
 * `ErrorReason.INTERNAL`, as errors.proto asks clients to treat them.
 */
export function parseErrorReason(reason: string | undefined): ErrorReason {
  if (!reason) return ErrorReason.UNSPECIFIED;
  return REASONS_BY_NAME.get(reason) ?? ErrorReason.INTERNAL;
}

/**
 * The wire spelling of an `ErrorReason`: its proto value name without
 * `ERROR_REASON_` (`"NOT_FOUND"`), and `""` for `ErrorReason.UNSPECIFIED`.
 * Throws a RangeError for a number that is no `ErrorReason` value.
 */
export function errorReasonName(reason: ErrorReason): string {
  if (reason === ErrorReason.UNSPECIFIED) return "";
  const value = ErrorReasonSchema.value[reason];
  if (value === undefined) throw new RangeError(`${reason} is not an ErrorReason value`);
  return value.name.slice(ERROR_REASON_PREFIX.length);
}

/** The upper-snake gRPC name of a code, e.g. `NOT_FOUND`. */
export function codeName(code: Code): string {
  if (code === Code.Canceled) return "CANCELLED";
  const name = Code[code] ?? "UNKNOWN";
  return name.replace(/([a-z])([A-Z])/g, "$1_$2").toUpperCase();
}

/** A failed call or a failed operation. */
export class SkyError extends Error {
  override name = "SkyError";
  /** The gRPC status code, e.g. `Code.NotFound`. */
  readonly code: Code;
  /** `google.rpc.ErrorInfo.reason` as sent, e.g. `NOT_FOUND` or `IDEMPOTENCY_KEY_REUSED`; "" if none. */
  readonly reason: string;
  /**
   * `reason` as the generated enum, to branch on a constant
   * (`err.errorReason === ErrorReason.NOT_FOUND`): `ErrorReason.UNSPECIFIED`
   * when the error carries no reason (a transport failure, an error the client
   * made itself), `ErrorReason.INTERNAL` for a reason this client does not
   * know. See `parseErrorReason`.
   */
  readonly errorReason: ErrorReason;
  /** `google.rpc.ErrorInfo.domain` (`skypilot.v1` for this server's errors); "" if none. */
  readonly domain: string;
  /** `google.rpc.ErrorInfo.metadata`. */
  readonly metadata: Readonly<Record<string, string>>;
  /** Whether submitting the request again may succeed (RetryInfo or the operation's `retryable`). */
  readonly retryable: boolean;
  /** How long the server asked to wait before retrying (RetryInfo), if it did. */
  readonly retryDelayMs?: number;
  /** The operation that failed, for errors of operations (`operations/<id>`). */
  readonly operation?: string;

  constructor(
    message: string,
    init: {
      code: Code;
      /** The wire name (`"NOT_FOUND"`) or an `ErrorReason` value. */
      reason?: string | ErrorReason;
      domain?: string;
      metadata?: Record<string, string>;
      retryable?: boolean;
      retryDelayMs?: number;
      operation?: string;
      cause?: unknown;
    },
  ) {
    super(message, init.cause === undefined ? undefined : { cause: init.cause });
    this.code = init.code;
    this.reason = typeof init.reason === "number" ? errorReasonName(init.reason) : (init.reason ?? "");
    this.errorReason = parseErrorReason(this.reason);
    this.domain = init.domain ?? "";
    this.metadata = init.metadata ?? {};
    this.retryable = init.retryable ?? false;
    if (init.retryDelayMs !== undefined) this.retryDelayMs = init.retryDelayMs;
    if (init.operation !== undefined) this.operation = init.operation;
  }

  /** The code's gRPC name, e.g. `NOT_FOUND`. */
  get codeName(): string {
    return codeName(this.code);
  }

  override toString(): string {
    const reason = this.reason ? `, ${this.reason}` : "";
    return `SkyError [${this.codeName}${reason}]: ${this.message}`;
  }

  /** Wraps whatever a call threw (a ConnectError, usually) as a SkyError. */
  static from(err: unknown): SkyError {
    if (err instanceof SkyError) return err;
    const connect = ConnectError.from(err);
    const code = connect.code !== Code.Unavailable && brokenConnection(err) ? Code.Unavailable : connect.code;
    const info = connect.findDetails(ErrorInfoSchema)[0];
    const retry = connect.findDetails(RetryInfoSchema)[0];
    const retryDelayMs = retry?.retryDelay ? durationMs(retry.retryDelay) : undefined;
    return new SkyError(connect.rawMessage, {
      code,
      reason: info?.reason,
      domain: info?.domain,
      metadata: info?.metadata,
      retryable: retry !== undefined || info?.metadata?.retryable === "true",
      retryDelayMs,
      cause: err,
    });
  }

  /** The error of a failed or cancelled operation (its `google.rpc.Status`). */
  static fromStatus(status: Status, operation?: string, retryable?: boolean): SkyError {
    let info;
    let retryDelayMs: number | undefined;
    for (const detail of status.details) {
      const errorInfo = anyUnpack(detail, ErrorInfoSchema);
      if (errorInfo && !info) info = errorInfo;
      const retryInfo = anyUnpack(detail, RetryInfoSchema);
      if (retryInfo?.retryDelay) retryDelayMs = durationMs(retryInfo.retryDelay);
    }
    const code = (status.code in Code ? status.code : Code.Unknown) as Code;
    return new SkyError(status.message, {
      code,
      reason: info?.reason,
      domain: info?.domain,
      metadata: info?.metadata,
      retryable: retryable || retryDelayMs !== undefined || info?.metadata?.retryable === "true",
      retryDelayMs,
      operation,
    });
  }
}

/** `Operation.wait()` ran out of time; the operation goes on. */
export class WaitTimeoutError extends SkyError {
  override name = "WaitTimeoutError";
  constructor(operation: string, timeoutMs: number) {
    super(`operation ${operation} is not done after ${timeoutMs} ms`, {
      code: Code.DeadlineExceeded,
      retryable: true,
      operation,
    });
  }
}

/** `jobsWait()` gave up after its timeout; the managed job goes on. */
export class JobWaitTimeoutError extends SkyError {
  override name = "JobWaitTimeoutError";
  readonly jobId: bigint;
  constructor(jobId: bigint, timeoutMs: number) {
    super(`managed job ${jobId} is not over after ${timeoutMs} ms`, { code: Code.DeadlineExceeded, retryable: true });
    this.jobId = jobId;
  }
}

/**
 * Socket-level failures: the connection was refused, reset or closed under
 * the call. gRPC reports these as UNAVAILABLE; the Node transports report
 * some of them as ABORTED or INTERNAL, so they are recognised here.
 */
const BROKEN_CONNECTION = new Set([
  "ECONNREFUSED",
  "ECONNRESET",
  "ECONNABORTED",
  "EPIPE",
  "ERR_HTTP2_GOAWAY_SESSION",
  "ERR_HTTP2_INVALID_SESSION",
  "ERR_HTTP2_SESSION_ERROR",
]);

function brokenConnection(err: unknown): boolean {
  for (let e = err, depth = 0; e && typeof e === "object" && depth < 8; e = (e as { cause?: unknown }).cause, depth++) {
    const code = (e as { code?: unknown }).code;
    if (typeof code === "string" && BROKEN_CONNECTION.has(code)) return true;
  }
  return false;
}

/** Whether an error is a gRPC UNAVAILABLE (or a broken connection), which the client retries. */
export function isUnavailable(err: unknown): boolean {
  if (err instanceof SkyError) return err.code === Code.Unavailable;
  return (err instanceof ConnectError && err.code === Code.Unavailable) || brokenConnection(err);
}
