// Sending a workdir or a file mount's source to an API server that runs
// elsewhere (Node.js only). `scanTree` lists a tree as SkyPilot syncs it
// (`.skyignore` when the tree has one at its top, else its `.gitignore`
// rules; modes kept; links sent as links) and hashes its files; `uploadTree`
// asks the server which contents it lacks, streams only those, and records
// the tree, whose reference (`sky-upload://<digest>`) then replaces the path
// in the task.

import { createHash } from "node:crypto";
import * as fs from "node:fs";
import * as net from "node:net";
import * as os from "node:os";
import * as path from "node:path";

import { clone, create, type MessageInitShape } from "@bufbuild/protobuf";
import ignore, { type Ignore } from "ignore";

import type { CallOpts, SkyClient } from "./client.js";
import { Code, SkyError } from "./errors.js";
import { TaskSpecSchema, type TaskSpec } from "./gen/skypilot/v1/clusters_pb.js";
import { ServerMode, type GetServerInfoResponse } from "./gen/skypilot/v1/server_pb.js";
import {
  EntryKind,
  TreeEntrySchema,
  type TreeEntry,
  type UploadBlobsRequestSchema,
} from "./gen/skypilot/v1/uploads_pb.js";
import { Backoff } from "./retry.js";

/** What an uploaded source's reference starts with. */
export const UPLOAD_REFERENCE_PREFIX = "sky-upload://";
/** Bytes per data message of UploadBlobs. */
const CHUNK_BYTES = 1 << 20;
/** Digests per FindMissingBlobs call. */
const DIGESTS_PER_CALL = 10_000;

/** A source that cannot be uploaded (unreadable, too large, not a file, folder or link). */
export class UploadError extends Error {
  override name = "UploadError";
}

/** A file of a scanned tree: its entry, and where its content is on this machine. */
export interface TreeFile {
  entry: TreeEntry;
  localPath: string;
}

/** A folder or file listed and hashed, ready to upload. */
export interface ScannedTree {
  /** The folder or file that was scanned (absolute). */
  root: string;
  /** Every entry as it is sent: paths relative to `root`, "/"-separated. */
  entries: TreeEntry[];
  /** The source is one file; its one entry is the file's base name. */
  singleFile: boolean;
  files: TreeFile[];
  /** The files' total size in bytes. */
  bytes: number;
}

/** What an upload did. */
export interface Uploaded {
  /** `sky-upload://<digest>`: goes in TaskSpec.workdir or as a file mount's source. */
  reference: string;
  /** Files in the tree, and their total size in bytes. */
  files: number;
  bytes: number;
  /** Contents sent (the server held the rest). */
  sentFiles: number;
  sentBytes: number;
}

/** One source of a task, uploaded by `launch` or `exec`. */
export interface UploadedSource extends Uploaded {
  /** The local path that was uploaded. */
  path: string;
  /** The file mount's destination on the nodes; undefined for the workdir. */
  fileMount?: string;
}

/** Options of an upload. */
export interface UploadOpts extends CallOpts {
  /** Hears how many content bytes this upload has streamed so far. */
  onProgress?: (sentBytes: number) => void;
}

/** Options of the calls that upload a task's sources (`launch`, `exec`). */
export interface SourceUploadOpts {
  /** Hears about each workdir or file-mount source uploaded for the task. */
  onUpload?: (uploaded: UploadedSource) => void;
}

/** "12.4 MB" (decimal units, as the `sky` CLI prints sizes). */
export function humanBytes(bytes: number): string {
  const units = ["B", "KB", "MB", "GB", "TB"];
  let value = bytes;
  let unit = 0;
  while (value >= 1000 && unit < units.length - 1) {
    value /= 1000;
    unit += 1;
  }
  return unit === 0 ? `${bytes} B` : `${value.toFixed(1)} ${units[unit]}`;
}

/** Whether `hostname` (as in a URL) names this host: localhost, 127.0.0.0/8 or ::1. */
export function isLoopbackHost(hostname: string): boolean {
  const host = hostname.replace(/^\[(.*)\]$/, "$1").toLowerCase();
  if (host === "localhost") return true;
  if (net.isIPv4(host)) return host.startsWith("127.");
  return net.isIPv6(host) && host === "::1";
}

/**
 * Whether the server cannot read this machine's files, so that a task's
 * sources must be uploaded: it runs deployed, or its endpoint is not this host.
 */
export function serverNeedsUploads(endpointBaseUrl: string, info: GetServerInfoResponse): boolean {
  return info.mode === ServerMode.DEPLOY || !isLoopbackHost(new URL(endpointBaseUrl).hostname);
}

/** The most one upload may hold, by the server's info (unlimited when it names no limit). */
export function uploadLimit(info: GetServerInfoResponse): number {
  return info.uploadMaxBytes > 0n ? Number(info.uploadMaxBytes) : Number.POSITIVE_INFINITY;
}

/** Whether a workdir or file-mount source already names an upload. */
export function isUploadReference(source: string): boolean {
  return source.startsWith(UPLOAD_REFERENCE_PREFIX);
}

/** `~` and `~/...` are the home folder; relative paths start at the current directory. */
function localPath(source: string): string {
  if (source === "~") return os.homedir();
  if (source.startsWith("~/")) return path.join(process.env.HOME || os.homedir(), source.slice(2));
  return path.resolve(source);
}

function problem(err: unknown): string {
  const code = (err as NodeJS.ErrnoException).code;
  if (code === "ENOENT") return "no such file or folder";
  if (code === "EACCES") return "permission denied";
  return (err as Error).message;
}

const utf8 = new TextDecoder("utf-8", { fatal: true });

/** A name read as bytes, or an UploadError when it is not UTF-8. */
function utf8Name(name: Buffer, where: string): string {
  try {
    return utf8.decode(name);
  } catch {
    throw new UploadError(`${where}: only UTF-8 file names can be sent`);
  }
}

/** The ignore rules of one folder of the tree (its `.skyignore` or `.gitignore`). */
interface Rules {
  /** The folder, relative to the tree's top ("" for the top). */
  base: string;
  matcher: Ignore;
}

/** The rules in `dir/<file>`, or none when there is no such file. */
async function readRules(dir: string, base: string, file: string): Promise<Rules | undefined> {
  let text: string;
  try {
    text = await fs.promises.readFile(path.join(dir, file), "utf8");
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    if (code === "ENOENT" || code === "EISDIR") return undefined;
    throw new UploadError(`cannot read ${path.join(dir, file)}: ${problem(err)}`);
  }
  return { base, matcher: ignore({ ignorecase: false }).add(text) };
}

/**
 * Whether `relative` (a directory ends in "/") is left out: the rules of the
 * deepest folder that has a matching rule decide, as in git.
 */
function ignored(relative: string, rules: Rules[]): boolean {
  for (let i = rules.length - 1; i >= 0; i--) {
    const { base, matcher } = rules[i]!;
    const result = matcher.test(base === "" ? relative : relative.slice(base.length + 1));
    if (result.ignored) return true;
    if (result.unignored) return false;
  }
  return false;
}

async function hashFile(file: string): Promise<string> {
  const hash = createHash("sha256");
  for await (const chunk of fs.createReadStream(file, { highWaterMark: CHUNK_BYTES })) {
    hash.update(chunk as Buffer);
  }
  return hash.digest("hex");
}

/** Builds a tree entry by entry, refusing it once it outgrows `maxBytes`. */
class TreeBuilder {
  readonly tree: ScannedTree;

  constructor(
    root: string,
    singleFile: boolean,
    private readonly maxBytes: number,
  ) {
    this.tree = { root, entries: [], singleFile, files: [], bytes: 0 };
  }

  async addFile(name: string, file: string, stats: fs.Stats): Promise<void> {
    const bytes = this.tree.bytes + stats.size;
    if (bytes > this.maxBytes) this.refuse(bytes);
    let digest: string;
    try {
      digest = await hashFile(file);
    } catch (err) {
      throw new UploadError(`cannot read ${file}: ${problem(err)}`);
    }
    const entry = create(TreeEntrySchema, {
      path: name,
      kind: EntryKind.FILE,
      mode: stats.mode & 0o777,
      digest,
      size: BigInt(stats.size),
    });
    this.tree.entries.push(entry);
    this.tree.files.push({ entry, localPath: file });
    this.tree.bytes = bytes;
  }

  addDirectory(name: string, stats: fs.Stats): void {
    const mode = stats.mode & 0o777;
    this.tree.entries.push(create(TreeEntrySchema, { path: name, kind: EntryKind.DIRECTORY, mode }));
  }

  addSymlink(name: string, stats: fs.Stats, linkTarget: string): void {
    this.tree.entries.push(
      create(TreeEntrySchema, { path: name, kind: EntryKind.SYMLINK, mode: stats.mode & 0o777, linkTarget }),
    );
  }

  private refuse(bytes: number): never {
    const sizes = `${humanBytes(bytes)} > ${humanBytes(this.maxBytes)}`;
    const hint = this.tree.singleFile
      ? "mount a smaller file"
      : "leave large files and folders out with a .skyignore file (same syntax as .gitignore) in it";
    throw new UploadError(`${this.tree.root} holds more than the API server takes in one upload (${sizes}): ${hint}`);
  }
}

/**
 * Lists and hashes `source` (a folder, or one file) as it will be sent,
 * without following links inside it; throws an UploadError when it cannot be
 * read, holds something other than files, folders and links, or holds more
 * than `maxBytes` (before anything is sent).
 *
 * In a folder, `.skyignore` files leave paths out when the folder has one at
 * its top; otherwise its `.gitignore` files do (gitignore rules, each file
 * for its own folder and below).
 */
export async function scanTree(source: string, maxBytes = Number.POSITIVE_INFINITY): Promise<ScannedTree> {
  const root = localPath(source);
  let stats: fs.Stats;
  try {
    stats = await fs.promises.stat(root);
  } catch (err) {
    throw new UploadError(`cannot read ${root}: ${problem(err)}`);
  }
  if (!stats.isDirectory()) {
    if (!stats.isFile()) throw new UploadError(`${root} is not a file or folder`);
    const builder = new TreeBuilder(root, true, maxBytes);
    await builder.addFile(path.basename(root), root, stats);
    return builder.tree;
  }
  const builder = new TreeBuilder(root, false, maxBytes);
  const rulesFile = (await isFile(path.join(root, ".skyignore"))) ? ".skyignore" : ".gitignore";
  await walk(builder, root, "", [], rulesFile);
  return builder.tree;
}

async function isFile(file: string): Promise<boolean> {
  try {
    return (await fs.promises.stat(file)).isFile();
  } catch {
    return false;
  }
}

function notSendable(file: string): UploadError {
  return new UploadError(`${file} is not a file, folder or link: leave it out (.skyignore)`);
}

/** Adds the folder `dir` (`relative` to the tree's top) and below, depth first in name order. */
async function walk(builder: TreeBuilder, dir: string, relative: string, parentRules: Rules[], rulesFile: string) {
  const own = await readRules(dir, relative, rulesFile);
  const rules = own ? [...parentRules, own] : parentRules;
  let names: Buffer[];
  try {
    names = await fs.promises.readdir(dir, { encoding: "buffer" });
  } catch (err) {
    throw new UploadError(`cannot read ${dir}: ${problem(err)}`);
  }
  names.sort(Buffer.compare); // byte order, as the `sky` CLI lists them
  for (const raw of names) {
    const name = utf8Name(raw, path.join(dir, raw.toString()));
    const file = path.join(dir, name);
    const entryPath = relative === "" ? name : `${relative}/${name}`;
    let stats: fs.Stats;
    try {
      stats = await fs.promises.lstat(file);
    } catch (err) {
      throw new UploadError(`cannot read ${file}: ${problem(err)}`);
    }
    if (ignored(stats.isDirectory() ? `${entryPath}/` : entryPath, rules)) continue;
    if (stats.isSymbolicLink()) {
      let target: Buffer;
      try {
        target = await fs.promises.readlink(file, { encoding: "buffer" });
      } catch (err) {
        throw new UploadError(`cannot read ${file}: ${problem(err)}`);
      }
      builder.addSymlink(entryPath, stats, utf8Name(target, `the link ${file}`));
    } else if (stats.isDirectory()) {
      builder.addDirectory(entryPath, stats);
      await walk(builder, file, entryPath, rules, rulesFile);
    } else if (stats.isFile()) {
      await builder.addFile(entryPath, file, stats);
    } else {
      throw notSendable(file);
    }
  }
}

/** Uploads need client streaming, which gRPC-Web does not carry. */
function requireGrpcTransport(client: SkyClient): void {
  if (client.transportKind !== "grpc") {
    throw new UploadError(
      'uploading files needs the "grpc" (HTTP/2) transport: gRPC-Web cannot stream a request. ' +
        'Create the client with transport: "grpc".',
    );
  }
}

/** Which of `digests` the server lacks for the caller. */
async function findMissing(client: SkyClient, digests: string[], options: CallOpts): Promise<Set<string>> {
  const missing = new Set<string>();
  for (let start = 0; start < digests.length; start += DIGESTS_PER_CALL) {
    const batch = digests.slice(start, start + DIGESTS_PER_CALL);
    const response = await client.unary(
      (callOptions) => client.raw.uploads.findMissingBlobs({ digests: batch }, callOptions),
      options,
    );
    for (const digest of response.missing) missing.add(digest);
  }
  return missing;
}

type UploadPart = MessageInitShape<typeof UploadBlobsRequestSchema>;

/**
 * The UploadBlobs messages for `files`: each file's header, then its bytes in
 * chunks of at most 1 MiB, read from disk as the stream takes them. A local
 * failure is kept in `failure` (the stream then ends with an error).
 */
async function* blobParts(
  files: TreeFile[],
  failure: { error?: UploadError },
  onProgress?: (sentBytes: number) => void,
): AsyncGenerator<UploadPart> {
  let sent = 0;
  for (const { entry, localPath: file } of files) {
    yield { part: { case: "header", value: { digest: entry.digest, size: entry.size } } };
    let handle: fs.promises.FileHandle;
    try {
      handle = await fs.promises.open(file, "r");
    } catch (err) {
      throw (failure.error = new UploadError(`cannot read ${file}: ${problem(err)}`));
    }
    try {
      let left = Number(entry.size);
      while (left > 0) {
        const chunk = Buffer.allocUnsafe(Math.min(CHUNK_BYTES, left));
        let read: number;
        try {
          ({ bytesRead: read } = await handle.read(chunk, 0, chunk.length, null));
        } catch (err) {
          throw (failure.error = new UploadError(`cannot read ${file}: ${problem(err)}`));
        }
        if (read === 0) throw (failure.error = new UploadError(`${file} changed while it was being uploaded`));
        left -= read;
        sent += read;
        yield { part: { case: "data", value: chunk.subarray(0, read) } };
        onProgress?.(sent);
      }
    } finally {
      await handle.close();
    }
  }
}

/** Streams the contents of `files` to the server. */
async function sendBlobs(client: SkyClient, files: TreeFile[], options: UploadOpts): Promise<void> {
  const failure: { error?: UploadError } = {};
  try {
    await client.raw.uploads.uploadBlobs(
      blobParts(files, failure, options.onProgress),
      client.streamOptions(options.signal),
    );
  } catch (err) {
    throw failure.error ?? SkyError.from(err);
  }
}

/**
 * Sends what the server lacks of `tree` and records the tree; returns its
 * reference. The client must use the "grpc" transport. A stream broken by an
 * unavailable server is sent again (only what the server still lacks) for
 * the client's `retryUnavailableForMs`.
 */
export async function uploadTree(client: SkyClient, tree: ScannedTree, options: UploadOpts = {}): Promise<Uploaded> {
  requireGrpcTransport(client);
  const digests = [...new Set(tree.files.map((file) => file.entry.digest))].sort();
  const backoff = new Backoff(client.retryUnavailableForMs, options.signal);
  let toSend: TreeFile[];
  for (;;) {
    const missing = await findMissing(client, digests, options).catch(explainUnimplemented);
    // One file per missing content.
    toSend = tree.files.filter((file) => missing.delete(file.entry.digest));
    if (toSend.length === 0) break;
    try {
      await sendBlobs(client, toSend, options);
      break;
    } catch (err) {
      if (err instanceof UploadError) throw err;
      await backoff.pause(err);
    }
  }
  const created = await client.unary(
    (callOptions) =>
      client.raw.uploads.createTree({ entries: tree.entries, singleFile: tree.singleFile }, callOptions),
    options,
  );
  return {
    reference: created.reference,
    files: tree.files.length,
    bytes: tree.bytes,
    sentFiles: toSend.length,
    sentBytes: toSend.reduce((sum, file) => sum + Number(file.entry.size), 0),
  };
}

function explainUnimplemented(err: unknown): never {
  const error = SkyError.from(err);
  if (error.code !== Code.Unimplemented) throw error;
  throw new SkyError(`this API server takes no uploads (it is older than this client): ${error.message}`, {
    code: Code.Unimplemented,
    cause: err,
  });
}

/** Scans and uploads one source (a folder or a file), at most `maxBytes`. */
export async function uploadPath(
  client: SkyClient,
  source: string,
  maxBytes: number,
  options: UploadOpts = {},
): Promise<Uploaded> {
  requireGrpcTransport(client);
  return uploadTree(client, await scanTree(source, maxBytes), options);
}

/**
 * The task with its workdir and file-mount sources uploaded and replaced by
 * their references when the server cannot read this machine's files (it runs
 * deployed, or elsewhere); otherwise the task as it is. Sources that already
 * are references are kept. `spec` itself is not changed.
 */
export async function uploadTaskSources(
  client: SkyClient,
  spec: TaskSpec,
  options: CallOpts & SourceUploadOpts = {},
): Promise<TaskSpec> {
  const mounts = Object.entries(spec.fileMounts)
    .filter(([, source]) => !isUploadReference(source))
    .sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0));
  const workdir = spec.workdir !== "" && !isUploadReference(spec.workdir);
  if (!workdir && mounts.length === 0) return spec;
  const info = await client.serverInfo(options);
  if (!serverNeedsUploads(client.endpoint.baseUrl, info)) return spec;
  requireGrpcTransport(client);
  const maxBytes = uploadLimit(info);
  const send = async (what: string, source: string, fileMount?: string): Promise<string> => {
    let uploaded: Uploaded;
    try {
      uploaded = await uploadPath(client, source, maxBytes, options);
    } catch (err) {
      if (err instanceof UploadError) throw new UploadError(`cannot upload the ${what}: ${err.message}`);
      throw err;
    }
    options.onUpload?.({ ...uploaded, path: source, ...(fileMount === undefined ? {} : { fileMount }) });
    return uploaded.reference;
  };
  const uploaded = clone(TaskSpecSchema, spec);
  if (workdir) uploaded.workdir = await send("workdir", spec.workdir);
  for (const [dest, source] of mounts) {
    uploaded.fileMounts[dest] = await send(`file mount ${dest}`, source, dest);
  }
  return uploaded;
}
