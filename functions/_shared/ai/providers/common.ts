// What every adapter shares: reading Retry-After, the default status → ErrorClass table, and
// the inactivity timer for streams (the SDKs' own timeout stops counting once the response
// headers have arrived, so a stream that stalls mid-answer would otherwise hang forever).
import { type ErrorClass, ProviderError, type TokenUsage } from "../types.ts";

/**
 * Milliseconds to wait before retrying, from `retry-after-ms` (OpenAI) or `retry-after`
 * (seconds or an HTTP date). Unlike the SDKs we keep values above 60 s: the router decides
 * whether a long wait means "fail over now".
 */
export function parseRetryAfter(headers: Headers | null | undefined, now: number = Date.now()): number | undefined {
  if (!headers) return undefined;
  const ms = Number.parseFloat(headers.get("retry-after-ms") ?? "");
  if (Number.isFinite(ms) && ms >= 0) return Math.round(ms);
  const raw = headers.get("retry-after")?.trim();
  if (!raw) return undefined;
  if (/^\d+(\.\d+)?$/.test(raw)) return Math.round(Number.parseFloat(raw) * 1000);
  const at = Date.parse(raw);
  return Number.isNaN(at) ? undefined : Math.max(0, at - now);
}

/**
 * The class of an HTTP failure when the body says nothing more specific.
 * 409 is a lock/conflict the provider expects to clear (the SDKs retry it), 402 is the
 * account's billing: terminal for the deployment, like a bad key.
 */
export function classifyStatus(status: number): ErrorClass {
  if (status === 401 || status === 402 || status === 403) return "auth";
  if (status === 404) return "not_found";
  if (status === 408 || status === 504) return "timeout";
  if (status === 409) return "server";
  if (status === 429) return "rate_limit";
  if (status === 503 || status === 529) return "overloaded";
  if (status >= 500) return "server";
  return "bad_request";
}

/** The caller's signal and our own deadline as one signal. */
export function deadline(timeoutMs: number, signal?: AbortSignal): AbortSignal {
  const timer = AbortSignal.timeout(timeoutMs);
  return signal ? AbortSignal.any([signal, timer]) : timer;
}

/**
 * Yields from `source` but gives up when no item arrives for `idleMs`: `onIdle` cancels the
 * underlying request, and the stream fails with ProviderError("timeout") carrying whatever
 * the provider had already billed.
 */
export async function* idleTimeout<T>(
  source: AsyncIterable<T>,
  idleMs: number,
  onIdle: () => void,
  billed: () => TokenUsage | undefined,
): AsyncGenerator<T> {
  const it = source[Symbol.asyncIterator]();
  try {
    while (true) {
      let timer: ReturnType<typeof setTimeout> | undefined;
      const idle = new Promise<"idle">((resolve) => {
        timer = setTimeout(() => resolve("idle"), idleMs);
      });
      const pending = it.next();
      // After a timeout nobody awaits this read any more; its rejection must not go unhandled.
      pending.catch(() => {});
      const next = await Promise.race([pending, idle]).finally(() => clearTimeout(timer));
      if (next === "idle") {
        onIdle();
        throw new ProviderError("timeout", `no data from the provider for ${idleMs} ms`, { billedUsage: billed() });
      }
      if (next.done) return;
      yield next.value;
    }
  } finally {
    // Stops the SDK's iterator (which aborts its request) if we leave early.
    void it.return?.()?.catch(() => {});
  }
}

/**
 * Whether an error thrown while reading a stream is the connection dropping: fetch reports a
 * body cut off mid-read as a TypeError ("terminated" in Node, "error reading a body from
 * connection" in Deno); API errors and malformed JSON are other classes.
 */
export function isTransportDrop(err: unknown): boolean {
  return err instanceof TypeError;
}

export function fromBase64(b64: string): Uint8Array {
  const bin = atob(b64);
  const out = new Uint8Array(bin.length);
  for (let i = 0; i < bin.length; i++) out[i] = bin.charCodeAt(i);
  return out;
}
