// What the fakes of asynchronous providers (Replicate, Runway, D-ID) share on top of
// fake-server.ts: the scripted HTTP failure modes, the plan a task follows from creation to its
// terminal state, timers that never keep the process alive, webhook delivery with redelivery,
// and generated media files served by the fake itself. Local development and tests only.
//
// A task advances one stage at a time, on one of two clocks (step option `clock`):
//   "poll": each read of the task (GET) advances it, then answers — the N-th poll of
//           `pollsUntilDone: N` (alias `steps`) sees the terminal state
//   "time": it advances every `stepMs` (default 100 ms) on its own
// The default is "time" when the task has a webhook to call, else "poll".
import type http from "node:http";
import { encodePng, localMp4 } from "../../../functions/_shared/ai/providers/local-media.ts";
import { type FakeRequest, type FakeServerState, hang, sendJson, serverData, type Step } from "./fake-server.ts";

/** The failure modes every async fake answers the same way (its error body differs). */
export const HTTP_ERROR_MODES = ["rate_limit", "server_error", "overloaded", "timeout", "auth", "not_found", "bad_request"] as const;

/**
 * Answers a scripted HTTP failure; false when the step is not one (the route goes on).
 * Options: `retryAfter` seconds for rate_limit (default 2) and overloaded (none unless given),
 * `status` to override the status, `message`.
 */
export function answerHttpFailure(
  r: FakeRequest,
  step: Step,
  errorBody: (status: number, message: string, mode: string) => unknown,
  contentType = "application/json",
): boolean {
  const reply = (status: number, message: string, headers: Record<string, string> = {}) => {
    const s = typeof step.status === "number" ? step.status : status;
    sendJson(r.res, s, errorBody(s, typeof step.message === "string" ? step.message : message, step.mode), { "content-type": contentType, ...headers });
  };
  switch (step.mode) {
    case "rate_limit":
      reply(429, "Request was throttled.", { "retry-after": String(step.retryAfter ?? 2) });
      return true;
    case "server_error":
      reply(500, "Internal server error");
      return true;
    case "overloaded":
      reply(503, "Service is temporarily overloaded", step.retryAfter !== undefined ? { "retry-after": String(step.retryAfter) } : {});
      return true;
    case "auth":
      reply(401, "Invalid or missing API token");
      return true;
    case "not_found":
      reply(404, "Not found");
      return true;
    case "bad_request":
      reply(422, "Invalid input");
      return true;
    case "timeout":
      hang(r.res);
      return true;
    default:
      return false;
  }
}

/**
 * The task a request on one task (read, cancel, delete) is about, once the route's `guard` let it
 * in, `find` knew the task (each answers the request itself when not) and the step scripted for
 * "<task key>:task" was no HTTP failure; null when the request has been answered.
 */
export function scriptedTask<T extends { key: string }>(
  r: FakeRequest,
  guard: (r: FakeRequest) => boolean,
  find: (r: FakeRequest) => T | null,
  errorBody: (status: number, message: string, mode: string) => unknown,
  contentType?: string,
): T | null {
  if (!guard(r)) return null;
  const t = find(r);
  if (!t || answerHttpFailure(r, r.take(`${t.key}:task`), errorBody, contentType)) return null;
  return t;
}

/** The bearer/basic credential of a request, or null. */
export function credential(req: http.IncomingMessage, scheme: "Bearer" | "Basic"): string | null {
  const auth = req.headers.authorization ?? "";
  const m = new RegExp(`^${scheme}\\s+(\\S.*)$`, "i").exec(auth);
  return m ? m[1].trim() : null;
}

/** The progress values of the running stages a step asks for (one per intermediate poll). */
export function runningProgress(step: Step, defaultPolls = 3): number[] {
  if (Array.isArray(step.progress)) return step.progress.map((p) => Math.min(1, Math.max(0, Number(p) || 0)));
  const polls = Math.max(1, Math.floor(Number(step.pollsUntilDone ?? step.steps ?? defaultPolls)));
  return Array.from({ length: polls - 1 }, (_, i) => Math.round(((i + 1) / polls) * 100) / 100);
}

export type Clock = "poll" | "time";

export function clockOf(step: Step, hasWebhook: boolean): Clock {
  return step.clock === "poll" || step.clock === "time" ? step.clock : hasWebhook ? "time" : "poll";
}

/** Where a task is in its script: the stages it goes through, the next one, and its clock. */
export interface Lifecycle<S> {
  stages: S[];
  next: number;
  clock: Clock;
  stepMs: number;
}

/** A new task's lifecycle: `stages` (planned from its step) from the first, on the clock the step asks for. */
export function lifecycle<S>(step: Step, stages: S[], hasWebhook: boolean): Lifecycle<S> {
  return { stages, next: 0, clock: clockOf(step, hasWebhook), stepMs: Number(step.stepMs ?? 100) };
}

/** setTimeout that does not keep the process alive (a fake may close with work pending). */
export function later(ms: number, fn: () => void): void {
  const t = setTimeout(() => {
    try {
      fn();
    } catch {
      // a fake's background work never crashes the process
    }
  }, ms);
  (t as { unref?: () => void }).unref?.();
}

export const sleep = (ms: number) => new Promise<void>((resolve) => later(ms, resolve));

/** Letters and digits for ids. */
export function randomId(length: number, alphabet = "abcdefghijklmnopqrstuvwxyz0123456789"): string {
  const bytes = crypto.getRandomValues(new Uint8Array(length));
  let out = "";
  for (const b of bytes) out += alphabet[b % alphabet.length];
  return out;
}

// ---------------------------------------------------------------------------- webhooks

export interface WebhookDelivery {
  url: string;
  body: string;
  /** Headers for one attempt (a signed delivery signs each attempt with its own timestamp). */
  headers: () => Promise<Record<string, string>>;
}

/**
 * POSTs a delivery; a non-2xx answer or a failed connection is retried (same body, same id) up
 * to `retries` more times with doubling back-off from `backoffMs`. Resolves when it was accepted
 * or given up on; never throws.
 */
export async function deliver(d: WebhookDelivery, opts: { retries?: number; backoffMs?: number; timeoutMs?: number } = {}): Promise<boolean> {
  const retries = opts.retries ?? 3;
  for (let attempt = 0; attempt <= retries; attempt++) {
    if (attempt > 0) await sleep((opts.backoffMs ?? 200) * 2 ** (attempt - 1));
    try {
      const res = await fetch(d.url, { method: "POST", headers: await d.headers(), body: d.body, signal: AbortSignal.timeout(opts.timeoutMs ?? 5_000) });
      await res.arrayBuffer().catch(() => undefined);
      if (res.ok) return true;
    } catch {
      // connection refused, reset or timed out: try again
    }
  }
  return false;
}

/** Runs deliveries of one task in order (start before completed), each after the previous settled. */
export class DeliveryQueue {
  private tail: Promise<unknown> = Promise.resolve();
  push(job: () => Promise<unknown>): void {
    this.tail = this.tail.then(job).catch(() => undefined);
  }
}

/**
 * Queues the webhook delivery of a task's final state, as the step asks: webhook_twice sends it
 * again (the same delivery, as a redelivery after a lost acknowledgement would be), webhook_late
 * only webhookDelayMs (1000) after the end is visible to a poll.
 */
export function deliverFinal(queue: DeliveryQueue, step: Step, delivery: WebhookDelivery): void {
  const send = async () => {
    await deliver(delivery);
    if (step.mode === "webhook_twice") await deliver(delivery, { retries: 0 });
  };
  if (step.mode === "webhook_late") later(Number(step.webhookDelayMs ?? 1000), () => queue.push(send));
  else queue.push(send);
}

// ---------------------------------------------------------------------------- media

export interface FakeFile {
  bytes: Uint8Array;
  contentType: string;
}

/** A tiny valid file of the kind a URL's extension names (PNG or MP4; anything else is PNG). */
export function mediaFor(name: string, seed: number): FakeFile {
  if (/\.mp4$/i.test(name)) return { bytes: localMp4(), contentType: "video/mp4" };
  const hue = seed % 200;
  return { bytes: encodePng(8, 8, [40 + hue, 90, 160], [230, 200 - (hue % 100), 60]), contentType: "image/png" };
}

/** The per-provider store of generated files, served at `${prefix}/files/<name>`. */
export function fileStore(server: FakeServerState, provider: string): Map<string, FakeFile> {
  return serverData(server, `${provider}:files`, () => new Map<string, FakeFile>());
}

export function serveFile(r: FakeRequest, provider: string, name: string): void {
  const file = fileStore(r.server, provider).get(name);
  if (!file) return sendJson(r.res, 404, { error: "file not found" });
  r.res.writeHead(200, { "content-type": file.contentType, "content-length": file.bytes.length });
  r.res.end(Buffer.from(file.bytes));
}
