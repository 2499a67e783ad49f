// The live log view shared by jobs, managed jobs and requests: follows a log
// stream into <pre id="log">, decoding UTF-8 across chunk boundaries, and
// when the stream breaks (network, server restart) opens it again from the
// byte after the last one received, so no line is lost or shown twice.

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

/** The most text kept on the page; older output is dropped above it. */
const MAX_CHARS = 8 * 1024 * 1024;

/** Builds the log view (#log-status, pre#log) and starts following; `onReady` once it first answers. */
export function logView(page: Page, feed: LogFeed, onReady: () => void): HTMLElement {
  const status = h("span", { id: "log-status", class: "log-status" }, "connecting…");
  const trimmed = h("p", { class: "hint", hidden: true }, "Earlier output was dropped to keep the page fast.");
  const pre = h("pre", { id: "log", class: "log", tabindex: "0" });
  const text = document.createTextNode("");
  pre.append(text);
  void follow(page, feed, { status, trimmed, pre, text }, onReady);
  return h(
    "section",
    { class: "log-view" },
    h("div", { class: "log-head" }, h("h2", null, "Log"), status),
    trimmed,
    pre,
  );
}

interface Parts {
  status: HTMLElement;
  trimmed: HTMLElement;
  pre: HTMLPreElement;
  text: Text;
}

async function follow(page: Page, feed: LogFeed, parts: Parts, onReady: () => void): Promise<void> {
  const { status, pre, text } = parts;
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

  const write = (chunk: string): void => {
    if (!chunk) return;
    const atBottom = pre.scrollHeight - pre.scrollTop - pre.clientHeight < 8;
    text.appendData(chunk);
    if (text.length > MAX_CHARS) {
      text.deleteData(0, text.length - MAX_CHARS);
      parts.trimmed.hidden = false;
    }
    if (atBottom) pre.scrollTop = pre.scrollHeight;
  };
  const finish = (final: string): void => {
    write(decoder.decode());
    status.textContent = final;
    status.dataset.final = "1";
    ready();
  };

  const opened = (): void => {
    if (status.textContent !== "following…") status.textContent = "following…";
    ready();
  };
  const empty = new Uint8Array(0);

  while (!page.signal.aborted) {
    try {
      for await (const chunk of feed.open(offset, page.signal, opened)) {
        opened();
        const start = chunk.offset;
        const end = start + BigInt(chunk.data.length);
        let data = chunk.data;
        // Bytes already shown (a stream that starts before the offset asked for) are skipped.
        if (offset !== undefined && start < offset) data = end > offset ? data.subarray(Number(offset - start)) : empty;
        if (data.length > 0) {
          write(decoder.decode(data, { stream: true }));
          backoffMs = 500;
        }
        if (offset === undefined || end > offset) offset = end;
        if (chunk.final !== undefined) return finish(chunk.final);
      }
      if (page.signal.aborted) return;
      const final = feed.settle ? await feed.settle(offset ?? 0n, page.signal) : undefined;
      if (final !== undefined) return finish(final);
    } catch (err) {
      if (page.signal.aborted) return;
      if (!retryable(err)) {
        status.textContent = `stopped: ${ConnectError.from(err).rawMessage}`;
        page.fail(err);
        ready();
        return;
      }
    }
    status.textContent = "reconnecting…";
    await sleep(backoffMs, page.signal);
    backoffMs = Math.min(backoffMs * 2, 5000);
  }
}
