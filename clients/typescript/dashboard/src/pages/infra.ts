// #/infra: `sky check`: which infra can take clusters and why not, with the
// hosts of each SSH node pool. The first visit runs a Check request and
// watches it to the end; later visits show that result (kept for the tab)
// until "Check again" is clicked.

import { anyUnpack } from "@bufbuild/protobuf/wkt";

import { CheckResponseSchema, type HostState, type InfraCheck } from "../../../src/gen/skypilot/v1/infra_pb.js";
import { api, newKey, operationError, operationId, unary, watchOperation } from "../api.js";
import { h } from "../dom.js";
import { num } from "../format.js";
import { KeyedTable, cell, heading, requestRoute, statusCell, type Page } from "../ui.js";

function hostTable(page: Page, hosts: HostState[]): HTMLElement {
  const table = new KeyedTable<HostState>(page, {
    attr: "data-host",
    key: (s) => s.host,
    columns: [
      { label: "Host" },
      { label: "Address" },
      { label: "Ready" },
      { label: "CPUs" },
      { label: "Memory" },
      { label: "GPUs" },
      { label: "Detail" },
    ],
    cells: (s) => [
      cell("host", h("span", { class: "mono" }, s.host)),
      cell("address", s.address || "-"),
      statusCell(s.ready ? "READY" : "NOT_READY"),
      cell("cpus", s.cpus > 0 ? String(s.cpus) : "-"),
      cell("memory", s.memoryGib > 0 ? `${num(s.memoryGib)}GB` : "-"),
      cell("gpus", gpuSummary(s.gpus)),
      cell("detail", s.detail),
    ],
    empty: "No hosts.",
  });
  table.update(hosts);
  return table.el;
}

/** ["A100", "A100", "T4"] -> "A100:2, T4:1". */
function gpuSummary(gpus: string[]): string {
  const counts = new Map<string, number>();
  for (const g of gpus) counts.set(g, (counts.get(g) ?? 0) + 1);
  return [...counts].map(([name, n]) => `${name}:${n}`).join(", ") || "-";
}

function infraCard(page: Page, infra: InfraCheck): HTMLElement {
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
    infra.hosts.length > 0 ? hostTable(page, infra.hosts) : null,
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

  function show(result: CheckResult): void {
    cards.replaceChildren(...result.infras.map((i) => infraCard(page, i)));
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
      "Check again to see changes.",
    );
  }

  async function check(): Promise<void> {
    again.disabled = true;
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
      show(lastCheck);
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
    show(lastCheck);
    page.ready();
  } else {
    void check();
  }
}
