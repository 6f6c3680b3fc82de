// Wire helpers the synchronous AI fakes share: SSE framing, a scripted stream's text pieces and
// cutting its connection, delays, ids and token estimates. Local development and tests only.
import { randomBytes } from "node:crypto";
import type http from "node:http";
import type { Step } from "./fake-server.ts";

export const sleep = (ms: number) => new Promise<void>((resolve) => setTimeout(resolve, ms));

/** A provider-looking id: prefix + random base62-ish characters. */
export function fakeId(prefix: string, length = 24): string {
  const alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789";
  return prefix + [...randomBytes(length)].map((b) => alphabet[b % alphabet.length]).join("");
}

/** What a fake charges for a text when the script does not say: ceil(UTF-8 bytes / 4), at least 1. */
export function estimateTokens(text: string): number {
  return Math.max(1, Math.ceil(Buffer.byteLength(text, "utf8") / 4));
}

/** `n` pieces cut at word boundaries (fewer when the text has fewer words); joined they give the text back. */
export function splitText(text: string, n: number): string[] {
  const words = text.split(/(?<=\s)/).filter((w) => w.length > 0);
  if (words.length === 0) return [];
  const per = Math.ceil(words.length / Math.max(1, n));
  const out: string[] = [];
  for (let i = 0; i < words.length; i += per) out.push(words.slice(i, i + per).join(""));
  return out;
}

export function startSse(res: http.ServerResponse, headers: Record<string, string>): void {
  res.writeHead(200, { "content-type": "text/event-stream; charset=utf-8", "cache-control": "no-cache", connection: "keep-alive", ...headers });
  res.flushHeaders();
}

/** One SSE event: optional `event:` line, one `data:` line, blank line. */
export function writeSse(res: http.ServerResponse, data: unknown, event?: string): void {
  const payload = typeof data === "string" ? data : JSON.stringify(data);
  res.write(`${event ? `event: ${event}\n` : ""}data: ${payload}\n\n`);
}

/**
 * Ends a stream without its terminal event. Default: destroy the socket mid-response (what a
 * dropped connection looks like to the client) `cutDelayMs` (50) after the last chunk;
 * `cutMode: "end"` closes the response cleanly instead (a proxy that gave up).
 */
export async function cutStream(res: http.ServerResponse, step: Step): Promise<void> {
  if (step.cutMode === "end") return void res.end();
  // Let what was written reach the client first: a drop loses what is in flight, not what arrived.
  await sleep(num(step.cutDelayMs, 50));
  res.socket?.destroy();
}

/**
 * Writes a scripted stream's text, one `write` per piece: `chunks` pieces (default 3), or in
 * stream_cut / stream_error the first `chunks` (default 2) pieces of a longer answer, each after
 * `chunkDelayMs`; a complete stream waits that long once more before its last events. False
 * when the client went away (nothing more is to be written).
 */
export async function writePieces(res: http.ServerResponse, step: Step, text: string, write: (piece: string) => void): Promise<boolean> {
  const gap = num(step.chunkDelayMs, 0);
  const broken = step.mode === "stream_cut" || step.mode === "stream_error";
  const cutAfter = num(step.chunks, 2);
  const pieces = splitText(text, broken ? Math.max(cutAfter + 1, 3) : num(step.chunks, 3));
  for (const [i, piece] of pieces.entries()) {
    if (broken && i === cutAfter) break;
    if (gap) await sleep(gap);
    if (res.destroyed) return false;
    write(piece);
  }
  if (!broken && gap) await sleep(gap);
  return true;
}

/** Applied before any answer: `delayMs` (default 1000 in mode "slow"). */
export async function stepDelay(step: Step): Promise<void> {
  const ms = num(step.delayMs, step.mode === "slow" ? 1000 : 0);
  if (ms > 0) await sleep(ms);
}

/** The Retry-After headers a 429 step asks for: `retryAfter` (seconds or an HTTP date; null omits it), `retryAfterMs`. */
export function retryHeaders(step: Step, defaultSeconds: number | null): Record<string, string> {
  const out: Record<string, string> = {};
  const seconds = step.retryAfter === undefined ? defaultSeconds : step.retryAfter;
  if (seconds !== null && seconds !== undefined) out["retry-after"] = String(seconds);
  if (step.retryAfterMs !== undefined && step.retryAfterMs !== null) out["retry-after-ms"] = String(step.retryAfterMs);
  return out;
}

export function num(value: unknown, fallback: number): number {
  return typeof value === "number" && Number.isFinite(value) ? value : fallback;
}

/** Shallow-merges a scripted partial over a default, one level of nested objects deep. */
export function mergeUsage<T extends Record<string, unknown>>(base: T, override: unknown): T {
  if (!override || typeof override !== "object") return base;
  const out: Record<string, unknown> = { ...base };
  for (const [k, v] of Object.entries(override as Record<string, unknown>)) {
    out[k] = v && typeof v === "object" && !Array.isArray(v) && base[k] && typeof base[k] === "object" ? { ...(base[k] as object), ...v } : v;
  }
  return out as T;
}

/** The last user message's text, for default replies and token estimates. */
export function lastUserText(messages: unknown): string {
  if (!Array.isArray(messages)) return "";
  for (let i = messages.length - 1; i >= 0; i--) {
    const m = messages[i] as { role?: string; content?: unknown };
    if (m?.role === "user") return contentText(m.content);
  }
  return "";
}

export function contentText(content: unknown): string {
  if (typeof content === "string") return content;
  if (Array.isArray(content)) return content.map((p) => (typeof p?.text === "string" ? p.text : "")).join("");
  return "";
}
