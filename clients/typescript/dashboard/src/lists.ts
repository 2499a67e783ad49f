// Lists of rows from the server: a newest-first list read a page at a time
// ("Load more", with the #list-limit line), a filter box (#filter), the
// table that shows a list (with its Load more line when it is paged), and a
// whole list page: heading, filter, table, polling.

import { h } from "./dom.js";
import { heading, poll, type KeyedTable, type Page } from "./ui.js";

/** Items the server gives, read again by `refresh`. */
export interface Source<T> {
  items: T[];
  refresh(): Promise<void>;
}

/** A source read whole by each refresh. */
export function wholeList<T>(load: () => Promise<T[]>): Source<T> {
  const source: Source<T> = {
    items: [],
    async refresh() {
      source.items = await load();
    },
  };
  return source;
}

/** One page of a list: its items and the token of the page after it ("" for the last). */
export interface ListPage<T> {
  items: T[];
  next: string;
}

/**
 * A newest-first list read a page at a time ("Load more"). A refresh reads
 * as many of the newest items as are shown (at most `maxRefresh` in one
 * call), so that items loaded with "Load more" stay shown and fresh; above
 * `maxRefresh`, the oldest ones loaded are kept as they were.
 */
export class PagedList<T> implements Source<T> {
  items: T[] = [];
  /** The token of the page after the oldest item loaded ("" when all are). */
  next = "";

  constructor(
    private readonly opts: {
      pageSize: number;
      maxRefresh: number;
      key(item: T): string;
      fetch(pageSize: number, token: string): Promise<ListPage<T>>;
    },
  ) {}

  /** Reads the newest items again. */
  async refresh(): Promise<void> {
    const size = Math.min(Math.max(this.opts.pageSize, this.items.length), this.opts.maxRefresh);
    const fresh = await this.opts.fetch(size, "");
    // (What "Load more" added meanwhile counts too.)
    const old = this.items;
    if (!fresh.next || fresh.items.length >= old.length) {
      this.items = fresh.items;
      this.next = fresh.next;
      return;
    }
    const key = this.opts.key;
    const last = fresh.items[fresh.items.length - 1];
    const at = last === undefined ? -1 : old.findIndex((item) => key(item) === key(last));
    const keys = new Set(fresh.items.map(key));
    const older = old.slice(at >= 0 ? at + 1 : fresh.items.length).filter((item) => !keys.has(key(item)));
    this.items = fresh.items.concat(older);
    // `next` stays: the page after the oldest item loaded.
  }

  /** Loads the next page of older items. */
  async more(): Promise<void> {
    if (!this.next) return;
    const res = await this.opts.fetch(this.opts.pageSize, this.next);
    const keys = new Set(this.items.map(this.opts.key));
    this.items = this.items.concat(res.items.filter((item) => !keys.has(this.opts.key(item))));
    this.next = res.next;
  }
}

/**
 * The line under a paged table: "Showing the newest N <noun>; …" and a
 * "Load more" button (button#load-more), shown while older items exist.
 */
export function moreLine(
  page: Page,
  list: PagedList<unknown>,
  noun: string,
  shown: () => void,
): { el: HTMLElement; update(): void } {
  const text = h("span", { id: "list-limit", class: "hint" });
  const button = h("button", { type: "button", id: "load-more", class: "btn" }, "Load more");
  const el = h("div", { class: "more", hidden: true }, text, button);
  const update = (): void => {
    el.hidden = !list.next;
    text.textContent = `Showing the newest ${list.items.length} ${noun}; older ones are not loaded. `;
  };
  button.addEventListener("click", async () => {
    button.disabled = true;
    try {
      await list.more();
      shown();
    } catch (err) {
      page.fail(err);
    } finally {
      button.disabled = false;
    }
  });
  return { el, update };
}

/** A search box (input#filter) that calls `onChange` with its lower-cased text as it is typed. */
export function filterBox(placeholder: string, onChange: (text: string) => void): HTMLInputElement {
  const input = h("input", { type: "search", id: "filter", class: "filter", placeholder, "aria-label": placeholder });
  input.addEventListener("input", () => onChange(input.value.trim().toLowerCase()));
  return input;
}

/** Whether any of `fields` contains `text` (lower-cased). */
export function matches(text: string, ...fields: string[]): boolean {
  return !text || fields.some((f) => f.toLowerCase().includes(text));
}

/** A table showing a source, with the Load more line under it when the source is paged. */
export interface ListView {
  /** The table, and the Load more line of a paged source. */
  elements: HTMLElement[];
  /** Shows the items as they are now. */
  show(): void;
  /** Reads the source again and shows it. */
  refresh(): Promise<void>;
}

/**
 * Shows `source` in `table`: the items `select` keeps, in its order (all,
 * as they come, by default); `noun` names them in the Load more line.
 */
export function listView<T>(
  page: Page,
  table: KeyedTable<T>,
  source: Source<T>,
  noun: string,
  select: (items: T[]) => T[] = (items) => items,
): ListView {
  const more = source instanceof PagedList ? moreLine(page, source, noun, () => show()) : undefined;
  const show = (): void => {
    table.update(select(source.items));
    more?.update();
  };
  return {
    elements: more ? [table.el, more.el] : [table.el],
    show,
    refresh: async () => {
      await source.refresh();
      show();
    },
  };
}

/**
 * A list page: a heading with a filter box over the fields of each item, the
 * table (built with the refresh to call after an action), the Load more line
 * of a paged source, and a refresh every 5 s.
 */
export function listPage<T>(
  page: Page,
  opts: {
    title: string;
    /** The filter box's placeholder: what it looks in. */
    filter: string;
    fields(item: T): string[];
    table(refresh: () => void): KeyedTable<T>;
    source: Source<T>;
    /** What the items are called in the Load more line. */
    noun: string;
  },
): void {
  let filter = "";
  const table = opts.table(() => poller.now());
  const view = listView(page, table, opts.source, opts.noun, (items) =>
    items.filter((item) => matches(filter, ...opts.fields(item))),
  );
  const box = filterBox(opts.filter, (text) => {
    filter = text;
    view.show();
  });
  page.root.append(heading(opts.title, box), ...view.elements);
  const poller = poll(page, async () => {
    await view.refresh();
    page.ready();
  });
}
