// Fails when the committed code in src/gen differs from what `npm run generate`
// makes from proto/ now: generates into a temporary folder and compares.

import { execFileSync } from "node:child_process";
import * as fs from "node:fs";
import * as os from "node:os";
import * as path from "node:path";
import { fileURLToPath } from "node:url";

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "..");
const committed = path.join(root, "src", "gen");
const scratch = fs.mkdtempSync(path.join(os.tmpdir(), "skypilot-gen-"));

function files(dir, prefix = "") {
  if (!fs.existsSync(dir)) return [];
  return fs.readdirSync(dir, { withFileTypes: true }).flatMap((entry) => {
    const rel = path.join(prefix, entry.name);
    return entry.isDirectory() ? files(path.join(dir, entry.name), rel) : [rel];
  });
}

try {
  const buf = path.join(root, "node_modules", ".bin", process.platform === "win32" ? "buf.cmd" : "buf");
  execFileSync(buf, ["generate", "--output", scratch], { cwd: root, stdio: "inherit" });
  const fresh = path.join(scratch, "src", "gen");
  const want = new Set(files(fresh));
  const have = new Set(files(committed));
  const problems = [];
  for (const file of want) {
    if (!have.has(file)) problems.push(`missing: src/gen/${file}`);
    else if (!fs.readFileSync(path.join(fresh, file)).equals(fs.readFileSync(path.join(committed, file)))) {
      problems.push(`out of date: src/gen/${file}`);
    }
  }
  for (const file of have) {
    if (!want.has(file)) problems.push(`not generated from any proto: src/gen/${file}`);
  }
  if (problems.length > 0) {
    console.error(problems.join("\n"));
    console.error(
      "The generated code does not match proto/: run `npm run generate` in clients/typescript and commit src/gen.",
    );
    process.exitCode = 1;
  } else {
    console.log(`src/gen is up to date (${want.size} files).`);
  }
} finally {
  fs.rmSync(scratch, { recursive: true, force: true });
}
