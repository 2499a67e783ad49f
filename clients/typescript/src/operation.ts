// Operation: the handle every mutating call returns. It follows a
// google.longrunning.Operation through the Operations and RequestService
// APIs: refresh, wait, watch, stream its log, cancel, and unpack its result.

import { createRegistry, type DescMessage, type Message } from "@bufbuild/protobuf";
import { anyUnpack, durationFromMs } from "@bufbuild/protobuf/wkt";
import { Code, ConnectError } from "@connectrpc/connect";

import { SkyError, WaitTimeoutError } from "./errors.js";
import { file_google_rpc_error_details } from "./gen/google/rpc/error_details_pb.js";
import type { Operation as OperationMessage } from "./gen/google/longrunning/operations_pb.js";
import { file_skypilot_v1_clusters } from "./gen/skypilot/v1/clusters_pb.js";
import { file_skypilot_v1_infra } from "./gen/skypilot/v1/infra_pb.js";
import { file_skypilot_v1_managed_jobs } from "./gen/skypilot/v1/managed_jobs_pb.js";
import {
  RequestMetadataSchema,
  RequestState,
  file_skypilot_v1_requests,
  type RequestMetadata,
} from "./gen/skypilot/v1/requests_pb.js";
import { file_skypilot_v1_server } from "./gen/skypilot/v1/server_pb.js";
import { file_skypilot_v1_users } from "./gen/skypilot/v1/users_pb.js";
import { Backoff } from "./retry.js";
import type { SkyClient } from "./client.js";

export type { OperationMessage };

/** Every message type an operation's response or metadata may hold. */
export const registry = createRegistry(
  file_skypilot_v1_clusters,
  file_skypilot_v1_infra,
  file_skypilot_v1_managed_jobs,
  file_skypilot_v1_requests,
  file_skypilot_v1_server,
  file_skypilot_v1_users,
  file_google_rpc_error_details,
);

/** A chunk of a log: `data` starts at byte `offset` of the log. */
export interface LogChunk {
  offset: number;
  data: Uint8Array;
}

/** Options of `Operation.logs()`. */
export interface LogOptions {
  /** Keep streaming until the operation is done (default true). */
  follow?: boolean;
  /** Start at this byte offset (e.g. one past the last byte you have); default 0. */
  offset?: number;
  /** Start with only the last this-many lines (ignored when `offset` is given). */
  tailLines?: number;
  signal?: AbortSignal;
}

/** Longest single WaitOperation call; the server caps it too. */
const WAIT_SLICE_MS = 60_000;
/** Extra time the call's deadline gets beyond the server-side wait. */
const WAIT_SLACK_MS = 10_000;

/** The id in an operation name: "operations/<id>" -> "<id>". */
export function operationId(name: string): string {
  return name.startsWith("operations/") ? name.slice("operations/".length) : name;
}

/** The RequestMetadata packed in an operation, if any. */
export function requestMetadata(operation: OperationMessage): RequestMetadata | undefined {
  return operation.metadata ? anyUnpack(operation.metadata, RequestMetadataSchema) : undefined;
}

/**
 * A handle on one operation (`operations/<id>`). `T` is the type of its
 * response, e.g. LaunchResponse for `launch()`.
 */
export class Operation<T extends Message = Message> {
  /** "operations/<id>". */
  readonly name: string;
  /** The latest snapshot this handle has seen. */
  latest: OperationMessage | undefined;

  constructor(
    private readonly client: SkyClient,
    nameOrSnapshot: string | OperationMessage,
    private readonly responseSchema?: DescMessage,
  ) {
    if (typeof nameOrSnapshot === "string") {
      this.name = nameOrSnapshot.startsWith("operations/") ? nameOrSnapshot : `operations/${nameOrSnapshot}`;
    } else {
      this.name = nameOrSnapshot.name;
      this.latest = nameOrSnapshot;
    }
  }

  /** The request id: the part of the name after "operations/". */
  get id(): string {
    return operationId(this.name);
  }

  /** The request's metadata (name, state, user, cluster, times) in the latest snapshot. */
  get metadata(): RequestMetadata | undefined {
    return this.latest ? requestMetadata(this.latest) : undefined;
  }

  /** The request's state in the latest snapshot. */
  get state(): RequestState {
    return this.metadata?.state ?? RequestState.UNSPECIFIED;
  }

  /** Fetches the current snapshot (GetOperation). */
  async refresh(options: { signal?: AbortSignal } = {}): Promise<OperationMessage> {
    const op = await this.client.unary(
      (callOptions) => this.client.raw.operations.getOperation({ name: this.name }, callOptions),
      options,
    );
    this.latest = op;
    return op;
  }

  /** Whether the operation is done (fetches a fresh snapshot). */
  async done(): Promise<boolean> {
    return (await this.refresh()).done;
  }

  /**
   * Waits until the operation is done and returns its last snapshot. Throws a
   * WaitTimeoutError after `timeoutMs` (the operation goes on); no timeout
   * waits as long as it takes.
   */
  async wait(timeoutMs?: number, options: { signal?: AbortSignal } = {}): Promise<OperationMessage> {
    if (this.latest?.done) return this.latest;
    const deadline = timeoutMs === undefined ? Infinity : Date.now() + timeoutMs;
    for (;;) {
      const slice = Math.max(0, Math.min(WAIT_SLICE_MS, deadline - Date.now()));
      const op = await this.client.unary(
        (callOptions) =>
          this.client.raw.operations.waitOperation(
            { name: this.name, timeout: durationFromMs(slice) },
            { ...callOptions, timeoutMs: slice + WAIT_SLACK_MS },
          ),
        options,
      );
      this.latest = op;
      if (op.done) return op;
      if (Date.now() >= deadline) throw new WaitTimeoutError(this.name, timeoutMs ?? 0);
    }
  }

  /**
   * Every snapshot of the operation: the current one, then one per change,
   * ending with the done one. When the server restarts the watch resumes
   * (a snapshot may then repeat).
   */
  async *watch(options: { signal?: AbortSignal } = {}): AsyncGenerator<OperationMessage, void, undefined> {
    const backoff = new Backoff(this.client.retryUnavailableForMs, options.signal);
    for (;;) {
      try {
        const stream = this.client.raw.requests.watchOperation(
          { name: this.name },
          this.client.streamOptions(options.signal),
        );
        for await (const response of stream) {
          if (!response.operation) continue;
          this.latest = response.operation;
          backoff.reset();
          yield response.operation;
          if (response.operation.done) return;
        }
      } catch (err) {
        await backoff.pause(err);
        continue;
      }
      // The stream ended before the operation was done: the server is
      // shutting down. Watch again once it is back.
      await backoff.pause(new ConnectError("the watch ended before the operation was done", Code.Unavailable));
    }
  }

  /**
   * The operation's log as chunks with byte offsets. With `follow` (the
   * default) it streams until the operation is done, and resumes from the
   * last offset when the connection breaks or the server restarts.
   */
  async *logs(options: LogOptions = {}): AsyncGenerator<LogChunk, void, undefined> {
    const follow = options.follow ?? true;
    let offset = options.offset;
    const backoff = new Backoff(this.client.retryUnavailableForMs, options.signal);
    for (;;) {
      try {
        const stream = this.client.raw.requests.streamLogs(
          {
            name: this.name,
            follow,
            offset: offset === undefined ? undefined : BigInt(offset),
            tailLines: offset === undefined ? options.tailLines : undefined,
          },
          this.client.streamOptions(options.signal),
        );
        for await (const chunk of stream) {
          const start = Number(chunk.offset);
          offset = start + chunk.data.length;
          if (chunk.data.length === 0) continue;
          backoff.reset();
          yield { offset: start, data: chunk.data };
        }
      } catch (err) {
        await backoff.pause(err);
        continue;
      }
      if (!follow) return;
      // The stream ends when the operation is done, or early when the server
      // shuts down: only a done operation whose log we have read to its end
      // is finished.
      const op = await this.refresh({ signal: options.signal });
      const logSize = Number(requestMetadata(op)?.logSize ?? 0n);
      if (op.done && (offset ?? 0) >= logSize) return;
      if (!op.done) {
        await backoff.pause(new ConnectError("the log stream ended before the operation was done", Code.Unavailable));
      }
    }
  }

  /**
   * Asks the server to cancel the operation (it ends CANCELLED unless already
   * done; then this throws a SkyError with `errorReason` `ErrorReason.ALREADY_DONE`).
   */
  async cancel(options: { signal?: AbortSignal } = {}): Promise<void> {
    await this.client.unary(
      (callOptions) => this.client.raw.operations.cancelOperation({ name: this.name }, callOptions),
      options,
    );
  }

  /**
   * Waits for the operation (at most `timeoutMs`) and returns its response,
   * e.g. a LaunchResponse. Throws a SkyError (code, reason and errorReason,
   * retryable) when the operation failed or was cancelled.
   */
  async result(timeoutMs?: number): Promise<T> {
    const op = this.latest?.done ? this.latest : await this.wait(timeoutMs);
    if (op.result.case === "error") {
      throw SkyError.fromStatus(op.result.value, this.name, requestMetadata(op)?.retryable);
    }
    if (op.result.case !== "response") {
      throw new SkyError(`operation ${this.name} is done but carries neither a response nor an error`, {
        code: Code.Internal,
        operation: this.name,
      });
    }
    const any = op.result.value;
    const message = this.responseSchema ? anyUnpack(any, this.responseSchema) : anyUnpack(any, registry);
    if (!message) {
      throw new SkyError(`operation ${this.name} has a response of unexpected type ${any.typeUrl}`, {
        code: Code.Internal,
        operation: this.name,
      });
    }
    return message as T;
  }
}
