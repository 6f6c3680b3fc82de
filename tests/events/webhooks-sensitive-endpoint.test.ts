// An endpoint whose stored filter names a sensitive event type (invitee emails, API-key events)
// is managed only by callers who may subscribe to those types (members.manage): every change
// (url, status, description, filter), secret rotation, replay, recovery, test and deletion.
// Otherwise someone with webhooks.manage alone could point it at their own URL and replay.
import { describe, expect, it } from "vitest";
import { addIntegrator } from "../helpers/webhooks.ts";
import { userToken } from "../../scripts/lib/keys.ts";
import { admin, createTeam, expectSqlError, rpc, stack, type Team, type TestUser } from "../helpers/db.ts";

const url = "https://hooks.example.com/in";
const evil = "https://attacker.example.net/collect";

async function setup() {
  const team = await createTeam();
  const integrator = await addIntegrator(team.orgId);
  const [sensitive] = await rpc<{ endpoint_id: string }>(team.admin, "create_webhook_endpoint", {
    p_org_id: team.orgId, p_url: url, p_event_types: ["member.invited", "member.joined"],
  });
  const [plain] = await rpc<{ endpoint_id: string }>(team.admin, "create_webhook_endpoint", { p_org_id: team.orgId, p_url: url });
  return { team, integrator, sensitive: sensitive.endpoint_id, plain: plain.endpoint_id };
}

/** A failed message of an already-dispatched event on the endpoint (so the worker leaves it alone). */
async function failedMessage(team: Team, endpointId: string, type = "member.invited") {
  const { rows: [ev] } = await admin.query(
    `insert into notify.events (org_id, type, schema_version, subject_kind, subject_id, payload, dispatched_at)
     values ($1, $2, 1, 'invitation', 'x', '{"email": "invitee@else.test"}', now()) returning id`,
    [team.orgId, type],
  );
  const { rows: [m] } = await admin.query(
    `insert into notify.webhook_messages (org_id, endpoint_id, event_id, status, attempt_count, created_at)
     values ($1, $2, $3, 'failed', 8, now() - interval '1 hour') returning id`,
    [team.orgId, endpointId, ev.id],
  );
  return m.id as string;
}

async function endpointRow(id: string) {
  const { rows } = await admin.query("select url, status, description, event_types from notify.webhook_endpoints where id = $1", [id]);
  return rows[0];
}

async function secretCount(id: string) {
  const { rows } = await admin.query("select count(*)::int as n from notify.webhook_secrets where endpoint_id = $1", [id]);
  return rows[0].n as number;
}

async function messageStatus(id: string) {
  const { rows } = await admin.query("select status from notify.webhook_messages where id = $1", [id]);
  return rows[0]?.status as string;
}

describe("endpoints that receive sensitive event types", () => {
  it("webhooks.manage alone cannot change the url, status, description or filter of one (42501, nothing changed)", async () => {
    const { team, integrator, sensitive } = await setup();
    const before = await endpointRow(sensitive);
    const attempts: Record<string, unknown>[] = [
      { p_url: evil },
      { p_status: "disabled" },
      { p_description: "mine now" },
      { p_event_types: ["member.joined"] }, // dropping the sensitive type first, then moving it, is no way round
      { p_event_types: [] },
    ];
    for (const args of attempts) {
      await expectSqlError(rpc(integrator, "update_webhook_endpoint", { p_endpoint_id: sensitive, ...args }), "42501", /members\.manage/);
    }
    expect(await endpointRow(sensitive)).toEqual(before);
    // A disabled one cannot be re-enabled either.
    await rpc(team.admin, "update_webhook_endpoint", { p_endpoint_id: sensitive, p_status: "disabled" });
    await expectSqlError(rpc(integrator, "update_webhook_endpoint", { p_endpoint_id: sensitive, p_status: "active" }), "42501");
    expect((await endpointRow(sensitive)).status).toBe("disabled");
  });

  it("webhooks.manage alone cannot rotate its secret, send a test, or delete it", async () => {
    const { integrator, sensitive } = await setup();
    await expectSqlError(rpc(integrator, "rotate_webhook_secret", { p_endpoint_id: sensitive }), "42501");
    expect(await secretCount(sensitive)).toBe(1);
    await expectSqlError(rpc(integrator, "send_test_webhook", { p_endpoint_id: sensitive }), "42501");
    await expectSqlError(rpc(integrator, "delete_webhook_endpoint", { p_endpoint_id: sensitive }), "42501");
    expect(await endpointRow(sensitive)).toBeDefined();
  });

  it("webhooks.manage alone cannot replay its messages or recover them, by endpoint or org-wide", async () => {
    const { team, integrator, sensitive, plain } = await setup();
    const secretMsg = await failedMessage(team, sensitive);
    const plainMsg = await failedMessage(team, plain, "member.joined");
    await expectSqlError(rpc(integrator, "replay_webhook_message", { p_message_id: secretMsg }), "42501");
    expect(await messageStatus(secretMsg)).toBe("failed");
    const since = new Date(Date.now() - 2 * 3600_000);
    await expectSqlError(
      rpc(integrator, "recover_webhook_messages", { p_org_id: team.orgId, p_since: since, p_endpoint_id: sensitive }),
      "42501",
    );
    // Org-wide, the integrator recovers what they may manage and nothing of the sensitive endpoint.
    const recovered = await rpc<{ recover_webhook_messages: string }>(integrator, "recover_webhook_messages", {
      p_org_id: team.orgId, p_since: since,
    });
    expect(recovered.map((r) => r.recover_webhook_messages)).toEqual([plainMsg]);
    expect(await messageStatus(secretMsg)).toBe("failed");
  });

  it("over HTTP, the api's replay and recover routes answer 403 to webhooks.manage alone and queue nothing", async () => {
    const { team, integrator, sensitive } = await setup();
    const msg = await failedMessage(team, sensitive);
    const token = await userToken(stack.jwtSecret, integrator);
    const headers = { authorization: `Bearer ${token}`, "content-type": "application/json" };
    const replay = await fetch(`${stack.functionsUrl}/api/webhooks/messages/${msg}/replay`, { method: "POST", headers });
    expect(replay.status).toBe(403);
    expect((await replay.json()).error.message).toMatch(/members\.manage/);
    const recover = await fetch(`${stack.functionsUrl}/api/orgs/${team.orgId}/webhooks/recover`, {
      method: "POST", headers,
      body: JSON.stringify({ since: new Date(Date.now() - 7200_000).toISOString(), endpoint_id: sensitive }),
    });
    expect(recover.status).toBe(403);
    expect(await messageStatus(msg)).toBe("failed");
  });

  it("a member manager does all of it (allowed case)", async () => {
    const { team, sensitive } = await setup();
    const msg = await failedMessage(team, sensitive);
    const [updated] = await rpc<{ url: string }>(team.admin, "update_webhook_endpoint", { p_endpoint_id: sensitive, p_url: `${url}/v2` });
    expect(updated.url).toBe(`${url}/v2`);
    await rpc(team.admin, "rotate_webhook_secret", { p_endpoint_id: sensitive });
    expect(await secretCount(sensitive)).toBe(2);
    const [test] = await rpc<{ send_test_webhook: string }>(team.admin, "send_test_webhook", { p_endpoint_id: sensitive });
    expect(test.send_test_webhook).toBeTruthy();
    await rpc(team.admin, "replay_webhook_message", { p_message_id: msg });
    expect(await messageStatus(msg)).not.toBe("failed");
    await rpc(team.admin, "delete_webhook_endpoint", { p_endpoint_id: sensitive });
    expect(await endpointRow(sensitive)).toBeUndefined();
  });

  it("an empty filter (every non-sensitive type) stays manageable with webhooks.manage alone", async () => {
    const { team, integrator, plain } = await setup();
    const msg = await failedMessage(team, plain, "member.joined");
    const [updated] = await rpc<{ url: string; event_types: string[] }>(integrator, "update_webhook_endpoint", { p_endpoint_id: plain, p_url: `${url}/x` });
    expect(updated).toMatchObject({ url: `${url}/x`, event_types: [] });
    await rpc(integrator, "rotate_webhook_secret", { p_endpoint_id: plain });
    await rpc(integrator, "replay_webhook_message", { p_message_id: msg });
    expect(await messageStatus(msg)).not.toBe("failed");
    await rpc(integrator, "send_test_webhook", { p_endpoint_id: plain });
    // ...but turning it into a sensitive one still needs members.manage.
    await expectSqlError(rpc(integrator, "update_webhook_endpoint", { p_endpoint_id: plain, p_event_types: ["api_key.created"] }), "42501");
    await rpc(integrator, "delete_webhook_endpoint", { p_endpoint_id: plain });
    expect(await endpointRow(plain)).toBeUndefined();
  });

  it("a webhook manager of another org still gets PT404, not a hint", async () => {
    const { sensitive } = await setup();
    const other = await createTeam();
    await expectSqlError(rpc(other.admin as TestUser, "update_webhook_endpoint", { p_endpoint_id: sensitive, p_url: evil }), "PT404");
  });
});
