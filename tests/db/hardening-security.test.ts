// Core hardening (issue #8 §1): API keys follow their creator's rights, custom roles of other
// orgs stay hidden from the role helpers, and an MFA-blocked member learns nothing of the plan.
import { describe, expect, it } from "vitest";
import { addMember, admin, createTeam, createUser, expectSqlError, rpc, select, type TestUser } from "../helpers/db.ts";
import { eventually } from "../helpers/notifications.ts";

async function createKey(who: TestUser, orgId: string, scopes: string[], name = "CI key") {
  const [k] = await rpc<{ api_key_id: string }>(who, "create_api_key", { p_org_id: orgId, p_name: name, p_scopes: scopes });
  return k.api_key_id;
}

async function keyState(id: string) {
  const { rows } = await admin.query<{ revoked_at: Date | null; revoked_reason: string | null }>(
    "select revoked_at, revoked_reason from public.api_keys where id = $1",
    [id],
  );
  return rows[0];
}

async function addCustomRole(orgId: string, key: string, permissions: string[], rank = 25) {
  await admin.query("insert into public.org_roles (org_id, key, name, rank, permissions) values ($1, $2, $3, $4, $5)", [
    orgId, key, key, rank, permissions,
  ]);
}

describe("API keys follow their creator's rights", () => {
  it("removing a member revokes every live key they created, with an audit entry, an event and an owner notification", async () => {
    const team = await createTeam();
    const keeper = await createKey(team.owner, team.orgId, ["content.read"], "owner's key");
    const k1 = await createKey(team.admin, team.orgId, ["content.read"], "reader");
    const k2 = await createKey(team.admin, team.orgId, ["webhooks.manage", "content.write"], "hooks");
    // A second admin removes the first, so the owner is not the actor and is told.
    const remover = await createUser();
    await addMember(team.orgId, remover, "admin");
    await rpc(remover, "remove_member", { p_org_id: team.orgId, p_user_id: team.admin.id });

    for (const k of [k1, k2]) expect(await keyState(k)).toMatchObject({ revoked_at: expect.any(Date), revoked_reason: "creator_removed" });
    expect((await keyState(keeper)).revoked_at).toBeNull();

    const { rows: audit } = await admin.query(
      "select actor_user_id, after from notify.audit_log where org_id = $1 and target_table = 'public.api_keys' and target_id = any($2) and action = 'update'",
      [team.orgId, [k1, k2]],
    );
    expect(audit).toHaveLength(2);
    for (const a of audit) expect(a).toMatchObject({ actor_user_id: remover.id, after: { revoked_reason: "creator_removed" } });

    const { rows: events } = await admin.query("select id, payload from notify.events where org_id = $1 and type = 'member.api_keys_revoked'", [team.orgId]);
    expect(events).toHaveLength(1);
    expect(events[0].payload).toMatchObject({ user_id: team.admin.id, reason: "creator_removed", key_count: 2 });
    expect(events[0].payload.api_keys.map((k: { api_key_id: string }) => k.api_key_id).sort()).toEqual([k1, k2].sort());

    // Once the notifications consumer's receipt for the event is in, everything it wrote for it is committed.
    const receipt = await eventually(async () => {
      const { rows } = await admin.query("select 1 from notify.consumer_receipts where event_id = $1 and consumer = 'notifications'", [events[0].id]);
      return rows.length > 0;
    }, 60_000);
    expect(receipt, "the notifications consumer never took the event").toBe(true);
    const { rows: notes } = await admin.query("select title, body from notify.notifications where user_id = $1 and type = 'member.api_keys_revoked'", [team.owner.id]);
    expect(notes).toHaveLength(1);
    const note = notes[0];
    expect(note?.body).toMatch(/2 API key\(s\).*were revoked because they were removed from the org/);
    expect(note?.body).toContain('"hooks"');
    // Only owners are told: not the remover (the actor), not other members.
    const { rows: others } = await admin.query(
      "select user_id from notify.notifications where org_id = $1 and type = 'member.api_keys_revoked' and user_id <> $2",
      [team.orgId, team.owner.id],
    );
    expect(others).toEqual([]);
  });

  it("leaving revokes the leaver's keys (creator_left); the actor's own key elsewhere is untouched", async () => {
    const team = await createTeam();
    const other = await createTeam();
    const k = await createKey(team.admin, team.orgId, ["content.read"]);
    await addMember(other.orgId, team.admin, "admin");
    const kOther = await createKey(team.admin, other.orgId, ["content.read"]);
    await rpc(team.admin, "leave_org", { p_org_id: team.orgId });
    expect(await keyState(k)).toMatchObject({ revoked_reason: "creator_left", revoked_at: expect.any(Date) });
    expect((await keyState(kOther)).revoked_at).toBeNull();
    const note = await eventually(async () => {
      const { rows } = await admin.query("select body from notify.notifications where user_id = $1 and type = 'member.api_keys_revoked'", [team.owner.id]);
      return rows[0];
    }, 60_000);
    expect(note?.body).toMatch(/because they left the org/);
  });

  it("erasing the creator (user deletion) revokes their keys too; a sole owner's deletion is still refused first", async () => {
    const team = await createTeam();
    const k = await createKey(team.admin, team.orgId, ["content.read"]);
    const ownerKey = await createKey(team.owner, team.orgId, ["content.read"]);
    await admin.query("delete from auth.users where id = $1", [team.admin.id]);
    expect(await keyState(k)).toMatchObject({ revoked_reason: "creator_deleted", revoked_at: expect.any(Date) });
    const { rows } = await admin.query("select payload from notify.events where org_id = $1 and type = 'member.api_keys_revoked'", [team.orgId]);
    expect(rows.map((r) => r.payload.reason)).toEqual(["creator_deleted"]);
    await expectSqlError(admin.query("delete from auth.users where id = $1", [team.owner.id]), "23503", /sole owner/);
    expect((await keyState(ownerKey)).revoked_at).toBeNull();
  });

  it("a demotion revokes only the keys whose scopes the new role lacks", async () => {
    const team = await createTeam();
    const beyond = await createKey(team.admin, team.orgId, ["api_keys.manage", "content.read"], "beyond");
    const within = await createKey(team.admin, team.orgId, ["content.read", "content.write"], "within");
    await rpc(team.owner, "set_member_role", { p_org_id: team.orgId, p_user_id: team.admin.id, p_role: "member" });
    expect(await keyState(beyond)).toMatchObject({ revoked_reason: "creator_lost_permissions", revoked_at: expect.any(Date) });
    expect(await keyState(within)).toMatchObject({ revoked_at: null, revoked_reason: null });
    const { rows } = await admin.query("select payload from notify.events where org_id = $1 and type = 'member.api_keys_revoked'", [team.orgId]);
    expect(rows.map((r) => r.payload.api_keys.map((k: { name: string }) => k.name))).toEqual([["beyond"]]);
    expect(rows[0].payload).toMatchObject({ reason: "creator_lost_permissions", role: "member" });
  });

  it("cutting a custom role's permissions revokes its holders' keys that need the cut permission", async () => {
    const team = await createTeam();
    const ops = await createUser();
    await addCustomRole(team.orgId, "ops", ["api_keys.manage", "webhooks.manage", "content.read"]);
    await addMember(team.orgId, ops, "ops");
    const hooks = await createKey(ops, team.orgId, ["webhooks.manage"], "hooks");
    const reader = await createKey(ops, team.orgId, ["content.read"], "reader");
    await select(team.admin, "update public.org_roles set permissions = '{api_keys.manage,content.read}' where org_id = $1 and key = 'ops'", [team.orgId]);
    expect((await keyState(hooks)).revoked_reason).toBe("creator_lost_permissions");
    expect((await keyState(reader)).revoked_at).toBeNull();
  });

  it("with api_keys_survive_creator on, removal and demotion keep the keys", async () => {
    const team = await createTeam();
    const k1 = await createKey(team.admin, team.orgId, ["api_keys.manage"]);
    const second = await createUser();
    await addMember(team.orgId, second, "admin");
    const k2 = await createKey(second, team.orgId, ["content.read"]);
    const [org] = await rpc<{ api_keys_survive_creator: boolean }>(team.owner, "set_api_keys_survive_creator", { p_org_id: team.orgId, p_survive: true });
    expect(org.api_keys_survive_creator).toBe(true);
    await rpc(team.owner, "set_member_role", { p_org_id: team.orgId, p_user_id: team.admin.id, p_role: "viewer" });
    await rpc(team.owner, "remove_member", { p_org_id: team.orgId, p_user_id: second.id });
    expect((await keyState(k1)).revoked_at).toBeNull();
    expect((await keyState(k2)).revoked_at).toBeNull();
    const { rows } = await admin.query("select 1 from notify.events where org_id = $1 and type = 'member.api_keys_revoked'", [team.orgId]);
    expect(rows).toEqual([]);
  });

  it("the setting is off by default; only an owner may change it (admins and members get 42501, strangers PT404)", async () => {
    const team = await createTeam();
    const stranger = await createUser();
    const read = async () =>
      (await admin.query("select api_keys_survive_creator as v from public.orgs where id = $1", [team.orgId])).rows[0].v;
    expect(await read()).toBe(false);
    await expectSqlError(rpc(team.admin, "set_api_keys_survive_creator", { p_org_id: team.orgId, p_survive: true }), "42501", /only an owner/);
    await expectSqlError(rpc(team.member, "set_api_keys_survive_creator", { p_org_id: team.orgId, p_survive: true }), "42501");
    await expectSqlError(rpc(stranger, "set_api_keys_survive_creator", { p_org_id: team.orgId, p_survive: true }), "PT404");
    await expectSqlError(rpc(team.owner, "set_api_keys_survive_creator", { p_org_id: team.orgId, p_survive: null }), "22023");
    expect(await read()).toBe(false);
    // Nor through the table: clients have no update grant on orgs.
    await expectSqlError(select(team.admin, "update public.orgs set api_keys_survive_creator = true where id = $1", [team.orgId]), "42501");
    expect(await read()).toBe(false);
    await rpc(team.owner, "set_api_keys_survive_creator", { p_org_id: team.orgId, p_survive: true });
    expect(await read()).toBe(true);
    // The flip is in the audit log, with who did it.
    const { rows } = await admin.query(
      "select actor_user_id, before, after from notify.audit_log where org_id = $1 and target_table = 'public.orgs' and action = 'update' and after ? 'api_keys_survive_creator'",
      [team.orgId],
    );
    expect(rows).toEqual([{ actor_user_id: team.owner.id, before: { api_keys_survive_creator: false }, after: { api_keys_survive_creator: true } }]);
  });
});

describe("role helpers answer only for the caller's orgs", () => {
  it("a signed-in user reads their own org's custom role, and nothing of another org's", async () => {
    const mine = await createTeam();
    const theirs = await createTeam();
    await addCustomRole(mine.orgId, "editor", ["content.read", "content.write"], 15);
    await addCustomRole(theirs.orgId, "secret_ops", ["billing.manage", "api_keys.manage"], 33);
    const q = "select private.role_permissions($1, $2) as perms, private.role_rank($1, $2) as rank";
    const [own] = await select(mine.member, q, [mine.orgId, "editor"]);
    expect(own).toEqual({ perms: ["content.read", "content.write"], rank: 15 });
    const [other] = await select(mine.member, q, [theirs.orgId, "secret_ops"]);
    expect(other).toEqual({ perms: [], rank: null });
    // Even the built-in roles answer nothing for an org the caller is not in.
    const [builtin] = await select(mine.member, q, [theirs.orgId, "owner"]);
    expect(builtin).toEqual({ perms: [], rank: null });
    // Internal callers (no client claims) still see any org: the RLS helpers keep working.
    const { rows } = await admin.query(q, [theirs.orgId, "secret_ops"]);
    expect(rows[0]).toEqual({ perms: ["api_keys.manage", "billing.manage"], rank: 33 });
  });

  it("the helpers built on them keep working: my_orgs permissions, custom-role assignment", async () => {
    const team = await createTeam();
    const u = await createUser();
    await addCustomRole(team.orgId, "editor", ["content.read", "content.write"], 15);
    await rpc(team.admin, "set_member_role", { p_org_id: team.orgId, p_user_id: team.viewer.id, p_role: "editor" });
    await addMember(team.orgId, u, "editor");
    const rows = await select<{ role: string; permissions: string[] }>(u, "select role, permissions from public.my_orgs where id = $1", [team.orgId]);
    expect(rows).toEqual([{ role: "editor", permissions: ["content.read", "content.write"] }]);
  });
});

describe("billing answers nothing to an MFA-blocked member", () => {
  it("current_plan, entitled and limit_of: aal1 in an MFA org gets nothing, aal2 gets the plan", async () => {
    const team = await createTeam();
    await admin.query("update public.orgs set require_mfa = true where id = $1", [team.orgId]);
    const q = "select billing.current_plan($1) as plan, billing.entitled($1, 'custom_domain') as domain, billing.limit_of($1, 'seats') as seats";
    const [blocked] = await select(team.member, q, [team.orgId], { aal: "aal1" });
    expect(blocked).toEqual({ plan: null, domain: false, seats: "0" });
    const [allowed] = await select(team.member, q, [team.orgId], { aal: "aal2" });
    const { rows } = await admin.query(q, [team.orgId]);
    expect(allowed).toEqual(rows[0]);
    expect(allowed.plan).toBe("team");
    // Without MFA required, aal1 members get the plan as before.
    const plain = await createTeam();
    const [member] = await select(plain.member, "select billing.current_plan($1) as plan", [plain.orgId]);
    expect(member.plan).toBe("team");
  });

  it("summary refuses an aal1 billing manager of an MFA org and answers at aal2", async () => {
    const team = await createTeam();
    await admin.query("update public.orgs set require_mfa = true where id = $1", [team.orgId]);
    await expectSqlError(select(team.admin, "select billing.summary($1)", [team.orgId], { aal: "aal1" }), "PT404");
    const [ok] = await select<{ s: { plan: { key: string } } }>(team.admin, "select billing.summary($1) as s", [team.orgId], { aal: "aal2" });
    expect(ok.s.plan.key).toBe("team");
  });
});
