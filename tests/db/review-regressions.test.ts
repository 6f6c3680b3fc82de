// Cases found in review: the platform's own roles writing auth.users, permission escalation
// through role grants, and lock ordering between concurrent invitation calls.
import { describe, expect, it } from "vitest";
import { addMember, admin, createTeam, createUser, expectSqlError, roleOf, rpc } from "../helpers/db.ts";

describe("auth.users written by GoTrue's own role", () => {
  it("signup as supabase_auth_admin creates the profile and personal org", async () => {
    const id = crypto.randomUUID();
    const c = await admin.connect();
    try {
      await c.query("begin");
      await c.query("set local role supabase_auth_admin");
      await c.query(
        `insert into auth.users (id, aud, role, email, raw_app_meta_data, raw_user_meta_data, created_at, updated_at)
         values ($1, 'authenticated', 'authenticated', $2, '{}', '{"marketing_consent": "maybe"}', now(), now())`,
        [id, `gotrue-${id.slice(0, 8)}@test.local`],
      );
      await c.query("commit");
    } finally {
      c.release();
    }
    const { rows } = await admin.query(
      "select (select count(*)::int from public.org_members where user_id = $1) as memberships, (select marketing_consent from public.profiles where id = $1) as consent",
      [id],
    );
    expect(rows[0]).toEqual({ memberships: 1, consent: false });
  });

  it("deletion as supabase_auth_admin erases the user, and is still refused for a sole team owner", async () => {
    const user = await createUser();
    const owner = await createUser();
    await rpc(owner, "create_org", { p_name: "Sole" });
    const asGoTrue = async (id: string) => {
      const c = await admin.connect();
      try {
        await c.query("begin");
        await c.query("set local role supabase_auth_admin");
        await c.query("delete from auth.users where id = $1", [id]);
        await c.query("commit");
      } catch (err) {
        await c.query("rollback");
        throw err;
      } finally {
        c.release();
      }
    };
    await asGoTrue(user.id);
    expect((await admin.query("select count(*)::int as n from public.profiles where id = $1", [user.id])).rows[0].n).toBe(0);
    await expectSqlError(asGoTrue(owner.id), "23503", /sole owner/);
  });
});

describe("no escalation through role grants", () => {
  it("a role holding members.manage cannot grant or invite with permissions it lacks", async () => {
    const team = await createTeam();
    const recruiter = await createUser();
    await admin.query(
      "insert into public.org_roles (org_id, key, name, rank, permissions) values ($1, 'recruiter', 'Recruiter', 25, '{members.manage}')",
      [team.orgId],
    );
    await addMember(team.orgId, recruiter, "recruiter");
    // member (rank 20) holds content.write and ai.use, which the recruiter does not.
    await expectSqlError(rpc(recruiter, "set_member_role", { p_org_id: team.orgId, p_user_id: team.viewer.id, p_role: "member" }), "42501", /permissions/);
    expect(await roleOf(team.orgId, team.viewer.id)).toBe("viewer");
    await expectSqlError(rpc(recruiter, "invite_member", { p_org_id: team.orgId, p_email: "x@y.test", p_role: "member" }), "42501", /permissions/);
    // Allowed: a role within its own permissions (viewer's content.read is not held either, so use a custom one).
    await admin.query(
      "insert into public.org_roles (org_id, key, name, rank, permissions) values ($1, 'scout', 'Scout', 5, '{}')",
      [team.orgId],
    );
    await rpc(recruiter, "set_member_role", { p_org_id: team.orgId, p_user_id: team.viewer.id, p_role: "scout" });
    expect(await roleOf(team.orgId, team.viewer.id)).toBe("scout");
  });
});

describe("lock ordering", () => {
  it("a re-invite racing an accept never deadlocks: one wins cleanly", async () => {
    for (let round = 0; round < 5; round++) {
      const team = await createTeam();
      const invitee = await createUser();
      const [inv] = await rpc<{ token: string }>(team.admin, "invite_member", { p_org_id: team.orgId, p_email: invitee.email });
      const results = await Promise.allSettled([
        rpc(invitee, "accept_invitation", { p_token: inv.token }),
        rpc(team.admin, "invite_member", { p_org_id: team.orgId, p_email: invitee.email }),
      ]);
      for (const r of results) {
        if (r.status === "rejected") expect((r.reason as { code: string }).code).not.toBe("40P01");
      }
      expect(results.some((r) => r.status === "fulfilled")).toBe(true);
    }
  });

  it("a custom role deleted while being assigned is never left dangling", async () => {
    const team = await createTeam();
    await admin.query("insert into public.org_roles (org_id, key, name, rank, permissions) values ($1, 'temp', 'Temp', 5, '{}')", [team.orgId]);
    const assign = rpc(team.admin, "set_member_role", { p_org_id: team.orgId, p_user_id: team.viewer.id, p_role: "temp" });
    const remove = admin.query("delete from public.org_roles where org_id = $1 and key = 'temp'", [team.orgId]);
    await Promise.allSettled([assign, remove]);
    const role = await roleOf(team.orgId, team.viewer.id);
    const { rows } = await admin.query("select count(*)::int as n from public.org_roles where org_id = $1 and key = 'temp'", [team.orgId]);
    // Either the assignment won (role kept) or the delete won (member unchanged), never both.
    expect(role === "temp" ? rows[0].n : 1).toBe(1);
  });
});

describe("not found through PostgREST", () => {
  it("uses SQLSTATE PT404, which PostgREST answers with 404 (P0002 would be a 500)", async () => {
    const stranger = await createUser();
    await expectSqlError(rpc(stranger, "update_org", { p_org_id: crypto.randomUUID(), p_name: "x" }), "PT404");
  });
});
