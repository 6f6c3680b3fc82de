// Outbound webhooks end to end on the real stack: a real event goes through the outbox, the
// worker's webhooks consumer and the webhook.deliver job to a local sink, signed so that the
// independent standardwebhooks package verifies it. Also rotation, replay, recover, test sends
// and the attempt log through the api function over HTTP.
import { randomUUID } from "node:crypto";
import { Webhook } from "standardwebhooks";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { userToken } from "../../scripts/lib/keys.ts";
import { Producer } from "../../functions/_shared/jobs/queue.ts";
import { deliveryScheduler } from "../../functions/_shared/webhooks/queue.ts";
import { sweepOverdue } from "../../functions/_shared/webhooks/sweep.ts";
import { admin, createTeam, createUser, rpc, stack, type Team } from "../helpers/db.ts";
import { call, expectError, sleep } from "../helpers/http.ts";
import { startSink, type SunkRequest, type WebhookSink } from "../helpers/webhook-sink.ts";
import { createEndpoint, db, messageRow } from "../helpers/webhooks.ts";

let team: Team;
let sinkA: WebhookSink; // every event type
let sinkB: WebhookSink; // member.joined only
let a: { endpoint_id: string; secret: string };
let b: { endpoint_id: string; secret: string };
let ownerToken: string;
const producer = new Producer(stack.dbUrl);

beforeAll(async () => {
  team = await createTeam("Hooks");
  [sinkA, sinkB] = await Promise.all([startSink("/a"), startSink("/b")]);
  // api_key.created is sensitive, so A names it (the owner holds members.manage).
  a = await createEndpoint(team.owner, team.orgId, sinkA.url, ["api_key.created"]);
  b = await createEndpoint(team.owner, team.orgId, sinkB.url, ["member.joined"]);
  ownerToken = await userToken(stack.jwtSecret, team.owner);
});
afterAll(async () => {
  await admin.query("delete from notify.webhook_endpoints where org_id = $1", [team.orgId]);
  await Promise.all([sinkA.close(), sinkB.close(), producer.stop()]);
});

const envelopeOf = (r: SunkRequest) => JSON.parse(r.body);
const createKey = () => rpc<{ api_key_id: string }>(team.owner, "create_api_key", { p_org_id: team.orgId, p_name: `k-${randomUUID().slice(0, 6)}`, p_scopes: ["content.read"] });

async function messageFor(endpointId: string, eventId: string) {
  const { rows } = await admin.query("select * from notify.webhook_messages where endpoint_id = $1 and event_id = $2", [endpointId, eventId]);
  return rows[0];
}

async function waitForStatus(messageId: string, status: string) {
  const deadline = Date.now() + 15_000;
  while (Date.now() < deadline) {
    if ((await messageRow(messageId))?.status === status) return;
    await sleep(100);
  }
  throw new Error(`message ${messageId} never reached ${status}: ${JSON.stringify(await messageRow(messageId))}`);
}

describe("delivery", () => {
  let first: SunkRequest;

  it("a real event reaches the sink, signed so standardwebhooks verifies it, with webhook-id = the message id", async () => {
    const [key] = await createKey();
    const [req] = await sinkA.waitFor(1);
    expect(req, "the sink received nothing").toBeDefined();
    first = req;
    const verified = new Webhook(a.secret).verify(req.body, req.headers) as Record<string, any>;
    expect(verified).toMatchObject({
      type: "api_key.created",
      org_id: team.orgId,
      subject: { kind: "api_key", id: key.api_key_id },
      actor: { kind: "user", id: team.owner.id },
      data: { api_key_id: key.api_key_id, scopes: ["content.read"] },
    });
    const message = await messageFor(a.endpoint_id, verified.id);
    expect(req.headers["webhook-id"]).toBe(message.id);
    expect(req.headers["content-type"]).toBe("application/json");
    expect(Math.abs(Number(req.headers["webhook-timestamp"]) - Date.now() / 1000)).toBeLessThan(60);
    await waitForStatus(message.id, "succeeded");
  });

  it("an endpoint's filter holds: the member.joined endpoint got nothing", async () => {
    await sleep(300);
    expect(sinkB.requests).toHaveLength(0);
    const { rows } = await admin.query("select count(*)::int as n from notify.webhook_messages where endpoint_id = $1", [b.endpoint_id]);
    expect(rows[0].n).toBe(0);
  });

  it("POST /test sends webhook.test through the real path to that endpoint only, whatever its filter", async () => {
    const res = await call(`/api/webhooks/endpoints/${b.endpoint_id}/test`, { method: "POST", token: ownerToken });
    expect(res.status, res.raw).toBe(202);
    const [req] = await sinkB.waitFor(1);
    const body = new Webhook(b.secret).verify(req.body, req.headers) as Record<string, any>;
    expect(body).toMatchObject({ id: res.body.event_id, type: "webhook.test", data: { endpoint_id: b.endpoint_id } });
    await sleep(300);
    expect(sinkA.requests.map((r) => envelopeOf(r).type)).not.toContain("webhook.test");
  });

  it("the test route refuses members (403), strangers (404) and bad ids (400)", async () => {
    expectError(await call(`/api/webhooks/endpoints/${b.endpoint_id}/test`, { method: "POST", token: await userToken(stack.jwtSecret, team.member) }), 403, "forbidden");
    expectError(await call(`/api/webhooks/endpoints/${b.endpoint_id}/test`, { method: "POST", token: await userToken(stack.jwtSecret, await createUser()) }), 404, "not_found");
    expectError(await call(`/api/webhooks/endpoints/nope/test`, { method: "POST", token: ownerToken }), 400, "invalid_request");
    expectError(await call(`/api/webhooks/endpoints/${b.endpoint_id}/test`, { method: "POST" }), 401, "unauthorized");
  });

  it("replay over HTTP re-delivers with the same webhook-id", async () => {
    const messageId = first.headers["webhook-id"];
    const before = sinkA.requests.length;
    const res = await call(`/api/webhooks/messages/${messageId}/replay`, { method: "POST", token: ownerToken });
    expect(res.status, res.raw).toBe(202);
    expect(res.body).toEqual({ message_id: messageId, status: "pending" });
    const reqs = await sinkA.waitFor(before + 1);
    const again = reqs.slice(before).find((r) => r.headers["webhook-id"] === messageId);
    expect(again).toBeDefined();
    expect(again!.body).toBe(first.body);
    expect(new Webhook(a.secret).verify(again!.body, again!.headers)).toBeTruthy();
    await waitForStatus(messageId, "succeeded");
  });

  it("replay refuses members (403), strangers and unknown ids (404), bad ids (400)", async () => {
    const messageId = first.headers["webhook-id"];
    expectError(await call(`/api/webhooks/messages/${messageId}/replay`, { method: "POST", token: await userToken(stack.jwtSecret, team.viewer) }), 403, "forbidden");
    expectError(await call(`/api/webhooks/messages/${randomUUID()}/replay`, { method: "POST", token: ownerToken }), 404, "not_found");
    expectError(await call(`/api/webhooks/messages/${messageId}/replay`, { method: "POST", token: await userToken(stack.jwtSecret, await createUser()) }), 404, "not_found");
    expectError(await call(`/api/webhooks/messages/123/replay`, { method: "POST", token: ownerToken }), 400, "invalid_request");
  });

  it("replay refuses (400) while an attempt holds the message, and nothing changes", async () => {
    const messageId = first.headers["webhook-id"];
    await admin.query("update notify.webhook_messages set status = 'delivering', locked_until = now() + interval '1 minute' where id = $1", [messageId]);
    const res = await call(`/api/webhooks/messages/${messageId}/replay`, { method: "POST", token: ownerToken });
    expectError(res, 400, "invalid_request");
    expect(res.body.error.message).toMatch(/in flight/);
    const { rows } = await admin.query("select status from notify.webhook_messages where id = $1", [messageId]);
    expect(rows[0].status).toBe("delivering");
    await admin.query("update notify.webhook_messages set status = 'succeeded', locked_until = null where id = $1", [messageId]);
  });

  it("recover over HTTP re-queues the org's failed messages since a time", async () => {
    const messageId = first.headers["webhook-id"];
    await admin.query("update notify.webhook_messages set status = 'failed' where id = $1", [messageId]);
    const before = sinkA.requests.length;
    const since = new Date(Date.now() - 3600_000).toISOString();
    const res = await call(`/api/orgs/${team.orgId}/webhooks/recover`, { token: ownerToken, json: { since } });
    expect(res.status, res.raw).toBe(202);
    expect(res.body).toEqual({ count: 1 });
    const reqs = await sinkA.waitFor(before + 1);
    expect(reqs.slice(before).map((r) => r.headers["webhook-id"])).toContain(messageId);
    await waitForStatus(messageId, "succeeded");
    // Nothing failed any more: nothing to recover.
    expect((await call(`/api/orgs/${team.orgId}/webhooks/recover`, { token: ownerToken, json: { since } })).body).toEqual({ count: 0 });
  });

  it("recover refuses bad input (400) and members (403)", async () => {
    expectError(await call(`/api/orgs/${team.orgId}/webhooks/recover`, { token: ownerToken, json: { since: "yesterday" } }), 400, "invalid_request");
    expectError(await call(`/api/orgs/${team.orgId}/webhooks/recover`, { token: ownerToken, json: {} }), 400, "invalid_request");
    expectError(await call(`/api/orgs/${team.orgId}/webhooks/recover`, { token: ownerToken, json: { since: new Date(Date.now() + 3600_000).toISOString() } }), 400, "invalid_request");
    expectError(await call(`/api/orgs/${team.orgId}/webhooks/recover`, { token: await userToken(stack.jwtSecret, team.member), json: { since: new Date().toISOString() } }), 403, "forbidden");
  });

  it("replay and recover through the RPCs: the sweep queues them, the worker delivers", async () => {
    const messageId = first.headers["webhook-id"];
    expect(await rpc(team.admin, "replay_webhook_message", { p_message_id: messageId })).toEqual([{ replay_webhook_message: messageId }]);
    expect(await messageRow(messageId)).toMatchObject({ status: "pending", attempt_count: 0 });
    // As if a minute had passed without a job (RPCs cannot queue pg-boss jobs themselves).
    await admin.query("update notify.webhook_messages set next_attempt_at = now() - interval '2 minutes' where id = $1", [messageId]);
    const before = sinkA.requests.length;
    const { queued } = await sweepOverdue(db, deliveryScheduler(producer));
    expect(queued).toBeGreaterThanOrEqual(1);
    const reqs = await sinkA.waitFor(before + 1);
    expect(reqs.slice(before).map((r) => r.headers["webhook-id"])).toContain(messageId);
    await waitForStatus(messageId, "succeeded");

    await admin.query("update notify.webhook_messages set status = 'failed' where id = $1", [messageId]);
    const ids = await rpc<{ recover_webhook_messages: string }>(team.owner, "recover_webhook_messages", {
      p_org_id: team.orgId, p_since: new Date(Date.now() - 3600_000).toISOString(),
    });
    expect(ids.map((r) => r.recover_webhook_messages)).toEqual([messageId]);
    expect((await messageRow(messageId)).status).toBe("pending");
  });

  it("GET /attempts lists attempts with status code, latency and response snippet", async () => {
    const res = await call(`/api/webhooks/endpoints/${a.endpoint_id}/attempts?limit=2`, { token: ownerToken });
    expect(res.status, res.raw).toBe(200);
    expect(res.body.attempts).toHaveLength(2);
    expect(res.body.attempts[0]).toMatchObject({ status_code: 200, response_snippet: "ok", error: null, event_type: "api_key.created" });
    expect(res.body.attempts[0].latency_ms).toBeGreaterThanOrEqual(0);
    expectError(await call(`/api/webhooks/endpoints/${a.endpoint_id}/attempts`, { token: await userToken(stack.jwtSecret, team.member) }), 404, "not_found");
    expectError(await call(`/api/webhooks/endpoints/${a.endpoint_id}/attempts?limit=0`, { token: ownerToken }), 400, "invalid_request");
    expectError(await call(`/api/webhooks/endpoints/${a.endpoint_id}/attempts?limit=abc`, { token: ownerToken }), 400, "invalid_request");
  });
});

describe("secret rotation", () => {
  it("during the overlap both secrets verify; after it, only the new one", async () => {
    const [rotated] = await rpc<{ secret: string; previous_expires_at: string }>(team.owner, "rotate_webhook_secret", {
      p_endpoint_id: a.endpoint_id, p_overlap: "1 hour",
    });
    expect(rotated.secret).toMatch(/^whsec_[A-Za-z0-9+/]{43}=$/);
    expect(new Date(rotated.previous_expires_at).getTime() - Date.now()).toBeGreaterThan(3500_000);

    let before = sinkA.requests.length;
    await createKey();
    let [req] = (await sinkA.waitFor(before + 1)).slice(before);
    expect(req.headers["webhook-signature"].split(" ")).toHaveLength(2);
    expect(new Webhook(a.secret).verify(req.body, req.headers)).toBeTruthy();
    expect(new Webhook(rotated.secret).verify(req.body, req.headers)).toBeTruthy();

    // The overlap runs out.
    await admin.query("update notify.webhook_secrets set expires_at = now() - interval '1 second' where endpoint_id = $1 and expires_at is not null", [a.endpoint_id]);
    before = sinkA.requests.length;
    await createKey();
    [req] = (await sinkA.waitFor(before + 1)).slice(before);
    expect(req.headers["webhook-signature"].split(" ")).toHaveLength(1);
    expect(new Webhook(rotated.secret).verify(req.body, req.headers)).toBeTruthy();
    expect(() => new Webhook(a.secret).verify(req.body, req.headers)).toThrow();
  });
});
