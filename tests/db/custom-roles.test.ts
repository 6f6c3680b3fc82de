import { describe, expect, it } from "vitest";
import { addMember, admin, as, createTeam, createUser, expectSqlError, roleOf, rpc, select, type TestUser } from "../helpers/db.ts";

interface RoleInput {
  key: string;
  name?: string;
  rank: number;
  permissions: string[];
  description?: string;
}

/** Inserts a custom role as the caller, like a PostgREST insert with return=representation. */
function insertRole(who: TestUser, orgId: string, role: RoleInput) {
  return as(who, async (c) => {
    const { rows } = await c.query(
      `insert into public.org_roles (org_id, key, name, description, rank, permissions)
       values ($1, $2, $3, $4, $5, $6) returning id, org_id, key, rank, permissions`,
      [orgId, role.key, role.name ?? role.key, role.description ?? null, role.rank, role.permissions],
    );
    return rows[0] as { id: string; org_id: string; key: string; rank: number; permissions: string[] };
  });
}

async function roleRow(id: string) {
  const { rows } = await admin.query("select * from public.org_roles where id = $1", [id]);
  return rows[0];
}

async function rolesOf(orgId: string) {
  const { rows } = await admin.query("select key from public.org_roles where org_id = $1 order by key", [orgId]);
  return rows.map((r) => r.key as string);
}

async function hasPermission(who: TestUser, orgId: string, permission: string) {
  const [row] = await select<{ ok: boolean }>(who, "select private.has_permission($1, $2) as ok", [orgId, permission]);
  return row.ok;
}

describe("creating custom roles", () => {
  it("an admin adds a role ranked below admin with a subset of admin's permissions", async () => {
    const team = await createTeam();
    const role = await insertRole(team.admin, team.orgId, {
      key: "billing_clerk",
      name: "Billing clerk",
      rank: 15,
      permissions: ["content.read", "billing.manage", "content.read"],
    });
    expect(role).toMatchObject({ org_id: team.orgId, key: "billing_clerk", rank: 15 });
    // Stored de-duplicated and sorted.
    expect(role.permissions).toEqual(["billing.manage", "content.read"]);
    expect(await rolesOf(team.orgId)).toEqual(["billing_clerk"]);
  });

  it("the owner may add a role ranked above admin", async () => {
    const team = await createTeam();
    const role = await insertRole(team.owner, team.orgId, { key: "deputy", rank: 35, permissions: ["org.manage", "members.manage"] });
    expect(role.rank).toBe(35);
  });

  it("members and viewers cannot add roles (42501 row-level security)", async () => {
    const team = await createTeam();
    await expectSqlError(
      insertRole(team.member, team.orgId, { key: "helper", rank: 5, permissions: ["content.read"] }),
      "42501",
      /new row violates row-level security policy/,
    );
    await expectSqlError(
      insertRole(team.viewer, team.orgId, { key: "helper", rank: 5, permissions: [] }),
      "42501",
      /new row violates row-level security policy/,
    );
    expect(await rolesOf(team.orgId)).toEqual([]);
  });

  it("a stranger cannot add roles to someone else's org", async () => {
    const team = await createTeam();
    const stranger = await createUser();
    await expectSqlError(
      insertRole(stranger, team.orgId, { key: "mole", rank: 1, permissions: [] }),
      "42501",
      /row-level security/,
    );
    expect(await rolesOf(team.orgId)).toEqual([]);
  });

  it("an admin cannot add a role ranked at or above their own (rank >= 30)", async () => {
    const team = await createTeam();
    for (const rank of [30, 35, 39]) {
      await expectSqlError(
        insertRole(team.admin, team.orgId, { key: `high_${rank}`, rank, permissions: ["content.read"] }),
        "42501",
        /row-level security/,
      );
    }
    expect(await rolesOf(team.orgId)).toEqual([]);
  });

  it("a manager cannot grant permissions they lack through a new role", async () => {
    const team = await createTeam();
    await admin.query(
      `insert into public.org_roles (org_id, key, name, rank, permissions)
       values ($1, 'people_lead', 'People lead', 25, '{members.manage,content.read}')`,
      [team.orgId],
    );
    const lead = await createUser();
    await addMember(team.orgId, lead, "people_lead");
    await expectSqlError(
      insertRole(lead, team.orgId, { key: "payer", rank: 5, permissions: ["billing.manage"] }),
      "42501",
      /row-level security/,
    );
    // Nor at their own rank.
    await expectSqlError(
      insertRole(lead, team.orgId, { key: "peer", rank: 25, permissions: ["content.read"] }),
      "42501",
      /row-level security/,
    );
    const ok = await insertRole(lead, team.orgId, { key: "reader", rank: 5, permissions: ["content.read"] });
    expect(ok.key).toBe("reader");
    expect(await rolesOf(team.orgId)).toEqual(["people_lead", "reader"]);
  });

  it("refuses permissions that are not in the catalog (22023)", async () => {
    const team = await createTeam();
    await expectSqlError(
      insertRole(team.admin, team.orgId, { key: "weird", rank: 5, permissions: ["content.read", "content.delete_everything"] }),
      "22023",
      /unknown permission/,
    );
    expect(await rolesOf(team.orgId)).toEqual([]);
  });

  it("refuses a built-in key such as 'owner' (23514) and a duplicate key (23505)", async () => {
    const team = await createTeam();
    for (const key of ["owner", "admin", "member", "viewer"]) {
      await expectSqlError(insertRole(team.admin, team.orgId, { key, rank: 5, permissions: [] }), "23514", /check constraint/);
    }
    await insertRole(team.admin, team.orgId, { key: "auditor", rank: 5, permissions: ["content.read"] });
    await expectSqlError(insertRole(team.admin, team.orgId, { key: "auditor", rank: 6, permissions: [] }), "23505");
    expect(await rolesOf(team.orgId)).toEqual(["auditor"]);
  });
});

describe("reading custom roles", () => {
  it("members of the org read its custom roles; strangers and other orgs' members read none", async () => {
    const team = await createTeam();
    const other = await createTeam("Other");
    const stranger = await createUser();
    const role = await insertRole(team.admin, team.orgId, { key: "auditor", rank: 5, permissions: ["content.read"] });
    const otherRole = await insertRole(other.admin, other.orgId, { key: "auditor", rank: 5, permissions: ["content.read"] });
    for (const who of [team.owner, team.admin, team.member, team.viewer]) {
      const rows = await select<{ id: string }>(who, "select id, key from public.org_roles");
      expect(rows).toEqual([{ id: role.id, key: "auditor" }]);
    }
    expect(await select(stranger, "select id from public.org_roles")).toEqual([]);
    expect((await select<{ id: string }>(other.member, "select id from public.org_roles")).map((r) => r.id)).toEqual([otherRole.id]);
  });
});

describe("assigning and removing custom roles", () => {
  it("set_member_role assigns a custom role and has_permission follows its permissions", async () => {
    const team = await createTeam();
    await insertRole(team.admin, team.orgId, { key: "billing_clerk", rank: 15, permissions: ["billing.manage", "content.read"] });
    expect(await hasPermission(team.member, team.orgId, "billing.manage")).toBe(false);
    expect(await hasPermission(team.member, team.orgId, "content.write")).toBe(true);

    await rpc(team.admin, "set_member_role", { p_org_id: team.orgId, p_user_id: team.member.id, p_role: "billing_clerk" });
    expect(await roleOf(team.orgId, team.member.id)).toBe("billing_clerk");
    expect(await hasPermission(team.member, team.orgId, "billing.manage")).toBe(true);
    expect(await hasPermission(team.member, team.orgId, "content.read")).toBe(true);
    expect(await hasPermission(team.member, team.orgId, "content.write")).toBe(false);
    expect(await hasPermission(team.member, team.orgId, "members.manage")).toBe(false);
    const [mine] = await select<{ role: string; permissions: string[] }>(
      team.member,
      "select role, permissions from public.my_orgs where id = $1",
      [team.orgId],
    );
    expect(mine).toEqual({ role: "billing_clerk", permissions: ["billing.manage", "content.read"] });
  });

  it("changing a role's permissions changes what its holders may do", async () => {
    const team = await createTeam();
    const role = await insertRole(team.admin, team.orgId, { key: "writer", rank: 15, permissions: ["content.read"] });
    await rpc(team.admin, "set_member_role", { p_org_id: team.orgId, p_user_id: team.member.id, p_role: "writer" });
    expect(await hasPermission(team.member, team.orgId, "content.write")).toBe(false);
    const res = await as(team.admin, (c) =>
      c.query("update public.org_roles set permissions = '{content.read,content.write}' where id = $1", [role.id]),
    );
    expect(res.rowCount).toBe(1);
    expect(await hasPermission(team.member, team.orgId, "content.write")).toBe(true);
  });

  it("a role still assigned cannot be deleted (23503); once reassigned, it can", async () => {
    const team = await createTeam();
    const role = await insertRole(team.admin, team.orgId, { key: "billing_clerk", rank: 15, permissions: ["billing.manage"] });
    await rpc(team.admin, "set_member_role", { p_org_id: team.orgId, p_user_id: team.member.id, p_role: "billing_clerk" });
    await expectSqlError(
      as(team.admin, (c) => c.query("delete from public.org_roles where id = $1", [role.id])),
      "23503",
      /still assigned/,
    );
    expect(await roleRow(role.id)).toBeDefined();
    // Nor renamed from under its holders.
    await expectSqlError(
      as(team.admin, (c) => c.query("update public.org_roles set key = 'renamed' where id = $1", [role.id])),
      "23503",
      /still assigned/,
    );
    expect((await roleRow(role.id)).key).toBe("billing_clerk");

    await rpc(team.admin, "set_member_role", { p_org_id: team.orgId, p_user_id: team.member.id, p_role: "member" });
    const res = await as(team.admin, (c) => c.query("delete from public.org_roles where id = $1", [role.id]));
    expect(res.rowCount).toBe(1);
    expect(await roleRow(role.id)).toBeUndefined();
  });

  it("an assigned role cannot be moved to another org, leaving its holders with an unknown role", async () => {
    const team = await createTeam();
    const other = await createTeam("Other");
    await addMember(other.orgId, team.admin, "admin");
    const role = await insertRole(team.admin, team.orgId, { key: "billing_clerk", rank: 15, permissions: ["billing.manage"] });
    await rpc(team.admin, "set_member_role", { p_org_id: team.orgId, p_user_id: team.member.id, p_role: "billing_clerk" });
    // Clients have no update grant on org_id at all.
    await expectSqlError(
      as(team.admin, (c) => c.query("update public.org_roles set org_id = $2 where id = $1", [role.id, other.orgId])),
      "42501",
      /permission denied for table org_roles/,
    );
    expect((await roleRow(role.id)).org_id).toBe(team.orgId);
    // And a writer that has one (the database owner, the service role) meets the in-use guard.
    await expectSqlError(
      admin.query("update public.org_roles set org_id = $2 where id = $1", [role.id, other.orgId]),
      "23503",
      /still assigned to members or pending invitations/,
    );
    expect((await roleRow(role.id)).org_id).toBe(team.orgId);
    expect(await hasPermission(team.member, team.orgId, "billing.manage")).toBe(true);
  });

  it("members cannot update or delete custom roles (0 rows, row unchanged)", async () => {
    const team = await createTeam();
    const role = await insertRole(team.admin, team.orgId, { key: "auditor", rank: 5, permissions: ["content.read"] });
    for (const who of [team.member, team.viewer]) {
      const upd = await as(who, (c) =>
        c.query("update public.org_roles set rank = 25, permissions = '{content.read,content.write}' where id = $1", [role.id]),
      );
      expect(upd.rowCount).toBe(0);
      const del = await as(who, (c) => c.query("delete from public.org_roles where id = $1", [role.id]));
      expect(del.rowCount).toBe(0);
    }
    const row = await roleRow(role.id);
    expect(row).toMatchObject({ key: "auditor", rank: 5, permissions: ["content.read"] });
  });

  it("an admin cannot raise a role to their own rank, nor touch a role ranked above them", async () => {
    const team = await createTeam();
    const low = await insertRole(team.admin, team.orgId, { key: "auditor", rank: 5, permissions: ["content.read"] });
    await expectSqlError(
      as(team.admin, (c) => c.query("update public.org_roles set rank = 30 where id = $1", [low.id])),
      "42501",
      /row-level security/,
    );
    expect((await roleRow(low.id)).rank).toBe(5);

    const high = await insertRole(team.owner, team.orgId, { key: "deputy", rank: 35, permissions: ["members.manage"] });
    const upd = await as(team.admin, (c) => c.query("update public.org_roles set rank = 1 where id = $1", [high.id]));
    expect(upd.rowCount).toBe(0);
    const del = await as(team.admin, (c) => c.query("delete from public.org_roles where id = $1", [high.id]));
    expect(del.rowCount).toBe(0);
    expect((await roleRow(high.id)).rank).toBe(35);
  });
});

describe("escalation through an update", () => {
  async function teamWithLead() {
    const team = await createTeam();
    await admin.query(
      `insert into public.org_roles (org_id, key, name, rank, permissions)
       values ($1, 'people_lead', 'People lead', 25, '{members.manage,content.read,content.write}')`,
      [team.orgId],
    );
    const lead = await createUser();
    await addMember(team.orgId, lead, "people_lead");
    const reader = await insertRole(lead, team.orgId, { key: "reader", rank: 5, permissions: ["content.read"] });
    return { team, lead, reader };
  }

  it("a manager cannot add a permission they lack to an existing role (42501, row unchanged)", async () => {
    const { team, lead, reader } = await teamWithLead();
    const before = await roleRow(reader.id);
    for (const perms of ["{content.read,billing.manage}", "{members.manage,org.manage}", "{webhooks.manage}"]) {
      await expectSqlError(
        as(lead, (c) => c.query("update public.org_roles set permissions = $2 where id = $1", [reader.id, perms])),
        "42501",
        /new row violates row-level security policy/,
      );
    }
    const after = await roleRow(reader.id);
    expect(after.permissions).toEqual(["content.read"]);
    expect(after.updated_at).toEqual(before.updated_at);
    // Whoever holds the role gains nothing either.
    await rpc(lead, "set_member_role", { p_org_id: team.orgId, p_user_id: team.viewer.id, p_role: "reader" });
    expect(await hasPermission(team.viewer, team.orgId, "billing.manage")).toBe(false);
  });

  it("the same manager may change the role within their own permissions", async () => {
    const { lead, reader } = await teamWithLead();
    const res = await as(lead, (c) =>
      c.query("update public.org_roles set permissions = '{content.write,content.read,members.manage}' where id = $1", [reader.id]),
    );
    expect(res.rowCount).toBe(1);
    expect((await roleRow(reader.id)).permissions).toEqual(["content.read", "content.write", "members.manage"]);
  });
});

describe("a role named by a pending invitation", () => {
  async function invitedRole() {
    const team = await createTeam();
    const role = await insertRole(team.admin, team.orgId, { key: "billing_clerk", rank: 15, permissions: ["billing.manage"] });
    const [inv] = await rpc<{ invitation_id: string }>(team.admin, "invite_member", {
      p_org_id: team.orgId,
      p_email: `clerk-${role.id.slice(0, 8)}@test.local`,
      p_role: "billing_clerk",
    });
    // Nobody holds the role: only the invitation names it.
    const { rows } = await admin.query("select count(*)::int as n from public.org_members where org_id = $1 and role = 'billing_clerk'", [
      team.orgId,
    ]);
    expect(rows[0].n).toBe(0);
    return { team, role, invitationId: inv.invitation_id };
  }

  it("cannot be deleted or renamed (23503) while the invitation is pending; the row stays as it was", async () => {
    const { team, role, invitationId } = await invitedRole();
    const before = await roleRow(role.id);
    await expectSqlError(
      as(team.admin, (c) => c.query("delete from public.org_roles where id = $1", [role.id])),
      "23503",
      /still assigned to members or pending invitations/,
    );
    await expectSqlError(
      as(team.admin, (c) => c.query("update public.org_roles set key = 'renamed' where id = $1", [role.id])),
      "23503",
      /still assigned to members or pending invitations/,
    );
    expect(await roleRow(role.id)).toEqual(before);
    const { rows } = await admin.query("select role, revoked_at, accepted_at from public.invitations where id = $1", [invitationId]);
    expect(rows).toEqual([{ role: "billing_clerk", revoked_at: null, accepted_at: null }]);
  });

  it("can be renamed and deleted once the invitation is revoked", async () => {
    const { team, role, invitationId } = await invitedRole();
    await rpc(team.admin, "revoke_invitation", { p_invitation_id: invitationId });
    const upd = await as(team.admin, (c) => c.query("update public.org_roles set key = 'renamed' where id = $1", [role.id]));
    expect(upd.rowCount).toBe(1);
    const del = await as(team.admin, (c) => c.query("delete from public.org_roles where id = $1", [role.id]));
    expect(del.rowCount).toBe(1);
    expect(await roleRow(role.id)).toBeUndefined();
  });
});
