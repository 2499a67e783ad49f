// @skypilot-api/client: a typed client of the SkyPilot-compatible API server.

export {
  API_VERSION,
  API_VERSION_HEADER,
  FINAL_MANAGED_JOB_STATUSES,
  SkyClient,
  createClient,
  toTaskSpec,
  type CallOpts,
  type ClientOptions,
  type ExecOpts,
  type JobLogChunk,
  type JobsLaunchOpts,
  type JobsLogsOpts,
  type LaunchOpts,
  type ManagedJobLogChunk,
  type MutatingOpts,
  type PipelineInput,
  type RawClients,
  type TaskInput,
} from "./client.js";
export {
  DEFAULT_PORT,
  ENDPOINT_ENV,
  TOKEN_ENV,
  currentIdentity,
  parseEndpoint,
  resolveEndpoint,
  type Endpoint,
  type EndpointSource,
  type Identity,
} from "./endpoint.js";
export {
  Code,
  ERROR_DOMAIN,
  ERROR_REASON_PREFIX,
  ErrorReason,
  JobWaitTimeoutError,
  SkyError,
  WaitTimeoutError,
  codeName,
  errorReasonName,
  parseErrorReason,
} from "./errors.js";
export {
  Operation,
  operationId,
  registry,
  requestMetadata,
  type LogChunk,
  type LogOptions,
  type OperationMessage,
} from "./operation.js";
export {
  UPLOAD_REFERENCE_PREFIX,
  UploadError,
  humanBytes,
  isLoopbackHost,
  isUploadReference,
  scanTree,
  uploadTree,
  type ScannedTree,
  type SourceUploadOpts,
  type TreeFile,
  type UploadOpts,
  type Uploaded,
  type UploadedSource,
} from "./uploads.js";
export {
  JOB_RECOVERY_STRATEGIES,
  MAX_PIPELINE_TASKS,
  MAX_RESTARTS_ON_ERRORS,
  TaskError,
  commandTask,
  pipelineFromYaml,
  taskFromYaml,
  taskToSpec,
  type Autostop,
  type JobRecovery,
  type Pipeline,
  type Task,
  type TaskResources,
  type TaskYamlOptions,
} from "./task.js";

// The protocol's messages and enums most callers need.
export {
  ClusterStatus,
  JobStatus,
  type CancelJobsResponse,
  type Cluster,
  type ClusterActionResponse,
  type ClusterNode,
  type ExecResponse,
  type Job,
  type LaunchResponse,
  type Resources,
  type TaskSpec,
} from "./gen/skypilot/v1/clusters_pb.js";
export {
  type CheckResponse,
  type HostState,
  type InfraCheck,
  type SshDownResponse,
  type SshUpResponse,
} from "./gen/skypilot/v1/infra_pb.js";
export {
  ManagedJobStatus,
  type CancelManagedJobsResponse,
  type LaunchManagedJobResponse,
  type ManagedJob,
} from "./gen/skypilot/v1/managed_jobs_pb.js";
export { RequestState, Schedule, type RequestMetadata } from "./gen/skypilot/v1/requests_pb.js";
export { ServerMode, type GetServerInfoResponse, type User } from "./gen/skypilot/v1/server_pb.js";
export { EntryKind, type TreeEntry } from "./gen/skypilot/v1/uploads_pb.js";
export { Role, type UserInfo } from "./gen/skypilot/v1/users_pb.js";
