// Delivery in-process with a controllable clock: the retry schedule with jitter, Retry-After,
// 410 Gone, five days of failure, exhausted retries, SSRF refusals, and a worker that dies
// mid-delivery. Endpoints only accept webhook.test here, so the stack's own worker never
// delivers to them, and retries are recorded rather than queued; the test stack runs no sweep
// either. Still, every test has its own endpoint on its own sink, and counts only that sink's
// requests.
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { claimMessage, claimMessages, deliverMessage, deliverMessages, LEASE_MS, recordResult, sendMessage } from "../../functions/_shared/webhooks/delivery.ts";
import { RETRY_DELAYS_MS } from "../../functions/_shared/webhooks/schedule.ts";
import { admin, as, createTeam, expectSqlError, rpc, type Team } from "../helpers/db.ts";
import { waitForReceipt } from "../helpers/wait.ts";
import { createEndpoint, createMessage, DAY, endpointRow, HOUR, inProcess, messageRow } from "../helpers/webhooks.ts";
import { startSink, type WebhookSink } from "../helpers/webhook-sink.ts";

let team: Team;
const sinks: WebhookSink[] = [];

beforeAll(async () => {
  team = await createTeam("Retry");
  // Enough events in the org to give every test its own message.
  for (let i = 0; i < 20; i++) await admin.query("update public.orgs set name = $2 where id = $1", [team.orgId, `Retry ${i}`]);
});
afterAll(async () => {
  await admin.query("delete from notify.webhook_endpoints where org_id = $1", [team.orgId]);
  await Promise.all(sinks.map((s) => s.close()));
});

/** A new endpoint on a new sink of its own: what that sink receives is this test's only. */
async function freshEndpoint() {
  const sink = await startSink();
  sinks.push(sink);
  const ep = await createEndpoint(team.owner, team.orgId, sink.url, ["webhook.test"]);
  return { endpointId: ep.endpoint_id, sink };
}

describe("retry schedule", () => {
  it("a flaky receiver is retried after 5 s, 5 min, 30 min (±10%), then succeeds; the webhook-id never changes", async () => {
    const { endpointId, sink } = await freshEndpoint();
    const messageId = await createMessage(team.orgId, endpointId);
    const jitters = [0, 0.999, 0.25];
    let call = 0;
    const { deps, scheduled, clock } = inProcess({ random: () => jitters[call - 1] ?? 0.5 });
    sink.reply = (n) => (n <= 3 ? { status: 500, body: "boom ".repeat(200) } : { status: 204 });

    const t0 = clock.now().getTime();
    for (let i = 0; i < 3; i++) {
      call++;
      const before = clock.now().getTime();
      const out = await deliverMessage(deps, messageId);
      expect(out).toMatchObject({ status: "retrying", attempt: i + 1, statusCode: 500 });
      const delay = scheduled[i].at!.getTime() - before;
      expect(delay).toBeGreaterThanOrEqual(RETRY_DELAYS_MS[i] * 0.9);
      expect(delay).toBeLessThanOrEqual(RETRY_DELAYS_MS[i] * 1.1);
      expect(new Date((await messageRow(messageId)).next_attempt_at).getTime()).toBe(scheduled[i].at!.getTime());
      // Too early: a stale job does nothing.
      expect(await deliverMessage(deps, messageId)).toEqual({ status: "skipped", reason: "not due yet" });
      clock.set(scheduled[i].at!);
    }
    // Each delay is its base ±10% by the jitter drawn: 5 s × 0.9, 5 min × 1.0998, 30 min × 0.95.
    expect(scheduled.map((s) => s.messageId)).toEqual([messageId, messageId, messageId]);
    expect(scheduled.map((s, i) => s.at!.getTime() - (i === 0 ? t0 : scheduled[i - 1].at!.getTime()))).toEqual([4_500, 329_940, 1_710_000]);
    const done = await deliverMessage(deps, messageId);
    expect(done).toMatchObject({ status: "succeeded", attempt: 4, statusCode: 204 });

    expect(sink.requests).toHaveLength(4);
    expect(new Set(sink.requests.map((r) => r.headers["webhook-id"]))).toEqual(new Set([messageId]));
    const m = await messageRow(messageId);
    expect(m).toMatchObject({ status: "succeeded", attempt_count: 4, last_status_code: 204, last_error: null, locked_until: null });
    const { rows: attempts } = await admin.query(
      "select attempt, status_code, response_snippet, error, latency_ms from notify.webhook_attempts where message_id = $1 order by attempt", [messageId]);
    expect(attempts.map((a) => [a.attempt, a.status_code, a.error])).toEqual([[1, 500, "HTTP 500"], [2, 500, "HTTP 500"], [3, 500, "HTTP 500"], [4, 204, null]]);
    expect(attempts[0].response_snippet).toHaveLength(500);
    expect(attempts[0].latency_ms).toBeGreaterThanOrEqual(0);
    // Success ends the endpoint's failing streak.
    expect((await endpointRow(endpointId)).failing_since).toBeNull();
  });

  it("Retry-After (seconds or HTTP date) wins when it asks for longer", async () => {
    const { endpointId, sink } = await freshEndpoint();
    const messageId = await createMessage(team.orgId, endpointId);
    const { deps, scheduled, clock } = inProcess();
    sink.reply = (n) => n === 1
      ? { status: 429, headers: { "retry-after": "3600" } }
      : { status: 503, headers: { "retry-after": new Date(clock.now().getTime() + 2 * HOUR).toUTCString() } };
    const t0 = clock.now().getTime();
    await deliverMessage(deps, messageId);
    expect(scheduled[0].at!.getTime() - t0).toBe(3600_000);
    clock.set(scheduled[0].at!);
    await deliverMessage(deps, messageId);
    // HTTP dates have whole seconds.
    expect(Math.abs(scheduled[1].at!.getTime() - clock.now().getTime() - 2 * HOUR)).toBeLessThan(1000);
  });

  it("3xx is a failure and is not followed", async () => {
    const { endpointId, sink } = await freshEndpoint();
    const messageId = await createMessage(team.orgId, endpointId);
    const { deps } = inProcess();
    sink.reply = (n) => (n === 1 ? { status: 302, headers: { location: "/elsewhere" } } : { status: 200 });
    expect(await deliverMessage(deps, messageId)).toMatchObject({ status: "retrying", statusCode: 302, error: "redirect 302 not followed" });
    expect(sink.requests).toHaveLength(1);
  });

  it("a receiver that never answers times out as a failed attempt", async () => {
    const { endpointId, sink } = await freshEndpoint();
    const messageId = await createMessage(team.orgId, endpointId);
    const { deps } = inProcess({ timeoutMs: 300 });
    sink.reply = () => ({ status: 200, hang: true });
    expect(await deliverMessage(deps, messageId)).toMatchObject({ status: "retrying", error: "timed out after 300 ms" });
  });

  it("after 8 failed attempts the message is failed, and stays so", async () => {
    const { endpointId, sink } = await freshEndpoint();
    const messageId = await createMessage(team.orgId, endpointId);
    const { deps, scheduled, clock } = inProcess();
    sink.reply = () => ({ status: 500 });
    for (let i = 1; i <= 8; i++) {
      const out = await deliverMessage(deps, messageId);
      expect(out.status).toBe(i < 8 ? "retrying" : "failed");
      if (i < 8) clock.set(scheduled[i - 1].at!);
    }
    expect(scheduled).toHaveLength(7);
    expect(await messageRow(messageId)).toMatchObject({ status: "failed", attempt_count: 8, last_status_code: 500 });
    expect(await deliverMessage(deps, messageId)).toEqual({ status: "skipped", reason: "message already failed" });
    expect(sink.requests).toHaveLength(8);
    // Total span: about 5 s + 5 min + 30 min + 2 h + 5 h + 10 h + 10 h.
    expect(scheduled[6].at!.getTime() - scheduled[0].at!.getTime()).toBeGreaterThan(27 * HOUR);
  });
});

describe("disabling endpoints", () => {
  it("410 Gone disables the endpoint at once, fails its waiting messages and emits webhook.endpoint_disabled", async () => {
    const { endpointId, sink } = await freshEndpoint();
    const first = await createMessage(team.orgId, endpointId);
    const waiting = await createMessage(team.orgId, endpointId);
    const { deps, scheduled } = inProcess();
    sink.reply = () => ({ status: 410 });
    expect(await deliverMessage(deps, first)).toMatchObject({ status: "disabled", statusCode: 410 });
    expect(scheduled).toHaveLength(0);
    expect(await endpointRow(endpointId)).toMatchObject({ status: "disabled", disabled_reason: "the endpoint answered 410 Gone" });
    expect((await messageRow(first)).status).toBe("failed");
    expect(await messageRow(waiting)).toMatchObject({ status: "failed", last_error: "endpoint disabled: the endpoint answered 410 Gone" });
    expect(await deliverMessage(deps, waiting)).toMatchObject({ status: "skipped" });
    expect(sink.requests).toHaveLength(1);
    const { rows } = await admin.query(
      "select payload from notify.events where org_id = $1 and type = 'webhook.endpoint_disabled' and subject_id = $2", [team.orgId, endpointId]);
    expect(rows).toHaveLength(1);
    expect(rows[0].payload).toMatchObject({ endpoint_id: endpointId, reason: "the endpoint answered 410 Gone" });
  });

  it("an endpoint failing for 5 days is disabled at its next failure, and the org's admins (members.manage) get a notification", async () => {
    const { endpointId, sink } = await freshEndpoint();
    const messageId = await createMessage(team.orgId, endpointId);
    const { deps, clock } = inProcess();
    sink.reply = () => ({ status: 503 });
    // The streak starts at the first failure...
    expect((await deliverMessage(deps, messageId)).status).toBe("retrying");
    const since = new Date((await endpointRow(endpointId)).failing_since);
    expect(since.getTime()).toBe(clock.now().getTime());
    // ...and 4 days later the endpoint is still on.
    clock.set(new Date(since.getTime() + 4 * DAY));
    expect((await deliverMessage(deps, messageId)).status).toBe("retrying");
    clock.set(new Date(since.getTime() + 5 * DAY + 1000));
    expect((await deliverMessage(deps, messageId)).status).toBe("disabled");
    const ep = await endpointRow(endpointId);
    expect(ep.status).toBe("disabled");
    expect(ep.disabled_reason).toMatch(/failed for 5 days/);
    expect((await messageRow(messageId)).status).toBe("failed");
    const { rows } = await admin.query(
      "select id, payload from notify.events where type = 'webhook.endpoint_disabled' and subject_id = $1", [endpointId]);
    expect(rows).toHaveLength(1);
    expect(rows[0].payload).toMatchObject({ endpoint_id: endpointId, url: sink.url });
    expect(rows[0].payload.failing_since).toBeTruthy();

    // The stack's worker dispatches the event to the notifications consumer: once its receipt
    // exists, every notification it will write is there. Owner and admin hold members.manage;
    // the member and the viewer do not.
    const eventId = rows[0].id;
    await waitForReceipt(eventId, "notifications");
    const { rows: inbox } = await admin.query(
      "select user_id, org_id, type, title from notify.notifications where event_id = $1", [eventId]);
    expect(inbox.map((n) => n.user_id).sort()).toEqual([team.owner.id, team.admin.id].sort());
    for (const n of inbox) {
      expect(n).toMatchObject({ org_id: team.orgId, type: "webhook.endpoint_disabled" });
      expect(n.title).toMatch(/^A webhook endpoint was disabled in /);
    }
  });
});

describe("SSRF at delivery", () => {
  it("with loopback not allowed, a loopback endpoint is a failed attempt with a clear error and nothing is sent", async () => {
    const { endpointId, sink } = await freshEndpoint();
    const messageId = await createMessage(team.orgId, endpointId);
    const { deps } = inProcess({ policy: { allowLoopback: false } });
    const out = await deliverMessage(deps, messageId);
    expect(out).toMatchObject({ status: "retrying" });
    expect(out.status !== "skipped" && out.error).toMatch(/refused: 127\.0\.0\.1 resolves to a loopback address/);
    expect(sink.requests).toHaveLength(0);
    const { rows } = await admin.query("select status_code, error from notify.webhook_attempts where message_id = $1", [messageId]);
    expect(rows).toEqual([{ status_code: null, error: expect.stringMatching(/loopback address/) }]);
  });
});

describe("crash safety", () => {
  it("a worker that dies after the POST but before recording it leads to the same webhook-id again, then succeeded", async () => {
    const { endpointId, sink } = await freshEndpoint();
    const messageId = await createMessage(team.orgId, endpointId);
    const { deps, clock } = inProcess();
    sink.reply = () => ({ status: 200 });

    // The dying worker: it claims and sends, then never records.
    const claim = await claimMessage(deps, messageId);
    if ("skipped" in claim) throw new Error(claim.skipped);
    await sendMessage(deps, claim);
    expect(sink.requests).toHaveLength(1);
    expect((await messageRow(messageId)).status).toBe("delivering");

    // pg-boss brings the job back; while the lease runs, another attempt is refused (job retried)...
    clock.advance(10_000);
    await expect(deliverMessage(deps, messageId)).rejects.toThrow(/in flight/);
    // ...and once it has run out, the message goes again.
    clock.advance(LEASE_MS);
    expect(await deliverMessage(deps, messageId)).toMatchObject({ status: "succeeded", attempt: 2 });
    expect(sink.requests.map((r) => r.headers["webhook-id"])).toEqual([messageId, messageId]);
    expect(await messageRow(messageId)).toMatchObject({ status: "succeeded", locked_until: null });
    const { rows } = await admin.query("select attempt, error from notify.webhook_attempts where message_id = $1 order by attempted_at", [messageId]);
    expect(rows).toEqual([{ attempt: 1, error: expect.stringMatching(/worker stopped/) }, { attempt: 2, error: null }]);
  });
});

describe("leases", () => {
  it("a result from an attempt that outlived its lease is logged but settles nothing: the replay's attempt owns the message", async () => {
    const { endpointId, sink } = await freshEndpoint();
    const messageId = await createMessage(team.orgId, endpointId);
    sink.reply = () => ({ status: 500 });
    // The old attempt was claimed an hour ago (its lease ran out long since) and is still going.
    await admin.query("update notify.webhook_messages set next_attempt_at = now() - interval '2 hours' where id = $1", [messageId]);
    const { deps: oldDeps } = inProcess();
    (oldDeps.clock as ReturnType<typeof inProcess>["clock"]).set(new Date(Date.now() - HOUR));
    const old = await claimMessage(oldDeps, messageId);
    if ("skipped" in old) throw new Error(old.skipped);
    const oldResult = await sendMessage(oldDeps, old);

    // A manager replays the message; the replay's attempt takes it, as attempt 1 of a new cycle.
    await rpc(team.owner, "replay_webhook_message", { p_message_id: messageId });
    const { deps } = inProcess();
    const fresh = await claimMessage(deps, messageId);
    if ("skipped" in fresh) throw new Error(fresh.skipped);
    expect(fresh.attempt).toBe(old.attempt);
    expect(fresh.leaseId).not.toBe(old.leaseId);

    // The late result of the old attempt arrives: logged, but the message stays the replay's.
    expect(await recordResult(oldDeps, old, oldResult)).toMatchObject({ status: "superseded", statusCode: 500 });
    expect(await messageRow(messageId)).toMatchObject({ status: "delivering", lease_id: fresh.leaseId, attempt_count: 1, last_status_code: null });
    const { rows: logged } = await admin.query("select status_code from notify.webhook_attempts where message_id = $1", [messageId]);
    expect(logged).toEqual([{ status_code: 500 }]);

    // The replay's own result settles it.
    sink.reply = () => ({ status: 200 });
    expect(await recordResult(deps, fresh, await sendMessage(deps, fresh))).toMatchObject({ status: "succeeded", attempt: 1 });
    expect(await messageRow(messageId)).toMatchObject({ status: "succeeded", locked_until: null, last_status_code: 200 });
  });

  it("the claim and record functions are the worker's: a signed-in member cannot call them", async () => {
    await expectSqlError(
      as(team.owner, (c) => c.query("select * from private.claim_webhook_messages('{}'::uuid[], now(), interval '1 minute')")), "42501");
    await expectSqlError(as(team.owner, (c) => c.query("select * from private.record_webhook_attempts(now(), '[]')")), "42501");
  });
});

describe("batches", () => {
  it("one claim takes many messages, each with its own lease; they go out side by side and are recorded together", async () => {
    const { endpointId, sink } = await freshEndpoint();
    const ids: string[] = [];
    for (let i = 0; i < 5; i++) ids.push(await createMessage(team.orgId, endpointId));
    const { deps } = inProcess();
    sink.reply = () => ({ status: 204 });
    const claims = await claimMessages(deps, ids);
    const leases = ids.map((id) => {
      const c = claims.get(id);
      if (!c || !("leaseId" in c)) throw new Error(`not claimed: ${JSON.stringify(c)}`);
      return c.leaseId;
    });
    expect(new Set(leases).size).toBe(5);
    for (const [i, id] of ids.entries()) expect(await messageRow(id)).toMatchObject({ status: "delivering", lease_id: leases[i], attempt_count: 1 });
    // Claimed already: a second claim of the same messages (a duplicate job) takes none of them.
    const again = await claimMessages(deps, ids);
    expect([...again.values()]).toEqual(ids.map(() => ({ busy: true })));

    // Their leases run out (the worker died); the batch path delivers them, same webhook-ids.
    clockAdvance(deps, LEASE_MS + 1000);
    const out = await deliverMessages(deps, ids, { concurrency: 5 });
    expect(ids.map((id) => out.get(id)?.status)).toEqual(ids.map(() => "succeeded"));
    expect(sink.requests.map((r) => r.headers["webhook-id"]).sort()).toEqual([...ids].sort());
    for (const id of ids) expect(await messageRow(id)).toMatchObject({ status: "succeeded", attempt_count: 2, locked_until: null });
  });

  it("in a batch, a message another attempt holds is busy and the rest still go", async () => {
    const { endpointId, sink } = await freshEndpoint();
    const [held, free, gone] = [await createMessage(team.orgId, endpointId), await createMessage(team.orgId, endpointId), crypto.randomUUID()];
    const { deps } = inProcess();
    sink.reply = () => ({ status: 200 });
    await claimMessage(deps, held);
    const out = await deliverMessages(deps, [held, free, gone]);
    expect(out.get(held)).toEqual({ status: "busy" });
    expect(out.get(free)).toMatchObject({ status: "succeeded" });
    expect(out.get(gone)).toEqual({ status: "skipped", reason: "message no longer exists" });
    expect(sink.requests.map((r) => r.headers["webhook-id"])).toEqual([free]);
  });
});

function clockAdvance(deps: { clock?: unknown }, ms: number) {
  (deps.clock as ReturnType<typeof inProcess>["clock"]).advance(ms);
}
