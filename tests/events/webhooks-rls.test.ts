// Who may see and change webhooks: webhooks.manage holders read their org's endpoints,
// messages and attempts; members, viewers and strangers see nothing; nobody selects a secret;
// every RPC has allowed and denied cases; bad input is 22023 and changes nothing. Every test
// makes its own org, endpoint, message and attempt.
import { randomUUID } from "node:crypto";
import { afterAll, describe, expect, it } from "vitest";
import { admin, as, createTeam, createUser, expectSqlError, rpc, select, type Team, type TestUser } from "../helpers/db.ts";
import { createEndpoint, createMessage } from "../helpers/webhooks.ts";

const orgIds: string[] = [];
afterAll(() => admin.query("delete from notify.webhook_endpoints where org_id = any ($1)", [orgIds]));

interface Fixture {
  team: Team;
  stranger: TestUser;
  endpointId: string;
  messageId: string;
}

/** A team with one endpoint (made by the admin), one message on it and one failed attempt. */
async function setup(): Promise<Fixture> {
  const team = await createTeam("Rls");
  orgIds.push(team.orgId);
  const stranger = await createUser();
  const { endpoint_id: endpointId } = await createEndpoint(team.admin, team.orgId, "https://hooks.example.com/in", ["webhook.test"]);
  const messageId = await createMessage(team.orgId, endpointId);
  await admin.query(
    `insert into notify.webhook_attempts (org_id, message_id, endpoint_id, attempt, status_code, latency_ms, response_snippet)
     values ($1, $2, $3, 1, 500, 12, 'nope')`, [team.orgId, messageId, endpointId]);
  return { team, stranger, endpointId, messageId };
}

const count = async (team: Team, who: TestUser, table: string) =>
  (await select<{ n: number }>(who, `select count(*)::int as n from notify.${table} where org_id = $1`, [team.orgId]))[0].n;
const endpoints = async (team: Team) => (await admin.query("select * from notify.webhook_endpoints where org_id = $1 order by created_at", [team.orgId])).rows;
const messageRow = async (id: string) => (await admin.query("select * from notify.webhook_messages where id = $1", [id])).rows[0];

describe("reading", () => {
  it.each(["webhook_endpoints", "webhook_messages", "webhook_attempts", "webhook_secrets"])("owners and admins read %s; members, viewers and strangers see nothing", async (table) => {
    const { team, stranger } = await setup();
    expect(await count(team, team.owner, table)).toBe(1);
    expect(await count(team, team.admin, table)).toBe(1);
    for (const who of [team.member, team.viewer, stranger]) expect(await count(team, who, table)).toBe(0);
  });

  it("nobody selects a secret, not even the owner; its metadata is readable", async () => {
    const { team, endpointId } = await setup();
    await expectSqlError(select(team.owner, "select secret from notify.webhook_secrets"), "42501");
    await expectSqlError(select(team.owner, "select * from notify.webhook_secrets"), "42501");
    const rows = await select(team.owner, "select id, endpoint_id, created_at, expires_at from notify.webhook_secrets where endpoint_id = $1", [endpointId]);
    expect(rows).toHaveLength(1);
  });

  it("clients cannot write the tables directly, and nothing changes", async () => {
    const { team, endpointId, messageId } = await setup();
    const before = [await endpoints(team), await messageRow(messageId)];
    await expectSqlError(as(team.owner, (c) => c.query("update notify.webhook_endpoints set url = 'https://evil.test' where id = $1", [endpointId])), "42501");
    await expectSqlError(as(team.owner, (c) => c.query("delete from notify.webhook_messages where id = $1", [messageId])), "42501");
    await expectSqlError(as(team.owner, (c) => c.query(
      "insert into notify.webhook_secrets (org_id, endpoint_id, secret) values ($1, $2, 'whsec_AAAA')", [team.orgId, endpointId])), "42501");
    expect([await endpoints(team), await messageRow(messageId)]).toEqual(before);
    expect((await admin.query("select count(*)::int as n from notify.webhook_secrets where endpoint_id = $1", [endpointId])).rows[0].n).toBe(1);
  });

  it("the audit log records endpoint and secret changes with the secret masked", async () => {
    const { team } = await setup();
    const { rows } = await admin.query(
      "select target_table, after from notify.audit_log where org_id = $1 and target_table like 'notify.webhook_%' order by occurred_at", [team.orgId]);
    expect(rows.map((r) => r.target_table)).toEqual(expect.arrayContaining(["notify.webhook_endpoints", "notify.webhook_secrets"]));
    expect(rows.find((r) => r.target_table === "notify.webhook_secrets").after.secret).toBe("***");
  });
});

describe("create_webhook_endpoint", () => {
  it("webhooks.manage creates and gets the whsec_ secret once", async () => {
    const { team } = await setup();
    const [row] = await rpc<{ endpoint_id: string; secret: string }>(team.owner, "create_webhook_endpoint", {
      p_org_id: team.orgId, p_url: " https://a.example.com/h ", p_event_types: ["member.joined", "member.joined", "api_key.created"],
    });
    expect(row.secret).toMatch(/^whsec_[A-Za-z0-9+/]{43}=$/);
    expect(Buffer.from(row.secret.slice(6), "base64")).toHaveLength(32);
    const { rows } = await admin.query("select * from notify.webhook_endpoints where id = $1", [row.endpoint_id]);
    expect(rows[0]).toMatchObject({ url: "https://a.example.com/h", event_types: ["api_key.created", "member.joined"], status: "active", created_by: team.owner.id });
  });

  it("members and viewers get 42501, strangers PT404, and nothing is created", async () => {
    const { team, stranger } = await setup();
    const before = await endpoints(team);
    const args = { p_org_id: team.orgId, p_url: "https://x.example.com" };
    await expectSqlError(rpc(team.member, "create_webhook_endpoint", args), "42501", /webhooks.manage/);
    await expectSqlError(rpc(team.viewer, "create_webhook_endpoint", args), "42501");
    await expectSqlError(rpc(stranger, "create_webhook_endpoint", args), "PT404");
    expect(await endpoints(team)).toEqual(before);
  });

  it("bad input is 22023 and creates nothing", async () => {
    const { team } = await setup();
    const before = await endpoints(team);
    for (const args of [
      { p_url: "ftp://x.example.com" },
      { p_url: "example.com/hook" },
      { p_url: "https://user:pw@x.example.com" },
      { p_url: "https://x.example.com", p_event_types: ["no.such_type"] },
      { p_url: "https://x.example.com", p_description: "d".repeat(501) },
      { p_url: null },
    ]) {
      await expectSqlError(rpc(team.owner, "create_webhook_endpoint", { p_org_id: team.orgId, ...args }), "22023");
    }
    expect(await endpoints(team)).toEqual(before);
  });
});

describe("update_webhook_endpoint and delete_webhook_endpoint", () => {
  it("webhooks.manage changes fields, disables and re-enables", async () => {
    const { team } = await setup();
    const { endpoint_id } = await createEndpoint(team.owner, team.orgId, "https://u.example.com");
    let [row] = await rpc<Record<string, any>>(team.admin, "update_webhook_endpoint", { p_endpoint_id: endpoint_id, p_description: "renamed", p_status: "disabled" });
    expect(row).toMatchObject({ description: "renamed", status: "disabled", disabled_reason: "disabled by a user", url: "https://u.example.com" });
    [row] = await rpc(team.admin, "update_webhook_endpoint", { p_endpoint_id: endpoint_id, p_status: "active", p_event_types: [] });
    expect(row).toMatchObject({ status: "active", disabled_reason: null, event_types: [] });
    await rpc(team.owner, "delete_webhook_endpoint", { p_endpoint_id: endpoint_id });
    expect((await admin.query("select 1 from notify.webhook_endpoints where id = $1", [endpoint_id])).rowCount).toBe(0);
  });

  it("members 42501, strangers and unknown ids PT404, bad input 22023, nothing changes", async () => {
    const { team, stranger, endpointId } = await setup();
    const before = await endpoints(team);
    await expectSqlError(rpc(team.member, "update_webhook_endpoint", { p_endpoint_id: endpointId, p_url: "https://evil.test" }), "42501");
    await expectSqlError(rpc(stranger, "update_webhook_endpoint", { p_endpoint_id: endpointId, p_url: "https://evil.test" }), "PT404");
    await expectSqlError(rpc(team.owner, "update_webhook_endpoint", { p_endpoint_id: randomUUID(), p_url: "https://x.test" }), "PT404");
    await expectSqlError(rpc(team.owner, "update_webhook_endpoint", { p_endpoint_id: endpointId, p_status: "paused" }), "22023");
    await expectSqlError(rpc(team.owner, "update_webhook_endpoint", { p_endpoint_id: endpointId, p_url: "javascript:alert(1)" }), "22023");
    await expectSqlError(rpc(team.owner, "update_webhook_endpoint", { p_endpoint_id: endpointId, p_event_types: ["nope.nope"] }), "22023");
    await expectSqlError(rpc(team.viewer, "delete_webhook_endpoint", { p_endpoint_id: endpointId }), "42501");
    await expectSqlError(rpc(stranger, "delete_webhook_endpoint", { p_endpoint_id: endpointId }), "PT404");
    expect(await endpoints(team)).toEqual(before);
  });
});

describe("rotate_webhook_secret", () => {
  it("webhooks.manage rotates; the old secret expires after the overlap", async () => {
    const { team } = await setup();
    const { endpoint_id } = await createEndpoint(team.owner, team.orgId, "https://r.example.com");
    const [r] = await rpc<{ secret: string }>(team.admin, "rotate_webhook_secret", { p_endpoint_id: endpoint_id, p_overlap: "2 hours" });
    const { rows } = await admin.query("select secret, expires_at from notify.webhook_secrets where endpoint_id = $1 order by created_at", [endpoint_id]);
    expect(rows).toHaveLength(2);
    expect(rows[1]).toEqual({ secret: r.secret, expires_at: null });
    const left = new Date(rows[0].expires_at).getTime() - Date.now();
    expect(left).toBeGreaterThan(7100_000);
    expect(left).toBeLessThan(7300_000);
    // Default overlap: 24 hours, and never extends an earlier, shorter expiry.
    await rpc(team.admin, "rotate_webhook_secret", { p_endpoint_id: endpoint_id });
    const { rows: after } = await admin.query("select expires_at from notify.webhook_secrets where endpoint_id = $1 order by created_at", [endpoint_id]);
    expect(new Date(after[0].expires_at).getTime()).toBe(new Date(rows[0].expires_at).getTime());
    expect(new Date(after[1].expires_at).getTime() - Date.now()).toBeGreaterThan(23.9 * 3600_000);
  });

  it("members 42501, strangers PT404, bad overlaps 22023 with nothing changed", async () => {
    const { team, stranger, endpointId } = await setup();
    const secrets = async () => (await admin.query("select id, expires_at from notify.webhook_secrets where endpoint_id = $1 order by id", [endpointId])).rows;
    const before = await secrets();
    await expectSqlError(rpc(team.member, "rotate_webhook_secret", { p_endpoint_id: endpointId }), "42501");
    await expectSqlError(rpc(stranger, "rotate_webhook_secret", { p_endpoint_id: endpointId }), "PT404");
    await expectSqlError(rpc(team.owner, "rotate_webhook_secret", { p_endpoint_id: endpointId, p_overlap: "8 days" }), "22023");
    await expectSqlError(rpc(team.owner, "rotate_webhook_secret", { p_endpoint_id: endpointId, p_overlap: "-1 hour" }), "22023");
    expect(await secrets()).toEqual(before);
  });
});

describe("replay, recover and test sends", () => {
  it("replay: webhooks.manage allowed; member 42501; stranger and unknown PT404; disabled endpoint 22023", async () => {
    const { team, stranger, endpointId, messageId } = await setup();
    await admin.query("update notify.webhook_messages set status = 'failed', attempt_count = 8 where id = $1", [messageId]);
    await expectSqlError(rpc(team.member, "replay_webhook_message", { p_message_id: messageId }), "42501");
    await expectSqlError(rpc(stranger, "replay_webhook_message", { p_message_id: messageId }), "PT404");
    await expectSqlError(rpc(team.owner, "replay_webhook_message", { p_message_id: randomUUID() }), "PT404");
    expect((await admin.query("select status from notify.webhook_messages where id = $1", [messageId])).rows[0].status).toBe("failed");
    await rpc(team.admin, "replay_webhook_message", { p_message_id: messageId });
    expect((await admin.query("select status, attempt_count from notify.webhook_messages where id = $1", [messageId])).rows[0])
      .toEqual({ status: "pending", attempt_count: 0 });
    await admin.query("update notify.webhook_endpoints set status = 'disabled' where id = $1", [endpointId]);
    await expectSqlError(rpc(team.owner, "replay_webhook_message", { p_message_id: messageId }), "22023", /disabled/);
    await expectSqlError(rpc(team.owner, "send_test_webhook", { p_endpoint_id: endpointId }), "22023", /disabled/);
    await admin.query("update notify.webhook_endpoints set status = 'active' where id = $1", [endpointId]);
  });

  it("recover: webhooks.manage allowed; member 42501; stranger PT404; since null or in the future 22023", async () => {
    const { team, stranger, endpointId, messageId } = await setup();
    await admin.query("update notify.webhook_messages set status = 'failed' where id = $1", [messageId]);
    const since = new Date(Date.now() - 3600_000).toISOString();
    await expectSqlError(rpc(team.member, "recover_webhook_messages", { p_org_id: team.orgId, p_since: since }), "42501");
    await expectSqlError(rpc(stranger, "recover_webhook_messages", { p_org_id: team.orgId, p_since: since }), "PT404");
    await expectSqlError(rpc(team.owner, "recover_webhook_messages", { p_org_id: team.orgId, p_since: null }), "22023");
    await expectSqlError(rpc(team.owner, "recover_webhook_messages", { p_org_id: team.orgId, p_since: new Date(Date.now() + 60_000).toISOString() }), "22023");
    expect((await admin.query("select status from notify.webhook_messages where id = $1", [messageId])).rows[0].status).toBe("failed");
    const ids = await rpc(team.owner, "recover_webhook_messages", { p_org_id: team.orgId, p_since: since, p_endpoint_id: endpointId });
    expect(ids).toEqual([{ recover_webhook_messages: messageId }]);
  });

  it("send_test_webhook: webhooks.manage emits webhook.test; member 42501; stranger PT404, and they emit nothing", async () => {
    const { team, stranger, endpointId } = await setup();
    const tests = async () => (await admin.query("select id from notify.events where org_id = $1 and type = 'webhook.test'", [team.orgId])).rows.map((r) => r.id);
    const [{ send_test_webhook: eventId }] = await rpc<{ send_test_webhook: string }>(team.owner, "send_test_webhook", { p_endpoint_id: endpointId });
    const { rows } = await admin.query("select type, payload from notify.events where id = $1", [eventId]);
    expect(rows[0]).toMatchObject({ type: "webhook.test", payload: { endpoint_id: endpointId } });
    await expectSqlError(rpc(team.viewer, "send_test_webhook", { p_endpoint_id: endpointId }), "42501");
    await expectSqlError(rpc(stranger, "send_test_webhook", { p_endpoint_id: endpointId }), "PT404");
    expect(await tests()).toEqual([eventId]);
  });

  it("recover re-queues at most 1,000 messages per call, oldest first; the next call takes the rest", async () => {
    const { team, endpointId } = await setup();
    // 1,001 failed messages, a second apart, of events already dispatched (the worker leaves them alone).
    const { rows } = await admin.query<{ id: string; n: number }>(
      `with ev as (
         insert into notify.events (org_id, type, schema_version, subject_kind, subject_id, payload, dispatched_at)
         select $1, 'webhook.test', 1, 'webhook_endpoint', $2, jsonb_build_object('endpoint_id', $2::text, 'message', g::text), now()
         from generate_series(1, 1001) g
         returning id, (payload ->> 'message')::int as n
       )
       insert into notify.webhook_messages (org_id, endpoint_id, event_id, status, attempt_count, created_at)
       select $1, $2::uuid, ev.id, 'failed', 8, now() - interval '1 hour' + make_interval(secs => ev.n)
       from ev
       returning id, extract(epoch from created_at - now())::int as n`,
      [team.orgId, endpointId],
    );
    const oldestFirst = rows.sort((a, b) => a.n - b.n).map((r) => r.id);
    expect(oldestFirst).toHaveLength(1001);
    const since = new Date(Date.now() - 2 * 3600_000).toISOString();
    const recover = async () =>
      (await rpc<{ recover_webhook_messages: string }>(team.owner, "recover_webhook_messages", { p_org_id: team.orgId, p_since: since }))
        .map((r) => r.recover_webhook_messages);
    const first = await recover();
    expect(first).toHaveLength(1000);
    expect(new Set(first)).toEqual(new Set(oldestFirst.slice(0, 1000)));
    expect((await messageRow(oldestFirst[1000])).status).toBe("failed");
    expect(await recover()).toEqual([oldestFirst[1000]]);
    expect(await recover()).toEqual([]);
    const { rows: left } = await admin.query(
      "select status, count(*)::int as n from notify.webhook_messages where endpoint_id = $1 group by 1 order by 1", [endpointId]);
    expect(left).toEqual([{ status: "pending", n: 1002 }]); // the 1,001 and the fixture's own message
  });
});
