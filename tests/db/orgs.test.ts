// Orgs: create_org, update_org, delete_org, the orgs table's RLS, the MFA requirement, and
// the read-only permission and built-in role catalogs.
import { randomUUID } from "node:crypto";
import { beforeAll, describe, expect, it } from "vitest";
import { admin, as, createTeam, createUser, expectSqlError, roleOf, rpc, select, type Team } from "../helpers/db.ts";

const SLUG_RE = /^[a-z0-9][a-z0-9-]{1,62}[a-z0-9]$/;

function tag() {
  return randomUUID().replace(/-/g, "").slice(0, 8);
}

async function orgRow(id: string) {
  const { rows } = await admin.query("select * from public.orgs where id = $1", [id]);
  return rows[0] as Record<string, unknown> | undefined;
}

async function memberCount(orgId: string): Promise<number> {
  const { rows } = await admin.query("select count(*)::int as n from public.org_members where org_id = $1", [orgId]);
  return rows[0].n;
}

async function personalOrgOf(userId: string): Promise<{ id: string; slug: string }> {
  const { rows } = await admin.query("select id, slug from public.orgs where personal_user_id = $1", [userId]);
  expect(rows).toHaveLength(1);
  return rows[0];
}

describe("create_org", () => {
  it("creates a team org with the caller as its only member, an owner, visible in my_orgs", async () => {
    const user = await createUser();
    const t = tag();
    const [org] = await rpc<{ id: string; slug: string; name: string; kind: string; created_by: string; require_mfa: boolean }>(
      user,
      "create_org",
      { p_name: `  Acme & Widgets, Ltd. ${t.toUpperCase()}  ` },
    );
    expect(org).toMatchObject({ kind: "team", name: `Acme & Widgets, Ltd. ${t.toUpperCase()}`, created_by: user.id, require_mfa: false });
    expect(org.slug).toBe(`acme-widgets-ltd-${t}`);
    expect(await roleOf(org.id, user.id)).toBe("owner");
    expect(await memberCount(org.id)).toBe(1);

    const mine = await select(user, "select id, slug, kind, role, has_access, blocked_reason from public.my_orgs where kind = 'team'");
    expect(mine).toEqual([{ id: org.id, slug: org.slug, kind: "team", role: "owner", has_access: true, blocked_reason: null }]);
  });

  it("gives a second org with the same name a different, still valid slug", async () => {
    const [a, b] = await Promise.all([createUser(), createUser()]);
    const name = `Same Name ${tag()}`;
    const [first] = await rpc<{ slug: string }>(a, "create_org", { p_name: name });
    const [second] = await rpc<{ slug: string }>(b, "create_org", { p_name: name });
    expect(second.slug).not.toBe(first.slug);
    expect(second.slug.startsWith(`${first.slug}-`)).toBe(true);
    expect(second.slug).toMatch(SLUG_RE);
  });

  it("pads a name that slugifies to under 3 characters into a valid slug", async () => {
    const user = await createUser();
    // "X" slugifies to "x" and "!!" to "": both need padding. The padding is random, so try a few times.
    for (const name of ["X", "X", "X", "X", "X", "!!"]) {
      const [org] = await rpc<{ slug: string }>(user, "create_org", { p_name: name }).catch((e: Error) => {
        throw new Error(`create_org(${JSON.stringify(name)}) failed: ${e.message}`);
      });
      expect(org.slug, `slug for ${JSON.stringify(name)}`).toMatch(SLUG_RE);
    }
  });

  it("does not end a derived slug with the hyphen where a long name was cut", async () => {
    const user = await createUser();
    // 47 letters, a space, a letter: the slug's 48th character is the hyphen.
    const name = `${tag()}${"x".repeat(39)} b`;
    const [org] = await rpc<{ slug: string }>(user, "create_org", { p_name: name }).catch((e: Error) => {
      throw new Error(`create_org(${JSON.stringify(name)}) failed: ${e.message}`);
    });
    expect(org.slug).toMatch(SLUG_RE);
    expect(org.slug.startsWith(name.slice(0, 47))).toBe(true);
  });

  it("refuses an explicit slug that is taken with 23505 and creates nothing", async () => {
    const [a, b] = await Promise.all([createUser(), createUser()]);
    const slug = `taken-${tag()}`;
    const [org] = await rpc<{ slug: string }>(a, "create_org", { p_name: "First", p_slug: slug });
    expect(org.slug).toBe(slug);
    await expectSqlError(rpc(b, "create_org", { p_name: "Second", p_slug: slug }), "23505", /taken/);
    expect(await select(b, "select id from public.my_orgs where kind = 'team'")).toEqual([]);
    const { rows } = await admin.query("select count(*)::int as n from public.orgs where created_by = $1 and kind = 'team'", [b.id]);
    expect(rows[0].n).toBe(0);
  });

  it("cannot be called by anon", async () => {
    const name = `Anon Org ${tag()}`;
    await expectSqlError(rpc("anon", "create_org", { p_name: name }), "42501", /permission denied for function create_org/);
    const { rows } = await admin.query("select count(*)::int as n from public.orgs where name = $1", [name]);
    expect(rows[0].n).toBe(0);
  });
});

describe("update_org", () => {
  let team: Team;
  beforeAll(async () => {
    team = await createTeam("Update");
  });

  it("an admin (org.manage) renames the org and changes its settings", async () => {
    const team = await createTeam("Rename");
    const before = await orgRow(team.orgId);
    const [updated] = await rpc<{ name: string; settings: unknown }>(team.admin, "update_org", {
      p_org_id: team.orgId,
      p_name: "  Renamed by admin ",
      p_settings: { theme: "dark", seats: 5 },
    });
    expect(updated).toMatchObject({ name: "Renamed by admin", settings: { theme: "dark", seats: 5 } });
    const after = await orgRow(team.orgId);
    expect(after).toMatchObject({ name: "Renamed by admin", settings: { theme: "dark", seats: 5 }, slug: team.slug, require_mfa: false });
    // The updated_at trigger stamped the change: strictly later than before it.
    expect((after!.updated_at as Date).getTime()).toBeGreaterThan((before!.updated_at as Date).getTime());
  });

  it("a member and a viewer get 42501 and nothing changes", async () => {
    const before = await orgRow(team.orgId);
    for (const who of [team.member, team.viewer]) {
      await expectSqlError(
        rpc(who, "update_org", { p_org_id: team.orgId, p_name: "Hijacked", p_settings: { pwned: true } }),
        "42501",
        /org\.manage/,
      );
    }
    expect(await orgRow(team.orgId)).toEqual(before);
  });

  it("a stranger gets PT404 (the org does not exist for them)", async () => {
    const stranger = await createUser();
    const before = await orgRow(team.orgId);
    await expectSqlError(rpc(stranger, "update_org", { p_org_id: team.orgId, p_name: "Hijacked" }), "PT404", /not found/);
    expect(await orgRow(team.orgId)).toEqual(before);
  });

  it("refuses to turn on require_mfa from an aal1 session, allows it from aal2", async () => {
    const t = await createTeam("Mfa switch");
    await expectSqlError(rpc(t.admin, "update_org", { p_org_id: t.orgId, p_require_mfa: true }), "42501", /aal2/);
    expect((await orgRow(t.orgId))!.require_mfa).toBe(false);

    const [updated] = await rpc<{ require_mfa: boolean }>(t.admin, "update_org", { p_org_id: t.orgId, p_require_mfa: true }, { aal: "aal2" });
    expect(updated.require_mfa).toBe(true);
    expect((await orgRow(t.orgId))!.require_mfa).toBe(true);
  });

  it("rejects a malformed slug with 23514 and changes nothing, not even the name sent with it", async () => {
    const before = await orgRow(team.orgId);
    await expectSqlError(
      rpc(team.owner, "update_org", { p_org_id: team.orgId, p_name: "Should not stick", p_slug: "A B" }),
      "23514",
      /check constraint/,
    );
    expect(await orgRow(team.orgId)).toEqual(before);
  });

  it("an owner changes the slug to a valid one", async () => {
    const t = await createTeam("Slug change");
    const slug = `new-slug-${tag()}`;
    await rpc(t.owner, "update_org", { p_org_id: t.orgId, p_slug: slug });
    expect((await orgRow(t.orgId))!.slug).toBe(slug);
  });
});

describe("delete_org", () => {
  it("an owner passing the right slug deletes the org and all its memberships", async () => {
    const t = await createTeam("Doomed");
    expect(await memberCount(t.orgId)).toBe(4);
    await rpc(t.owner, "delete_org", { p_org_id: t.orgId, p_confirm_slug: t.slug });
    expect(await orgRow(t.orgId)).toBeUndefined();
    expect(await memberCount(t.orgId)).toBe(0);
    // The members themselves, and their personal orgs, are untouched.
    expect(await select(t.member, "select kind from public.my_orgs")).toEqual([{ kind: "personal" }]);
  });

  it("refuses a wrong confirmation slug with 22023", async () => {
    const t = await createTeam("Kept");
    await expectSqlError(rpc(t.owner, "delete_org", { p_org_id: t.orgId, p_confirm_slug: `${t.slug}-nope` }), "22023", /slug/);
    await expectSqlError(rpc(t.owner, "delete_org", { p_org_id: t.orgId, p_confirm_slug: null }), "22023");
    expect(await orgRow(t.orgId)).toBeDefined();
    expect(await memberCount(t.orgId)).toBe(4);
  });

  it("an admin cannot delete the org (42501), even with the right slug", async () => {
    const t = await createTeam("Admin delete");
    await expectSqlError(rpc(t.admin, "delete_org", { p_org_id: t.orgId, p_confirm_slug: t.slug }), "42501", /owner/);
    expect(await orgRow(t.orgId)).toBeDefined();
    expect(await memberCount(t.orgId)).toBe(4);
  });

  it("a member and a stranger cannot delete it either", async () => {
    const t = await createTeam("Member delete");
    const stranger = await createUser();
    await expectSqlError(rpc(t.member, "delete_org", { p_org_id: t.orgId, p_confirm_slug: t.slug }), "42501");
    await expectSqlError(rpc(stranger, "delete_org", { p_org_id: t.orgId, p_confirm_slug: t.slug }), "PT404");
    expect(await orgRow(t.orgId)).toBeDefined();
  });

  it("a personal org cannot be deleted by its owner (42501)", async () => {
    const user = await createUser();
    const personal = await personalOrgOf(user.id);
    await expectSqlError(rpc(user, "delete_org", { p_org_id: personal.id, p_confirm_slug: personal.slug }), "42501", /personal/);
    expect(await orgRow(personal.id)).toBeDefined();
    expect(await roleOf(personal.id, user.id)).toBe("owner");
  });
});

describe("orgs RLS", () => {
  it("every member sees their org's row; a stranger sees only their own personal org", async () => {
    const t = await createTeam("Visible");
    const stranger = await createUser();
    for (const who of [t.owner, t.admin, t.member, t.viewer]) {
      expect(await select(who, "select id, slug from public.orgs where id = $1", [t.orgId])).toEqual([{ id: t.orgId, slug: t.slug }]);
    }
    expect(await select(stranger, "select id from public.orgs where id = $1", [t.orgId])).toEqual([]);
    const personal = await personalOrgOf(stranger.id);
    expect(await select(stranger, "select id from public.orgs")).toEqual([{ id: personal.id }]);
  });

  it("an authenticated user cannot insert, update or delete orgs directly (42501), and nothing changes", async () => {
    const t = await createTeam("Direct writes");
    const before = await orgRow(t.orgId);
    const slug = `direct-${tag()}`;
    await expectSqlError(
      as(t.owner, (c) => c.query("insert into public.orgs (slug, name, kind) values ($1, 'Direct', 'team')", [slug])),
      "42501",
      /permission denied/,
    );
    await expectSqlError(
      as(t.owner, (c) => c.query("update public.orgs set name = 'Direct', require_mfa = true where id = $1", [t.orgId])),
      "42501",
      /permission denied/,
    );
    await expectSqlError(as(t.owner, (c) => c.query("delete from public.orgs where id = $1", [t.orgId])), "42501", /permission denied/);
    expect(await orgRow(t.orgId)).toEqual(before);
    const { rows } = await admin.query("select count(*)::int as n from public.orgs where slug = $1", [slug]);
    expect(rows[0].n).toBe(0);
  });
});

describe("an org that requires MFA", () => {
  let t: Team;
  beforeAll(async () => {
    t = await createTeam("Mfa");
    await rpc(t.owner, "update_org", { p_org_id: t.orgId, p_require_mfa: true }, { aal: "aal2" });
    expect((await orgRow(t.orgId))!.require_mfa).toBe(true);
  });

  it("my_orgs is closed to anon (42501)", async () => {
    await expectSqlError(select("anon", "select id from public.my_orgs"), "42501", /permission denied for view my_orgs/);
  });

  it("still shows in my_orgs for an aal1 member, blocked with mfa_required", async () => {
    const rows = await select(t.member, "select id, role, require_mfa, has_access, blocked_reason from public.my_orgs where id = $1", [t.orgId]);
    expect(rows).toEqual([{ id: t.orgId, role: "member", require_mfa: true, has_access: false, blocked_reason: "mfa_required" }]);
    // The org row itself is visible too, so the client can say why.
    expect(await select(t.member, "select id from public.orgs where id = $1", [t.orgId])).toEqual([{ id: t.orgId }]);
  });

  it("lets an aal1 member read only their own membership row", async () => {
    const rows = await select<{ user_id: string }>(t.member, "select user_id from public.org_members where org_id = $1", [t.orgId]);
    expect(rows).toEqual([{ user_id: t.member.id }]);
  });

  it("refuses update_org from aal1 sessions with a multi-factor message, even for an admin", async () => {
    const before = await orgRow(t.orgId);
    await expectSqlError(rpc(t.member, "update_org", { p_org_id: t.orgId, p_name: "Nope" }), "42501", /multi-factor/);
    await expectSqlError(rpc(t.admin, "update_org", { p_org_id: t.orgId, p_name: "Nope" }), "42501", /multi-factor/);
    expect(await orgRow(t.orgId)).toEqual(before);
  });

  it("gives the same member full access with an aal2 session", async () => {
    const rows = await select<{ user_id: string }>(
      t.member,
      "select user_id from public.org_members where org_id = $1 order by user_id",
      [t.orgId],
      { aal: "aal2" },
    );
    expect(rows.map((r) => r.user_id).sort()).toEqual([t.owner.id, t.admin.id, t.member.id, t.viewer.id].sort());
    const mine = await select(t.member, "select has_access, blocked_reason from public.my_orgs where id = $1", [t.orgId], { aal: "aal2" });
    expect(mine).toEqual([{ has_access: true, blocked_reason: null }]);
  });
});

describe("permission and built-in role catalogs", () => {
  it("are readable by authenticated users", async () => {
    const user = await createUser();
    const perms = await select<{ key: string }>(user, "select key from public.permissions order by key");
    expect(perms.map((p) => p.key)).toEqual(
      ["ai.use", "api_keys.manage", "billing.manage", "content.read", "content.write", "members.manage", "org.manage", "webhooks.manage"],
    );
    const roles = await select<{ key: string; rank: number }>(user, "select key, rank from public.builtin_roles order by rank desc");
    expect(roles).toEqual([
      { key: "owner", rank: 40 },
      { key: "admin", rank: 30 },
      { key: "member", rank: 20 },
      { key: "viewer", rank: 10 },
    ]);
  });

  it("are closed to anon (42501)", async () => {
    await expectSqlError(select("anon", "select key from public.permissions"), "42501", /permission denied/);
    await expectSqlError(select("anon", "select key from public.builtin_roles"), "42501", /permission denied/);
  });

  it("cannot be written by authenticated users (42501)", async () => {
    const user = await createUser();
    await expectSqlError(
      as(user, (c) => c.query("insert into public.permissions (key, description) values ('evil.power', 'x')")),
      "42501",
      /permission denied/,
    );
    await expectSqlError(
      as(user, (c) => c.query("insert into public.builtin_roles (key, rank, permissions, description) values ('viewer', 99, '{}', 'x')")),
      "42501",
      /permission denied/,
    );
    await expectSqlError(
      as(user, (c) => c.query("update public.builtin_roles set permissions = array['org.manage'] where key = 'viewer'")),
      "42501",
      /permission denied/,
    );
    const { rows: p } = await admin.query("select count(*)::int as n from public.permissions where key = 'evil.power'");
    expect(p[0].n).toBe(0);
    const { rows: r } = await admin.query("select permissions from public.builtin_roles where key = 'viewer'");
    expect(r[0].permissions).toEqual(["content.read"]);
  });
});
