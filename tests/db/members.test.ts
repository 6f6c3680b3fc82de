// Memberships: set_member_role, remove_member, leave_org, transfer_ownership, the owner and
// personal-org invariants (for RPCs, direct writes and races), GDPR erasure, and org_members RLS.
import { describe, expect, it } from "vitest";
import { admin, as, createTeam, createUser, expectSqlError, roleOf, rpc, select, type Team } from "../helpers/db.ts";

async function rolesIn(orgId: string): Promise<Record<string, string>> {
  const { rows } = await admin.query("select user_id, role from public.org_members where org_id = $1", [orgId]);
  return Object.fromEntries(rows.map((r) => [r.user_id, r.role]));
}

async function ownerCount(orgId: string): Promise<number> {
  const { rows } = await admin.query("select count(*)::int as n from public.org_members where org_id = $1 and role = 'owner'", [orgId]);
  return rows[0].n;
}

async function personalOrgId(userId: string): Promise<string | undefined> {
  const { rows } = await admin.query("select id from public.orgs where personal_user_id = $1", [userId]);
  return rows[0]?.id;
}

/** A team whose admin has been made a second owner (by the owner, through the RPC). */
async function twoOwnerTeam(name: string): Promise<Team> {
  const t = await createTeam(name);
  await rpc(t.owner, "set_member_role", { p_org_id: t.orgId, p_user_id: t.admin.id, p_role: "owner" });
  expect(await ownerCount(t.orgId)).toBe(2);
  return t;
}

function escapeRe(s: string) {
  return s.replace(/[.*+?^${}()|[\]\\]/g, "\\$&");
}

describe("set_member_role", () => {
  it("an admin promotes a member to admin", async () => {
    const t = await createTeam("Promote");
    await rpc(t.admin, "set_member_role", { p_org_id: t.orgId, p_user_id: t.member.id, p_role: "admin" });
    expect(await roleOf(t.orgId, t.member.id)).toBe("admin");
  });

  it("an admin cannot grant owner (42501)", async () => {
    const t = await createTeam("No owner grant");
    await expectSqlError(
      rpc(t.admin, "set_member_role", { p_org_id: t.orgId, p_user_id: t.member.id, p_role: "owner" }),
      "42501",
      /outranks/,
    );
    expect(await roleOf(t.orgId, t.member.id)).toBe("member");
    expect(await ownerCount(t.orgId)).toBe(1);
  });

  it("an admin cannot act on an owner (42501)", async () => {
    const t = await createTeam("No owner demote");
    for (const role of ["admin", "member", "viewer"]) {
      await expectSqlError(
        rpc(t.admin, "set_member_role", { p_org_id: t.orgId, p_user_id: t.owner.id, p_role: role }),
        "42501",
        /outranks/,
      );
    }
    expect(await roleOf(t.orgId, t.owner.id)).toBe("owner");
  });

  it("a member (no members.manage) cannot change roles (42501)", async () => {
    const t = await createTeam("Member tries");
    await expectSqlError(
      rpc(t.member, "set_member_role", { p_org_id: t.orgId, p_user_id: t.viewer.id, p_role: "member" }),
      "42501",
      /members\.manage/,
    );
    expect(await roleOf(t.orgId, t.viewer.id)).toBe("viewer");
  });

  it("nobody changes their own role this way (42501)", async () => {
    const t = await createTeam("Self");
    const before = await rolesIn(t.orgId);
    await expectSqlError(
      rpc(t.owner, "set_member_role", { p_org_id: t.orgId, p_user_id: t.owner.id, p_role: "admin" }),
      "42501",
      /your own membership/,
    );
    await expectSqlError(
      rpc(t.admin, "set_member_role", { p_org_id: t.orgId, p_user_id: t.admin.id, p_role: "owner" }),
      "42501",
      /your own membership/,
    );
    await expectSqlError(rpc(t.member, "set_member_role", { p_org_id: t.orgId, p_user_id: t.member.id, p_role: "admin" }), "42501");
    await expectSqlError(rpc(t.viewer, "set_member_role", { p_org_id: t.orgId, p_user_id: t.viewer.id, p_role: "member" }), "42501");
    expect(await rolesIn(t.orgId)).toEqual(before);
  });

  it("refuses an unknown role with 22023", async () => {
    const t = await createTeam("Unknown role");
    await expectSqlError(
      rpc(t.admin, "set_member_role", { p_org_id: t.orgId, p_user_id: t.member.id, p_role: "superuser" }),
      "22023",
      /unknown role/,
    );
    expect(await roleOf(t.orgId, t.member.id)).toBe("member");
  });

  it("an owner demotes another owner while two exist, but the last owner cannot be demoted", async () => {
    const t = await twoOwnerTeam("Two owners");
    await rpc(t.owner, "set_member_role", { p_org_id: t.orgId, p_user_id: t.admin.id, p_role: "admin" });
    expect(await roleOf(t.orgId, t.admin.id)).toBe("admin");
    expect(await ownerCount(t.orgId)).toBe(1);

    // The last owner: not by themselves, not by the (now) admin.
    await expectSqlError(rpc(t.owner, "set_member_role", { p_org_id: t.orgId, p_user_id: t.owner.id, p_role: "admin" }), "42501");
    await expectSqlError(rpc(t.admin, "set_member_role", { p_org_id: t.orgId, p_user_id: t.owner.id, p_role: "admin" }), "42501");
    expect(await roleOf(t.orgId, t.owner.id)).toBe("owner");
    expect(await ownerCount(t.orgId)).toBe(1);
  });
});

describe("remove_member", () => {
  it("an admin removes a viewer", async () => {
    const t = await createTeam("Remove viewer");
    await rpc(t.admin, "remove_member", { p_org_id: t.orgId, p_user_id: t.viewer.id });
    expect(await roleOf(t.orgId, t.viewer.id)).toBeUndefined();
    expect(Object.keys(await rolesIn(t.orgId)).sort()).toEqual([t.owner.id, t.admin.id, t.member.id].sort());
    // The viewer keeps their own personal org.
    expect(await select(t.viewer, "select kind from public.my_orgs")).toEqual([{ kind: "personal" }]);
  });

  it("a viewer cannot remove anyone (42501)", async () => {
    const t = await createTeam("Viewer removes");
    const before = await rolesIn(t.orgId);
    await expectSqlError(rpc(t.viewer, "remove_member", { p_org_id: t.orgId, p_user_id: t.member.id }), "42501", /members\.manage/);
    expect(await rolesIn(t.orgId)).toEqual(before);
  });

  it("an admin cannot remove an owner (42501)", async () => {
    const t = await createTeam("Admin removes owner");
    await expectSqlError(rpc(t.admin, "remove_member", { p_org_id: t.orgId, p_user_id: t.owner.id }), "42501", /outranks/);
    expect(await roleOf(t.orgId, t.owner.id)).toBe("owner");
  });

  it("removing someone who is not a member gives PT404", async () => {
    const t = await createTeam("Remove stranger");
    const stranger = await createUser();
    const before = await rolesIn(t.orgId);
    await expectSqlError(rpc(t.admin, "remove_member", { p_org_id: t.orgId, p_user_id: stranger.id }), "PT404", /not a member/);
    expect(await rolesIn(t.orgId)).toEqual(before);
    expect(await roleOf((await personalOrgId(stranger.id))!, stranger.id)).toBe("owner");
  });
});

describe("leave_org", () => {
  it("a member leaves", async () => {
    const t = await createTeam("Member leaves");
    await rpc(t.member, "leave_org", { p_org_id: t.orgId });
    expect(await roleOf(t.orgId, t.member.id)).toBeUndefined();
    expect(await select(t.member, "select id from public.my_orgs where id = $1", [t.orgId])).toEqual([]);
    expect(Object.keys(await rolesIn(t.orgId))).toHaveLength(3);
  });

  it("the last owner cannot leave (23514) and nothing changes", async () => {
    const t = await createTeam("Last owner");
    const before = await rolesIn(t.orgId);
    await expectSqlError(rpc(t.owner, "leave_org", { p_org_id: t.orgId }), "23514", /owner/);
    expect(await rolesIn(t.orgId)).toEqual(before);
  });

  it("an owner leaves when another owner remains", async () => {
    const t = await twoOwnerTeam("Owner leaves");
    await rpc(t.owner, "leave_org", { p_org_id: t.orgId });
    expect(await roleOf(t.orgId, t.owner.id)).toBeUndefined();
    expect(await roleOf(t.orgId, t.admin.id)).toBe("owner");
    expect(await ownerCount(t.orgId)).toBe(1);
  });

  it("nobody can leave their personal org (42501)", async () => {
    const user = await createUser();
    const personal = (await personalOrgId(user.id))!;
    await expectSqlError(rpc(user, "leave_org", { p_org_id: personal }), "42501", /personal/);
    expect(await roleOf(personal, user.id)).toBe("owner");
  });
});

describe("transfer_ownership", () => {
  it("an owner hands the org to an admin and becomes an admin", async () => {
    const t = await createTeam("Transfer");
    await rpc(t.owner, "transfer_ownership", { p_org_id: t.orgId, p_new_owner: t.admin.id });
    expect(await roleOf(t.orgId, t.admin.id)).toBe("owner");
    expect(await roleOf(t.orgId, t.owner.id)).toBe("admin");
    expect(await ownerCount(t.orgId)).toBe(1);
  });

  it("an admin cannot transfer ownership (42501)", async () => {
    const t = await createTeam("Admin transfer");
    const before = await rolesIn(t.orgId);
    await expectSqlError(rpc(t.admin, "transfer_ownership", { p_org_id: t.orgId, p_new_owner: t.member.id }), "42501", /owner/);
    expect(await rolesIn(t.orgId)).toEqual(before);
  });

  it("refuses a new owner who is not a member (PT404)", async () => {
    const t = await createTeam("Transfer stranger");
    const stranger = await createUser();
    const before = await rolesIn(t.orgId);
    await expectSqlError(rpc(t.owner, "transfer_ownership", { p_org_id: t.orgId, p_new_owner: stranger.id }), "PT404", /member/);
    expect(await rolesIn(t.orgId)).toEqual(before);
  });
});

describe("invariants on direct writes by the database owner", () => {
  it("a personal org has exactly one member: adding a second fails at commit with 23514", async () => {
    const [user, other] = await Promise.all([createUser(), createUser()]);
    const personal = (await personalOrgId(user.id))!;
    await expectSqlError(
      admin.query("insert into public.org_members (org_id, user_id, role) values ($1, $2, 'member')", [personal, other.id]),
      "23514",
      /personal org/,
    );
    expect(await rolesIn(personal)).toEqual({ [user.id]: "owner" });
  });

  it("deleting the only owner's membership fails at commit with 23514", async () => {
    const t = await createTeam("Direct delete owner");
    const before = await rolesIn(t.orgId);
    const c = await admin.connect();
    try {
      await c.query("begin");
      const del = await c.query("delete from public.org_members where org_id = $1 and user_id = $2", [t.orgId, t.owner.id]);
      expect(del.rowCount).toBe(1); // the check is deferred to commit
      await expectSqlError(c.query("commit"), "23514", /at least one owner/);
    } finally {
      await c.query("rollback").catch(() => {});
      c.release();
    }
    expect(await rolesIn(t.orgId)).toEqual(before);
  });
});

describe("races", () => {
  it("two owners demoting each other at once: exactly one wins and one owner remains", async () => {
    for (let round = 0; round < 3; round++) {
      const t = await twoOwnerTeam(`Race demote ${round}`);
      const results = await Promise.allSettled([
        rpc(t.owner, "set_member_role", { p_org_id: t.orgId, p_user_id: t.admin.id, p_role: "admin" }),
        rpc(t.admin, "set_member_role", { p_org_id: t.orgId, p_user_id: t.owner.id, p_role: "admin" }),
      ]);
      expect(results.filter((r) => r.status === "fulfilled")).toHaveLength(1);
      const failure = results.find((r) => r.status === "rejected") as PromiseRejectedResult;
      expect(["42501", "23514"], failure.reason.message).toContain(failure.reason.code);
      expect(await ownerCount(t.orgId)).toBe(1);
      const roles = await rolesIn(t.orgId);
      expect([roles[t.owner.id], roles[t.admin.id]].sort()).toEqual(["admin", "owner"]);
    }
  });

  it("two owners leaving at once: exactly one leaves and one owner remains", async () => {
    for (let round = 0; round < 3; round++) {
      const t = await twoOwnerTeam(`Race leave ${round}`);
      const results = await Promise.allSettled([
        rpc(t.owner, "leave_org", { p_org_id: t.orgId }),
        rpc(t.admin, "leave_org", { p_org_id: t.orgId }),
      ]);
      expect(results.filter((r) => r.status === "fulfilled")).toHaveLength(1);
      const failure = results.find((r) => r.status === "rejected") as PromiseRejectedResult;
      expect(failure.reason.code, failure.reason.message).toBe("23514");
      expect(await ownerCount(t.orgId)).toBe(1);
      const roles = await rolesIn(t.orgId);
      expect(Object.keys(roles)).toHaveLength(3);
    }
  });

  it("10 concurrent role flips by an admin all finish and leave one of the requested roles", async () => {
    const t = await createTeam("Race flips");
    const wanted = Array.from({ length: 10 }, (_, i) => (i % 2 === 0 ? "viewer" : "member"));
    const results = await Promise.allSettled(
      wanted.map((role) => rpc(t.admin, "set_member_role", { p_org_id: t.orgId, p_user_id: t.member.id, p_role: role })),
    );
    const failures = results.filter((r) => r.status === "rejected").map((r) => (r as PromiseRejectedResult).reason.message);
    expect(failures).toEqual([]);
    expect(["member", "viewer"]).toContain(await roleOf(t.orgId, t.member.id));
    expect(Object.keys(await rolesIn(t.orgId))).toHaveLength(4);
    expect(await ownerCount(t.orgId)).toBe(1);
  });
});

describe("GDPR erasure (deleting from auth.users)", () => {
  it("removes the user's profile, personal org and every membership", async () => {
    const t = await createTeam("Erasure");
    const user = t.member;
    const personal = (await personalOrgId(user.id))!;
    expect(personal).toBeDefined();

    const del = await admin.query("delete from auth.users where id = $1", [user.id]);
    expect(del.rowCount).toBe(1);

    const { rows: profiles } = await admin.query("select id from public.profiles where id = $1", [user.id]);
    expect(profiles).toEqual([]);
    const { rows: orgs } = await admin.query("select id from public.orgs where id = $1 or personal_user_id = $2", [personal, user.id]);
    expect(orgs).toEqual([]);
    const { rows: memberships } = await admin.query("select org_id from public.org_members where user_id = $1", [user.id]);
    expect(memberships).toEqual([]);
    // The team org lives on with its other members.
    expect(Object.keys(await rolesIn(t.orgId)).sort()).toEqual([t.owner.id, t.admin.id, t.viewer.id].sort());
  });

  it("refuses while the user is the sole owner of a team org (23503, naming it), then succeeds after a transfer", async () => {
    const t = await createTeam("Sole owner");
    const user = t.owner;
    // Also a plain member of another team, which must not block anything.
    const other = await createTeam("Elsewhere");
    await admin.query("insert into public.org_members (org_id, user_id, role) values ($1, $2, 'member')", [other.orgId, user.id]);
    const personal = (await personalOrgId(user.id))!;

    await expectSqlError(admin.query("delete from auth.users where id = $1", [user.id]), "23503", new RegExp(escapeRe(t.slug)));

    const { rows: still } = await admin.query("select id from auth.users where id = $1", [user.id]);
    expect(still).toHaveLength(1);
    const { rows: profiles } = await admin.query("select id from public.profiles where id = $1", [user.id]);
    expect(profiles).toHaveLength(1);
    expect(await roleOf(personal, user.id)).toBe("owner");
    expect(await roleOf(t.orgId, user.id)).toBe("owner");
    expect(await roleOf(other.orgId, user.id)).toBe("member");

    await rpc(user, "transfer_ownership", { p_org_id: t.orgId, p_new_owner: t.admin.id });
    const del = await admin.query("delete from auth.users where id = $1", [user.id]);
    expect(del.rowCount).toBe(1);

    const { rows: after } = await admin.query("select count(*)::int as n from public.profiles where id = $1", [user.id]);
    expect(after[0].n).toBe(0);
    expect(await personalOrgId(user.id)).toBeUndefined();
    const { rows: memberships } = await admin.query("select org_id from public.org_members where user_id = $1", [user.id]);
    expect(memberships).toEqual([]);
    expect(await roleOf(t.orgId, t.admin.id)).toBe("owner");
    expect(Object.keys(await rolesIn(t.orgId))).toHaveLength(3);
    expect(Object.keys(await rolesIn(other.orgId))).toHaveLength(4);
  });
});

describe("org_members RLS", () => {
  it("a member reads all members of their org; a stranger reads none", async () => {
    const t = await createTeam("Members RLS");
    const stranger = await createUser();
    const seen = await select<{ user_id: string; role: string }>(t.viewer, "select user_id, role from public.org_members where org_id = $1", [t.orgId]);
    expect(Object.fromEntries(seen.map((r) => [r.user_id, r.role]))).toEqual({
      [t.owner.id]: "owner",
      [t.admin.id]: "admin",
      [t.member.id]: "member",
      [t.viewer.id]: "viewer",
    });
    expect(await select(stranger, "select user_id from public.org_members where org_id = $1", [t.orgId])).toEqual([]);
    // All a stranger sees anywhere is their own personal membership.
    expect(await select(stranger, "select user_id, role from public.org_members")).toEqual([{ user_id: stranger.id, role: "owner" }]);
  });

  it("authenticated users cannot insert, update or delete memberships directly (42501)", async () => {
    const t = await createTeam("Members direct");
    const stranger = await createUser();
    const before = await rolesIn(t.orgId);
    await expectSqlError(
      as(t.owner, (c) => c.query("insert into public.org_members (org_id, user_id, role) values ($1, $2, 'member')", [t.orgId, stranger.id])),
      "42501",
      /permission denied/,
    );
    await expectSqlError(
      as(stranger, (c) => c.query("insert into public.org_members (org_id, user_id, role) values ($1, $2, 'owner')", [t.orgId, stranger.id])),
      "42501",
      /permission denied/,
    );
    await expectSqlError(
      as(t.viewer, (c) => c.query("update public.org_members set role = 'owner' where org_id = $1 and user_id = $2", [t.orgId, t.viewer.id])),
      "42501",
      /permission denied/,
    );
    await expectSqlError(
      as(t.owner, (c) => c.query("delete from public.org_members where org_id = $1 and user_id = $2", [t.orgId, t.member.id])),
      "42501",
      /permission denied/,
    );
    expect(await rolesIn(t.orgId)).toEqual(before);
  });
});
