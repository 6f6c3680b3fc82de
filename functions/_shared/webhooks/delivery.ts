// Delivers webhook messages in batches: claim them (one statement; each gets a lease with its own
// id, so a crashed worker's message is delivered again with the same webhook-id, and a result
// that outlived its lease can never settle a newer attempt), POST the signed envelopes
// concurrently (bounded), then record every attempt and decide what comes next (done, retry per
// schedule.ts, or failed; 410 and 5 days of failure disable the endpoint) in one transaction.
// The three steps are separate transactions: no row lock is held over HTTP. One message is a
// batch of one (deliverMessage), which is what tests and the single-job path use.
import type { Limiter } from "../limiter.ts";
import { sql } from "kysely";
import type { Db, Tx } from "../db/client.ts";
import { asService } from "../db/client.ts";
import { envelope, type OutboxEvent } from "../events/catalog.ts";
import type { ScheduleDelivery } from "./consumer.ts";
import { type Clock, nextAttemptAt, parseRetryAfter, systemClock } from "./schedule.ts";
import { webhookHeaders } from "./signature.ts";
import { type PinnedResponse, pinnedPost } from "./pinned-post.ts";
import { resolveDeliverable, SsrfError, type TargetPolicy } from "./ssrf.ts";

export const DELIVERY_TIMEOUT_MS = 15_000;
/** How long an attempt owns its message; must stay below the job's expireInSeconds. */
export const LEASE_MS = DELIVERY_TIMEOUT_MS + 30_000;
const SNIPPET_CHARS = 500;
/** A job may start slightly before next_attempt_at (clock skew between workers and database). */
const EARLY_TOLERANCE_MS = 2_000;
/**
 * POSTs in flight at once within one batch, unless the caller says otherwise. A batch must
 * finish within its lease: with every POST of a batch in flight together, it takes one request
 * timeout plus a claim and a record, well inside LEASE_MS.
 */
export const DEFAULT_SEND_CONCURRENCY = 32;

export interface DeliveryDeps {
  db: Db;
  policy: TargetPolicy;
  schedule: ScheduleDelivery;
  clock?: Clock;
  fetch?: typeof fetch;
  timeoutMs?: number;
  /** For jitter; [0, 1). */
  random?: () => number;
}

export interface Claim {
  messageId: string;
  /** The lease this attempt holds; its result settles the message only while it still does. */
  leaseId: string;
  orgId: string;
  endpointId: string;
  url: string;
  attempt: number;
  secrets: string[];
  event: OutboxEvent;
}

export interface SendResult {
  statusCode?: number;
  latencyMs: number;
  snippet?: string;
  error?: string;
  retryAfter?: string | null;
}

export type DeliveryOutcome =
  | { status: "skipped"; reason: string }
  /** The lease moved on (a replay, recover or newer claim): the attempt is logged, nothing settled. */
  | { status: "superseded"; attempt: number; statusCode?: number; error?: string }
  | { status: "succeeded" | "retrying" | "failed" | "disabled"; attempt: number; statusCode?: number; error?: string; nextAttemptAt?: Date };

/** Why a message was not claimed; "busy" means another attempt or transaction holds it. */
export type ClaimRefusal = { skipped: string } | { busy: true };

/**
 * Claims and records commit without waiting for the WAL flush. A crash can lose the last few
 * of them, and each loss only means a message is delivered again with the same webhook-id
 * (at least once, as a worker dying mid-attempt already does); it never loses a message, which
 * was written durably by the dispatcher. Not used for anything that must not repeat.
 */
async function asyncCommit(tx: Tx) {
  await sql`set local synchronous_commit = off`.execute(tx);
}

type ClaimRow = {
  message_id: string;
  outcome: string;
  lease_id: string | null;
  org_id: string | null;
  endpoint_id: string | null;
  url: string | null;
  attempt: number | null;
  secrets: string[] | null;
  event: OutboxEvent | null;
};

const SKIP_REASONS: Record<string, string> = { missing: "message no longer exists" };

/** Step 1, batched: one claim per message id, or why not. One statement, one commit. */
export async function claimMessages(deps: DeliveryDeps, messageIds: string[]): Promise<Map<string, Claim | ClaimRefusal>> {
  const now = (deps.clock ?? systemClock).now();
  const out = new Map<string, Claim | ClaimRefusal>();
  if (messageIds.length === 0) return out;
  const rows = await asService(deps.db, async (tx) => {
    await asyncCommit(tx);
    return (await sql<ClaimRow>`
      select * from private.claim_webhook_messages(${messageIds}::uuid[], ${now}::timestamptz,
        make_interval(secs => ${LEASE_MS / 1000}), make_interval(secs => ${EARLY_TOLERANCE_MS / 1000}))`.execute(tx)).rows;
  });
  for (const r of rows) {
    if (r.outcome === "claimed") {
      out.set(r.message_id, {
        messageId: r.message_id,
        leaseId: r.lease_id!,
        orgId: r.org_id!,
        endpointId: r.endpoint_id!,
        url: r.url!,
        attempt: r.attempt!,
        secrets: r.secrets ?? [],
        event: r.event!,
      });
    } else if (r.outcome === "busy") {
      out.set(r.message_id, { busy: true });
    } else {
      out.set(r.message_id, { skipped: SKIP_REASONS[r.outcome] ?? r.outcome });
    }
  }
  return out;
}

/** Step 1 for one message: its claim, or why not. Throws while another attempt holds it. */
export async function claimMessage(deps: DeliveryDeps, messageId: string): Promise<Claim | { skipped: string }> {
  const claim = (await claimMessages(deps, [messageId])).get(messageId) ?? { skipped: "message no longer exists" };
  if ("busy" in claim) throw new Error("another attempt of this message is in flight");
  return claim;
}

/** Reads at most the first SNIPPET_CHARS characters of a response and drops the rest. */
async function snippetOf(res: Response): Promise<string> {
  if (!res.body) return "";
  const reader = res.body.getReader();
  const decoder = new TextDecoder();
  let text = "";
  try {
    while (text.length < SNIPPET_CHARS) {
      const { done, value } = await reader.read();
      if (done) break;
      text += decoder.decode(value, { stream: true });
    }
  } finally {
    await reader.cancel().catch(() => {});
  }
  return text.slice(0, SNIPPET_CHARS);
}

/** Step 2: the HTTP POST, to an address the SSRF check passed. Never throws: failures are results. */
export async function sendMessage(deps: DeliveryDeps, claim: Claim): Promise<SendResult> {
  const now = (deps.clock ?? systemClock).now();
  const started = performance.now();
  const latency = () => Math.round(performance.now() - started);
  const signal = AbortSignal.timeout(deps.timeoutMs ?? DELIVERY_TIMEOUT_MS);
  try {
    const body = JSON.stringify(envelope(claim.event));
    // The message id is the webhook-id: the same on every retry and replay, for deduplication.
    const headers = await webhookHeaders(claim.secrets, claim.messageId, now, body);
    const target = await Promise.race([
      resolveDeliverable(claim.url, deps.policy),
      new Promise<never>((_, reject) => signal.addEventListener("abort", () => reject(signal.reason))),
    ]);
    const res = deps.fetch
      ? await viaFetch(deps.fetch, claim.url, headers, body, signal)
      : await pinnedPost(target.url, target.addresses[0], { headers, body, signal, maxBody: SNIPPET_CHARS });
    const ok = res.status >= 200 && res.status < 300;
    return {
      statusCode: res.status,
      latencyMs: latency(),
      // Postgres text cannot hold NUL; a receiver answering with one must not make the attempt unrecordable.
      snippet: res.snippet.replace(/\u0000/g, ""),
      retryAfter: res.retryAfter,
      error: ok ? undefined : res.status >= 300 && res.status < 400 ? `redirect ${res.status} not followed` : `HTTP ${res.status}`,
    };
  } catch (err) {
    const e = err as Error;
    const error = err instanceof SsrfError
      ? e.message
      : e?.name === "TimeoutError" || e?.name === "AbortError"
      ? `timed out after ${deps.timeoutMs ?? DELIVERY_TIMEOUT_MS} ms`
      : `request failed: ${e?.message ?? String(err)}`.replace(/\u0000/g, "");
    return { latencyMs: latency(), error };
  }
}

/** An injected fetch (tests that simulate network faults) answers in the same shape. */
async function viaFetch(
  fetchFn: typeof fetch,
  url: string,
  headers: Record<string, string>,
  body: string,
  signal: AbortSignal,
): Promise<PinnedResponse> {
  const res = await fetchFn(url, { method: "POST", headers, body, redirect: "manual", signal });
  return { status: res.status, retryAfter: res.headers.get("retry-after"), snippet: await snippetOf(res).catch(() => "") };
}

type RecordRow = { message_id: string; outcome: string; next_attempt_at: Date | null };

/** Deadlocks (a disable and another batch of the same endpoint) and a message deleted mid-record: retried. */
const RETRYABLE = new Set(["40P01", "40001", "23503"]);

/**
 * Step 3, batched: record every attempt and settle each message still held under its lease, in
 * one transaction; retries are queued in it too. Outcomes come back in the order of `results`.
 */
export async function recordResults(deps: DeliveryDeps, results: { claim: Claim; result: SendResult }[]): Promise<DeliveryOutcome[]> {
  if (results.length === 0) return [];
  const now = (deps.clock ?? systemClock).now();
  const items = results.map(({ claim, result }) => ({
    message_id: claim.messageId,
    lease_id: claim.leaseId,
    org_id: claim.orgId,
    endpoint_id: claim.endpointId,
    attempt: claim.attempt,
    status_code: result.statusCode ?? null,
    latency_ms: result.latencyMs,
    snippet: result.snippet ?? null,
    error: result.error ?? null,
    // When to go again if this attempt failed (the database decides whether it did, and whether
    // the endpoint is disabled instead); null once retries are exhausted.
    retry_at: result.error
      ? nextAttemptAt(claim.attempt, now, { retryAfterMs: parseRetryAfter(result.retryAfter, now), random: deps.random })?.toISOString() ?? null
      : null,
  }));
  for (let tries = 1;; tries++) {
    try {
      const rows = await asService(deps.db, async (tx) => {
        await asyncCommit(tx);
        const { rows } = await sql<RecordRow>`
          select * from private.record_webhook_attempts(${now}::timestamptz, ${JSON.stringify(items)}::jsonb)`.execute(tx);
        for (const r of rows) {
          if (r.outcome === "retrying" && r.next_attempt_at) await deps.schedule(tx, r.message_id, new Date(r.next_attempt_at));
        }
        return rows;
      });
      const byId = new Map(rows.map((r) => [r.message_id, r]));
      return results.map(({ claim, result }) => {
        const r = byId.get(claim.messageId);
        const base = { attempt: claim.attempt, statusCode: result.statusCode, error: result.error };
        // No row: the message (or its endpoint) was deleted meanwhile.
        if (!r) return { status: "skipped" as const, reason: "message no longer exists" };
        if (r.outcome === "retrying") return { status: "retrying" as const, ...base, nextAttemptAt: new Date(r.next_attempt_at!) };
        return { status: r.outcome as "succeeded" | "failed" | "disabled" | "superseded", ...base };
      });
    } catch (err) {
      if (tries >= 3 || !RETRYABLE.has((err as { code?: string }).code ?? "")) throw err;
    }
  }
}

/** Step 3 for one attempt. */
export async function recordResult(deps: DeliveryDeps, claim: Claim, result: SendResult): Promise<DeliveryOutcome> {
  return (await recordResults(deps, [{ claim, result }]))[0];
}

/** Runs `fn` over `items` with at most `limit` in flight; results keep the items' order. */
async function mapBounded<T, R>(items: T[], limit: number, fn: (item: T) => Promise<R>): Promise<R[]> {
  const out = new Array<R>(items.length);
  let next = 0;
  await Promise.all(Array.from({ length: Math.max(1, Math.min(limit, items.length)) }, async () => {
    while (next < items.length) {
      const i = next++;
      out[i] = await fn(items[i]);
    }
  }));
  return out;
}

/**
 * One attempt of each message: claimed in one statement, POSTed concurrently (at most
 * `concurrency` at once), recorded in one transaction. A message another attempt holds comes
 * back as "busy" (its job should be retried later), never as an error for the whole batch.
 */
export async function deliverMessages(
  deps: DeliveryDeps,
  messageIds: string[],
  opts: { concurrency?: number; limit?: Limiter } = {},
): Promise<Map<string, DeliveryOutcome | { status: "busy" }>> {
  const claims = await claimMessages(deps, [...new Set(messageIds)]);
  const out = new Map<string, DeliveryOutcome | { status: "busy" }>();
  const taken: Claim[] = [];
  for (const [id, c] of claims) {
    if ("busy" in c) out.set(id, { status: "busy" });
    else if ("skipped" in c) out.set(id, { status: "skipped", reason: c.skipped });
    else taken.push(c);
  }
  const send = (claim: Claim) => sendMessage(deps, claim);
  const sent = await mapBounded(taken, opts.concurrency ?? DEFAULT_SEND_CONCURRENCY, async (claim) => ({
    claim,
    result: await (opts.limit ? opts.limit(() => send(claim)) : send(claim)),
  }));
  const outcomes = await recordResults(deps, sent);
  sent.forEach(({ claim }, i) => out.set(claim.messageId, outcomes[i]));
  return out;
}

/** One attempt of one message: what a single webhook.deliver job runs. */
export async function deliverMessage(deps: DeliveryDeps, messageId: string): Promise<DeliveryOutcome> {
  const claim = await claimMessage(deps, messageId);
  if ("skipped" in claim) return { status: "skipped", reason: claim.skipped };
  return await recordResult(deps, claim, await sendMessage(deps, claim));
}
