// The inbox and preferences as clients reach them: RLS on notifications and preferences,
// the mark_read / mark_all_read / unread_count RPCs, and set_notification_preference.
import { beforeAll, describe, expect, it } from "vitest";
import { admin, as, createTeam, createUser, expectSqlError, rpc, select, type Team, type TestUser } from "../helpers/db.ts";
import { insertNotification } from "../helpers/notifications.ts";

let team: Team;
let other: Team;
let mine: string[]; // the member's, in team
let elsewhere: string; // the member's, in other
let owners: string; // the owner's

const unread = async (u: TestUser) => Number((await rpc<{ unread_count: number }>(u, "unread_count"))[0].unread_count);
const readAt = async (id: string) => (await admin.query("select read_at from notify.notifications where id = $1", [id])).rows[0].read_at;

beforeAll(async () => {
  [team, other] = await Promise.all([createTeam("Inbox"), createTeam("Other")]);
  await admin.query("insert into public.org_members (org_id, user_id, role) values ($1, $2, 'member')", [other.orgId, team.member.id]);
  mine = [await insertNotification(team.orgId, team.member.id), await insertNotification(team.orgId, team.member.id)];
  elsewhere = await insertNotification(other.orgId, team.member.id);
  owners = await insertNotification(team.orgId, team.owner.id);
});

describe("notifications RLS", () => {
  it("a user reads only their own notifications", async () => {
    const rows = await select<{ id: string }>(team.member, "select id from notify.notifications");
    expect(rows.map((r) => r.id).sort()).toEqual([...mine, elsewhere].sort());
    expect(await select(team.owner, "select id from notify.notifications where id = $1", [mine[0]])).toEqual([]);
  });

  it("anon reads nothing", async () => {
    await expectSqlError(select("anon", "select id from notify.notifications"), "42501");
  });

  it("a user archives their own through the column grant, and cannot touch anyone else's", async () => {
    const n = await as(team.member, (c) => c.query("update notify.notifications set archived_at = now() where id = $1", [mine[1]]));
    expect(n.rowCount).toBe(1);
    await admin.query("update notify.notifications set archived_at = null where id = $1", [mine[1]]);
    const none = await as(team.member, (c) => c.query("update notify.notifications set read_at = now() where id = $1", [owners]));
    expect(none.rowCount).toBe(0);
    expect(await readAt(owners)).toBeNull();
  });

  it("clients cannot insert, delete, or change any other column", async () => {
    await expectSqlError(as(team.member, (c) => c.query("update notify.notifications set title = 'x' where id = $1", [mine[0]])), "42501");
    await expectSqlError(as(team.member, (c) => c.query(
      "insert into notify.notifications (org_id, user_id, type, title, body) values ($1, $2, 'member.joined', 't', 'b')",
      [team.orgId, team.member.id],
    )), "42501");
    await expectSqlError(as(team.member, (c) => c.query("delete from notify.notifications where id = $1", [mine[0]])), "42501");
  });
});

describe("unread_count, mark_read, mark_all_read", () => {
  it("unread_count counts the caller's unread, unarchived notifications", async () => {
    expect(await unread(team.member)).toBe(3);
    expect(await unread(team.owner)).toBeGreaterThanOrEqual(1);
    expect(await unread(await createUser())).toBe(0);
  });

  it("unread_count is an index-only scan on the partial index", async () => {
    await admin.query("vacuum analyze notify.notifications"); // sets the visibility map index-only scans rely on
    const c = await admin.connect();
    try {
      await c.query("begin");
      await c.query("set local enable_seqscan = off");
      const { rows } = await c.query(
        `explain select count(*) from notify.notifications n where n.user_id = $1 and n.read_at is null and n.archived_at is null`,
        [team.member.id],
      );
      expect(rows.map((r) => r["QUERY PLAN"]).join("\n")).toMatch(/Index Only Scan using notifications_unread_idx/);
    } finally {
      await c.query("rollback").catch(() => {});
      c.release();
    }
  });

  it("anon cannot call them", async () => {
    await expectSqlError(rpc("anon", "unread_count"), "42501");
    await expectSqlError(rpc("anon", "mark_all_read"), "42501");
  });

  it("mark_read refuses someone else's notification, even mixed with own ones, and changes nothing", async () => {
    await expectSqlError(rpc(team.member, "mark_read", { p_ids: [owners] }), "PT404", /not found/);
    await expectSqlError(rpc(team.member, "mark_read", { p_ids: [mine[0], owners] }), "PT404");
    expect(await readAt(mine[0])).toBeNull();
    expect(await readAt(owners)).toBeNull();
  });

  it("mark_read refuses empty, null and oversized input with 22023", async () => {
    await expectSqlError(rpc(team.member, "mark_read", { p_ids: [] }), "22023");
    await expectSqlError(rpc(team.member, "mark_read", { p_ids: null }), "22023");
    const many = Array.from({ length: 1001 }, () => crypto.randomUUID());
    await expectSqlError(rpc(team.member, "mark_read", { p_ids: many }), "22023");
    expect(await unread(team.member)).toBe(3);
  });

  it("mark_read marks the caller's own and reports how many changed", async () => {
    const [r] = await rpc<{ mark_read: number }>(team.member, "mark_read", { p_ids: [mine[0], mine[0]] });
    expect(r.mark_read).toBe(1);
    expect(await readAt(mine[0])).not.toBeNull();
    expect(await unread(team.member)).toBe(2);
    const [again] = await rpc<{ mark_read: number }>(team.member, "mark_read", { p_ids: [mine[0]] });
    expect(again.mark_read).toBe(0);
  });

  it("mark_all_read for one org leaves the others; without an org, marks all; never anyone else's", async () => {
    const [one] = await rpc<{ mark_all_read: number }>(team.member, "mark_all_read", { p_org_id: team.orgId });
    expect(one.mark_all_read).toBe(1);
    expect(await readAt(elsewhere)).toBeNull();
    const [all] = await rpc<{ mark_all_read: number }>(team.member, "mark_all_read");
    expect(all.mark_all_read).toBe(1);
    expect(await unread(team.member)).toBe(0);
    expect(await readAt(owners)).toBeNull();
  });
});

describe("preferences", () => {
  let user: TestUser;
  let stranger: TestUser;
  beforeAll(async () => {
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
