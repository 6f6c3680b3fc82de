// HTTP plumbing shared by the async-task adapters (Replicate, Runway, D-ID): one deadline per
// HTTP request (conn.timeoutMs) joined with the caller's signal, the mapping of error answers
// and transport failures to ProviderError (statuses and Retry-After as in ./common.ts), and
// erasing a task that may be gone already. Nothing here retries: the router is the only retry
// loop. Runtime-neutral (fetch, AbortSignal, no node:*).
import { type ErrorClass, type ProviderConnection, ProviderError } from "../types.ts";
import { classifyStatus, deadline, parseRetryAfter } from "./common.ts";

export interface HttpFailure {
  status: number;
  headers: Headers;
  /** The response body as text (error JSON, usually). */
  text: string;
}

/**
 * A ProviderError for a non-2xx answer, read the provider's way (see ErrorReading): some providers
 * answer a content-policy refusal with a 400 or 422, and some give a status their own meaning.
 */
export interface ErrorReading {
  /** The provider's own code and message, from its error body. */
  describe: (body: unknown, text: string) => { code?: string; message?: string };
  /** Whether a 400/422/451 body reports a content-policy refusal. */
  policy?: (code: string | undefined, message: string) => boolean;
  /** The provider's own meaning of a status, where it differs from classifyStatus. */
  statusClass?: (status: number) => ErrorClass | undefined;
}

export function errorFromResponse(provider: string, failure: HttpFailure, reading: ErrorReading): ProviderError {
  const { describe, policy = () => false, statusClass = () => undefined } = reading;
  let body: unknown;
  try {
    body = JSON.parse(failure.text);
  } catch {
    body = undefined;
  }
  const { code, message } = describe(body, failure.text);
  const text = message || failure.text.slice(0, 300) || `HTTP ${failure.status}`;
  let errorClass = statusClass(failure.status) ?? classifyStatus(failure.status);
  if ((failure.status === 400 || failure.status === 422 || failure.status === 451) && policy(code, text)) errorClass = "content_policy";
  return new ProviderError(errorClass, `${provider}: ${text}`, {
    status: failure.status,
    retryAfterMs: parseRetryAfter(failure.headers),
    code: code ?? `http_${failure.status}`,
    providerRequestId: failure.headers.get("x-request-id") ?? undefined,
  });
}

/**
 * A ProviderError for a request that got no answer: the deadline or the caller's signal fired
 * (timeout), or the connection failed. A failed connection is also "timeout": whether the
 * provider received the request is unknown, which is exactly what the router must resolve.
 */
export function errorFromThrown(provider: string, err: unknown, timeoutMs: number): ProviderError {
  if (err instanceof ProviderError) return err;
  const name = (err as { name?: string } | null)?.name;
  if (name === "TimeoutError") return new ProviderError("timeout", `${provider}: no answer within ${timeoutMs} ms`, { code: "timeout" });
  if (name === "AbortError") return new ProviderError("timeout", `${provider}: request aborted by the caller`, { code: "aborted" });
  if (err instanceof TypeError) {
    return new ProviderError("timeout", `${provider}: connection failed (${err.message}); the request may or may not have arrived`, {
      code: "network_error",
    });
  }
  return new ProviderError("server", `${provider}: ${(err as Error)?.message ?? String(err)}`, { code: "unexpected" });
}

/** A JSON answer from a provider, or a ProviderError. Every call has its own deadline; none is retried. */
export async function fetchJson<T>(
  conn: ProviderConnection,
  provider: string,
  url: string,
  init: { method: string; headers: Record<string, string>; body?: unknown },
  signal: AbortSignal | undefined,
  reading: ErrorReading,
): Promise<{ status: number; headers: Headers; body: T | undefined }> {
  const doFetch = conn.fetch ?? globalThis.fetch;
  const headers = { ...init.headers };
  if (init.body !== undefined) headers["content-type"] = "application/json";
  try {
    const res = await doFetch(url, {
      method: init.method,
      headers,
      body: init.body === undefined ? undefined : JSON.stringify(init.body),
      signal: deadline(conn.timeoutMs, signal),
    });
    const text = await res.text();
    if (!res.ok) throw errorFromResponse(provider, { status: res.status, headers: res.headers, text }, reading);
    if (text.trim() === "") return { status: res.status, headers: res.headers, body: undefined };
    try {
      return { status: res.status, headers: res.headers, body: JSON.parse(text) as T };
    } catch {
      throw new ProviderError("server", `${provider}: answered ${res.status} with a body that is not JSON`, {
        status: res.status,
        code: "malformed_response",
      });
    }
  } catch (err) {
    throw errorFromThrown(provider, err, conn.timeoutMs);
  }
}

/** Runs a DELETE of a task; not_found means it is gone already (deleted, canceled or expired): erasure is done. */
export async function eraseTask(del: () => Promise<unknown>): Promise<void> {
  try {
    await del();
  } catch (err) {
    if (err instanceof ProviderError && err.errorClass === "not_found") return;
    throw err;
  }
}

const MIME_BY_EXT: Record<string, string> = {
  png: "image/png",
  jpg: "image/jpeg",
  jpeg: "image/jpeg",
  webp: "image/webp",
  gif: "image/gif",
  mp4: "video/mp4",
  mov: "video/quicktime",
  webm: "video/webm",
  wav: "audio/wav",
  mp3: "audio/mpeg",
  ogg: "audio/ogg",
  flac: "audio/flac",
  txt: "text/plain",
  json: "application/json",
};

/** The MIME type a file URL's extension implies (provider URLs carry no content type until fetched). */
export function mimeFromUrl(url: string, fallback = "application/octet-stream"): string {
  let path = url;
  try {
    path = new URL(url).pathname;
  } catch {
    // not absolute: use as is
  }
  const ext = /\.([a-z0-9]+)$/i.exec(path)?.[1]?.toLowerCase();
  return (ext && MIME_BY_EXT[ext]) || fallback;
}

/** A finite non-negative number, or undefined. */
export function seconds(value: unknown): number | undefined {
  return typeof value === "number" && Number.isFinite(value) && value >= 0 ? value : undefined;
}
