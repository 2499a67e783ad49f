// Tiny DOM helpers. Everything is built with createElement and textContent:
// cluster names, log lines and messages come from the server and are never
// parsed as HTML.

export type Child = Node | string | number | null | undefined | false;
export type Attrs = Record<string, string | number | boolean | null | undefined | ((event: Event) => void)>;

/**
 * Creates an element. Attributes: `class`; `on<event>` listeners; `value`,
 * `checked`, `disabled` as properties; anything else with setAttribute
 * (true: present and empty; false, null or undefined: absent).
 */
export function h<K extends keyof HTMLElementTagNameMap>(
  tag: K,
  attrs?: Attrs | null,
  ...children: (Child | Child[])[]
): HTMLElementTagNameMap[K] {
  const el = document.createElement(tag);
  if (attrs) {
    for (const [name, value] of Object.entries(attrs)) {
      if (value === null || value === undefined || value === false) continue;
      if (typeof value === "function") {
        el.addEventListener(name.slice(2), value);
      } else if (name === "class") {
        el.className = String(value);
      } else if (name === "value" && "value" in el) {
        (el as HTMLInputElement).value = String(value);
      } else if (name === "checked" && el instanceof HTMLInputElement) {
        el.checked = Boolean(value);
      } else if (name === "disabled" && "disabled" in el) {
        (el as HTMLButtonElement).disabled = Boolean(value);
      } else {
        el.setAttribute(name, value === true ? "" : String(value));
      }
    }
  }
  append(el, children);
  return el;
}

/** Appends children (nested arrays flattened; null, undefined and false skipped). */
export function append(el: Element, children: (Child | Child[])[]): void {
  for (const child of children.flat()) {
    if (child === null || child === undefined || child === false) continue;
    el.append(typeof child === "number" ? String(child) : child);
  }
}

/** An element by id, which the page shell or the current page must have. */
export function byId<T extends HTMLElement = HTMLElement>(id: string): T {
  const el = document.getElementById(id);
  if (!el) throw new Error(`#${id} is missing`);
  return el as T;
}

/** A link to a route of the dashboard (`#/...`); each segment is URL-encoded. */
export function link(segments: (string | number | bigint)[], ...children: Child[]): HTMLAnchorElement {
  return h("a", { href: route(segments) }, ...children);
}

/** The `#/...` address of a route. */
export function route(segments: (string | number | bigint)[]): string {
  return "#/" + segments.map((s) => encodeURIComponent(String(s))).join("/");
}

/** A labelled form field. */
export function field(label: string, control: HTMLElement): HTMLLabelElement {
  return h("label", { class: "field" }, h("span", null, label), control);
}
