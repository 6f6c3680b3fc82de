// Delivers one webhook message: claim it (a lease, so a crashed worker's message is delivered
// again with the same webhook-id), POST the signed envelope, record the attempt and decide
// what comes next (done, retry per schedule.ts, or failed; 410 and 5 days of failure disable
// the endpoint). The three steps are separate transactions: no row lock is held over HTTP.
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
const FAILING_DISABLE_MS = 5 * 24 * 3600 * 1000;
const SNIPPET_CHARS = 500;
/** A job may start slightly before next_attempt_at (clock skew between workers and database). */
const EARLY_TOLERANCE_MS = 2_000;

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
  | { status: "succeeded" | "retrying" | "failed" | "disabled"; attempt: number; statusCode?: number; error?: string; nextAttemptAt?: Date };

type MessageRow = {
  id: string;
  org_id: string;
  endpoint_id: string;
  status: string;
  attempt_count: number;
  next_attempt_at: Date;
  locked_until: Date | null;
  url: string;
  endpoint_status: string;
  event: OutboxEvent;
};

/** Step 1: take the message for one attempt, or say why not. Throws while another attempt holds it. */
export async function claimMessage(deps: DeliveryDeps, messageId: string): Promise<Claim | { skipped: string }> {
  const now = (deps.clock ?? systemClock).now();
  return await asService(deps.db, async (tx) => {
    const { rows } = await sql<MessageRow>`
      select m.id, m.org_id, m.endpoint_id, m.status, m.attempt_count, m.next_attempt_at, m.locked_until,
             e.url, e.status as endpoint_status,
             jsonb_build_object('id', ev.id, 'seq', ev.seq, 'org_id', ev.org_id, 'type', ev.type,
               'schema_version', ev.schema_version, 'subject_kind', ev.subject_kind, 'subject_id', ev.subject_id,
               'actor_user_id', ev.actor_user_id, 'actor_api_key_id', ev.actor_api_key_id, 'payload', ev.payload,
               'occurred_at', ev.occurred_at) as event
      from notify.webhook_messages m
      join notify.webhook_endpoints e on e.id = m.endpoint_id
      join notify.events ev on ev.id = m.event_id
      where m.id = ${messageId}::uuid
      for update of m`.execute(tx);
    const m = rows[0];
    if (!m) return { skipped: "message no longer exists" };
    if (m.status === "succeeded" || m.status === "failed") return { skipped: `message already ${m.status}` };
    if (m.endpoint_status !== "active") {
      await sql`update notify.webhook_messages set status = 'failed', locked_until = null, last_error = 'endpoint disabled'
                where id = ${m.id}::uuid`.execute(tx);
      return { skipped: "endpoint disabled" };
    }
    if (m.status === "pending" && new Date(m.next_attempt_at).getTime() > now.getTime() + EARLY_TOLERANCE_MS) {
      // A stale or duplicate job: the job scheduled for next_attempt_at will come.
      return { skipped: "not due yet" };
    }
    if (m.status === "delivering") {
      if (m.locked_until && new Date(m.locked_until) > now) throw new Error("another attempt of this message is in flight");
      // The previous attempt's worker died before recording a result: say so, then go again.
      await sql`insert into notify.webhook_attempts (org_id, message_id, endpoint_id, attempt, attempted_at, error)
                values (${m.org_id}::uuid, ${m.id}::uuid, ${m.endpoint_id}::uuid, ${Math.max(1, m.attempt_count)},
                        ${now}, 'no result recorded: the worker stopped during this attempt')`.execute(tx);
    }
    const attempt = m.attempt_count + 1;
    await sql`update notify.webhook_messages
              set status = 'delivering', attempt_count = ${attempt}, last_attempt_at = ${now},
                  locked_until = ${new Date(now.getTime() + LEASE_MS)}
              where id = ${m.id}::uuid`.execute(tx);
    const { rows: secrets } = await sql<{ secret: string }>`
      select secret from notify.webhook_secrets
      where endpoint_id = ${m.endpoint_id}::uuid and (expires_at is null or expires_at > ${now})
      order by created_at desc`.execute(tx);
    return {
      messageId: m.id,
      orgId: m.org_id,
      endpointId: m.endpoint_id,
      url: m.url,
      attempt,
      secrets: secrets.map((s) => s.secret),
      event: m.event,
    };
  });
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

async function disable(tx: Tx, endpointId: string, reason: string) {
  await sql`select private.disable_webhook_endpoint(${endpointId}::uuid, ${reason})`.execute(tx);
}

/** Step 3: record the attempt and settle the message. */
export async function recordResult(deps: DeliveryDeps, claim: Claim, result: SendResult): Promise<DeliveryOutcome> {
  const now = (deps.clock ?? systemClock).now();
  return await asService(deps.db, async (tx) => {
    // Endpoint before message, the order disable_webhook_endpoint locks them in: a 410 here and a
    // success for the same endpoint elsewhere then queue instead of deadlocking.
    await sql`select 1 from notify.webhook_endpoints where id = ${claim.endpointId}::uuid for update`.execute(tx);
    await sql`insert into notify.webhook_attempts (org_id, message_id, endpoint_id, attempt, attempted_at, status_code,
                                                    latency_ms, response_snippet, error)
              values (${claim.orgId}::uuid, ${claim.messageId}::uuid, ${claim.endpointId}::uuid, ${claim.attempt}, ${now},
                      ${result.statusCode ?? null}, ${result.latencyMs}, ${result.snippet ?? null}, ${result.error ?? null})`
      .execute(tx);
    // Settle only our own claim: a replay or a disable in the meantime has the last word.
    const settle = async (status: string, extra: { next?: Date; delivered?: boolean } = {}) => {
      const { numAffectedRows } = await sql`
        update notify.webhook_messages
        set status = ${status}, locked_until = null, last_status_code = ${result.statusCode ?? null},
            last_error = ${result.error ?? null},
            next_attempt_at = coalesce(${extra.next ?? null}::timestamptz, next_attempt_at),
            delivered_at = case when ${extra.delivered ?? false} then ${now}::timestamptz else delivered_at end
        where id = ${claim.messageId}::uuid and status = 'delivering' and attempt_count = ${claim.attempt}`.execute(tx);
      return Number(numAffectedRows ?? 0) > 0;
    };
    const base = { attempt: claim.attempt, statusCode: result.statusCode, error: result.error };

    if (!result.error) {
      await settle("succeeded", { delivered: true });
      await sql`update notify.webhook_endpoints set failing_since = null
                where id = ${claim.endpointId}::uuid and failing_since is not null`.execute(tx);
      return { status: "succeeded", ...base };
    }
    if (result.statusCode === 410) {
      await settle("failed");
      await disable(tx, claim.endpointId, "the endpoint answered 410 Gone");
      return { status: "disabled", ...base };
    }
    // Written once per failing streak, not on every failure (a busy endpoint's row stays cool).
    await sql`update notify.webhook_endpoints set failing_since = ${now}
              where id = ${claim.endpointId}::uuid and failing_since is null`.execute(tx);
    const { rows } = await sql<{ failing_since: Date }>`
      select failing_since from notify.webhook_endpoints where id = ${claim.endpointId}::uuid`.execute(tx);
    const failingSince = rows[0] ? new Date(rows[0].failing_since) : now;
    if (now.getTime() - failingSince.getTime() >= FAILING_DISABLE_MS) {
      await settle("failed");
      await disable(tx, claim.endpointId, `every delivery failed for 5 days (since ${failingSince.toISOString()})`);
      return { status: "disabled", ...base };
    }
    const next = nextAttemptAt(claim.attempt, now, { retryAfterMs: parseRetryAfter(result.retryAfter, now), random: deps.random });
    if (!next) {
      await settle("failed");
      return { status: "failed", ...base };
    }
    if (await settle("pending", { next })) await deps.schedule(tx, claim.messageId, next);
    return { status: "retrying", ...base, nextAttemptAt: next };
  });
}

/** One attempt of one message: what the webhook.deliver job runs. */
export async function deliverMessage(deps: DeliveryDeps, messageId: string): Promise<DeliveryOutcome> {
  const claim = await claimMessage(deps, messageId);
  if ("skipped" in claim) return { status: "skipped", reason: claim.skipped };
  return await recordResult(deps, claim, await sendMessage(deps, claim));
}
