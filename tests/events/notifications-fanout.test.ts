// End to end: a real tenancy change → the worker's notifications consumer → rows for the
// rule's recipients (never the actor), a Broadcast on user:<id>, and an email where the
// recipient's preference says so. Plus idempotency when an event is dispatched again.
import { beforeAll, describe, expect, it } from "vitest";
import { gotrueClaims } from "../../scripts/lib/keys.ts";
import { addMember, admin, createTeam, createUser, rpc, type Team, type TestUser } from "../helpers/db.ts";
import { call, mailTo, sleep, waitForMail } from "../helpers/http.ts";
import { eventually, notificationsFor } from "../helpers/notifications.ts";

// Event -> dispatch -> email job -> SMTP takes ~1-2 s alone; with the whole suite saturating
// two cores the shared worker's queue can lag far longer, so allow for it.
const MAIL_WAIT_MS = 60_000;

let team: Team;
let quiet: TestUser; // every channel off for member.role_changed

const setPref = (u: TestUser, type: string, channel: string, enabled: boolean) =>
  rpc(u, "set_notification_preference", { p_type: type, p_channel: channel, p_enabled: enabled });

async function roleChangedEventFor(userId: string): Promise<string> {
  const { rows } = await admin.query(
    `select id from notify.events where type = 'member.role_changed' and payload ->> 'user_id' = $1 order by seq desc limit 1`,
    [userId],
  );
  return rows[0].id;
}

beforeAll(async () => {
  team = await createTeam("Notify");
  quiet = await createUser();
  await addMember(team.orgId, quiet, "member");
  await setPref(team.viewer, "member.role_changed", "email", false);
  for (const ch of ["in_app", "email", "email_digest"]) await setPref(quiet, "member.role_changed", ch, false);

  await rpc(team.owner, "set_member_role", { p_org_id: team.orgId, p_user_id: team.member.id, p_role: "viewer" });
  await rpc(team.owner, "set_member_role", { p_org_id: team.orgId, p_user_id: team.viewer.id, p_role: "member" });
  await rpc(team.owner, "set_member_role", { p_org_id: team.orgId, p_user_id: quiet.id, p_role: "viewer" });
});

describe("fan-out of member.role_changed (rule: the subject user)", () => {
  it("notifies the subject, with text from the rule's templates", async () => {
    const rows = await eventually(async () => {
      const r = await notificationsFor(team.member.id, "member.role_changed");
      return r.length ? r : undefined;
    });
    expect(rows).toHaveLength(1);
    expect(rows![0]).toMatchObject({
      org_id: team.orgId,
      title: expect.stringMatching(/^Your role in Notify .* changed$/),
      body: expect.stringMatching(/changed your role in .* from member to viewer\.$/),
      link: `/orgs/${team.orgId}`,
      read_at: null,
      archived_at: null,
    });
    expect(rows![0].emailed_at).not.toBeNull();
  });

  it("emails a recipient whose email channel is on, with one-click unsubscribe headers", async () => {
    const [mail] = await waitForMail(team.member.email, { timeoutMs: MAIL_WAIT_MS });
    expect(mail.subject).toMatch(/^Your role in Notify .* changed$/);
    expect(mail.text).toMatch(/from member to viewer/);
    expect(mail.headers["list-unsubscribe"]).toMatch(/^<http:\/\/127\.0\.0\.1:\d+\/functions\/v1\/api\/unsubscribe\?token=[\w.-]+>$/);
    expect(mail.headers["list-unsubscribe-post"]).toBe("List-Unsubscribe=One-Click");
    expect(mail.text).toContain(mail.headers["list-unsubscribe"].slice(1, -1));
  });

  it("the queued email job carries no unsubscribe token: the link is signed when the email is sent", async () => {
    const [mail] = await waitForMail(team.member.email, { timeoutMs: MAIL_WAIT_MS });
    const link = mail.headers["list-unsubscribe"].slice(1, -1);
    const token = new URL(link).searchParams.get("token")!;
    expect(token).toMatch(/^[\w-]+\.[\w-]+$/);
    // pg-boss job data is readable by whoever reads the queue's tables.
    const { rows } = await admin.query(`select data from pgboss.job where name = 'email.send' and data ->> 'to' = $1`, [team.member.email]);
    expect(rows.length).toBeGreaterThanOrEqual(1);
    for (const { data } of rows) {
      const queued = JSON.stringify(data);
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
    const [mail] = await waitForMail(team.member.email, { timeoutMs: MAIL_WAIT_MS });
    const link = new URL(mail.headers["list-unsubscribe"].slice(1, -1));
    const res = await call(`${link.pathname.replace(/^\/functions\/v1/, "")}${link.search}`, {
      method: "POST",
      headers: { "content-type": "application/x-www-form-urlencoded" },
      body: "List-Unsubscribe=One-Click",
    });
    expect(res.status, res.raw).toBe(200);
    const { rows } = await admin.query(
      "select enabled from notify.notification_preferences where user_id = $1 and type = 'member.role_changed' and channel = 'email'",
      [team.member.id],
    );
    expect(rows).toEqual([{ enabled: false }]);
  });

  it("broadcasts the notification privately on user:<id>, which only that user may receive", async () => {
    const [n] = await notificationsFor(team.member.id, "member.role_changed");
    const { rows } = await admin.query(
      `select payload, private from realtime.messages where topic = $1 and event = 'notification'`,
      [`user:${team.member.id}`],
    );
    expect(rows.map((r) => r.payload.id)).toContain(n.id);
    expect(rows.every((r) => r.private)).toBe(true);
    const c = await admin.connect();
    try {
      await c.query("begin");
      const can = async (u: TestUser) =>
        (await c.query("select realtime.can_receive($1, $2) as ok", [JSON.stringify(gotrueClaims(u)), `user:${team.member.id}`])).rows[0].ok;
      expect(await can(team.member)).toBe(true);
      expect(await can(team.owner)).toBe(false);
      await c.query("rollback");
    } finally {
      await c.query("rollback").catch(() => {});
      c.release();
    }
  });

  it("writes the row but sends no email when the recipient turned email off", async () => {
    const rows = await eventually(async () => {
      const r = await notificationsFor(team.viewer.id, "member.role_changed");
      return r.length ? r : undefined;
    });
    expect(rows).toHaveLength(1);
    expect(rows![0].emailed_at).toBeNull();
    await waitForMail(team.member.email, { timeoutMs: MAIL_WAIT_MS }); // the other recipient's mail went out by now
    await sleep(1_500);
    expect((await mailTo(team.viewer.email)).filter((m) => /Your role/.test(m.subject))).toEqual([]);
  });

  it("writes nothing for a recipient with every channel off", async () => {
    const event = await roleChangedEventFor(quiet.id);
    await eventually(async () =>
      (await admin.query(`select 1 from notify.consumer_receipts where event_id = $1 and consumer = 'notifications'`, [event])).rowCount
    );
    expect(await notificationsFor(quiet.id, "member.role_changed")).toEqual([]);
    expect(await mailTo(quiet.email)).toEqual([]);
  });

  it("does not notify the actor about their own action", async () => {
    await eventually(async () => (await notificationsFor(team.viewer.id, "member.role_changed")).length);
    expect(await notificationsFor(team.owner.id, "member.role_changed")).toEqual([]);
  });
});

describe("fan-out of api_key.created (rule: org admins)", () => {
  it("notifies every admin but the one who created the key, and emails them", async () => {
    await rpc(team.admin, "create_api_key", { p_org_id: team.orgId, p_name: "CI key", p_scopes: ["content.read"] });
    const rows = await eventually(async () => {
      const r = await notificationsFor(team.owner.id, "api_key.created");
      return r.length ? r : undefined;
    });
    expect(rows![0].body).toMatch(/created the API key "CI key"/);
    const mails = await waitForMail(team.owner.email, { timeoutMs: 20_000 });
    expect(mails.some((m) => /New API key/.test(m.subject))).toBe(true);
    expect(await notificationsFor(team.admin.id, "api_key.created")).toEqual([]);
    expect(await notificationsFor(team.member.id, "api_key.created")).toEqual([]);
  });
});

describe("idempotency", () => {
  it("re-dispatching an event (receipt deleted) writes no second row and sends no second email", async () => {
    const event = await roleChangedEventFor(team.member.id);
    await waitForMail(team.member.email, { timeoutMs: MAIL_WAIT_MS });
    const mailsBefore = (await mailTo(team.member.email)).length;
    await admin.query(`delete from notify.consumer_receipts where event_id = $1 and consumer = 'notifications'`, [event]);
    await admin.query(`update notify.events set dispatched_at = null, next_dispatch_at = now() where id = $1`, [event]);
    await admin.query(`notify plinth_outbox`);
    const redone = await eventually(async () =>
      (await admin.query(`select 1 from notify.consumer_receipts where event_id = $1 and consumer = 'notifications'`, [event])).rowCount
    );
    expect(redone).toBe(1);
    const { rows } = await admin.query(`select count(*)::int as n from notify.notifications where event_id = $1`, [event]);
    expect(rows[0].n).toBe(1); // the member, still once
    await sleep(2_000);
    expect(await mailTo(team.member.email)).toHaveLength(mailsBefore);
  });

  it("calling the fan-out twice in one transaction inserts once", async () => {
    const c = await admin.connect();
    try {
      await c.query("begin");
      // Written and fanned out before commit, so the worker never sees this event.
      const { rows: [e] } = await c.query(
        `select private.emit_event($1, 'member.role_changed', 'member', $2::text, jsonb_build_object('user_id', $2::uuid, 'old_role', 'viewer', 'new_role', 'member')) as id`,
        [team.orgId, team.member.id],
      );
      const first = await c.query(`select * from private.fan_out_notifications($1)`, [e.id]);
      const second = await c.query(`select * from private.fan_out_notifications($1)`, [e.id]);
      expect(first.rows.map((r) => r.user_id)).toEqual([team.member.id]);
      expect(second.rows).toEqual([]);
      const { rows } = await c.query(`select count(*)::int as n from notify.notifications where event_id = $1`, [e.id]);
      expect(rows[0].n).toBe(1);
      await c.query("rollback");
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
        [team.orgId, team.orgId],
      );
      expect((await c.query(`select * from private.fan_out_notifications($1)`, [e.id])).rows).toEqual([]);
      await c.query("rollback");
    } finally {
      await c.query("rollback").catch(() => {});
      c.release();
    }
  });
});
