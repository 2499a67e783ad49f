// Builds the browser dashboard into dashboard/dist (index.html, app.js,
// app.css), which is committed: the Rust server embeds those files, so cargo
// never needs Node. `node dashboard/build.mjs --check` builds into a
// temporary folder instead and fails when dist/ differs from it.

import * as fs from "node:fs";
import * as os from "node:os";
import * as path from "node:path";
import { fileURLToPath } from "node:url";

import * as esbuild from "esbuild";

const here = path.dirname(fileURLToPath(import.meta.url));
const dist = path.join(here, "dist");
const FILES = ["index.html", "app.js", "app.css"];

async function build(out) {
  fs.mkdirSync(out, { recursive: true });
  const result = await esbuild.build({
    entryPoints: [path.join(here, "src", "main.ts")],
    outfile: path.join(out, "app.js"),
    absWorkingDir: here,
    bundle: true,
    format: "esm",
    platform: "browser",
    target: "es2020",
    minify: true,
    sourcemap: false,
    legalComments: "none",
    charset: "ascii",
    treeShaking: true,
    logLevel: "warning",
    metafile: true,
  });
  fs.copyFileSync(path.join(here, "index.html"), path.join(out, "index.html"));
  fs.copyFileSync(path.join(here, "style.css"), path.join(out, "app.css"));
  // Node built-ins must never reach the browser bundle.
  const nodeInputs = Object.keys(result.metafile.inputs).filter((input) => input.startsWith("node:"));
  if (nodeInputs.length > 0) throw new Error(`the bundle imports Node.js modules: ${nodeInputs.join(", ")}`);
}

function differences(a, b) {
  const problems = [];
  for (const file of FILES) {
    const fa = path.join(a, file);
    const fb = path.join(b, file);
    if (!fs.existsSync(fb)) problems.push(`missing: dashboard/dist/${file}`);
    else if (!fs.readFileSync(fa).equals(fs.readFileSync(fb))) problems.push(`out of date: dashboard/dist/${file}`);
  }
  if (fs.existsSync(b)) {
    for (const file of fs.readdirSync(b)) {
      if (!FILES.includes(file)) problems.push(`not built: dashboard/dist/${file}`);
    }
  }
  return problems;
}

if (process.argv.includes("--check")) {
  const scratch = fs.mkdtempSync(path.join(os.tmpdir(), "skypilot-dashboard-"));
  try {
    await build(scratch);
    const problems = differences(scratch, dist);
    if (problems.length > 0) {
      console.error(problems.join("\n"));
      console.error(
        "The dashboard build differs: run `npm run build:dashboard` in clients/typescript and commit dashboard/dist.",
      );
      process.exitCode = 1;
    } else {
      console.log(`dashboard/dist is up to date (${FILES.join(", ")}).`);
    }
  } finally {
    fs.rmSync(scratch, { recursive: true, force: true });
  }
} else {
  fs.rmSync(dist, { recursive: true, force: true });
  await build(dist);
  for (const file of FILES) {
    console.log(`dashboard/dist/${file}  ${fs.statSync(path.join(dist, file)).size} bytes`);
  }
}
