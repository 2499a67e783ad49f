// Shared pieces of every page: the page context, the error banner and the
// submission notice, polling, tables keyed by row (updated in place so that
// an armed "Confirm" button or the focus survive a refresh), action buttons
// with an inline confirmation (Cancel among them), status and time cells.
// (Paged lists, filter boxes and list pages are in lists.ts.)

import type { Operation } from "../../src/gen/google/longrunning/operations_pb.js";
import { describe, operationId } from "./api.js";
import { append, byId, h, route, type Child } from "./dom.js";
import { absolute, relative, statusTone } from "./format.js";

/** What a page gets from the router. */
export interface Page {
  /** main#page, emptied for this page. */
  root: HTMLElement;
  /** Aborted when the user leaves the page. */
  signal: AbortSignal;
  /** Marks the page's data as rendered (data-ready="1"). */
  ready(): void;
  /** Shows an error (nothing once the page is left; UNAUTHENTICATED signs out). */
  fail(err: unknown, owner?: object): void;
}

let errorOwner: object | undefined;

/** Shows an error in #error; `owner` lets a later success of the same source clear it. */
export function showError(err: unknown, owner?: object): void {
  const { codeName, message } = describe(err);
  const banner = byId("error");
  banner.replaceChildren(
    h("strong", { class: "code" }, codeName),
    " ",
    h("span", { class: "message" }, message),
    h("button", { type: "button", class: "dismiss", "aria-label": "Dismiss", onclick: () => clearError() }, "×"),
  );
  banner.hidden = false;
  errorOwner = owner;
}

/** Clears #error (only an error of `owner`, when given). */
export function clearError(owner?: object): void {
  if (owner !== undefined && owner !== errorOwner) return;
  const banner = byId("error");
  banner.replaceChildren();
  banner.hidden = true;
  errorOwner = undefined;
}

/** Shows a line in #notice. */
export function showNotice(...children: Child[]): void {
  const notice = byId("notice");
  notice.replaceChildren();
  append(notice, children);
  notice.hidden = !notice.hasChildNodes();
}

export function clearNotice(): void {
  showNotice();
}

/** "Request <id> submitted", the id linking to the request's page. */
export function noticeSubmitted(op: Operation): void {
  showNotice("Request ", h("a", { href: requestRoute(op.name) }, operationId(op.name)), " submitted");
}

/** The address of a request's page: #/requests/operations/<id>. */
export function requestRoute(name: string): string {
  return route(["requests", ...name.split("/")]);
}

/**
 * Runs `load` now and then every `everyMs` while the page is shown and the
 * tab visible; never two at once. `now()` asks for a refresh at once;
 * `stop()` ends the polling (for what cannot change any more).
 */
export function poll(page: Page, load: () => Promise<void>, everyMs = 5000): { now(): void; stop(): void } {
  const owner = {};
  let timer: ReturnType<typeof setTimeout> | undefined;
  let running = false;
  let again = false;
  let stopped = false;

  async function run(): Promise<void> {
    if (page.signal.aborted || stopped) return;
    if (running) {
      again = true;
      return;
    }
    clearTimeout(timer);
    timer = undefined;
    running = true;
    try {
      await load();
      clearError(owner);
    } catch (err) {
      page.fail(err, owner);
      page.ready();
    } finally {
      running = false;
    }
    if (page.signal.aborted || stopped) return;
    if (again) {
      again = false;
      void run();
    } else if (!document.hidden) {
      timer = setTimeout(run, everyMs);
    }
  }
  function onVisibility(): void {
    if (!document.hidden && !running && timer === undefined) void run();
  }
  document.addEventListener("visibilitychange", onVisibility);
  page.signal.addEventListener("abort", () => {
    clearTimeout(timer);
    document.removeEventListener("visibilitychange", onVisibility);
  });
  void run();
  return {
    now: () => void run(),
    stop: () => {
      stopped = true;
      clearTimeout(timer);
      timer = undefined;
    },
  };
}

/** An action button of a row. */
export interface Action {
  /** data-action: stop, start, down, cancel, delete, revoke ... */
  action: string;
  label: string;
  /** Ask first: the first click arms the button with this label (data-confirm="1"). */
  confirm?: string;
  danger?: boolean;
  run(): Promise<void>;
}

/** A red action that asks first: its first click arms it as "Confirm <action>". */
export function dangerAction(action: string, label: string, run: () => Promise<void>): Action {
  return { action, label, confirm: `Confirm ${action}`, danger: true, run };
}

/** The Cancel action of a row when `when`; none otherwise. */
export function cancelAction(when: boolean, run: () => Promise<void>): Action[] {
  return when ? [dangerAction("cancel", "Cancel", run)] : [];
}

/** What an action runs to submit a request: `submit`, then "Request <id> submitted" and `refresh`. */
export function submitting(submit: () => Promise<Operation>, refresh: () => void): () => Promise<void> {
  return async () => {
    noticeSubmitted(await submit());
    refresh();
  };
}

/** A button that runs an action (disabled while it runs), after an inline confirmation if asked. */
export function actionButton(page: Page, a: Action): HTMLButtonElement {
  let disarm: ReturnType<typeof setTimeout> | undefined;
  const button = h(
    "button",
    { type: "button", class: a.danger ? "btn danger" : "btn", "data-action": a.action },
    a.label,
  );
  button.addEventListener("click", async () => {
    if (a.confirm && button.dataset.confirm !== "1") {
      button.dataset.confirm = "1";
      button.textContent = a.confirm;
      disarm = setTimeout(() => {
        delete button.dataset.confirm;
        button.textContent = a.label;
      }, 15_000);
      return;
    }
    clearTimeout(disarm);
    button.disabled = true;
    try {
      await a.run();
    } catch (err) {
      page.fail(err);
    } finally {
      button.disabled = false;
      delete button.dataset.confirm;
      button.textContent = a.label;
    }
  });
  return button;
}

/** Fills `cell` with the buttons of `actions`, unless it holds the same ones already (kept as they are). */
export function syncActions(page: Page, cell: HTMLElement, actions: Action[]): void {
  const signature = actions.map((a) => a.action).join(",");
  if (cell.dataset.actions === signature && cell.childNodes.length === actions.length) return;
  cell.dataset.actions = signature;
  cell.replaceChildren(...actions.map((a) => actionButton(page, a)));
}

/** A status cell: td[data-col="status"] holding the plain status as a coloured badge. */
export function statusCell(status: string, title?: string): HTMLTableCellElement {
  return h("td", { "data-col": "status" }, h("span", { class: `badge ${statusTone(status)}`, title }, status));
}

/** A time cell: relative time, the absolute one as its title. */
export function timeCell(when: Date | undefined, col: string): HTMLTableCellElement {
  return h("td", { "data-col": col, title: absolute(when) || undefined }, h("time", null, relative(when)));
}

/** A plain cell. */
export function cell(col: string, ...children: Child[]): HTMLTableCellElement {
  return h("td", { "data-col": col }, ...children);
}

/** One column of a KeyedTable. */
export interface Column {
  label: string;
  class?: string;
}

/**
 * A table whose rows are keyed (tr[data-<kind>="<key>"]) and updated in place:
 * a refresh replaces only the cells that changed, and keeps the action cell
 * while the row's actions stay the same.
 */
export class KeyedTable<T> {
  readonly el: HTMLElement;
  private readonly tbody: HTMLTableSectionElement;
  private readonly rows = new Map<string, HTMLTableRowElement>();
  private readonly empty: HTMLElement;
  private readonly wrap: HTMLElement;

  constructor(
    private readonly page: Page,
    private readonly opts: {
      /** The row attribute, e.g. "data-cluster". */
      attr: string;
      key(item: T): string;
      /** Column headings (a label, or a label and a class). */
      columns: (string | Column)[];
      cells(item: T): HTMLTableCellElement[];
      actions?(item: T): Action[];
      empty: string;
      class?: string;
    },
  ) {
    const head = h(
      "tr",
      null,
      opts.columns.map((c) =>
        typeof c === "string" ? h("th", { scope: "col" }, c) : h("th", { scope: "col", class: c.class }, c.label),
      ),
    );
    if (opts.actions)
      head.append(h("th", { scope: "col", class: "actions" }, h("span", { class: "sr-only" }, "Actions")));
    this.tbody = h("tbody");
    this.empty = h("p", { class: "empty" }, "Loading…");
    this.wrap = h(
      "div",
      { class: "table-wrap", hidden: true },
      h("table", { class: opts.class ?? "grid" }, h("thead", null, head), this.tbody),
    );
    this.el = h("div", { class: "table-block" }, this.wrap, this.empty);
  }

  update(items: T[]): void {
    const seen = new Set<string>();
    let index = 0;
    for (const item of items) {
      const key = this.opts.key(item);
      if (seen.has(key)) continue;
      seen.add(key);
      const cells = this.opts.cells(item);
      let row = this.rows.get(key);
      if (!row) {
        row = h("tr");
        row.setAttribute(this.opts.attr, key);
        row.append(...cells);
        if (this.opts.actions) row.append(h("td", { class: "actions", "data-col": "actions" }));
        this.rows.set(key, row);
      } else {
        cells.forEach((fresh, i) => {
          const old = row!.cells[i];
          if (!old) row!.append(fresh);
          else if (!old.isEqualNode(fresh)) old.replaceWith(fresh);
        });
      }
      if (this.opts.actions) {
        const actionCell = row.cells[row.cells.length - 1]!;
        syncActions(this.page, actionCell, this.opts.actions(item));
      }
      if (this.tbody.children[index] !== row) this.tbody.insertBefore(row, this.tbody.children[index] ?? null);
      index++;
    }
    for (const [key, row] of this.rows) {
      if (!seen.has(key)) {
        row.remove();
        this.rows.delete(key);
      }
    }
    this.empty.textContent = this.opts.empty;
    this.empty.hidden = index > 0;
    this.wrap.hidden = index === 0;
  }
}

/** A page heading with optional tools on its right. */
export function heading(title: Child, ...tools: Child[]): HTMLElement {
  return h("div", { class: "page-head" }, h("h1", null, title), h("div", { class: "tools" }, ...tools));
}
