// Measures the dashboard's first page in a real headless Chromium (Debian's,
// driven by puppeteer-core; every address but loopback goes to a dead proxy):
// for each sample a fresh browser context loads the page and the time from
// navigation to the page's `sky:interactive` mark (its data rendered) is
// read; then the same for the page of one cluster's jobs. Prints
// `name: value unit` lines (the median and the slowest sample).
//
//   node scripts/dashboard-first-page.mjs http://127.0.0.1:46580/dashboard/ [samples] [expected rows]

import puppeteer from "puppeteer-core";

const [url, samplesArg = "11", rowsArg = "0"] = process.argv.slice(2);
if (!url) {
  console.error("usage: dashboard-first-page.mjs URL [samples] [expected cluster rows]");
  process.exit(2);
}
const samples = Number(samplesArg);
const expectedRows = Number(rowsArg);

const browser = await puppeteer.launch({
  executablePath: process.env.CHROMIUM_BIN || "/usr/bin/chromium",
  headless: true,
  args: ["--no-sandbox", "--disable-dev-shm-usage", "--proxy-server=http://127.0.0.1:9", "--no-first-run"],
  defaultViewport: { width: 1280, height: 860 },
});

/** Milliseconds from navigation until `hash` of the page is interactive. */
async function measure(hash, rowSelector) {
  const context = await browser.createBrowserContext();
  try {
    const page = await context.newPage();
    await page.goto(`${url}${hash}`);
    await page.waitForSelector('main#page[data-ready="1"]', { timeout: 60_000 });
    const interactive = Number(await page.evaluate(() => document.documentElement.dataset.interactiveMs));
    const rows = await page.$$eval(rowSelector, (found) => found.length);
    return { interactive, rows };
  } finally {
    await context.close();
  }
}

function report(name, values) {
  const sorted = [...values].sort((a, b) => a - b);
  console.log(`${name}_median: ${sorted[Math.floor(sorted.length / 2)].toFixed(0)} ms`);
  console.log(`${name}_max: ${sorted[sorted.length - 1].toFixed(0)} ms`);
}

try {
  await measure("#/clusters", "tr[data-cluster]"); // warm the browser itself
  const clusters = [];
  for (let i = 0; i < samples; i++) {
    const { interactive, rows } = await measure("#/clusters", "tr[data-cluster]");
    if (rows < expectedRows) throw new Error(`the first page listed ${rows} clusters, expected ${expectedRows}`);
    clusters.push(interactive);
  }
  report(`dashboard_first_page_interactive_${expectedRows}_clusters`, clusters);
  const jobs = [];
  for (let i = 0; i < samples; i++) jobs.push((await measure("#/clusters/m0", "tr[data-job]")).interactive);
  report("dashboard_cluster_jobs_page_interactive", jobs);
} finally {
  await browser.close();
}
