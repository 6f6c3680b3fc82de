// HTTP helpers for tests that call the edge functions and read the mail sink.
import { expect, inject } from "vitest";
import type { SunkMessage } from "../../scripts/lib/mail-sink.ts";

const stack = inject("stack");

export interface JsonResponse<T = any> {
  status: number;
  headers: Headers;
  body: T;
  raw: string;
}

/** Calls `${functionsUrl}${path}` and parses the body as JSON when it is JSON. */
export async function call<T = any>(
  path: string,
  opts: { method?: string; token?: string; apiKey?: string; headers?: Record<string, string>; json?: unknown; body?: string } = {},
): Promise<JsonResponse<T>> {
  const headers: Record<string, string> = { ...opts.headers };
  if (opts.token) headers.authorization = `Bearer ${opts.token}`;
  if (opts.apiKey) headers["x-api-key"] = opts.apiKey;
  let body: string | undefined = opts.body;
  if (opts.json !== undefined) body = JSON.stringify(opts.json);
  if (body !== undefined && !Object.keys(headers).some((h) => h.toLowerCase() === "content-type")) {
    headers["content-type"] = "application/json";
  }
  const res = await fetch(`${stack.functionsUrl}${path}`, {
    method: opts.method ?? (body !== undefined ? "POST" : "GET"),
    headers,
    body,
  });
  const raw = await res.text();
  let parsed: unknown = undefined;
  try {
    parsed = raw ? JSON.parse(raw) : undefined;
  } catch {
    parsed = undefined;
  }
  return { status: res.status, headers: res.headers, body: parsed as T, raw };
}

/** Asserts the standard error shape `{ error: { code, message, details? } }` with this status and code. */
export function expectError(res: JsonResponse, status: number, code: string) {
  expect(res.status, `expected ${status} ${code}, got ${res.status}: ${res.raw}`).toBe(status);
  expect(res.headers.get("content-type") ?? "").toMatch(/application\/json/);
  expect(res.body?.error?.code, res.raw).toBe(code);
  expect(typeof res.body.error.message).toBe("string");
}

/** What the mail sink's /messages returns (JSON of the sink's own records). */
export type SinkMessage = SunkMessage;

export async function mailTo(email: string): Promise<SinkMessage[]> {
  const res = await fetch(`${stack.mailUrl}/messages?to=${encodeURIComponent(email)}`);
  expect(res.status).toBe(200);
  return (await res.json()) as SinkMessage[];
}

/** Polls the mail sink until at least `count` messages reached `email`, or the timeout passes. */
export async function waitForMail(email: string, opts: { count?: number; timeoutMs?: number } = {}): Promise<SinkMessage[]> {
  const count = opts.count ?? 1;
  const deadline = Date.now() + (opts.timeoutMs ?? 10_000);
  for (;;) {
    const messages = await mailTo(email);
    if (messages.length >= count || Date.now() > deadline) return messages;
    await sleep(200);
  }
}

export const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
