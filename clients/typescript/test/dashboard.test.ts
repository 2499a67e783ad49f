// The dashboard in a real browser: Debian's Chromium, headless, driven over
// the DevTools protocol by puppeteer-core (which downloads nothing; every
// address but loopback goes to a dead proxy). Clusters and requests are made
// with the real `sky` binary; a screenshot of each page is saved under
// target/dashboard-screenshots/.

/// <reference lib="dom" />

import assert from "node:assert/strict";
import { execFile } from "node:child_process";
import * as fs from "node:fs";
import * as net from "node:net";
import * as path from "node:path";
import { promisify } from "node:util";
import { after, before, describe, test } from "node:test";

import puppeteer, { type Browser, type Page } from "puppeteer-core";

import { SKY_BIN, TEST_HOME, TestServer, tempDir } from "./harness.js";

const CHROMIUM = process.env.CHROMIUM_BIN || "/usr/bin/chromium";
const SCREENSHOTS = path.resolve(path.dirname(SKY_BIN), "..", "dashboard-screenshots");
const ADMIN_PASSWORD = "dashboard-admin-pw-1";
const WAIT_MS = 60_000;

const run = promisify(execFile);

async function startBrowser(): Promise<Browser> {
  assert.ok(fs.existsSync(CHROMIUM), `${CHROMIUM} is missing: install chromium (scripts/test.sh does)`);
  fs.mkdirSync(SCREENSHOTS, { recursive: true });
  return puppeteer.launch({
    executablePath: CHROMIUM,
    headless: true,
    // Root in CI has no user namespace sandbox; no address but loopback is reachable.
    args: ["--no-sandbox", "--disable-dev-shm-usage", "--proxy-server=http://127.0.0.1:9", "--no-first-run"],
    defaultViewport: { width: 1280, height: 860 },
  });
}

/** `sky args...` against `server`, as `user:password` when given. */
async function sky(server: TestServer, args: string[], credentials?: string): Promise<string> {
  const endpoint = credentials ? `http://${credentials}@${server.address}` : server.endpoint;
  const env = { ...process.env, HOME: TEST_HOME, SKYPILOT_API_SERVER_ENDPOINT: endpoint };
  const { stdout } = await run(SKY_BIN, args, { env, timeout: WAIT_MS });
  return stdout;
}

async function shot(page: Page, name: string): Promise<void> {
  await page.screenshot({ path: path.join(SCREENSHOTS, `${name}.png`), fullPage: true });
}

/** Waits until the page shows `name` with its data. */
async function pageReady(page: Page, name: string): Promise<void> {
  await page.waitForSelector(`main#page[data-page="${name}"][data-ready="1"]`, { timeout: WAIT_MS });
}

async function textOf(page: Page, selector: string): Promise<string> {
  return page.$eval(selector, (element) => element.textContent ?? "");
}

async function signIn(page: Page, server: TestServer, user: string, password: string): Promise<void> {
  await page.goto(`${server.endpoint}/dashboard/`);
  await pageReady(page, "signin");
  await page.type("#signin-user", user);
  await page.type("#signin-password", password);
  await page.click("#signin-submit");
}

/** Clicks `button[data-action=action]` in the row `row`, confirming when asked. */
async function act(page: Page, row: string, action: string): Promise<void> {
  const button = `${row} button[data-action="${action}"]`;
  await page.click(button);
  const confirm = await page.waitForSelector(`${button}[data-confirm="1"]`, { timeout: 2_000 }).catch(() => null);
  if (confirm) await confirm.click();
}

/** A task file whose run prints numbered lines, one every quarter second. */
function lineTask(lines: number): string {
  const file = path.join(tempDir("task"), "task.yaml");
  fs.writeFileSync(
    file,
    `name: lines\nrun: |\n  for i in $(seq 1 ${lines}); do echo "dashboard-line-$i"; sleep 0.25; done\n`,
  );
  return file;
}

describe("the dashboard of a deployed server", () => {
  let server: TestServer;
  let browser: Browser;
  let page: Page;
  const admin = `admin:${ADMIN_PASSWORD}`;

  let silentHost: net.Server;
  const silentSockets = new Set<net.Socket>();

  before(async () => {
    // An "SSH host" that accepts connections and never answers.
    silentHost = net.createServer((socket) => {
      silentSockets.add(socket);
      socket.once("close", () => silentSockets.delete(socket));
    });
    await new Promise<void>((resolve) => silentHost.listen(0, "127.0.0.1", resolve));
    const pools = path.join(tempDir("pools"), "ssh_node_pools.yaml");
    const port = (silentHost.address() as net.AddressInfo).port;
    fs.writeFileSync(pools, `silent:\n  user: nobody\n  hosts:\n    - ip: 127.0.0.1\n      port: ${port}\n`);
    server = await TestServer.start({ basicAuth: admin, flags: ["--ssh-node-pools", pools] });
    browser = await startBrowser();
    page = await browser.newPage();
  });

  after(async () => {
    await browser?.close();
    await server?.dispose(server.client({ username: "admin", password: ADMIN_PASSWORD }));
    for (const socket of silentSockets) socket.destroy();
    silentHost?.close();
  });

  test("an anonymous visitor sees only the sign-in page, and a wrong password is refused", async () => {
    await page.goto(`${server.endpoint}/dashboard/#/clusters`);
    await pageReady(page, "signin");
    assert.equal(await page.$$eval("a[data-nav]", (links) => links.length), 0);
    assert.equal(await page.$$eval("tr[data-cluster], tr[data-request]", (rows) => rows.length), 0);
    await shot(page, "signin");

    await page.type("#signin-user", "admin");
    await page.type("#signin-password", "not-the-password");
    await page.click("#signin-submit");
    await page.waitForFunction(() => (document.querySelector("#signin-error")?.textContent ?? "").trim() !== "", {
      timeout: WAIT_MS,
    });
    assert.match(await textOf(page, "#signin-error"), /password|credentials|unauthenticated/i);
    assert.equal(await page.$$eval("a[data-nav]", (links) => links.length), 0);
  });

  test("after signing in, a cluster launched from the CLI appears and its job's log lines arrive live", async () => {
    await signIn(page, server, "admin", ADMIN_PASSWORD);
    await pageReady(page, "clusters");
    await sky(server, ["launch", "-c", "web", lineTask(60), "-y", "--detach-run"], admin);
    await page.waitForSelector('tr[data-cluster="web"]', { timeout: WAIT_MS });
    assert.equal(await textOf(page, 'tr[data-cluster="web"] td[data-col="status"]'), "UP");
    await shot(page, "clusters");

    await page.click('tr[data-cluster="web"] a');
    await pageReady(page, "cluster");
    await page.waitForSelector('tr[data-job="1"]', { timeout: WAIT_MS });
    await shot(page, "cluster");

    await page.click('tr[data-job="1"] a');
    await page.waitForFunction(() => document.querySelector("#log")?.textContent?.includes("dashboard-line-3\n"), {
      timeout: WAIT_MS,
    });
    // Lines arrive while the job runs, not all at its end.
    assert.ok(!(await textOf(page, "#log")).includes("dashboard-line-60"), "the log came only at the end");

    // A reload shows the log from its start and follows it to the end.
    await page.reload();
    await page.waitForFunction(
      () => /SUCCEEDED/.test(document.querySelector("#log-status")?.textContent ?? ""),
      { timeout: WAIT_MS },
    );
    const log = await textOf(page, "#log");
    for (const line of [1, 2, 30, 60]) {
      assert.equal(log.split(`dashboard-line-${line}\n`).length - 1, 1, `line ${line} in:\n${log}`);
    }
    await shot(page, "job-log");
  });

  test("a running request is cancelled from the requests page", async () => {
    // `sky ssh up` of a pool whose host accepts connections and never speaks
    // runs until SSH gives up on it (seconds): long enough to be cancelled.
    const submitted = await sky(server, ["ssh", "up", "--infra", "silent", "--async"], admin);
    const id = /request: (\S+)/.exec(submitted)?.[1];
    assert.ok(id, submitted);
    const row = `tr[data-request="operations/${id}"]`;

    await page.goto(`${server.endpoint}/dashboard/#/requests`);
    await pageReady(page, "requests");
    await page.waitForSelector(row, { timeout: WAIT_MS });
    await shot(page, "requests");
    await act(page, row, "cancel");
    await page.waitForFunction(
      (selector) => /CANCELLED/.test(document.querySelector(`${selector} td[data-col="status"]`)?.textContent ?? ""),
      { timeout: WAIT_MS },
      row,
    );
    const status = await sky(server, ["api", "status", id, "-a"], admin);
    assert.match(status, /CANCELLED/, status);

    await page.click(`${row} a`);
    await pageReady(page, "request");
    await shot(page, "request");
  });

  test("managed jobs, infra and users pages show what the server holds", async () => {
    const job = path.join(tempDir("task"), "managed.yaml");
    fs.writeFileSync(job, "name: nightly\nrun: echo managed-done\n");
    await sky(server, ["jobs", "launch", job, "-y", "--async"], admin);
    await page.goto(`${server.endpoint}/dashboard/#/managed`);
    await pageReady(page, "managed");
    await page.waitForSelector("tr[data-managed-job]", { timeout: WAIT_MS });
    await shot(page, "managed-jobs");

    await page.click('a[data-nav="infra"]');
    await pageReady(page, "infra");
    const infra = await textOf(page, "main#page");
    assert.match(infra, /local/);
    // What the clusters hold on the local host, and what is left of it.
    assert.match(infra, /Clusters here hold: \d/);
    assert.match(infra, /Free: [\d.]+ of \d+ CPUs/);
    await shot(page, "infra");

    await page.click('a[data-nav="users"]');
    await pageReady(page, "users");
    await page.waitForSelector('tr[data-user="admin"]', { timeout: WAIT_MS });
    await shot(page, "users");
  });

  test("on a phone-width screen the page fits its width", async () => {
    await page.setViewport({ width: 390, height: 844, isMobile: true, hasTouch: true });
    await page.goto(`${server.endpoint}/dashboard/#/clusters`);
    await pageReady(page, "clusters");
    await page.waitForSelector('tr[data-cluster="web"]', { timeout: WAIT_MS });
    const width = await page.evaluate(() => document.documentElement.scrollWidth);
    assert.ok(width <= 390, `the page is ${width}px wide on a 390px screen`);
    await shot(page, "clusters-phone");
    await page.setViewport({ width: 1280, height: 860 });
  });

  test("a user who is not an admin manages only their own clusters and sees no users page", async () => {
    await sky(server, ["users", "create", "alice", "--password", "alice-password-1"], admin);
    await page.click("#signout");
    await pageReady(page, "signin");
    await signIn(page, server, "alice", "alice-password-1");
    await pageReady(page, "clusters");
    await page.waitForSelector('tr[data-cluster="web"]', { timeout: WAIT_MS });
    assert.equal(await page.$$eval('tr[data-cluster="web"] button[data-action="down"]', (b) => b.length), 0);
    assert.equal(await page.$$eval('a[data-nav="users"]', (links) => links.length), 0);
    await page.goto(`${server.endpoint}/dashboard/#/users`);
    await pageReady(page, "users");
    assert.equal(await page.$$eval("tr[data-user]", (rows) => rows.length), 0);
  });
});

describe("the dashboard of a local server", () => {
  test("opens without signing in", async () => {
    const server = await TestServer.start();
    const browser = await startBrowser();
    try {
      const page = await browser.newPage();
      await page.goto(`${server.endpoint}/dashboard/`);
      await pageReady(page, "clusters");
      const signOut = await page.$("#signout");
      assert.ok(!signOut || !(await signOut.isVisible()), "a local server has no sign-out");
      const interactive = await page.evaluate(() => document.documentElement.dataset.interactiveMs);
      assert.ok(Number(interactive) > 0, `interactive at ${interactive}`);
    } finally {
      await browser.close();
      await server.dispose();
    }
  });
});
