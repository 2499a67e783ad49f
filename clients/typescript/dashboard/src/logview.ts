// The live log view shared by jobs, managed jobs and requests: follows a log
// stream into <pre id="log">, decoding UTF-8 across chunk boundaries, and
// when the stream breaks (network, server restart) opens it again from the
// byte after the last one received, so no line is lost or shown twice. The
// stream is closed while the tab is hidden (each open stream holds one of
// the browser's few connections to the server) and resumed, at the same
// byte, when it is shown again. Text is written at most once per animation
// frame, into text nodes of 64 Ki characters, the oldest dropped above 2 Mi.

import { ConnectError } from "@connectrpc/connect";

import { retryable, sleep } from "./api.js";
import { h } from "./dom.js";
import type { Page } from "./ui.js";

/** One message of a log stream: `data` starts at byte `offset` of the log. */
export interface LogChunk {
  offset: bigint;
  data: Uint8Array;
  /** Set on the last message: the final state, as shown in #log-status. */
  final?: string;
}

/** Where a log comes from. */
export interface LogFeed {
  /** Opens the stream at `offset` (undefined: the whole log); `opened` is called once it answers. */
  open(offset: bigint | undefined, signal: AbortSignal, opened: () => void): AsyncIterable<LogChunk>;
  /**
   * Called when the stream ended without a final message: the final state
   * if the log is complete at `offset`, else undefined (the stream is opened again).
   */
  settle?(offset: bigint, signal: AbortSignal): Promise<string | undefined>;
}

/** The most text kept on the page (characters); older output is dropped, a node at a time, above it. */
const MAX_CHARS = 2 * 1024 * 1024;
/** The size of one text node of the log: the last one grows up to it, then a new one starts. */
const NODE_CHARS = 64 * 1024;

/** Builds the log view (#log-status, pre#log) and starts following; `onReady` once it first answers. */
export function logView(page: Page, feed: LogFeed, onReady: () => void): HTMLElement {
  const status = h("span", { id: "log-status", class: "log-status" }, "connecting…");
  const trimmed = h(
    "p",
    { class: "hint", id: "log-trimmed", hidden: true },
    "Older output was dropped to keep the page fast: only the last 2 million characters are shown.",
  );
  const pre = h("pre", { id: "log", class: "log", tabindex: "0" });
  const text = new LogText(pre, trimmed);
  page.signal.addEventListener("abort", () => text.cancel(), { once: true });
  void follow(page, feed, status, text, onReady);
  return h(
    "section",
    { class: "log-view" },
    h("div", { class: "log-head" }, h("h2", null, "Log"), status),
    trimmed,
    pre,
  );
}

/**
 * The text of pre#log: writes are buffered and flushed once per animation
 * frame; the scroll position is read once per flush (it follows the end
 * while the reader is at the end).
 */
class LogText {
  private readonly nodes: Text[] = [];
  private total = 0;
  private pending: string[] = [];
  private frame = 0;

  constructor(
    private readonly pre: HTMLPreElement,
    private readonly trimmed: HTMLElement,
  ) {}

  write(chunk: string): void {
    if (!chunk) return;
    this.pending.push(chunk);
    if (this.frame === 0) this.frame = requestAnimationFrame(() => this.flush());
  }

  /** Writes out what is buffered, now. */
  flush(): void {
    this.cancel();
    if (this.pending.length === 0) return;
    let text = this.pending.length === 1 ? this.pending[0]! : this.pending.join("");
    this.pending = [];
    const pre = this.pre;
    const atBottom = pre.scrollHeight - pre.scrollTop - pre.clientHeight < 8;
    let dropped = false;
    if (text.length >= MAX_CHARS) {
      // More than the page keeps at once: only its end, in fresh nodes.
      for (const node of this.nodes) node.remove();
      this.nodes.length = 0;
      this.total = 0;
      text = text.slice(text.length - MAX_CHARS);
      dropped = true;
    }
    let at = 0;
    while (at < text.length) {
      let tail = this.nodes[this.nodes.length - 1];
      if (!tail || tail.length >= NODE_CHARS) {
        tail = document.createTextNode("");
        pre.append(tail);
        this.nodes.push(tail);
      }
      let end = Math.min(text.length, at + NODE_CHARS - tail.length);
      // A surrogate pair stays in one node.
      if (end < text.length && end - at > 1 && isHighSurrogate(text.charCodeAt(end - 1))) end--;
      tail.appendData(at === 0 && end === text.length ? text : text.slice(at, end));
      this.total += end - at;
      at = end;
    }
    while (this.total > MAX_CHARS && this.nodes.length > 1) {
      const oldest = this.nodes.shift()!;
      this.total -= oldest.length;
      oldest.remove();
      dropped = true;
    }
    if (dropped) {
      // The log starts again at a whole line, under the note that older output was dropped.
      const first = this.nodes[0];
      const cut = first ? first.data.indexOf("\n") + 1 : 0;
      if (first && cut > 0 && cut < first.length) {
        first.deleteData(0, cut);
        this.total -= cut;
      }
      this.trimmed.hidden = false;
    }
    if (atBottom) pre.scrollTop = pre.scrollHeight;
  }

  /** Drops the pending frame (what is buffered stays, for the next flush). */
  cancel(): void {
    if (this.frame !== 0) cancelAnimationFrame(this.frame);
    this.frame = 0;
  }
}

function isHighSurrogate(code: number): boolean {
  return code >= 0xd800 && code <= 0xdbff;
}

/** Resolves when the tab is visible (at once if it is), or the signal aborts. */
function whenVisible(signal: AbortSignal): Promise<void> {
  return new Promise((resolve) => {
    if (signal.aborted || document.visibilityState !== "hidden") return resolve();
    const done = (): void => {
      if (!signal.aborted && document.visibilityState === "hidden") return;
      document.removeEventListener("visibilitychange", done);
      signal.removeEventListener("abort", done);
      resolve();
    };
    document.addEventListener("visibilitychange", done);
    signal.addEventListener("abort", done, { once: true });
  });
}

async function follow(
  page: Page,
  feed: LogFeed,
  status: HTMLElement,
  text: LogText,
  onReady: () => void,
): Promise<void> {
  const decoder = new TextDecoder("utf-8");
  let offset: bigint | undefined;
  let readyCalled = false;
  const ready = (): void => {
    if (!readyCalled) {
      readyCalled = true;
      onReady();
    }
  };
  let backoffMs = 500;

  const finish = (final: string): void => {
    text.write(decoder.decode());
    // The whole log is on the page before its final state is.
    text.flush();
    status.textContent = final;
    status.dataset.final = "1";
    ready();
  };

  const opened = (): void => {
    if (status.textContent !== "following…") status.textContent = "following…";
    ready();
  };
  const empty = new Uint8Array(0);

  // The open stream, closed when the tab is hidden.
  let current: AbortController | undefined;
  const onVisibility = (): void => {
    if (document.visibilityState === "hidden") current?.abort();
  };
  document.addEventListener("visibilitychange", onVisibility);

  try {
    while (!page.signal.aborted) {
      if (document.visibilityState === "hidden") {
        status.textContent = "paused while the tab is hidden";
        await whenVisible(page.signal);
        if (page.signal.aborted) return;
        status.textContent = "resuming…";
      }
      const streamed = new AbortController();
      const close = (): void => streamed.abort();
      page.signal.addEventListener("abort", close, { once: true });
      current = streamed;
      try {
        for await (const chunk of feed.open(offset, streamed.signal, opened)) {
          opened();
          const start = chunk.offset;
          const end = start + BigInt(chunk.data.length);
          let data = chunk.data;
          // Bytes already shown (a stream that starts before the offset asked for) are skipped.
          if (offset !== undefined && start < offset) {
            data = end > offset ? data.subarray(Number(offset - start)) : empty;
          }
          if (data.length > 0) {
            text.write(decoder.decode(data, { stream: true }));
            backoffMs = 500;
          }
          if (offset === undefined || end > offset) offset = end;
          if (chunk.final !== undefined) return finish(chunk.final);
        }
        if (page.signal.aborted) return;
        // Closed because the tab was hidden: opened again once it is shown.
        if (streamed.signal.aborted) continue;
        const final = feed.settle ? await feed.settle(offset ?? 0n, page.signal) : undefined;
        if (final !== undefined) return finish(final);
      } catch (err) {
        if (page.signal.aborted) return;
        if (streamed.signal.aborted) continue;
        if (!retryable(err)) {
          text.flush();
          status.textContent = `stopped: ${ConnectError.from(err).rawMessage}`;
          page.fail(err);
          ready();
          return;
        }
      } finally {
        current = undefined;
        page.signal.removeEventListener("abort", close);
      }
      status.textContent = "reconnecting…";
      await sleep(backoffMs, page.signal);
      backoffMs = Math.min(backoffMs * 2, 5000);
    }
  } finally {
    document.removeEventListener("visibilitychange", onVisibility);
  }
}
