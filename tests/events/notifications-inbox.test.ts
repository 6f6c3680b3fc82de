// The inbox and preferences as clients reach them: RLS on notifications and preferences,
// the mark_read / mark_all_read / unread_count RPCs, set_notification_preference, and the
// read-only catalogs (notification_rules, event_types, the notification_settings view).
// Every test that reads or changes the inbox makes its own (see `inbox()`).
import pg from "pg";
import { beforeEach, describe, expect, it } from "vitest";
import { gotrueClaims } from "../../scripts/lib/keys.ts";
import { admin, as, createTeam, createUser, expectSqlError, rpc, select, stack, type TestUser } from "../helpers/db.ts";
import { insertNotification } from "../helpers/notifications.ts";

const unread = async (u: TestUser) => Number((await rpc<{ unread_count: number }>(u, "unread_count"))[0].unread_count);
const readAt = async (id: string) => (await admin.query("select read_at from notify.notifications where id = $1", [id])).rows[0].read_at;

/**
 * A fresh inbox: the member has two unread notifications in the team org and one in their
 * personal org, plus one read and one archived (neither counts as unread); the owner has one.
 */
async function inbox() {
  const team = await createTeam("Inbox");
  const { rows: [personal] } = await admin.query<{ id: string }>("select id from public.orgs where personal_user_id = $1", [team.member.id]);
  const mine = [await insertNotification(team.orgId, team.member.id), await insertNotification(team.orgId, team.member.id)];
  const elsewhere = await insertNotification(personal.id, team.member.id);
  const read = await insertNotification(team.orgId, team.member.id);
  const archived = await insertNotification(team.orgId, team.member.id);
  await admin.query("update notify.notifications set read_at = now() where id = $1", [read]);
  await admin.query("update notify.notifications set archived_at = now() where id = $1", [archived]);
  const owners = await insertNotification(team.orgId, team.owner.id);
  return { team, personalOrg: personal.id, mine, elsewhere, read, archived, owners };
}

describe("notifications RLS", () => {
  it("a user reads only their own notifications", async () => {
    const { team, mine, elsewhere, read, archived, owners } = await inbox();
    const rows = await select<{ id: string }>(team.member, "select id from notify.notifications");
    expect(rows.map((r) => r.id).sort()).toEqual([...mine, elsewhere, read, archived].sort());
    expect(await select(team.owner, "select id from notify.notifications where id = $1", [mine[0]])).toEqual([]);
    expect(await select(team.member, "select id from notify.notifications where id = $1", [owners])).toEqual([]);
  });

  it("anon reads nothing", async () => {
    await expectSqlError(select("anon", "select id from notify.notifications"), "42501");
  });

  it("a user archives their own through the column grant, and cannot touch anyone else's", async () => {
    const { team, mine, owners } = await inbox();
    const n = await as(team.member, (c) => c.query("update notify.notifications set archived_at = now() where id = $1", [mine[1]]));
    expect(n.rowCount).toBe(1);
    expect((await admin.query("select archived_at from notify.notifications where id = $1", [mine[1]])).rows[0].archived_at).not.toBeNull();
    const none = await as(team.member, (c) => c.query("update notify.notifications set read_at = now() where id = $1", [owners]));
    expect(none.rowCount).toBe(0);
    expect(await readAt(owners)).toBeNull();
  });

  it("clients cannot insert, delete, or change any other column", async () => {
    const { team, mine } = await inbox();
    await expectSqlError(as(team.member, (c) => c.query("update notify.notifications set title = 'x' where id = $1", [mine[0]])), "42501");
    await expectSqlError(as(team.member, (c) => c.query(
      "insert into notify.notifications (org_id, user_id, type, title, body) values ($1, $2, 'member.joined', 't', 'b')",
      [team.orgId, team.member.id],
    )), "42501");
    await expectSqlError(as(team.member, (c) => c.query("delete from notify.notifications where id = $1", [mine[0]])), "42501");
    const { rows } = await admin.query("select title from notify.notifications where user_id = $1 order by created_at", [team.member.id]);
    expect(rows).toHaveLength(5);
    expect(rows.every((r) => r.title === "A notification")).toBe(true);
  });
});

/** The plans auto_explain reports for what `sqlText` runs as `who`, nested statements included. */
async function plansOf(who: TestUser, sqlText: string): Promise<string[]> {
  const c = new pg.Client({ connectionString: stack.dbUrl });
  const notices: string[] = [];
  c.on("notice", (n) => notices.push(n.message ?? ""));
  await c.connect();
  try {
    await c.query("load 'auto_explain'");
    await c.query(`set auto_explain.log_min_duration = 0; set auto_explain.log_nested_statements = on;
                   set auto_explain.log_level = 'notice'; set client_min_messages = 'notice'`);
    // Only to ask whether the index can serve the query: on a small table a seq scan is cheaper.
    await c.query("set enable_seqscan = off");
    await c.query("begin");
    await c.query("select set_config('request.jwt.claims', $1, true), set_config('role', 'authenticated', true)", [JSON.stringify(gotrueClaims(who))]);
    await c.query(sqlText);
    await c.query("rollback");
  } finally {
    await c.end();
  }
  return notices;
}

describe("unread_count, mark_read, mark_all_read", () => {
  it("unread_count counts the caller's unread, unarchived notifications", async () => {
    const { team } = await inbox();
    expect(await unread(team.member)).toBe(3);
    expect(await unread(team.owner)).toBeGreaterThanOrEqual(1);
    expect(await unread(await createUser())).toBe(0);
  });

  it("what unread_count() runs can be served by an index-only scan on the partial index", async () => {
    const { team } = await inbox();
    await admin.query("vacuum analyze notify.notifications"); // sets the visibility map index-only scans rely on
    const plans = await plansOf(team.member, "select public.unread_count()");
    const inner = plans.filter((p) => p.includes("notify.notifications"));
    expect(inner, plans.join("\n---\n")).toHaveLength(1);
    expect(inner[0]).toMatch(/Index Only Scan using notifications_unread_idx/);
  });

  it("anon cannot call them", async () => {
    await expectSqlError(rpc("anon", "unread_count"), "42501");
    await expectSqlError(rpc("anon", "mark_all_read"), "42501");
    await expectSqlError(rpc("anon", "mark_read", { p_ids: [crypto.randomUUID()] }), "42501");
  });

  it("mark_read refuses someone else's notification, even mixed with own ones, and changes nothing", async () => {
    const { team, mine, owners } = await inbox();
    await expectSqlError(rpc(team.member, "mark_read", { p_ids: [owners] }), "PT404", /not found/);
    await expectSqlError(rpc(team.member, "mark_read", { p_ids: [mine[0], owners] }), "PT404");
    expect(await readAt(mine[0])).toBeNull();
    expect(await readAt(owners)).toBeNull();
    expect(await unread(team.member)).toBe(3);
  });

  it("mark_read refuses empty, null and oversized input with 22023", async () => {
    const { team } = await inbox();
    await expectSqlError(rpc(team.member, "mark_read", { p_ids: [] }), "22023");
    await expectSqlError(rpc(team.member, "mark_read", { p_ids: null }), "22023");
    const many = Array.from({ length: 1001 }, () => crypto.randomUUID());
    await expectSqlError(rpc(team.member, "mark_read", { p_ids: many }), "22023");
    expect(await unread(team.member)).toBe(3);
  });

  it("mark_read marks the caller's own and reports how many changed", async () => {
    const { team, mine } = await inbox();
    const [r] = await rpc<{ mark_read: number }>(team.member, "mark_read", { p_ids: [mine[0], mine[0]] });
    expect(r.mark_read).toBe(1);
    expect(await readAt(mine[0])).not.toBeNull();
    expect(await readAt(mine[1])).toBeNull();
    expect(await unread(team.member)).toBe(2);
    const [again] = await rpc<{ mark_read: number }>(team.member, "mark_read", { p_ids: [mine[0]] });
    expect(again.mark_read).toBe(0);
  });

  it("mark_all_read for one org leaves the others; without an org, marks all; never anyone else's", async () => {
    const { team, mine, elsewhere, owners } = await inbox();
    const [one] = await rpc<{ mark_all_read: number }>(team.member, "mark_all_read", { p_org_id: team.orgId });
    expect(one.mark_all_read).toBe(2);
    expect(await readAt(mine[0])).not.toBeNull();
    expect(await readAt(elsewhere)).toBeNull();
    expect(await unread(team.member)).toBe(1);
    const [all] = await rpc<{ mark_all_read: number }>(team.member, "mark_all_read");
    expect(all.mark_all_read).toBe(1);
    expect(await unread(team.member)).toBe(0);
    expect(await readAt(owners)).toBeNull();
  });
});

describe("the catalogs: notification_rules and event_types", () => {
  const snapshot = async () => ({
    rules: (await admin.query("select * from notify.notification_rules order by type")).rows,
    types: (await admin.query("select * from notify.event_types order by type")).rows,
  });

  it("every signed-in user reads them", async () => {
    const user = await createUser();
    const rules = await select<{ type: string; recipients: string }>(user, "select type, recipients from notify.notification_rules");
    expect(rules).toEqual(expect.arrayContaining([
      { type: "member.role_changed", recipients: "subject_user" },
      { type: "api_key.created", recipients: "org_admins" },
    ]));
    expect(rules.length).toBe((await admin.query("select 1 from notify.notification_rules")).rowCount);
    const types = await select<{ type: string }>(user, "select type from notify.event_types");
    expect(types.map((t) => t.type)).toEqual(expect.arrayContaining(["member.joined", "webhook.endpoint_disabled"]));
    expect(types.length).toBe((await admin.query("select 1 from notify.event_types")).rowCount);
  });

  it("anon reads neither", async () => {
    await expectSqlError(select("anon", "select type from notify.notification_rules"), "42501");
    await expectSqlError(select("anon", "select type from notify.event_types"), "42501");
  });

  it("no client inserts, changes or deletes a rule or an event type, not even an org owner", async () => {
    const { owner } = await createTeam("Catalog");
    const before = await snapshot();
    const tries = [
      `insert into notify.notification_rules (type, recipients, title_template, body_template) values ('org.updated', 'org_admins', 't', 'b')`,
      `update notify.notification_rules set recipients = 'org_admins' where type = 'member.role_changed'`,
      `update notify.notification_rules set default_channels = '{}'`,
      `delete from notify.notification_rules where type = 'member.removed'`,
      `insert into notify.event_types (type, module, description) values ('evil.thing', 'x', 'x')`,
      `update notify.event_types set sensitive = false where type = 'api_key.created'`,
      `delete from notify.event_types where type = 'org.updated'`,
    ];
    for (const q of tries) {
      await expectSqlError(as(owner, (c) => c.query(q)), "42501");
      await expectSqlError(as("anon", (c) => c.query(q)), "42501");
    }
    expect(await snapshot()).toEqual(before);
  });
});

describe("preferences", () => {
  // Fresh users for every test: each starts with no preference rows.
  let user: TestUser;
  let stranger: TestUser;
  beforeEach(async () => {
    [user, stranger] = await Promise.all([createUser(), createUser()]);
  });

  const prefs = (u: TestUser) =>
    admin.query("select type, channel, enabled from notify.notification_preferences where user_id = $1 order by 1, 2", [u.id]).then((r) => r.rows);

  it("defaults come from the rule until the user chooses", async () => {
    const rows = await select<{ type: string; channel: string; enabled: boolean; is_default: boolean }>(
      user, "select * from notify.notification_settings where type = 'member.role_changed' order by channel");
    expect(rows).toEqual([
      { type: "member.role_changed", channel: "email", enabled: true, is_default: true },
      { type: "member.role_changed", channel: "email_digest", enabled: false, is_default: true },
      { type: "member.role_changed", channel: "in_app", enabled: true, is_default: true },
    ]);
  });

  it("the settings view shows only the caller's own choices; anon cannot read it", async () => {
    await rpc(user, "set_notification_preference", { p_type: "member.role_changed", p_channel: "email", p_enabled: false });
    const q = "select enabled, is_default from notify.notification_settings where type = 'member.role_changed' and channel = 'email'";
    expect(await select(user, q)).toEqual([{ enabled: false, is_default: false }]);
    expect(await select(stranger, q)).toEqual([{ enabled: true, is_default: true }]);
    await expectSqlError(select("anon", "select * from notify.notification_settings"), "42501");
  });

  it("set_notification_preference sets one type × channel for the caller only", async () => {
    await rpc(user, "set_notification_preference", { p_type: "member.role_changed", p_channel: "email", p_enabled: false });
    await rpc(user, "set_notification_preference", { p_type: "api_key.created", p_channel: "email_digest", p_enabled: true });
    expect(await prefs(user)).toEqual([
      { type: "api_key.created", channel: "email_digest", enabled: true },
      { type: "member.role_changed", channel: "email", enabled: false },
    ]);
    const [s] = await select<{ enabled: boolean; is_default: boolean }>(
      user, "select enabled, is_default from notify.notification_settings where type = 'member.role_changed' and channel = 'email'");
    expect(s).toEqual({ enabled: false, is_default: false });
    await rpc(user, "set_notification_preference", { p_type: "member.role_changed", p_channel: "email", p_enabled: true });
    expect((await prefs(user)).find((p) => p.type === "member.role_changed")).toMatchObject({ enabled: true });
    expect(await prefs(stranger)).toEqual([]);
  });

  it("unknown type or channel, or a null choice, is 22023 and changes nothing", async () => {
    const before = await prefs(user);
    await expectSqlError(rpc(user, "set_notification_preference", { p_type: "no.such_type", p_channel: "email", p_enabled: false }), "22023", /unknown notification type/);
    await expectSqlError(rpc(user, "set_notification_preference", { p_type: "org.updated", p_channel: "email", p_enabled: false }), "22023");
    await expectSqlError(rpc(user, "set_notification_preference", { p_type: null, p_channel: "email", p_enabled: false }), "22023");
    await expectSqlError(rpc(user, "set_notification_preference", { p_type: "member.joined", p_channel: "sms", p_enabled: false }), "22023", /unknown channel/);
    await expectSqlError(rpc(user, "set_notification_preference", { p_type: "member.joined", p_channel: "email", p_enabled: null }), "22023");
    expect(await prefs(user)).toEqual(before);
  });

  it("a user reads and writes their own preference rows directly, and never anyone else's", async () => {
    await as(user, (c) => c.query("insert into notify.notification_preferences (user_id, type, channel, enabled) values ($1, 'member.joined', 'in_app', false)", [user.id]));
    expect(await select(user, "select type from notify.notification_preferences where type = 'member.joined'")).toHaveLength(1);
    expect(await select(stranger, "select 1 from notify.notification_preferences where user_id = $1", [user.id])).toEqual([]);
    await expectSqlError(as(stranger, (c) => c.query(
      "insert into notify.notification_preferences (user_id, type, channel, enabled) values ($1, 'member.removed', 'email', false)", [user.id])), "42501");
    const upd = await as(stranger, (c) => c.query("update notify.notification_preferences set enabled = true where user_id = $1", [user.id]));
    expect(upd.rowCount).toBe(0);
    const del = await as(stranger, (c) => c.query("delete from notify.notification_preferences where user_id = $1", [user.id]));
    expect(del.rowCount).toBe(0);
    await expectSqlError(as(user, (c) => c.query("update notify.notification_preferences set user_id = $1 where user_id = $2", [stranger.id, user.id])), "42501");
    expect((await prefs(user)).find((p) => p.type === "member.joined")).toEqual({ type: "member.joined", channel: "in_app", enabled: false });
    await expectSqlError(select("anon", "select 1 from notify.notification_preferences"), "42501");
  });
});
