// Uploads: a task's workdir and file mounts go to a server that runs
// elsewhere (here, a deployed server) as content-addressed uploads, listed
// as SkyPilot syncs them; a local server on this host reads the paths itself.

import assert from "node:assert/strict";
import { execFileSync } from "node:child_process";
import { createHash } from "node:crypto";
import * as fs from "node:fs";
import * as path from "node:path";
import { after, before, describe, test } from "node:test";

import { create } from "@bufbuild/protobuf";

import {
  EntryKind,
  JobStatus,
  ServerMode,
  UploadError,
  isLoopbackHost,
  scanTree,
  type SkyClient,
  type Task,
  type UploadedSource,
} from "../src/index.js";
import { GetServerInfoResponseSchema } from "../src/gen/skypilot/v1/server_pb.js";
import { serverNeedsUploads } from "../src/uploads.js";
import { TestServer, tempDir } from "./harness.js";

const MIB = 1 << 20;

/** `bytes` bytes that differ from one MiB to the next. */
function pattern(bytes: number): Buffer {
  const data = Buffer.alloc(bytes);
  for (let i = 0; i < bytes; i += 4096) data.writeUInt32LE(i, i);
  return data;
}

const WEIGHTS = pattern(2.5 * MIB);

/**
 * A project as a user has it: code (an empty file too), an executable script,
 * weights larger than one data message, a git-ignored file, and a note beside it.
 */
function makeProject(): { root: string; project: string; notes: string } {
  const root = tempDir("uploads");
  const project = path.join(root, "project");
  fs.mkdirSync(path.join(project, "src"), { recursive: true });
  fs.writeFileSync(path.join(project, ".gitignore"), "secret.txt\n");
  fs.writeFileSync(path.join(project, "secret.txt"), "do not send\n");
  fs.writeFileSync(path.join(project, "src", "train.py"), "print('training')\n");
  fs.writeFileSync(path.join(project, "src", "__init__.py"), "");
  fs.writeFileSync(path.join(project, "weights.bin"), WEIGHTS);
  fs.writeFileSync(path.join(project, "run.sh"), "#!/bin/sh\necho run.sh ran\n");
  fs.chmodSync(path.join(project, "run.sh"), 0o755);
  const notes = path.join(root, "notes.txt");
  fs.writeFileSync(notes, "my notes\n");
  return { root, project, notes };
}

/** A job's whole output and its final state. */
async function jobOutput(client: SkyClient, cluster: string, jobId: bigint) {
  const decoder = new TextDecoder();
  let text = "";
  let status: JobStatus | undefined;
  for await (const chunk of client.jobLogs(cluster, { jobId })) {
    text += decoder.decode(chunk.data, { stream: true });
    if (chunk.job) status = chunk.job.status;
  }
  return { text: text + decoder.decode(), status };
}

const RUN = [
  "./run.sh",
  "cat src/train.py ~/inputs/notes.txt",
  "stat -c 'mode %a %n' run.sh",
  "sha256sum weights.bin",
  "ls -A . src | sed 's/^/file: /'",
].join("\n");

describe("uploads to a deployed server", () => {
  let server: TestServer;
  let client: SkyClient;
  let root: string;
  let project: string;
  let notes: string;
  const uploads: UploadedSource[] = [];

  before(async () => {
    ({ root, project, notes } = makeProject());
    server = await TestServer.start({ deployWithoutAuth: true });
    client = server.client();
  });

  after(async () => {
    try {
      await server?.dispose(client);
    } finally {
      client?.close();
      if (root) fs.rmSync(root, { recursive: true, force: true });
    }
  });

  test("launch uploads the workdir and a file mount; the job sees what was sent, not the ignored file", async () => {
    const info = await client.serverInfo();
    assert.equal(info.mode, ServerMode.DEPLOY);
    assert.ok(info.uploadMaxBytes > 0n);

    const task: Task = {
      workdir: project,
      fileMounts: { "~/inputs/notes.txt": notes },
      resources: { cpus: 0.5 },
      run: RUN,
    };
    const op = await client.launch(task, { clusterName: "uploads", onUpload: (u) => uploads.push(u) });
    const result = await op.result(120_000);

    const [workdir, mount] = uploads;
    assert.equal(uploads.length, 2);
    assert.equal(workdir?.path, project);
    assert.equal(workdir?.fileMount, undefined);
    assert.match(workdir?.reference ?? "", /^sky-upload:\/\/[0-9a-f]{64}$/);
    assert.equal(workdir?.files, 5, ".gitignore, run.sh, src/__init__.py, src/train.py and weights.bin");
    assert.equal(workdir?.sentFiles, 5);
    assert.ok(workdir.sentBytes > WEIGHTS.length);
    assert.equal(mount?.fileMount, "~/inputs/notes.txt");
    assert.equal(mount?.files, 1);
    assert.equal(mount?.sentBytes, "my notes\n".length);
    assert.notEqual(mount?.reference, workdir?.reference);

    const { text, status } = await jobOutput(client, result.clusterName, result.jobId);
    assert.equal(status, JobStatus.SUCCEEDED, text);
    const weights = `${createHash("sha256").update(WEIGHTS).digest("hex")}  weights.bin`;
    const expected = ["run.sh ran", "print('training')", "my notes", "mode 755 run.sh", "file: .gitignore"];
    for (const line of [...expected, "file: __init__.py", weights]) {
      assert.ok(text.includes(line), `${line} in:\n${text}`);
    }
    assert.ok(!text.includes("secret.txt"), `the git-ignored file is not sent:\n${text}`);
  });

  test("the same tree again sends nothing and gives the same reference, for upload() and exec", async () => {
    const again = await client.upload(project);
    assert.equal(again.reference, uploads[0]?.reference);
    assert.equal(again.files, 5);
    assert.equal(again.sentFiles, 0);
    assert.equal(again.sentBytes, 0);

    const execUploads: UploadedSource[] = [];
    const exec = await client.exec(
      "uploads",
      { workdir: project, resources: { cpus: 0.5 }, run: "./run.sh" },
      { onUpload: (u) => execUploads.push(u) },
    );
    const result = await exec.result(120_000);
    assert.deepEqual(
      execUploads.map((u) => [u.reference, u.sentFiles]),
      [[uploads[0]?.reference, 0]],
    );
    const { text, status } = await jobOutput(client, "uploads", result.jobId);
    assert.equal(status, JobStatus.SUCCEEDED, text);
    assert.equal(text, "run.sh ran\n");
  });

  test("upload() streams a new file in chunks and reports its progress", async () => {
    const file = path.join(root, "checkpoint.bin");
    const data = pattern(1.5 * MIB);
    data.write("another file", 0);
    fs.writeFileSync(file, data);
    const progress: number[] = [];
    const uploaded = await client.upload(file, { onProgress: (sent) => progress.push(sent) });
    assert.deepEqual(progress, [MIB, data.length]);
    assert.deepEqual([uploaded.files, uploaded.sentFiles, uploaded.sentBytes], [1, 1, data.length]);
    assert.notEqual(uploaded.reference, uploads[1]?.reference);
  });

  test("a missing path is refused before anything is launched, naming the path", async () => {
    const nowhere = path.join(root, "nowhere");
    await assert.rejects(
      client.launch({ workdir: nowhere, run: "true" }, { clusterName: "gone" }),
      (err: unknown) => {
        assert.ok(err instanceof UploadError, String(err));
        assert.match(err.message, /cannot upload the workdir/);
        assert.ok(err.message.includes(`${nowhere}: no such file or folder`), err.message);
        return true;
      },
    );
    await assert.rejects(client.upload(path.join(root, "missing.txt")), /missing\.txt: no such file or folder/);
    assert.deepEqual(await client.status({ clusterNames: ["gone"] }), []);
  });

  test("a gRPC-Web client cannot upload and says which transport can", async () => {
    const web = server.client({ transport: "grpc-web" });
    try {
      await assert.rejects(
        web.launch({ workdir: project, run: "true" }, { clusterName: "web" }),
        (err: unknown) => err instanceof UploadError && /"grpc" \(HTTP\/2\) transport/.test(err.message),
      );
      await assert.rejects(web.upload(project), UploadError);
      // A task with nothing to upload still launches over gRPC-Web.
      const dry = await (await web.launch({ run: "true" }, { clusterName: "web", dryrun: true })).result(60_000);
      assert.equal(dry.jobId, 0n);
    } finally {
      web.close();
    }
  });
});

describe("a deployed server's upload limit", () => {
  let server: TestServer;
  let client: SkyClient;
  let root: string;

  before(async () => {
    root = tempDir("uploads-limit");
    server = await TestServer.start({ deployWithoutAuth: true, flags: ["--upload-max-mib", "1"] });
    client = server.client();
  });

  after(async () => {
    try {
      await server?.dispose(client);
    } finally {
      client?.close();
      if (root) fs.rmSync(root, { recursive: true, force: true });
    }
  });

  test("a tree over the limit is refused before anything is sent, with its size and a hint", async () => {
    assert.equal((await client.serverInfo()).uploadMaxBytes, BigInt(MIB));
    const big = Buffer.alloc(2 * MIB, 1);
    fs.writeFileSync(path.join(root, "big.bin"), big);
    await assert.rejects(
      client.launch({ workdir: root, run: "true" }, { clusterName: "big" }),
      (err: unknown) => {
        assert.ok(err instanceof UploadError, String(err));
        assert.ok(err.message.includes("2.1 MB > 1.0 MB"), err.message);
        assert.match(err.message, /\.skyignore/);
        return true;
      },
    );
    const digest = createHash("sha256").update(big).digest("hex");
    const { missing } = await client.raw.uploads.findMissingBlobs({ digests: [digest] });
    assert.deepEqual(missing, [digest], "the server holds none of it");
    assert.deepEqual(await client.status(), []);

    // Left out with a .skyignore, the rest goes.
    fs.writeFileSync(path.join(root, ".skyignore"), "*.bin\n");
    const uploaded = await client.upload(root);
    assert.equal(uploaded.files, 1);
    assert.equal(uploaded.sentFiles, 1);
  });
});

describe("a local server on this host", () => {
  let server: TestServer;
  let client: SkyClient;
  let root: string;

  before(async () => {
    root = tempDir("uploads-local");
    server = await TestServer.start();
    client = server.client();
  });

  after(async () => {
    try {
      await server?.dispose(client);
    } finally {
      client?.close();
      if (root) fs.rmSync(root, { recursive: true, force: true });
    }
  });

  test("reads the workdir itself: nothing is uploaded", async () => {
    fs.writeFileSync(path.join(root, "here.txt"), "read in place\n");
    const uploads: UploadedSource[] = [];
    const op = await client.launch(
      { workdir: root, resources: { cpus: 0.5 }, run: "cat here.txt" },
      { clusterName: "local-workdir", onUpload: (u) => uploads.push(u) },
    );
    const result = await op.result(120_000);
    assert.deepEqual(uploads, []);
    const { text, status } = await jobOutput(client, result.clusterName, result.jobId);
    assert.equal(status, JobStatus.SUCCEEDED, text);
    assert.equal(text, "read in place\n");
  });
});

describe("scanning a tree", () => {
  let root: string;

  before(() => {
    root = tempDir("scan");
  });

  after(() => {
    fs.rmSync(root, { recursive: true, force: true });
  });

  const paths = async (dir: string) => (await scanTree(dir)).entries.map((entry) => entry.path);

  test("gitignore rules apply in each folder unless the top has a .skyignore; links stay links", async () => {
    const dir = path.join(root, "rules");
    fs.mkdirSync(path.join(dir, "data"), { recursive: true });
    fs.mkdirSync(path.join(dir, "sub"));
    fs.writeFileSync(path.join(dir, ".gitignore"), "data/\n*.log\n");
    fs.writeFileSync(path.join(dir, "train.py"), "print(1)\n");
    fs.writeFileSync(path.join(dir, "run.log"), "x");
    fs.writeFileSync(path.join(dir, "data", "big.bin"), "x");
    fs.writeFileSync(path.join(dir, "sub", ".gitignore"), "!keep.log\nlocal.txt\n");
    fs.writeFileSync(path.join(dir, "sub", "keep.log"), "k");
    fs.writeFileSync(path.join(dir, "sub", "local.txt"), "l");
    fs.writeFileSync(path.join(dir, "local.txt"), "top");
    fs.symlinkSync("train.py", path.join(dir, "main.py"));
    fs.symlinkSync("data", path.join(dir, "data-link"));

    const tree = await scanTree(dir);
    assert.deepEqual(
      tree.entries.map((entry) => entry.path),
      [".gitignore", "data-link", "local.txt", "main.py", "sub", "sub/.gitignore", "sub/keep.log", "train.py"],
    );
    const byPath = new Map(tree.entries.map((entry) => [entry.path, entry]));
    assert.equal(byPath.get("main.py")?.kind, EntryKind.SYMLINK);
    assert.equal(byPath.get("main.py")?.linkTarget, "train.py");
    assert.equal(byPath.get("data-link")?.kind, EntryKind.SYMLINK);
    assert.equal(byPath.get("sub")?.kind, EntryKind.DIRECTORY);
    const train = byPath.get("train.py");
    assert.equal(train?.digest, createHash("sha256").update("print(1)\n").digest("hex"));
    assert.equal(train?.size, 9n);
    assert.equal(tree.files.length, 5);
    assert.equal(tree.singleFile, false);

    fs.writeFileSync(path.join(dir, ".skyignore"), "*.py\n");
    assert.deepEqual(await paths(dir), [
      ".gitignore",
      ".skyignore",
      "data",
      "data/big.bin",
      "data-link",
      "local.txt",
      "run.log",
      "sub",
      "sub/.gitignore",
      "sub/keep.log",
      "sub/local.txt",
    ]);
  });

  test("modes are kept; one file is a single-file tree named by its base name", async () => {
    const dir = path.join(root, "modes");
    fs.mkdirSync(dir);
    fs.writeFileSync(path.join(dir, "tool"), "#!/bin/sh\n");
    fs.chmodSync(path.join(dir, "tool"), 0o750);
    const tree = await scanTree(dir);
    assert.equal(tree.entries[0]?.mode, 0o750);
    const one = await scanTree(path.join(dir, "tool"));
    assert.equal(one.singleFile, true);
    assert.deepEqual(
      one.entries.map((entry) => [entry.path, entry.kind, entry.mode]),
      [["tool", EntryKind.FILE, 0o750]],
    );
  });

  test("a FIFO is refused unless it is left out", async () => {
    const dir = path.join(root, "fifo");
    fs.mkdirSync(dir);
    execFileSync("mkfifo", [path.join(dir, "pipe")]);
    await assert.rejects(scanTree(dir), (err: unknown) => {
      assert.ok(err instanceof UploadError);
      assert.match(err.message, /pipe is not a file, folder or link: leave it out \(\.skyignore\)/);
      return true;
    });
    fs.writeFileSync(path.join(dir, ".gitignore"), "pipe\n");
    assert.deepEqual(await paths(dir), [".gitignore"]);
  });

  test("which endpoints need uploads: a deployed server, or any host but this one", () => {
    for (const host of ["localhost", "127.0.0.1", "127.1.2.3", "[::1]"]) assert.ok(isLoopbackHost(host), host);
    for (const host of ["example.com", "10.0.0.1", "[::2]", "0.0.0.0"]) assert.ok(!isLoopbackHost(host), host);
    const local = create(GetServerInfoResponseSchema, { mode: ServerMode.LOCAL });
    const deployed = create(GetServerInfoResponseSchema, { mode: ServerMode.DEPLOY });
    assert.equal(serverNeedsUploads("http://127.0.0.1:46580", local), false);
    assert.equal(serverNeedsUploads("http://[::1]:46580", local), false);
    assert.equal(serverNeedsUploads("http://127.0.0.1:46580", deployed), true);
    assert.equal(serverNeedsUploads("https://sky.example.com", local), true);
  });
});
