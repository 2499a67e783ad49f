// #/infra: `sky check`: which infra can take clusters and why not, with the
// hosts of each SSH node pool, and what clusters hold there and what is free
// (read with one ListClusters each time a check's result is shown). The
// first visit runs a Check request and watches it to the end; later visits
// show that result (kept for the tab) until "Check again" is clicked.

import { anyUnpack } from "@bufbuild/protobuf/wkt";

import type { Cluster } from "../../../src/gen/skypilot/v1/clusters_pb.js";
import { CheckResponseSchema, type HostState, type InfraCheck } from "../../../src/gen/skypilot/v1/infra_pb.js";
import { api, newKey, operationError, operationId, unary, watchOperation } from "../api.js";
import { h } from "../dom.js";
import { num } from "../format.js";
import { KeyedTable, cell, heading, requestRoute, statusCell, type Page } from "../ui.js";
import { free, heldOn, heldOnHost, sum, type Held, type Total } from "../usage.js";

/** GiB with one decimal at most: 23.5, 32. */
function gib(n: number): string {
  return String(Math.round(n * 10) / 10);
}

/** "1 CPU", "0.5 CPUs", "2 clusters". */
function count(n: number, what: string): string {
  return `${num(n)} ${what}${n === 1 ? "" : "s"}`;
}

/** "Clusters here hold: 6 CPUs, 12 GiB, GPUs A100:2 (2 clusters)". */
function heldText(held: Held): string {
  const gpus = [...held.gpus].map(([name, n]) => `${name}:${n}`).join(", ");
  const their = held.stopped === 1 ? "its" : "their";
  const stopped = held.stopped === 0 ? "" : `; ${held.stopped} stopped, keeping ${their} hosts until down`;
  const clusters = held.clusters.length === 0 ? "" : ` (${count(held.clusters.length, "cluster")}${stopped})`;
  const what = `${count(held.cpus, "CPU")}, ${gib(held.memoryGib)} GiB, ${gpus ? `GPUs ${gpus}` : "no GPUs"}`;
  return `Clusters here hold: ${what}${clusters}`;
}

/** "6 of 8 CPUs, 20 of 32 GiB, 1 of 2 GPUs" (GPUs only where there are some). */
function freeText(left: Total, total: Total): string {
  const cpus = `${num(left.cpus)} of ${count(total.cpus, "CPU")}`;
  const memory = `${gib(left.memoryGib)} of ${gib(total.memoryGib)} GiB`;
  return total.gpus > 0 ? `${cpus}, ${memory}, ${left.gpus} of ${count(total.gpus, "GPU")}` : `${cpus}, ${memory}`;
}

/** A pool host's total; undefined when it did not say (not ready). */
function hostTotal(s: HostState): Total | undefined {
  return s.cpus > 0 ? { cpus: s.cpus, memoryGib: s.memoryGib, gpus: s.gpus.length } : undefined;
}

/**
 * The hosts of an infra. With `clusters` (an SSH node pool), a Free column
 * ("6 of 8 CPUs, 20 of 32 GiB") in place of the CPUs and Memory ones.
 */
function hostTable(page: Page, infra: InfraCheck, clusters: Cluster[] | undefined): HTMLElement {
  const table = new KeyedTable<HostState>(page, {
    attr: "data-host",
    key: (s) => s.host,
    columns: ["Host", "Address", "Ready", ...(clusters ? ["GPUs", "Free"] : ["CPUs", "Memory", "GPUs"]), "Detail"],
    cells: (s) => [
      cell("host", h("span", { class: "mono" }, s.host)),
      cell("address", s.address || "-"),
      statusCell(s.ready ? "READY" : "NOT_READY"),
      ...(clusters
        ? [cell("gpus", gpuSummary(s.gpus)), freeCell(infra, s, clusters)]
        : [
            cell("cpus", s.cpus > 0 ? String(s.cpus) : "-"),
            cell("memory", s.memoryGib > 0 ? `${num(s.memoryGib)}GB` : "-"),
            cell("gpus", gpuSummary(s.gpus)),
          ]),
      cell("detail", s.detail),
    ],
    empty: "No hosts.",
  });
  table.update(infra.hosts);
  return table.el;
}

/** What is free on a pool host beside the nodes of clusters there (named in its title). */
function freeCell(infra: InfraCheck, s: HostState, clusters: Cluster[]): HTMLTableCellElement {
  const total = hostTotal(s);
  if (!total) return cell("free", "-");
  const held = heldOnHost(clusters, infra.name, s);
  const names = held.clusters.map((c) => c.name).join(", ");
  return h(
    "td",
    { "data-col": "free", title: names ? `Held by ${names}` : "No cluster has a node here" },
    freeText(free(total, held), total),
  );
}

/** ["A100", "A100", "T4"] -> "A100:2, T4:1". */
function gpuSummary(gpus: string[]): string {
  const counts = new Map<string, number>();
  for (const g of gpus) counts.set(g, (counts.get(g) ?? 0) + 1);
  return [...counts].map(([name, n]) => `${name}:${n}`).join(", ") || "-";
}

/** Whether an infra is an SSH node pool. */
function isPool(infra: InfraCheck): boolean {
  return infra.name.startsWith("ssh/");
}

/**
 * The total and what is free of an infra whose total is known: the local
 * machine (its total comes with the check), the ready hosts of an SSH node pool.
 */
function capacity(
  infra: InfraCheck,
  clusters: Cluster[],
  held: Held,
): { total: Total; left: Total; where: string } | undefined {
  if (infra.cpus > 0) {
    // One machine (local): the check gives its total.
    const total: Total = { cpus: infra.cpus, memoryGib: infra.memoryGib, gpus: infra.gpus.length };
    return { total, left: free(total, held), where: "" };
  }
  if (!isPool(infra)) return undefined;
  const ready = infra.hosts.flatMap((s) => {
    const total = s.ready ? hostTotal(s) : undefined;
    return total ? [{ s, total }] : [];
  });
  if (ready.length === 0) return undefined;
  return {
    total: sum(ready.map((r) => r.total)),
    left: sum(ready.map((r) => free(r.total, heldOnHost(clusters, infra.name, r.s)))),
    where: ` on ${ready.length} ready host${ready.length === 1 ? "" : "s"}`,
  };
}

/** "Clusters here hold: …" and, where the total is known, "Free: …". */
function usage(infra: InfraCheck, clusters: Cluster[]): HTMLElement[] {
  const held = heldOn(clusters, infra.name);
  if (!infra.enabled && held.clusters.length === 0) return [];
  const lines = [h("p", { class: "usage", "data-usage": "held" }, heldText(held))];
  const known = capacity(infra, clusters, held);
  if (known) {
    const text = `Free${known.where}: ${freeText(known.left, known.total)}`;
    lines.push(h("p", { class: "usage", "data-usage": "free" }, text));
  }
  return lines;
}

function infraCard(page: Page, infra: InfraCheck, clusters: Cluster[] | undefined): HTMLElement {
  return h(
    "section",
    { class: "card infra", "data-infra": infra.name },
    h(
      "div",
      { class: "card-head" },
      h("h2", null, infra.name),
      h(
        "span",
        { "data-col": "status" },
        h("span", { class: `badge ${infra.enabled ? "ok" : "bad"}` }, infra.enabled ? "ENABLED" : "DISABLED"),
      ),
    ),
    infra.reason ? h("p", { class: "reason" }, infra.reason) : null,
    clusters ? usage(infra, clusters) : null,
    infra.hosts.length > 0 ? hostTable(page, infra, isPool(infra) ? clusters : undefined) : null,
  );
}

/** The last check's result, kept for the tab: shown again on the next visit. */
interface CheckResult {
  infras: InfraCheck[];
  at: Date;
  /** The Check request's name ("operations/<id>"). */
  request: string;
}

let lastCheck: CheckResult | undefined;

/** Forgets the kept check (at sign-out). */
export function forgetInfraCheck(): void {
  lastCheck = undefined;
}

export function infraPage(page: Page): void {
  const again = h("button", { type: "button", id: "check-again", class: "btn" }, "Check again");
  const status = h("p", { id: "check-status", class: "hint" });
  const cards = h("div", { class: "cards", id: "infras" });
  page.root.append(heading("Infra", again), status, cards);

  /** Counts the results shown: a later check's result replaces an earlier one still being shown. */
  let showing = 0;

  /** Shows a check's result beside what clusters hold now (read here). */
  async function show(result: CheckResult): Promise<void> {
    const turn = ++showing;
    let clusters: Cluster[] | undefined;
    try {
      clusters = (await api.clusters.listClusters({ allUsers: true }, unary(page.signal))).clusters;
    } catch (err) {
      // The check's result is shown all the same, without what clusters hold.
      page.fail(err);
    }
    if (page.signal.aborted || turn !== showing) return;
    const read = new Date();
    cards.replaceChildren(...result.infras.map((i) => infraCard(page, i, clusters)));
    if (result.infras.length === 0) cards.append(h("p", { class: "empty" }, "No infra to check."));
    status.replaceChildren(
      h(
        "time",
        { datetime: result.at.toISOString(), title: result.at.toLocaleString() },
        `Checked at ${result.at.toLocaleTimeString()}`,
      ),
      " (request ",
      h("a", { href: requestRoute(result.request) }, operationId(result.request)),
      "). ",
      clusters ? `Clusters read at ${read.toLocaleTimeString()}. ` : "",
      "Check again to see changes.",
    );
  }

  async function check(): Promise<void> {
    again.disabled = true;
    showing++;
    status.replaceChildren("Checking…");
    try {
      const op = await api.infra.check({ idempotencyKey: newKey() }, unary(page.signal));
      status.replaceChildren(
        "Checking… (request ",
        h("a", { href: requestRoute(op.name) }, operationId(op.name)),
        ")",
      );
      const done = op.done ? op : await watchOperation(op.name, page.signal);
      if (!done) return;
      const error = operationError(done);
      if (error) throw error;
      const res = done.result.case === "response" ? anyUnpack(done.result.value, CheckResponseSchema) : undefined;
      lastCheck = { infras: res?.infras ?? [], at: new Date(), request: op.name };
      await show(lastCheck);
    } catch (err) {
      if (page.signal.aborted) return;
      status.replaceChildren("The check failed.");
      page.fail(err);
    } finally {
      again.disabled = false;
      page.ready();
    }
  }
  again.addEventListener("click", () => void check());
  if (lastCheck) {
    void show(lastCheck).finally(() => page.ready());
  } else {
    void check();
  }
}
