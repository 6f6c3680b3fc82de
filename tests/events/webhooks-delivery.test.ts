// Outbound webhooks end to end on the real stack: a real event goes through the outbox, the
// worker's webhooks consumer and the webhook.deliver job to a local sink, signed so that the
// independent standardwebhooks package verifies it. Also rotation, replay, recover, test sends
// and the attempt log through the api function over HTTP. Every test makes its own org, sinks
// and endpoints; "nothing else was sent" is checked after the consumer's receipt for the event
// (every message it will ever make exists by then) and the delivery that did happen.
import { randomUUID } from "node:crypto";
import { Webhook } from "standardwebhooks";
import { afterAll, describe, expect, it, vi } from "vitest";
import { userToken } from "../../scripts/lib/keys.ts";
import { Producer } from "../../functions/_shared/jobs/queue.ts";
import type { ScheduleDelivery } from "../../functions/_shared/webhooks/consumer.ts";
import { deliveryScheduler } from "../../functions/_shared/webhooks/queue.ts";
import { sweepOverdue } from "../../functions/_shared/webhooks/sweep.ts";
import { addMember, admin, createTeam, createUser, rpc, stack, type Team } from "../helpers/db.ts";
import { call, expectError } from "../helpers/http.ts";
import { startSink, type SunkRequest, type WebhookSink } from "../helpers/webhook-sink.ts";
import { waitFor, waitForReceipt } from "../helpers/wait.ts";
import { createEndpoint, createMessage, db, messageRow } from "../helpers/webhooks.ts";

// A test may wait for several deliveries, each with a generous budget.
vi.setConfig({ testTimeout: 240_000 });

const producer = new Producer(stack.dbUrl);
const sinks: WebhookSink[] = [];
const orgIds: string[] = [];
afterAll(async () => {
  await admin.query("delete from notify.webhook_endpoints where org_id = any ($1)", [orgIds]);
  await Promise.all([...sinks.map((s) => s.close()), producer.stop()]);
});

interface Hooks {
  team: Team;
  sinkA: WebhookSink; // api_key.created only
  sinkB: WebhookSink; // member.joined only
  a: { endpoint_id: string; secret: string };
  b: { endpoint_id: string; secret: string };
  ownerToken: string;
}

/** A team with two endpoints on their own sinks: A names api_key.created (sensitive, so the owner makes it), B member.joined. */
async function setup(): Promise<Hooks> {
  const team = await createTeam("Hooks");
  orgIds.push(team.orgId);
  const [sinkA, sinkB] = await Promise.all([startSink("/a"), startSink("/b")]);
  sinks.push(sinkA, sinkB);
  const a = await createEndpoint(team.owner, team.orgId, sinkA.url, ["api_key.created"]);
  const b = await createEndpoint(team.owner, team.orgId, sinkB.url, ["member.joined"]);
  return { team, sinkA, sinkB, a, b, ownerToken: await userToken(stack.jwtSecret, team.owner) };
}

const envelopeOf = (r: SunkRequest) => JSON.parse(r.body);
const createKey = (h: Hooks) =>
  rpc<{ api_key_id: string }>(h.team.owner, "create_api_key", { p_org_id: h.team.orgId, p_name: `k-${randomUUID().slice(0, 6)}`, p_scopes: ["content.read"] });

async function eventOf(orgId: string, type: string, subjectId: string): Promise<string> {
  const { rows } = await admin.query("select id from notify.events where org_id = $1 and type = $2 and subject_id = $3", [orgId, type, subjectId]);
  expect(rows, `one ${type} event for ${subjectId}`).toHaveLength(1);
  return rows[0].id;
}

/** Every message made for an event, by endpoint. */
async function messagesOf(eventId: string) {
  const { rows } = await admin.query("select id, endpoint_id, status from notify.webhook_messages where event_id = $1 order by endpoint_id", [eventId]);
  return rows as { id: string; endpoint_id: string; status: string }[];
}

async function attemptsOf(messageId: string) {
  const { rows } = await admin.query(
    "select endpoint_id, attempt, status_code, response_snippet, error from notify.webhook_attempts where message_id = $1 order by attempted_at", [messageId]);
  return rows;
}

async function waitForStatus(messageId: string, status: string) {
  await waitFor(`message ${messageId} to be ${status}`, async () => (await messageRow(messageId))?.status === status);
}

/** The request with this webhook-id that the sink got, once it has got it. */
async function requestWithId(sink: WebhookSink, messageId: string, nth = 1): Promise<SunkRequest> {
  return await waitFor(`request ${nth} with webhook-id ${messageId}`, async () =>
    sink.requests.filter((r) => r.headers["webhook-id"] === messageId)[nth - 1]);
}

/** Creates an API key and waits for its event to reach A: the event, its one message and the request. */
async function deliveredKey(h: Hooks) {
  const [key] = await createKey(h);
  const eventId = await eventOf(h.team.orgId, "api_key.created", key.api_key_id);
  await waitForReceipt(eventId, "webhooks");
  const messages = await messagesOf(eventId);
  expect(messages.map((m) => m.endpoint_id), "only A names api_key.created").toEqual([h.a.endpoint_id]);
  const messageId = messages[0].id;
  await waitForStatus(messageId, "succeeded");
  return { key, eventId, messageId, req: await requestWithId(h.sinkA, messageId) };
}

describe("delivery", () => {
  it("a real event reaches the sink, signed so standardwebhooks verifies it, with webhook-id = the message id", async () => {
    const h = await setup();
    const { key, eventId, messageId, req } = await deliveredKey(h);
    const verified = new Webhook(h.a.secret).verify(req.body, req.headers) as Record<string, any>;
    expect(verified).toMatchObject({
      id: eventId,
      type: "api_key.created",
      org_id: h.team.orgId,
      subject: { kind: "api_key", id: key.api_key_id },
      actor: { kind: "user", id: h.team.owner.id },
      data: { api_key_id: key.api_key_id, scopes: ["content.read"] },
    });
    expect(req.headers["webhook-id"]).toBe(messageId);
    expect(req.headers["content-type"]).toBe("application/json");
    expect(Math.abs(Number(req.headers["webhook-timestamp"]) - Date.now() / 1000)).toBeLessThan(600);
    expect(await attemptsOf(messageId)).toEqual([{ endpoint_id: h.a.endpoint_id, attempt: 1, status_code: 200, response_snippet: "ok", error: null }]);
    expect(h.sinkA.requests).toHaveLength(1);
  });

  it("an endpoint's filter holds both ways: api_key.created goes to A only, member.joined to B only", async () => {
    const h = await setup();
    const { eventId: keyEvent } = await deliveredKey(h);
    const joiner = await createUser();
    await addMember(h.team.orgId, joiner, "member");
    const joinEvent = await eventOf(h.team.orgId, "member.joined", joiner.id);
    await waitForReceipt(joinEvent, "webhooks");
    const [joinMessage, ...more] = await messagesOf(joinEvent);
    expect(more).toEqual([]);
    expect(joinMessage.endpoint_id).toBe(h.b.endpoint_id);
    await waitForStatus(joinMessage.id, "succeeded");
    await requestWithId(h.sinkB, joinMessage.id);

    // Both events are fanned out and their one delivery each is done: nothing else exists or was sent.
    expect((await messagesOf(keyEvent)).map((m) => m.endpoint_id)).toEqual([h.a.endpoint_id]);
    const { rows } = await admin.query(
      "select endpoint_id, count(*)::int as n from notify.webhook_messages where org_id = $1 group by 1", [h.team.orgId]);
    expect(Object.fromEntries(rows.map((r) => [r.endpoint_id, r.n]))).toEqual({ [h.a.endpoint_id]: 1, [h.b.endpoint_id]: 1 });
    expect(h.sinkA.requests.map((r) => envelopeOf(r).type)).toEqual(["api_key.created"]);
    expect(h.sinkB.requests.map((r) => envelopeOf(r).type)).toEqual(["member.joined"]);
  });

  it("POST /test sends webhook.test through the real path to that endpoint only, whatever its filter", async () => {
    const h = await setup();
    const res = await call(`/api/webhooks/endpoints/${h.b.endpoint_id}/test`, { method: "POST", token: h.ownerToken });
    expect(res.status, res.raw).toBe(202);
    const eventId = res.body.event_id as string;
    await waitForReceipt(eventId, "webhooks");
    // One message, on B: A (whose filter would not take webhook.test anyway) and any other endpoint get none.
    const messages = await messagesOf(eventId);
    expect(messages.map((m) => m.endpoint_id)).toEqual([h.b.endpoint_id]);
    await waitForStatus(messages[0].id, "succeeded");
    const req = await requestWithId(h.sinkB, messages[0].id);
    const body = new Webhook(h.b.secret).verify(req.body, req.headers) as Record<string, any>;
    expect(body).toMatchObject({ id: eventId, type: "webhook.test", data: { endpoint_id: h.b.endpoint_id } });
    expect(await attemptsOf(messages[0].id)).toEqual([{ endpoint_id: h.b.endpoint_id, attempt: 1, status_code: 200, response_snippet: "ok", error: null }]);
    const { rows } = await admin.query("select count(*)::int as n from notify.webhook_attempts where endpoint_id = $1", [h.a.endpoint_id]);
    expect(rows[0].n).toBe(0);
    expect(h.sinkA.requests).toHaveLength(0);
    expect(h.sinkB.requests).toHaveLength(1);
  });

  it("the test route refuses members (403), strangers (404) and bad ids (400)", async () => {
    const h = await setup();
    const events = async () => (await admin.query("select count(*)::int as n from notify.events where org_id = $1 and type = 'webhook.test'", [h.team.orgId])).rows[0].n;
    expectError(await call(`/api/webhooks/endpoints/${h.b.endpoint_id}/test`, { method: "POST", token: await userToken(stack.jwtSecret, h.team.member) }), 403, "forbidden");
    expectError(await call(`/api/webhooks/endpoints/${h.b.endpoint_id}/test`, { method: "POST", token: await userToken(stack.jwtSecret, await createUser()) }), 404, "not_found");
    expectError(await call(`/api/webhooks/endpoints/nope/test`, { method: "POST", token: h.ownerToken }), 400, "invalid_request");
    expectError(await call(`/api/webhooks/endpoints/${h.b.endpoint_id}/test`, { method: "POST" }), 401, "unauthorized");
    expect(await events()).toBe(0);
  });

  it("replay over HTTP re-delivers with the same webhook-id and body", async () => {
    const h = await setup();
    const { messageId, req: first } = await deliveredKey(h);
    const res = await call(`/api/webhooks/messages/${messageId}/replay`, { method: "POST", token: h.ownerToken });
    expect(res.status, res.raw).toBe(202);
    expect(res.body).toEqual({ message_id: messageId, status: "pending" });
    const again = await requestWithId(h.sinkA, messageId, 2);
    expect(again.body).toBe(first.body);
    expect(new Webhook(h.a.secret).verify(again.body, again.headers)).toBeTruthy();
    await waitForStatus(messageId, "succeeded");
    expect((await attemptsOf(messageId)).map((a) => [a.attempt, a.status_code])).toEqual([[1, 200], [1, 200]]);
  });

  it("replay refuses members (403), strangers and unknown ids (404), bad ids (400), and nothing changes", async () => {
    const h = await setup();
    const messageId = await createMessage(h.team.orgId, h.a.endpoint_id);
    await admin.query("update notify.webhook_messages set status = 'failed', attempt_count = 8 where id = $1", [messageId]);
    const before = await messageRow(messageId);
    expectError(await call(`/api/webhooks/messages/${messageId}/replay`, { method: "POST", token: await userToken(stack.jwtSecret, h.team.viewer) }), 403, "forbidden");
    expectError(await call(`/api/webhooks/messages/${randomUUID()}/replay`, { method: "POST", token: h.ownerToken }), 404, "not_found");
    expectError(await call(`/api/webhooks/messages/${messageId}/replay`, { method: "POST", token: await userToken(stack.jwtSecret, await createUser()) }), 404, "not_found");
    expectError(await call(`/api/webhooks/messages/123/replay`, { method: "POST", token: h.ownerToken }), 400, "invalid_request");
    expect(await messageRow(messageId)).toEqual(before);
  });

  it("replay refuses (400) while an attempt holds the message, and nothing changes", async () => {
    const h = await setup();
    const messageId = await createMessage(h.team.orgId, h.a.endpoint_id);
    await admin.query("update notify.webhook_messages set status = 'delivering', locked_until = now() + interval '1 minute' where id = $1", [messageId]);
    const before = await messageRow(messageId);
    const res = await call(`/api/webhooks/messages/${messageId}/replay`, { method: "POST", token: h.ownerToken });
    expectError(res, 400, "invalid_request");
    expect(res.body.error.message).toMatch(/in flight/);
    expect(await messageRow(messageId)).toEqual(before);
  });

  it("recover over HTTP re-queues the org's failed messages since a time", async () => {
    const h = await setup();
    const { messageId } = await deliveredKey(h);
    await admin.query("update notify.webhook_messages set status = 'failed' where id = $1", [messageId]);
    const since = new Date(Date.now() - 3600_000).toISOString();
    const res = await call(`/api/orgs/${h.team.orgId}/webhooks/recover`, { token: h.ownerToken, json: { since } });
    expect(res.status, res.raw).toBe(202);
    expect(res.body).toEqual({ count: 1 });
    await requestWithId(h.sinkA, messageId, 2);
    await waitForStatus(messageId, "succeeded");
    // Nothing failed any more: nothing to recover.
    expect((await call(`/api/orgs/${h.team.orgId}/webhooks/recover`, { token: h.ownerToken, json: { since } })).body).toEqual({ count: 0 });
  });

  it("recover refuses bad input (400) and members (403), and re-queues nothing", async () => {
    const h = await setup();
    const messageId = await createMessage(h.team.orgId, h.a.endpoint_id);
    await admin.query("update notify.webhook_messages set status = 'failed', attempt_count = 8 where id = $1", [messageId]);
    const url = `/api/orgs/${h.team.orgId}/webhooks/recover`;
    expectError(await call(url, { token: h.ownerToken, json: { since: "yesterday" } }), 400, "invalid_request");
    expectError(await call(url, { token: h.ownerToken, json: {} }), 400, "invalid_request");
    expectError(await call(url, { token: h.ownerToken, json: { since: new Date(Date.now() + 3600_000).toISOString() } }), 400, "invalid_request");
    expectError(await call(url, { token: await userToken(stack.jwtSecret, h.team.member), json: { since: new Date(Date.now() - 3600_000).toISOString() } }), 403, "forbidden");
    expect(await messageRow(messageId)).toMatchObject({ status: "failed", attempt_count: 8 });
  });

  it("replay and recover through the RPCs: the sweep queues them, the worker delivers", async () => {
    const h = await setup();
    const { messageId } = await deliveredKey(h);
    expect(await rpc(h.team.admin, "replay_webhook_message", { p_message_id: messageId })).toEqual([{ replay_webhook_message: messageId }]);
    expect(await messageRow(messageId)).toMatchObject({ status: "pending", attempt_count: 0 });
    // As if a minute had passed without a job (RPCs cannot queue pg-boss jobs themselves). The
    // sweep looks at every org; only this test's message is handed on to a real job.
    await admin.query("update notify.webhook_messages set next_attempt_at = now() - interval '2 minutes' where id = $1", [messageId]);
    const real = deliveryScheduler(producer);
    const swept: string[] = [];
    const ownOnly: ScheduleDelivery = async (tx, id, at) => {
      swept.push(id);
      if (id === messageId) await real(tx, id, at);
    };
    await sweepOverdue(db, ownOnly);
    expect(swept).toContain(messageId);
    await requestWithId(h.sinkA, messageId, 2);
    await waitForStatus(messageId, "succeeded");

    await admin.query("update notify.webhook_messages set status = 'failed' where id = $1", [messageId]);
    const ids = await rpc<{ recover_webhook_messages: string }>(h.team.owner, "recover_webhook_messages", {
      p_org_id: h.team.orgId, p_since: new Date(Date.now() - 3600_000).toISOString(),
    });
    expect(ids.map((r) => r.recover_webhook_messages)).toEqual([messageId]);
    expect((await messageRow(messageId)).status).toBe("pending");
  });

  it("GET /attempts lists attempts, newest first, with status code, latency and response snippet", async () => {
    const h = await setup();
    const { messageId } = await deliveredKey(h);
    h.sinkA.reply = () => ({ status: 200, body: "second" });
    expect((await call(`/api/webhooks/messages/${messageId}/replay`, { method: "POST", token: h.ownerToken })).status).toBe(202);
    await requestWithId(h.sinkA, messageId, 2);
    await waitForStatus(messageId, "succeeded");

    const res = await call(`/api/webhooks/endpoints/${h.a.endpoint_id}/attempts?limit=2`, { token: h.ownerToken });
    expect(res.status, res.raw).toBe(200);
    expect(res.body.attempts).toHaveLength(2);
    expect(res.body.attempts.map((a: Record<string, unknown>) => [a.status_code, a.response_snippet, a.error, a.event_type]))
      .toEqual([[200, "second", null, "api_key.created"], [200, "ok", null, "api_key.created"]]);
    for (const a of res.body.attempts) expect(a.latency_ms).toBeGreaterThanOrEqual(0);
    const one = await call(`/api/webhooks/endpoints/${h.a.endpoint_id}/attempts?limit=1`, { token: h.ownerToken });
    expect(one.body.attempts.map((a: Record<string, unknown>) => a.response_snippet)).toEqual(["second"]);
    expectError(await call(`/api/webhooks/endpoints/${h.a.endpoint_id}/attempts`, { token: await userToken(stack.jwtSecret, h.team.member) }), 404, "not_found");
    expectError(await call(`/api/webhooks/endpoints/${h.a.endpoint_id}/attempts?limit=0`, { token: h.ownerToken }), 400, "invalid_request");
    expectError(await call(`/api/webhooks/endpoints/${h.a.endpoint_id}/attempts?limit=abc`, { token: h.ownerToken }), 400, "invalid_request");
  });
});

describe("secret rotation", () => {
  it("during the overlap both secrets verify; after it, only the new one", async () => {
    const h = await setup();
    const [rotated] = await rpc<{ secret: string; previous_expires_at: string }>(h.team.owner, "rotate_webhook_secret", {
      p_endpoint_id: h.a.endpoint_id, p_overlap: "1 hour",
    });
    expect(rotated.secret).toMatch(/^whsec_[A-Za-z0-9+/]{43}=$/);
    expect(new Date(rotated.previous_expires_at).getTime() - Date.now()).toBeGreaterThan(3500_000);

    let { req } = await deliveredKey(h);
    expect(req.headers["webhook-signature"].split(" ")).toHaveLength(2);
    expect(new Webhook(h.a.secret).verify(req.body, req.headers)).toBeTruthy();
    expect(new Webhook(rotated.secret).verify(req.body, req.headers)).toBeTruthy();

    // The overlap runs out.
    await admin.query("update notify.webhook_secrets set expires_at = now() - interval '1 second' where endpoint_id = $1 and expires_at is not null", [h.a.endpoint_id]);
    ({ req } = await deliveredKey(h));
    expect(req.headers["webhook-signature"].split(" ")).toHaveLength(1);
    expect(new Webhook(rotated.secret).verify(req.body, req.headers)).toBeTruthy();
    expect(() => new Webhook(h.a.secret).verify(req.body, req.headers)).toThrow();
  });
});
