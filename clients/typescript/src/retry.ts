// Retrying while the API server is unavailable (restarting, not yet up).
// Only gRPC UNAVAILABLE is retried: the request never reached the server, or
// the server went away; mutating requests carry an idempotency key, so
// sending them again cannot run them twice.

import { SkyError, isUnavailable } from "./errors.js";

/** First and longest pause between attempts. */
const FIRST_DELAY_MS = 100;
const MAX_DELAY_MS = 2000;

/** Resolves after `ms`, or rejects when `signal` aborts. */
export function sleep(ms: number, signal?: AbortSignal): Promise<void> {
  return new Promise((resolve, reject) => {
    if (signal?.aborted) {
      reject(signal.reason);
      return;
    }
    const timer = setTimeout(() => {
      signal?.removeEventListener("abort", onAbort);
      resolve();
    }, ms);
    const onAbort = () => {
      clearTimeout(timer);
      reject(signal?.reason);
    };
    signal?.addEventListener("abort", onAbort, { once: true });
  });
}

/**
 * Tracks the retries of one call (or of one stream between two messages):
 * `pause(err)` waits before the next attempt, or throws the error as a
 * SkyError when it is not UNAVAILABLE or the time to retry is spent.
 */
export class Backoff {
  private started = Date.now();
  private attempt = 0;

  constructor(
    private readonly retryForMs: number,
    private readonly signal?: AbortSignal,
  ) {}

  /** Progress was made: the next failure starts a fresh retry period. */
  reset(): void {
    this.started = Date.now();
    this.attempt = 0;
  }

  async pause(err: unknown): Promise<void> {
    if (!isUnavailable(err) || this.signal?.aborted) throw SkyError.from(err);
    const hinted = SkyError.from(err).retryDelayMs;
    const exponential = Math.min(MAX_DELAY_MS, FIRST_DELAY_MS * 2 ** this.attempt);
    const delay = Math.min(MAX_DELAY_MS, hinted ?? exponential) * (0.75 + Math.random() * 0.5);
    if (Date.now() + delay - this.started > this.retryForMs) throw SkyError.from(err);
    this.attempt += 1;
    await sleep(delay, this.signal);
  }
}

/** Runs `call`, retrying it while it fails with UNAVAILABLE, for at most `retryForMs`. */
export async function retryUnavailable<T>(
  call: () => Promise<T>,
  retryForMs: number,
  signal?: AbortSignal,
): Promise<T> {
  const backoff = new Backoff(retryForMs, signal);
  for (;;) {
    try {
      return await call();
    } catch (err) {
      await backoff.pause(err);
    }
  }
}
