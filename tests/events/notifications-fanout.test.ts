// End to end: a real tenancy change → the worker's notifications consumer → rows for the
// rule's recipients (never the actor, unless the rule names the actor), a Broadcast on
// user:<id>, and an email where the recipient's preference says so. Plus idempotency when an
// event is dispatched again.
//
// Every test makes its own org and users. A negative check ("no row", "no email") comes after
// the consumer's receipt for the event: the consumer writes the rows, queues the email.send
// jobs and records its receipt in one transaction, so once the receipt is there, whatever the
// event would ever cause is already in notify.notifications and pgboss.job.
import { beforeAll, describe, expect, it } from "vitest";
import { gotrueClaims } from "../../scripts/lib/keys.ts";
import { addMember, admin, createTeam, createUser, rpc, type Team, type TestUser } from "../helpers/db.ts";
import { call, mailTo, waitForMail } from "../helpers/http.ts";
import {
  bossJobs,
  latestEvent,
  notificationsFor,
  waitForJobsCompleted,
  waitForReceipt,
  WAIT_MS,
} from "../helpers/notifications.ts";

const setPref = (u: TestUser, type: string, channel: string, enabled: boolean) =>
  rpc(u, "set_notification_preference", { p_type: type, p_channel: channel, p_enabled: enabled });

/** The email.send jobs ever queued to this address (test addresses are unique). */
const emailJobs = (to: string) => bossJobs("email.send", { to });

/** Waits until every email job to `to` has been sent, then returns what reached the sink (exactly `count`). */
async function sentMail(to: string, count = 1) {
  const jobs = await waitForJobsCompleted("email.send", { to });
  expect(jobs, `email.send jobs to ${to}`).toHaveLength(count);
  const mails = await waitForMail(to, { count, timeoutMs: WAIT_MS });
  expect(mails).toHaveLength(count);
  return mails;
}

/** In a fresh team, the owner makes the member a viewer; returns once the consumer handled the event. */
async function roleChanged(): Promise<{ team: Team; event: string }> {
  const team = await createTeam("Notify");
  await rpc(team.owner, "set_member_role", { p_org_id: team.orgId, p_user_id: team.member.id, p_role: "viewer" });
  const event = await latestEvent(team.orgId, "member.role_changed", { user_id: team.member.id });
  await waitForReceipt(event, "notifications");
  return { team, event };
}

describe("fan-out of member.role_changed (rule: the subject user)", () => {
  it("notifies the subject with the rule's text, broadcasts it privately on user:<id>, and emails it with one-click headers", async () => {
    const { team } = await roleChanged();
    const rows = await notificationsFor(team.member.id, "member.role_changed");
    expect(rows).toHaveLength(1);
    expect(rows[0]).toMatchObject({
      org_id: team.orgId,
      title: expect.stringMatching(/^Your role in Notify .* changed$/),
      body: expect.stringMatching(/changed your role in .* from member to viewer\.$/),
      link: `/orgs/${team.orgId}`,
      read_at: null,
      archived_at: null,
    });
    expect(rows[0].emailed_at).not.toBeNull();

    const { rows: sent } = await admin.query(
      `select payload, private from realtime.messages where topic = $1 and event = 'notification'`,
      [`user:${team.member.id}`],
    );
    expect(sent.map((r) => r.payload.id)).toEqual([rows[0].id]);
    expect(sent.every((r) => r.private)).toBe(true);
    const c = await admin.connect();
    try {
      await c.query("begin");
      const can = async (u: TestUser) =>
        (await c.query("select realtime.can_receive($1, $2) as ok", [JSON.stringify(gotrueClaims(u)), `user:${team.member.id}`])).rows[0].ok;
      expect(await can(team.member)).toBe(true);
      expect(await can(team.owner)).toBe(false);
    } finally {
      await c.query("rollback").catch(() => {});
      c.release();
    }

    const [mail] = await sentMail(team.member.email);
    expect(mail.subject).toMatch(/^Your role in Notify .* changed$/);
    expect(mail.text).toMatch(/from member to viewer/);
    expect(mail.headers["list-unsubscribe"]).toMatch(/^<http:\/\/127\.0\.0\.1:\d+\/functions\/v1\/api\/unsubscribe\?token=[\w.-]+>$/);
    expect(mail.headers["list-unsubscribe-post"]).toBe("List-Unsubscribe=One-Click");
    expect(mail.text).toContain(mail.headers["list-unsubscribe"].slice(1, -1));
  });

  it("the queued email job carries no unsubscribe token: the link is signed when the email is sent", async () => {
    const { team } = await roleChanged();
    const [mail] = await sentMail(team.member.email);
    const link = mail.headers["list-unsubscribe"].slice(1, -1);
    const token = new URL(link).searchParams.get("token")!;
    expect(token).toMatch(/^[\w-]+\.[\w-]+$/);
    // pg-boss job data (and output) is readable by whoever reads the queue's tables.
    const jobs = await emailJobs(team.member.email);
    expect(jobs).toHaveLength(1);
    for (const { data, output } of jobs) {
      const queued = JSON.stringify({ data, output });
      expect(queued).not.toContain("token=");
      expect(queued).not.toContain(token);
      expect(queued).not.toContain(token.split(".")[1]);
      expect(data.unsubscribe).toMatchObject({ user_id: team.member.id, type: "member.role_changed", channel: "email" });
    }
    // The sent email has the link in its headers, its text and its HTML.
    expect(mail.text).toContain(link);
    expect(mail.html).toContain(`href="${link}"`);
  });

  it("the email's own List-Unsubscribe link works one-click, without login", async () => {
    const { team } = await roleChanged();
    const [mail] = await sentMail(team.member.email);
    const link = new URL(mail.headers["list-unsubscribe"].slice(1, -1));
    const res = await call(`${link.pathname.replace(/^\/functions\/v1/, "")}${link.search}`, {
      method: "POST",
      headers: { "content-type": "application/x-www-form-urlencoded" },
      body: "List-Unsubscribe=One-Click",
    });
    expect(res.status, res.raw).toBe(200);
    const { rows } = await admin.query(
      "select type, channel, enabled from notify.notification_preferences where user_id = $1",
      [team.member.id],
    );
    expect(rows).toEqual([{ type: "member.role_changed", channel: "email", enabled: false }]);
  });

  it("writes the row but queues no email when the recipient turned email off", async () => {
    const team = await createTeam("Notify");
    await setPref(team.viewer, "member.role_changed", "email", false);
    await rpc(team.owner, "set_member_role", { p_org_id: team.orgId, p_user_id: team.viewer.id, p_role: "member" });
    await waitForReceipt(await latestEvent(team.orgId, "member.role_changed", { user_id: team.viewer.id }), "notifications");
    const rows = await notificationsFor(team.viewer.id, "member.role_changed");
    expect(rows).toHaveLength(1);
    expect(rows[0].archived_at).toBeNull();
    expect(rows[0].emailed_at).toBeNull();
    expect(await emailJobs(team.viewer.email)).toEqual([]);
    expect(await mailTo(team.viewer.email)).toEqual([]);
  });

  it("writes nothing and queues nothing for a recipient with every channel off", async () => {
    const team = await createTeam("Notify");
    for (const ch of ["in_app", "email", "email_digest"]) await setPref(team.viewer, "member.role_changed", ch, false);
    await rpc(team.owner, "set_member_role", { p_org_id: team.orgId, p_user_id: team.viewer.id, p_role: "member" });
    await waitForReceipt(await latestEvent(team.orgId, "member.role_changed", { user_id: team.viewer.id }), "notifications");
    expect(await notificationsFor(team.viewer.id, "member.role_changed")).toEqual([]);
    expect(await emailJobs(team.viewer.email)).toEqual([]);
    expect(await mailTo(team.viewer.email)).toEqual([]);
    const { rows } = await admin.query("select 1 from realtime.messages where topic = $1", [`user:${team.viewer.id}`]);
    expect(rows).toEqual([]);
  });
});

describe("fan-out of api_key.created (rule: org admins)", () => {
  it("notifies and emails every admin but the one who created the key; members hear nothing", async () => {
    const team = await createTeam("Keys");
    await rpc(team.admin, "create_api_key", { p_org_id: team.orgId, p_name: "CI key", p_scopes: ["content.read"] });
    await waitForReceipt(await latestEvent(team.orgId, "api_key.created", { name: "CI key" }), "notifications");
    const rows = await notificationsFor(team.owner.id, "api_key.created");
    expect(rows).toHaveLength(1);
    expect(rows[0].body).toMatch(/created the API key "CI key"/);
    const [mail] = await sentMail(team.owner.email);
    expect(mail.subject).toMatch(/^New API key in /);
    for (const u of [team.admin, team.member, team.viewer]) {
      expect(await notificationsFor(u.id, "api_key.created"), u.email).toEqual([]);
      expect(await emailJobs(u.email), u.email).toEqual([]);
    }
  });

  it("does not notify the actor about their own action, although the rule's recipients include them", async () => {
    // The owner holds members.manage, so org_admins names them: only the actor rule leaves them out.
    const team = await createTeam("Actor");
    await rpc(team.owner, "create_api_key", { p_org_id: team.orgId, p_name: "Owner key", p_scopes: ["content.read"] });
    await waitForReceipt(await latestEvent(team.orgId, "api_key.created", { name: "Owner key" }), "notifications");
    expect(await notificationsFor(team.admin.id, "api_key.created")).toHaveLength(1);
    expect(await notificationsFor(team.owner.id, "api_key.created")).toEqual([]);
    expect(await emailJobs(team.owner.email)).toEqual([]);
    await sentMail(team.admin.email);
  });
});

describe("the other rules and recipient kinds", () => {
  it("member.removed tells the removed member (in the app and by email), not the one who removed them", async () => {
    const team = await createTeam("Removal");
    await rpc(team.owner, "remove_member", { p_org_id: team.orgId, p_user_id: team.member.id });
    await waitForReceipt(await latestEvent(team.orgId, "member.removed", { user_id: team.member.id }), "notifications");
    const rows = await notificationsFor(team.member.id, "member.removed");
    expect(rows).toHaveLength(1);
    expect(rows[0]).toMatchObject({ org_id: team.orgId, title: expect.stringMatching(/^You were removed from Removal /) });
    const [mail] = await sentMail(team.member.email);
    expect(mail.subject).toBe(rows[0].title);
    for (const u of [team.owner, team.admin, team.viewer]) {
      expect(await notificationsFor(u.id, "member.removed"), u.email).toEqual([]);
      expect(await emailJobs(u.email), u.email).toEqual([]);
    }
  });

  it("webhook.endpoint_disabled tells every org admin (members.manage), by email too, and no one else", async () => {
    const team = await createTeam("Hooks");
    const [{ endpoint_id: endpointId }] = await rpc<{ endpoint_id: string }>(team.owner, "create_webhook_endpoint", {
      p_org_id: team.orgId, p_url: "https://hooks.example.com/plinth", p_event_types: ["org.updated"],
    });
    // What the worker does after a 410 or five days of failures.
    const { rows: [d] } = await admin.query("select private.disable_webhook_endpoint($1, 'gone') as ok", [endpointId]);
    expect(d.ok).toBe(true);
    await waitForReceipt(await latestEvent(team.orgId, "webhook.endpoint_disabled", { endpoint_id: endpointId }), "notifications");
    for (const u of [team.owner, team.admin]) {
      const rows = await notificationsFor(u.id, "webhook.endpoint_disabled");
      expect(rows, u.email).toHaveLength(1);
      expect(rows[0].body).toContain("https://hooks.example.com/plinth");
      const [mail] = await sentMail(u.email);
      expect(mail.subject).toMatch(/^A webhook endpoint was disabled in Hooks /);
    }
    for (const u of [team.member, team.viewer]) {
      expect(await notificationsFor(u.id, "webhook.endpoint_disabled"), u.email).toEqual([]);
      expect(await emailJobs(u.email), u.email).toEqual([]);
    }
  });

  it("org_owners (member.api_keys_revoked) tells the owners only, not the other admins", async () => {
    const team = await createTeam("Owners");
    const otherAdmin = await createUser();
    await addMember(team.orgId, otherAdmin, "admin");
    await rpc(team.admin, "create_api_key", { p_org_id: team.orgId, p_name: "Leaver key", p_scopes: ["content.read"] });
    await rpc(team.admin, "leave_org", { p_org_id: team.orgId });
    await waitForReceipt(await latestEvent(team.orgId, "member.api_keys_revoked", { user_id: team.admin.id }), "notifications");
    const rows = await notificationsFor(team.owner.id, "member.api_keys_revoked");
    expect(rows).toHaveLength(1);
    expect(rows[0].body).toMatch(/"Leaver key"/);
    expect(await notificationsFor(otherAdmin.id, "member.api_keys_revoked")).toEqual([]);
    expect(await notificationsFor(team.admin.id, "member.api_keys_revoked")).toEqual([]);
  });

  it("recipients = actor tells the actor themselves (a rule of that kind, rolled back)", async () => {
    const team = await createTeam("Self");
    const c = await admin.connect();
    try {
      await c.query("begin");
      await c.query(`insert into notify.event_types (type, module, description) values ('plinth_test.self_note', 'test', 'test only')`);
      await c.query(`insert into notify.notification_rules (type, recipients, title_template, body_template, default_channels)
                     values ('plinth_test.self_note', 'actor', 'Your note', 'You did it in {{org_name}}.', '{in_app}')`);
      await c.query("select set_config('request.jwt.claims', $1, true)", [JSON.stringify(gotrueClaims(team.admin))]);
      const { rows: [e] } = await c.query(
        `select private.emit_event($1, 'plinth_test.self_note', 'org', $2, '{}') as id`, [team.orgId, team.orgId]);
      const out = await c.query(`select user_id, title, send_email from private.fan_out_notifications($1)`, [e.id]);
      expect(out.rows).toEqual([{ user_id: team.admin.id, title: "Your note", send_email: false }]);
    } finally {
      await c.query("rollback").catch(() => {});
      c.release();
    }
  });
});

describe("idempotency", () => {
  let shared: Team;
  beforeAll(async () => {
    shared = await createTeam("Rollback"); // read-only for the tests below: they roll back
  });

  it("re-dispatching an event (receipt deleted) writes no second row and queues no second email", async () => {
    const { team, event } = await roleChanged();
    await sentMail(team.member.email);
    await admin.query(`delete from notify.consumer_receipts where event_id = $1 and consumer = 'notifications'`, [event]);
    await admin.query(`update notify.events set dispatched_at = null, next_dispatch_at = now() where id = $1`, [event]);
    await admin.query(`notify plinth_outbox`);
    await waitForReceipt(event, "notifications");
    const { rows } = await admin.query(`select count(*)::int as n from notify.notifications where event_id = $1`, [event]);
    expect(rows[0].n).toBe(1); // the member, still once
    // A second email would have been queued with the new receipt, in the same transaction.
    await sentMail(team.member.email, 1);
  });

  it("calling the fan-out twice in one transaction inserts once", async () => {
    const c = await admin.connect();
    try {
      await c.query("begin");
      // Written and fanned out before commit, so the worker never sees this event.
      const { rows: [e] } = await c.query(
        `select private.emit_event($1, 'member.role_changed', 'member', $2::text, jsonb_build_object('user_id', $2::uuid, 'old_role', 'viewer', 'new_role', 'member')) as id`,
        [shared.orgId, shared.member.id],
      );
      const first = await c.query(`select * from private.fan_out_notifications($1)`, [e.id]);
      const second = await c.query(`select * from private.fan_out_notifications($1)`, [e.id]);
      expect(first.rows.map((r) => r.user_id)).toEqual([shared.member.id]);
      expect(second.rows).toEqual([]);
      const { rows } = await c.query(`select count(*)::int as n from notify.notifications where event_id = $1`, [e.id]);
      expect(rows[0].n).toBe(1);
    } finally {
      await c.query("rollback").catch(() => {});
      c.release();
    }
  });

  it("an event type without a rule notifies nobody", async () => {
    const c = await admin.connect();
    try {
      await c.query("begin");
      const { rows: [e] } = await c.query(
        `select private.emit_event($1, 'org.updated', 'org', $2, '{"name":"x","slug":"x","require_mfa":false,"changed":[]}') as id`,
        [shared.orgId, shared.orgId],
      );
      expect((await c.query(`select * from private.fan_out_notifications($1)`, [e.id])).rows).toEqual([]);
    } finally {
      await c.query("rollback").catch(() => {});
      c.release();
    }
  });
});
