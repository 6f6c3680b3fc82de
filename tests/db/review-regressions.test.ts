// Cases found in review: the platform's own roles writing auth.users, permission escalation
// through role grants, and lock ordering between concurrent invitation calls.
import { describe, expect, it } from "vitest";
import { gotrueClaims } from "../../scripts/lib/keys.ts";
import { addMember, admin, createTeam, createUser, expectSqlError, roleOf, rpc, type TestUser } from "../helpers/db.ts";

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

/**
 * A transaction left open on its own connection, so that a test can order statements across
 * two transactions: run one, start the other, see it wait for the first one's lock, commit.
 */
async function openTx(who?: TestUser) {
  const c = await admin.connect();
  await c.query("begin");
  if (who) {
    await c.query("select set_config('request.jwt.claims', $1, true), set_config('role', 'authenticated', true)", [
      JSON.stringify(gotrueClaims(who, { aal: "aal1" })),
    ]);
  }
  const [{ pid }] = (await c.query<{ pid: number }>("select pg_backend_pid() as pid")).rows;
  let ended = false;
  return {
    c,
    pid,
    /** Runs a statement without waiting for it; the outcome is the SQLSTATE or "ok". */
    start(sql: string, params: unknown[] = []) {
      return c.query(sql, params).then(
        () => "ok",
        (e: { code?: string }) => e.code ?? String(e),
      );
    },
    /** Commits or rolls back once; later calls do nothing. */
    async end(how: "commit" | "rollback") {
      if (ended) return;
      ended = true;
      try {
        await c.query(how);
      } finally {
        c.release();
      }
    },
  };
}

/** Waits until backend `pid` is blocked on a lock; fails if its statement finishes first. */
async function waitUntilBlocked(pid: number, pending: Promise<string>) {
  let settled: string | undefined;
  void pending.then((o) => (settled = o));
  const deadline = Date.now() + 60_000;
  while (Date.now() < deadline) {
    if (settled !== undefined) throw new Error(`the statement finished (${settled}) without waiting for the other transaction's lock`);
    const { rows } = await admin.query("select wait_event_type from pg_stat_activity where pid = $1", [pid]);
    if (rows[0]?.wait_event_type === "Lock") return;
    await new Promise((r) => setTimeout(r, 20));
  }
  throw new Error(`backend ${pid} never waited for a lock`);
}

async function pendingInvitations(orgId: string, email: string) {
  const { rows } = await admin.query(
    "select id from public.invitations where org_id = $1 and email = $2 and accepted_at is null and revoked_at is null",
    [orgId, email],
  );
  return rows.map((r) => r.id as string);
}

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

  it("accept first: a re-invite waits for it, then finds a member (23505) and replaces nothing", async () => {
    const team = await createTeam();
    const invitee = await createUser();
    const [inv] = await rpc<{ invitation_id: string; token: string }>(team.admin, "invite_member", {
      p_org_id: team.orgId,
      p_email: invitee.email,
    });
    const accept = await openTx(invitee);
    const reinvite = await openTx(team.admin);
    try {
      expect(await accept.start("select public.accept_invitation($1)", [inv.token])).toBe("ok");
      const second = reinvite.start("select * from public.invite_member($1, $2)", [team.orgId, invitee.email]);
      await waitUntilBlocked(reinvite.pid, second);
      await accept.end("commit");
      expect(await second).toBe("23505");
    } finally {
      await accept.end("rollback");
      await reinvite.end("rollback");
    }
    expect(await roleOf(team.orgId, invitee.id)).toBe("member");
    const { rows } = await admin.query("select accepted_by, revoked_at from public.invitations where org_id = $1", [team.orgId]);
    expect(rows).toEqual([{ accepted_by: invitee.id, revoked_at: null }]);
  });

  it("re-invite first: the accept waits for it, then finds its invitation revoked (22023) and joins nothing", async () => {
    const team = await createTeam();
    const invitee = await createUser();
    const [inv] = await rpc<{ invitation_id: string; token: string }>(team.admin, "invite_member", {
      p_org_id: team.orgId,
      p_email: invitee.email,
    });
    const reinvite = await openTx(team.admin);
    const accept = await openTx(invitee);
    try {
      expect(await reinvite.start("select * from public.invite_member($1, $2)", [team.orgId, invitee.email])).toBe("ok");
      const second = accept.start("select public.accept_invitation($1)", [inv.token]);
      await waitUntilBlocked(accept.pid, second);
      await reinvite.end("commit");
      expect(await second).toBe("22023");
    } finally {
      await reinvite.end("rollback");
      await accept.end("rollback");
    }
    expect(await roleOf(team.orgId, invitee.id)).toBeUndefined();
    const { rows } = await admin.query("select revoked_at from public.invitations where id = $1", [inv.invitation_id]);
    expect(rows[0].revoked_at).toBeInstanceOf(Date);
    const pending = await pendingInvitations(team.orgId, invitee.email);
    expect(pending).toHaveLength(1);
    expect(pending[0]).not.toBe(inv.invitation_id);
  });

  async function teamWithTempRole() {
    const team = await createTeam();
    await admin.query("insert into public.org_roles (org_id, key, name, rank, permissions) values ($1, 'temp', 'Temp', 5, '{}')", [team.orgId]);
    return team;
  }
  async function tempRoles(orgId: string) {
    const { rows } = await admin.query("select count(*)::int as n from public.org_roles where org_id = $1 and key = 'temp'", [orgId]);
    return rows[0].n as number;
  }

  it("assignment first: a delete of the custom role waits for it, then is refused (23503); the role stays assigned", async () => {
    const team = await teamWithTempRole();
    const assign = await openTx(team.admin);
    const remove = await openTx();
    try {
      expect(await assign.start("select public.set_member_role($1, $2, 'temp')", [team.orgId, team.viewer.id])).toBe("ok");
      const del = remove.start("delete from public.org_roles where org_id = $1 and key = 'temp'", [team.orgId]);
      await waitUntilBlocked(remove.pid, del);
      await assign.end("commit");
      expect(await del).toBe("23503");
    } finally {
      await assign.end("rollback");
      await remove.end("rollback");
    }
    expect(await roleOf(team.orgId, team.viewer.id)).toBe("temp");
    expect(await tempRoles(team.orgId)).toBe(1);
  });

  it("delete first: an assignment of the custom role waits for it, then is refused (22023); the member keeps their role", async () => {
    const team = await teamWithTempRole();
    const remove = await openTx();
    const assign = await openTx(team.admin);
    try {
      expect(await remove.start("delete from public.org_roles where org_id = $1 and key = 'temp'", [team.orgId])).toBe("ok");
      const set = assign.start("select public.set_member_role($1, $2, 'temp')", [team.orgId, team.viewer.id]);
      await waitUntilBlocked(assign.pid, set);
      await remove.end("commit");
      expect(await set).toBe("22023");
    } finally {
      await remove.end("rollback");
      await assign.end("rollback");
    }
    expect(await roleOf(team.orgId, team.viewer.id)).toBe("viewer");
    expect(await tempRoles(team.orgId)).toBe(0);
  });
});

describe("not found through PostgREST", () => {
  it("uses SQLSTATE PT404, which PostgREST answers with 404 (P0002 would be a 500)", async () => {
    const stranger = await createUser();
    await expectSqlError(rpc(stranger, "update_org", { p_org_id: crypto.randomUUID(), p_name: "x" }), "PT404");
  });
});
