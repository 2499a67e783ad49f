// SkyClient: a typed client for the API server over gRPC (HTTP/2) or
// gRPC-Web (HTTP/1.1), with the endpoint and credentials resolved as the
// `sky` CLI resolves them. Launch, exec and jobsLaunch upload the task's
// workdir and file mounts first when the server runs elsewhere.

import { randomUUID } from "node:crypto";
import * as fs from "node:fs";
import * as http from "node:http";
import * as https from "node:https";
import * as tls from "node:tls";

import type { DescMessage, MessageShape } from "@bufbuild/protobuf";
import {
  createClient as createServiceClient,
  type CallOptions,
  type Client,
  type Interceptor,
  type Transport,
} from "@connectrpc/connect";
import { Http2SessionManager, createGrpcTransport, createGrpcWebTransport } from "@connectrpc/connect-node";

import { currentIdentity, resolveEndpoint, type Endpoint, type Identity } from "./endpoint.js";
import { Code, JobWaitTimeoutError, SkyError } from "./errors.js";
import { Operations, type Operation as OperationMessage } from "./gen/google/longrunning/operations_pb.js";
import {
  ClusterActionResponseSchema,
  ClusterService,
  ExecResponseSchema,
  JobService,
  LaunchResponseSchema,
  CancelJobsResponseSchema,
  type Cluster,
  type ExecResponse,
  type Job,
  type LaunchResponse,
  type ClusterActionResponse,
  type CancelJobsResponse,
  type TaskSpec,
} from "./gen/skypilot/v1/clusters_pb.js";
import {
  CheckResponseSchema,
  InfraService,
  SshDownResponseSchema,
  SshUpResponseSchema,
  type CheckResponse,
  type SshDownResponse,
  type SshUpResponse,
} from "./gen/skypilot/v1/infra_pb.js";
import {
  CancelManagedJobsResponseSchema,
  LaunchManagedJobResponseSchema,
  ManagedJobService,
  ManagedJobStatus,
  type CancelManagedJobsResponse,
  type LaunchManagedJobResponse,
  type ManagedJob,
} from "./gen/skypilot/v1/managed_jobs_pb.js";
import { RequestService } from "./gen/skypilot/v1/requests_pb.js";
import { ServerService, type GetServerInfoResponse } from "./gen/skypilot/v1/server_pb.js";
import { UploadService } from "./gen/skypilot/v1/uploads_pb.js";
import { UserService, type UserInfo } from "./gen/skypilot/v1/users_pb.js";
import { Operation, type LogChunk } from "./operation.js";
import { Backoff, retryUnavailable } from "./retry.js";
import { pipelineFromYaml, taskFromYaml, taskToSpec, type Pipeline, type Task } from "./task.js";
import {
  uploadLimit,
  uploadPath,
  uploadTaskSources,
  type SourceUploadOpts,
  type Uploaded,
  type UploadOpts,
} from "./uploads.js";
import { API_VERSION, API_VERSION_HEADER } from "./version.js";

export { API_VERSION, API_VERSION_HEADER };
export const USER_NAME_HEADER = "x-skypilot-user";
export const USER_ID_HEADER = "x-skypilot-user-id";

/** Options of `createClient()`. */
export interface ClientOptions {
  /** `http[s]://[user:password@]host[:port]`; default: SKYPILOT_API_SERVER_ENDPOINT,
   * then `api_server.endpoint` in ~/.sky/skyconfig.yaml, then http://127.0.0.1:46580. */
  endpoint?: string;
  /** A service-account token (`sky_...`), sent as a bearer token; default:
   * SKYPILOT_SERVICE_ACCOUNT_TOKEN, then `api_server.service_account_token`. */
  token?: string;
  /** HTTP basic credentials (they win over credentials in the endpoint URL). */
  username?: string;
  password?: string;
  /** A PEM file trusted besides the system roots for `https://`; default `api_server.ca_cert`. */
  caCert?: string;
  /** "grpc" (HTTP/2, the default) or "grpc-web" (HTTP/1.1, as browsers and some proxies need). */
  transport?: "grpc" | "grpc-web";
  /** Deadline of each unary call in milliseconds (default 30000; 0 for none). */
  timeoutMs?: number;
  /** How long to keep retrying while the server is UNAVAILABLE (default 30000 ms). */
  retryUnavailableForMs?: number;
  /** Who a local (non-deploy) server records as the caller; default: $USER and
   * ~/.sky/user_hash, as the `sky` CLI. `false` sends no user headers. */
  user?: Identity | false;
}

/** Options every call takes. */
export interface CallOpts {
  /** Deadline of the call (default: the client's `timeoutMs`). */
  timeoutMs?: number;
  signal?: AbortSignal;
}

/** Options of mutating calls. */
export interface MutatingOpts extends CallOpts {
  /** The same key with the same request returns the existing operation;
   * default: a fresh random key per call (kept across retries). */
  idempotencyKey?: string;
}

export interface LaunchOpts extends MutatingOpts, SourceUploadOpts {
  /** Empty: a generated name. */
  clusterName?: string;
  /** Tear the cluster down when its jobs are done. */
  down?: boolean;
  /** Autostop after this many idle minutes. */
  idleMinutesToAutostop?: number;
  /** Skip setup when the cluster already exists. */
  noSetup?: boolean;
  /** Validate and report what would happen, without doing it. */
  dryrun?: boolean;
}

/** Options of `exec()`. */
export interface ExecOpts extends MutatingOpts, SourceUploadOpts {}

/** A job log chunk; the last one of a stream carries the job's final state. */
export interface JobLogChunk extends LogChunk {
  job?: Job;
}

/** A task given as a Task, a TaskSpec, or task YAML (text or a `.yaml` path). */
export type TaskInput = Task | TaskSpec | string;

/**
 * A managed job's tasks: a Pipeline (`pipelineFromYaml()`), one task, a list
 * of tasks, or pipeline YAML (text or a `.yaml` path; documents separated by
 * `---` run one after another).
 */
export type PipelineInput = Pipeline | TaskInput | TaskInput[];

/** Options of `jobsLaunch()`. */
export interface JobsLaunchOpts extends MutatingOpts, SourceUploadOpts {
  /** The job's name; default: the pipeline's, else its first task's. */
  name?: string;
}

/** A managed job log chunk; the last one of a followed stream carries the job in `job`. */
export interface ManagedJobLogChunk extends LogChunk {
  job?: ManagedJob;
}

/** Options of `jobsLogs()`. */
export interface JobsLogsOpts {
  /** The job; 0 or absent: the caller's latest (or the newest named `name`). */
  jobId?: number | bigint;
  name?: string;
  /** Keep streaming until the job is over (default true). */
  follow?: boolean;
  /** The controller's log of the job (its launches, failures, recoveries) instead of its output. */
  controller?: boolean;
  offset?: number;
  tailLines?: number;
  signal?: AbortSignal;
}

/** Managed job statuses after which a job never changes again. */
export const FINAL_MANAGED_JOB_STATUSES: ReadonlySet<ManagedJobStatus> = new Set([
  ManagedJobStatus.SUCCEEDED,
  ManagedJobStatus.FAILED,
  ManagedJobStatus.FAILED_SETUP,
  ManagedJobStatus.FAILED_NO_RESOURCE,
  ManagedJobStatus.FAILED_CONTROLLER,
  ManagedJobStatus.CANCELLED,
]);

/** Managed jobs asked for per ListManagedJobs call. */
const MANAGED_JOBS_PAGE_SIZE = 500;

function isPipeline(value: PipelineInput): value is Pipeline {
  return typeof value === "object" && !Array.isArray(value) && Array.isArray((value as Pipeline).tasks);
}

/** The pipeline of any accepted input (a string is pipeline YAML: text or a path). */
function toPipeline(tasks: PipelineInput): { name: string; specs: TaskSpec[] } {
  if (typeof tasks === "string") {
    const pipeline = pipelineFromYaml(tasks);
    return { name: pipeline.name, specs: pipeline.tasks.map(taskToSpec) };
  }
  if (isPipeline(tasks)) return { name: tasks.name ?? "", specs: tasks.tasks.map(taskToSpec) };
  if (Array.isArray(tasks)) return { name: "", specs: tasks.map(toTaskSpec) };
  return { name: "", specs: [toTaskSpec(tasks)] };
}

function isTaskSpec(task: Task | TaskSpec): task is TaskSpec {
  return (task as TaskSpec).$typeName === "skypilot.v1.TaskSpec";
}

/**
 * The TaskSpec for any accepted task input: a Task, a TaskSpec, or task YAML
 * (the text, or the path of a `.yaml` file). To run one shell command, pass
 * `{ run: "echo hi" }`.
 */
export function toTaskSpec(task: TaskInput): TaskSpec {
  if (typeof task === "string") return taskToSpec(taskFromYaml(task));
  return isTaskSpec(task) ? task : taskToSpec(task);
}

/** The generated clients of every service, for calls the typed layer does not wrap. */
export interface RawClients {
  clusters: Client<typeof ClusterService>;
  jobs: Client<typeof JobService>;
  managedJobs: Client<typeof ManagedJobService>;
  infra: Client<typeof InfraService>;
  requests: Client<typeof RequestService>;
  operations: Client<typeof Operations>;
  server: Client<typeof ServerService>;
  uploads: Client<typeof UploadService>;
  users: Client<typeof UserService>;
}

/** A client of one API server. Create it with `createClient()`; `close()` it when done. */
export class SkyClient {
  readonly endpoint: Endpoint;
  readonly transportKind: "grpc" | "grpc-web";
  readonly transport: Transport;
  readonly raw: RawClients;
  readonly timeoutMs: number;
  readonly retryUnavailableForMs: number;
  private readonly closeTransport: () => void;

  constructor(options: ClientOptions = {}) {
    const endpoint = resolveEndpoint(options.endpoint);
    if (options.token !== undefined) endpoint.token = options.token;
    if (options.username !== undefined || options.password !== undefined) {
      endpoint.basicAuth = { username: options.username ?? "", password: options.password ?? "" };
    }
    if (options.caCert !== undefined) endpoint.caCert = options.caCert;
    this.endpoint = endpoint;
    this.transportKind = options.transport ?? "grpc";
    this.timeoutMs = options.timeoutMs ?? 30_000;
    this.retryUnavailableForMs = options.retryUnavailableForMs ?? 30_000;

    const headers: [string, string][] = [[API_VERSION_HEADER, String(API_VERSION)]];
    const user = options.user === undefined ? currentIdentity() : options.user;
    if (user) headers.push([USER_NAME_HEADER, user.name], [USER_ID_HEADER, user.id]);
    if (endpoint.token) {
      headers.push(["authorization", `Bearer ${endpoint.token}`]);
    } else if (endpoint.basicAuth) {
      const { username, password } = endpoint.basicAuth;
      headers.push(["authorization", `Basic ${Buffer.from(`${username}:${password}`).toString("base64")}`]);
    }
    const addHeaders: Interceptor = (next) => async (request) => {
      for (const [name, value] of headers) request.header.set(name, value);
      return next(request);
    };

    const ca =
      endpoint.tls && endpoint.caCert ? [...tls.rootCertificates, fs.readFileSync(endpoint.caCert, "utf8")] : undefined;
    if (this.transportKind === "grpc") {
      const sessionManager = new Http2SessionManager(
        endpoint.baseUrl,
        { idleConnectionTimeoutMs: 60_000 },
        ca ? { ca } : {},
      );
      this.transport = createGrpcTransport({ baseUrl: endpoint.baseUrl, interceptors: [addHeaders], sessionManager });
      this.closeTransport = () => sessionManager.abort();
    } else {
      const agent = endpoint.tls
        ? new https.Agent({ keepAlive: true, ...(ca ? { ca } : {}) })
        : new http.Agent({ keepAlive: true });
      this.transport = createGrpcWebTransport({
        baseUrl: endpoint.baseUrl,
        httpVersion: "1.1",
        interceptors: [addHeaders],
        nodeOptions: { agent },
      });
      this.closeTransport = () => agent.destroy();
    }
    const t = this.transport;
    this.raw = {
      clusters: createServiceClient(ClusterService, t),
      jobs: createServiceClient(JobService, t),
      managedJobs: createServiceClient(ManagedJobService, t),
      infra: createServiceClient(InfraService, t),
      requests: createServiceClient(RequestService, t),
      operations: createServiceClient(Operations, t),
      server: createServiceClient(ServerService, t),
      uploads: createServiceClient(UploadService, t),
      users: createServiceClient(UserService, t),
    };
  }

  /** Closes the connection. Calls after this fail. */
  close(): void {
    this.closeTransport();
  }

  [Symbol.dispose](): void {
    this.close();
  }

  /**
   * Runs a unary call with the client's deadline, retrying while the server
   * is UNAVAILABLE; failures are thrown as SkyError.
   */
  async unary<T>(call: (options: CallOptions) => Promise<T>, options: CallOpts = {}): Promise<T> {
    const callOptions: CallOptions = { timeoutMs: options.timeoutMs ?? this.timeoutMs, signal: options.signal };
    try {
      return await retryUnavailable(() => call(callOptions), this.retryUnavailableForMs, options.signal);
    } catch (err) {
      throw SkyError.from(err);
    }
  }

  /** Call options of a stream: no deadline (it lasts as long as it follows). */
  streamOptions(signal?: AbortSignal): CallOptions {
    return { timeoutMs: 0, signal };
  }

  private async submit<S extends DescMessage>(
    schema: S,
    call: (key: string, options: CallOptions) => Promise<OperationMessage>,
    options: MutatingOpts,
  ): Promise<Operation<MessageShape<S>>> {
    const key = options.idempotencyKey || randomUUID();
    const op = await this.unary((callOptions) => call(key, callOptions), options);
    return new Operation<MessageShape<S>>(this, op, schema);
  }

  /**
   * `sky launch`: creates (or reuses) a cluster and submits the task as a job.
   * When the server runs elsewhere (deployed, or not on this host), the task's
   * workdir and file-mount sources are uploaded first (see `upload()`).
   */
  async launch(task: TaskInput, options: LaunchOpts = {}): Promise<Operation<LaunchResponse>> {
    const spec = await uploadTaskSources(this, toTaskSpec(task), options);
    return this.submit(
      LaunchResponseSchema,
      (idempotencyKey, callOptions) =>
        this.raw.clusters.launch(
          {
            task: spec,
            clusterName: options.clusterName ?? "",
            down: options.down ?? false,
            noSetup: options.noSetup ?? false,
            dryrun: options.dryrun ?? false,
            idleMinutesToAutostop: options.idleMinutesToAutostop,
            idempotencyKey,
          },
          callOptions,
        ),
      options,
    );
  }

  /**
   * `sky exec`: submits the task as a job on an UP cluster, uploading its
   * workdir and file-mount sources first as `launch()` does.
   */
  async exec(clusterName: string, task: TaskInput, options: ExecOpts = {}): Promise<Operation<ExecResponse>> {
    const spec = await uploadTaskSources(this, toTaskSpec(task), options);
    return this.submit(
      ExecResponseSchema,
      (idempotencyKey, callOptions) => this.raw.clusters.exec({ clusterName, task: spec, idempotencyKey }, callOptions),
      options,
    );
  }

  /** `sky stop`: stops a cluster (its jobs are cancelled). */
  stop(clusterName: string, options: MutatingOpts = {}): Promise<Operation<ClusterActionResponse>> {
    return this.submit(
      ClusterActionResponseSchema,
      (idempotencyKey, callOptions) => this.raw.clusters.stop({ clusterName, idempotencyKey }, callOptions),
      options,
    );
  }

  /** `sky start`: starts a stopped cluster. */
  start(clusterName: string, options: MutatingOpts = {}): Promise<Operation<ClusterActionResponse>> {
    return this.submit(
      ClusterActionResponseSchema,
      (idempotencyKey, callOptions) => this.raw.clusters.start({ clusterName, idempotencyKey }, callOptions),
      options,
    );
  }

  /** `sky down`: tears a cluster down; `purge` (`sky down --purge`) forgets it
   * even where its nodes cannot be reached. */
  down(
    clusterName: string,
    options: MutatingOpts & { purge?: boolean } = {},
  ): Promise<Operation<ClusterActionResponse>> {
    return this.submit(
      ClusterActionResponseSchema,
      (idempotencyKey, callOptions) =>
        this.raw.clusters.down({ clusterName, purge: options.purge ?? false, idempotencyKey }, callOptions),
      options,
    );
  }

  /** `sky autostop`: sets (or with `cancel`, turns off) a cluster's autostop. */
  autostop(
    clusterName: string,
    options: MutatingOpts & { idleMinutes?: number; down?: boolean; cancel?: boolean } = {},
  ): Promise<Operation<ClusterActionResponse>> {
    return this.submit(
      ClusterActionResponseSchema,
      (idempotencyKey, callOptions) =>
        this.raw.clusters.autostop(
          {
            clusterName,
            idleMinutes: options.idleMinutes ?? 0,
            down: options.down ?? false,
            cancel: options.cancel ?? false,
            idempotencyKey,
          },
          callOptions,
        ),
      options,
    );
  }

  /** `sky cancel`: cancels jobs (none given and not `all`: the latest job). */
  cancelJobs(
    clusterName: string,
    options: MutatingOpts & { jobIds?: Array<number | bigint>; all?: boolean } = {},
  ): Promise<Operation<CancelJobsResponse>> {
    const jobIds = (options.jobIds ?? []).map((id) => BigInt(id));
    return this.submit(
      CancelJobsResponseSchema,
      (idempotencyKey, callOptions) =>
        this.raw.jobs.cancelJobs({ clusterName, jobIds, all: options.all ?? false, idempotencyKey }, callOptions),
      options,
    );
  }

  /** `sky check`: which infras are usable. */
  check(options: MutatingOpts & { infras?: string[] } = {}): Promise<Operation<CheckResponse>> {
    return this.submit(
      CheckResponseSchema,
      (idempotencyKey, callOptions) =>
        this.raw.infra.check({ infras: options.infras ?? [], idempotencyKey }, callOptions),
      options,
    );
  }

  /**
   * `sky ssh up`: reaches and prepares every host of the SSH node pool
   * `infra` (`ssh/<pool>` or `<pool>`; empty for every pool), which then
   * takes clusters.
   */
  sshUp(options: MutatingOpts & { infra?: string } = {}): Promise<Operation<SshUpResponse>> {
    return this.submit(
      SshUpResponseSchema,
      (idempotencyKey, callOptions) =>
        this.raw.infra.sshUp({ infra: options.infra ?? "", idempotencyKey }, callOptions),
      options,
    );
  }

  /**
   * `sky ssh down`: tears down the clusters on the SSH node pool `infra`
   * (`ssh/<pool>` or `<pool>`; empty for every pool) and forgets its hosts.
   */
  sshDown(options: MutatingOpts & { infra?: string } = {}): Promise<Operation<SshDownResponse>> {
    return this.submit(
      SshDownResponseSchema,
      (idempotencyKey, callOptions) =>
        this.raw.infra.sshDown({ infra: options.infra ?? "", idempotencyKey }, callOptions),
      options,
    );
  }

  /**
   * `sky status`: the clusters (only these names or globs, if given), each
   * with its nodes. With `refresh` (`sky status -r`) the server reaches every
   * node now rather than report what it last saw.
   */
  async status(
    options: CallOpts & { clusterNames?: string[]; allUsers?: boolean; refresh?: boolean } = {},
  ): Promise<Cluster[]> {
    const response = await this.unary(
      (callOptions) =>
        this.raw.clusters.listClusters(
          {
            clusterNames: options.clusterNames ?? [],
            allUsers: options.allUsers ?? false,
            refresh: options.refresh ?? false,
          },
          callOptions,
        ),
      options,
    );
    return response.clusters;
  }

  /** `sky queue`: a cluster's jobs. */
  async queue(
    clusterName: string,
    options: CallOpts & { skipFinished?: boolean; allUsers?: boolean } = {},
  ): Promise<Job[]> {
    const response = await this.unary(
      (callOptions) =>
        this.raw.jobs.listJobs(
          { clusterName, skipFinished: options.skipFinished ?? false, allUsers: options.allUsers ?? false },
          callOptions,
        ),
      options,
    );
    return response.jobs;
  }

  /**
   * `sky logs`: a job's output as chunks with byte offsets (job 0: the
   * latest). With `follow` (the default) it streams until the job ends, and
   * resumes from the last offset when the connection breaks or the server
   * restarts; the last chunk carries the job's final state in `job`.
   */
  async *jobLogs(
    clusterName: string,
    options: {
      jobId?: number | bigint;
      follow?: boolean;
      offset?: number;
      tailLines?: number;
      signal?: AbortSignal;
    } = {},
  ): AsyncGenerator<JobLogChunk, void, undefined> {
    const follow = options.follow ?? true;
    const jobId = BigInt(options.jobId ?? 0);
    let offset = options.offset;
    const backoff = new Backoff(this.retryUnavailableForMs, options.signal);
    for (;;) {
      try {
        const stream = this.raw.jobs.tailJobLogs(
          {
            clusterName,
            jobId,
            follow,
            offset: offset === undefined ? undefined : BigInt(offset),
            tailLines: offset === undefined ? options.tailLines : undefined,
          },
          this.streamOptions(options.signal),
        );
        for await (const chunk of stream) {
          const start = Number(chunk.offset);
          offset = start + chunk.data.length;
          if (chunk.job) {
            yield { offset: start, data: chunk.data, job: chunk.job };
            return;
          }
          if (chunk.data.length === 0) continue;
          backoff.reset();
          yield { offset: start, data: chunk.data };
        }
      } catch (err) {
        await backoff.pause(err);
        continue;
      }
      // Without `follow` the stream may end without the job's state; with it,
      // an end before the final message means the server went away.
      if (!follow) return;
      await backoff.pause(new SkyError("the log stream ended before the job did", { code: Code.Unavailable }));
    }
  }

  /**
   * `sky jobs launch`: submits a managed job, which runs on a cluster of its
   * own that the server launches, relaunches when its nodes are lost (or its
   * code fails and `resources.jobRecovery` allows restarts), and tears down
   * when the job ends. The operation succeeds once the job is queued; its
   * response is a LaunchManagedJobResponse (`jobId`, `name`). Each task's
   * workdir and file mounts are uploaded first when the server runs
   * elsewhere, as for `launch()`. Follow the job with `jobsLogs()` or `jobsWait()`.
   */
  async jobsLaunch(tasks: PipelineInput, options: JobsLaunchOpts = {}): Promise<Operation<LaunchManagedJobResponse>> {
    const pipeline = toPipeline(tasks);
    const specs: TaskSpec[] = [];
    for (const spec of pipeline.specs) specs.push(await uploadTaskSources(this, spec, options));
    const name = options.name || pipeline.name;
    return this.submit(
      LaunchManagedJobResponseSchema,
      (idempotencyKey, callOptions) =>
        this.raw.managedJobs.launchManagedJob({ tasks: specs, name, idempotencyKey }, callOptions),
      options,
    );
  }

  /**
   * `sky jobs queue`: managed jobs, newest first (the caller's, or with
   * `allUsers` everyone's; only unfinished ones with `skipFinished`; only
   * `jobIds` when given; at most `limit`, 0 or absent for all), read page by page.
   */
  async jobsQueue(
    options: CallOpts & {
      allUsers?: boolean;
      skipFinished?: boolean;
      jobIds?: Array<number | bigint>;
      limit?: number;
    } = {},
  ): Promise<ManagedJob[]> {
    const jobIds = (options.jobIds ?? []).map((id) => BigInt(id));
    const limit = options.limit ?? 0;
    const jobs: ManagedJob[] = [];
    let pageToken = "";
    for (;;) {
      if (limit > 0 && jobs.length >= limit) return jobs;
      const pageSize = limit > 0 ? Math.min(MANAGED_JOBS_PAGE_SIZE, limit - jobs.length) : MANAGED_JOBS_PAGE_SIZE;
      const page = await this.unary(
        (callOptions) =>
          this.raw.managedJobs.listManagedJobs(
            {
              allUsers: options.allUsers ?? false,
              skipFinished: options.skipFinished ?? false,
              jobIds,
              pageSize,
              pageToken,
            },
            callOptions,
          ),
        options,
      );
      jobs.push(...page.jobs);
      pageToken = page.nextPageToken;
      if (!pageToken) return jobs;
    }
  }

  /**
   * `sky jobs cancel`: the jobs `jobIds`, else those named `name`, else with
   * `all` every unfinished job of the caller (of every user with `allUsers`,
   * an admin's right). Their clusters are torn down; the operation ends when
   * they are CANCELLED (or, after a bound, still CANCELLING). Throws a
   * SkyError with `ErrorReason.NOT_FOUND` for an unknown job and
   * `ErrorReason.ALREADY_DONE` for a finished one named by id.
   */
  jobsCancel(
    options: MutatingOpts & { jobIds?: Array<number | bigint>; name?: string; all?: boolean; allUsers?: boolean } = {},
  ): Promise<Operation<CancelManagedJobsResponse>> {
    const jobIds = (options.jobIds ?? []).map((id) => BigInt(id));
    return this.submit(
      CancelManagedJobsResponseSchema,
      (idempotencyKey, callOptions) =>
        this.raw.managedJobs.cancelManagedJobs(
          {
            jobIds,
            name: options.name ?? "",
            all: options.all ?? false,
            allUsers: options.allUsers ?? false,
            idempotencyKey,
          },
          callOptions,
        ),
      options,
    );
  }

  /**
   * `sky jobs logs`: a managed job's output (every attempt, each after a
   * header line naming it) or, with `controller`, the controller's log of the
   * job, as chunks with byte offsets. With `follow` (the default) it streams
   * until the job is over, resuming from the last offset when the connection
   * breaks or the server restarts; the last chunk carries the job in `job`.
   */
  async *jobsLogs(options: JobsLogsOpts = {}): AsyncGenerator<ManagedJobLogChunk, void, undefined> {
    const follow = options.follow ?? true;
    const jobId = BigInt(options.jobId ?? 0);
    let offset = options.offset;
    const backoff = new Backoff(this.retryUnavailableForMs, options.signal);
    for (;;) {
      try {
        const stream = this.raw.managedJobs.tailManagedJobLogs(
          {
            jobId,
            name: options.name ?? "",
            follow,
            controller: options.controller ?? false,
            offset: offset === undefined ? undefined : BigInt(offset),
            tailLines: offset === undefined ? options.tailLines : undefined,
          },
          this.streamOptions(options.signal),
        );
        for await (const chunk of stream) {
          const start = Number(chunk.offset);
          offset = start + chunk.data.length;
          if (chunk.job) {
            yield { offset: start, data: chunk.data, job: chunk.job };
            return;
          }
          if (chunk.data.length === 0) continue;
          backoff.reset();
          yield { offset: start, data: chunk.data };
        }
      } catch (err) {
        await backoff.pause(err);
        continue;
      }
      // Without `follow` the stream may end without the job; with it, an end
      // before the final message means the server went away.
      if (!follow) return;
      await backoff.pause(new SkyError("the log stream ended before the job did", { code: Code.Unavailable }));
    }
  }

  /**
   * Waits until managed job `jobId` is over (SUCCEEDED, FAILED,
   * FAILED_SETUP, FAILED_NO_RESOURCE, FAILED_CONTROLLER or CANCELLED; its
   * cluster torn down) and returns it. Rides through server restarts; throws
   * a JobWaitTimeoutError after `timeoutMs` (the job goes on) and a SkyError
   * with `ErrorReason.NOT_FOUND` for an unknown job.
   */
  async jobsWait(
    jobId: number | bigint,
    options: { timeoutMs?: number; signal?: AbortSignal } = {},
  ): Promise<ManagedJob> {
    const id = BigInt(jobId);
    if (id < 1n) throw new RangeError(`a managed job id (1 or more) is required, not ${jobId}`);
    const stop = new AbortController();
    const onAbort = () => stop.abort(options.signal?.reason);
    if (options.signal?.aborted) onAbort();
    options.signal?.addEventListener("abort", onAbort, { once: true });
    let timedOut = false;
    const timer =
      options.timeoutMs === undefined
        ? undefined
        : setTimeout(() => {
            timedOut = true;
            stop.abort();
          }, options.timeoutMs);
    try {
      // The controller's log, from its end: short, and it ends with the job.
      for await (const chunk of this.jobsLogs({ jobId: id, controller: true, tailLines: 0, signal: stop.signal })) {
        if (chunk.job && FINAL_MANAGED_JOB_STATUSES.has(chunk.job.status)) return chunk.job;
      }
      throw new SkyError(`managed job ${id}'s log ended before the job did`, { code: Code.Unknown });
    } catch (err) {
      if (timedOut) throw new JobWaitTimeoutError(id, options.timeoutMs ?? 0);
      throw err;
    } finally {
      clearTimeout(timer);
      options.signal?.removeEventListener("abort", onAbort);
    }
  }

  /** A handle on an existing operation, by name, id or unique id prefix. */
  operation(nameOrId: string): Operation {
    return new Operation(this, nameOrId);
  }

  /** `sky api status`: requests, newest first. */
  async requests(
    options: CallOpts & { allUsers?: boolean; includeFinished?: boolean; clusterName?: string; limit?: number } = {},
  ): Promise<Operation[]> {
    const response = await this.unary(
      (callOptions) =>
        this.raw.requests.listRequests(
          {
            allUsers: options.allUsers ?? false,
            includeFinished: options.includeFinished ?? false,
            clusterName: options.clusterName ?? "",
            limit: options.limit ?? 0,
          },
          callOptions,
        ),
      options,
    );
    return response.operations.map((op) => new Operation(this, op));
  }

  /** The server's version, API version, mode, the calling user and the most one upload may hold. */
  serverInfo(options: CallOpts = {}): Promise<GetServerInfoResponse> {
    return this.unary((callOptions) => this.raw.server.getServerInfo({}, callOptions), options);
  }

  /**
   * Uploads a folder or a file (as a file mount's source) to the server:
   * only the contents it lacks are sent. The returned `reference`
   * (`sky-upload://<digest>`) goes in TaskSpec.workdir or as a file mount's
   * source. A folder is sent as SkyPilot syncs it: `.skyignore` rules when it
   * has one at its top, else its `.gitignore` rules; modes kept; links sent as
   * links. A tree over the server's `uploadMaxBytes` is refused before
   * anything is sent. Needs the "grpc" transport.
   */
  async upload(localPath: string, options: UploadOpts = {}): Promise<Uploaded> {
    const info = await this.serverInfo(options);
    return uploadPath(this, localPath, uploadLimit(info), options);
  }

  /** The calling user and their role. */
  async whoami(options: CallOpts = {}): Promise<UserInfo | undefined> {
    return (await this.unary((callOptions) => this.raw.users.whoAmI({}, callOptions), options)).user;
  }
}

/** Creates a client; see ClientOptions for where the endpoint and credentials come from. */
export function createClient(options: ClientOptions = {}): SkyClient {
  return new SkyClient(options);
}
