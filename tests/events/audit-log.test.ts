// The audit log: written by triggers with secrets masked and request metadata attached,
// readable by org.manage holders only, and append-only for every role.
import { describe, expect, it } from "vitest";
import { userToken } from "../../scripts/lib/keys.ts";
import { admin, as, createTeam, createUser, expectSqlError, rpc, select, stack } from "../helpers/db.ts";

async function auditOf(orgId: string, table: string) {
  const { rows } = await admin.query("select * from notify.audit_log where org_id = $1 and target_table = $2 order by occurred_at", [orgId, table]);
  return rows;
}

describe("audit log", () => {
  it("records a role change with the actor and only the changed fields", async () => {
    const team = await createTeam();
    await rpc(team.admin, "set_member_role", { p_org_id: team.orgId, p_user_id: team.viewer.id, p_role: "member" });
    const rows = (await auditOf(team.orgId, "public.org_members")).filter((r) => r.action === "update");
    expect(rows).toHaveLength(1);
    expect(rows[0]).toMatchObject({
      actor_user_id: team.admin.id,
      actor_role: "authenticated",
      target_id: team.viewer.id,
      before: { role: "viewer" },
      after: { role: "member" },
    });
  });

  it("masks secrets: API key hashes and invitation token hashes never appear", async () => {
    const team = await createTeam();
    await rpc(team.owner, "create_api_key", { p_org_id: team.orgId, p_name: "ci", p_scopes: ["content.read"] });
    await rpc(team.owner, "invite_member", { p_org_id: team.orgId, p_email: "masked@test.local" });
    const [key] = await auditOf(team.orgId, "public.api_keys");
    const [inv] = await auditOf(team.orgId, "public.invitations");
    expect(key.after.secret_hash).toBe("***");
    expect(inv.after.token_hash).toBe("***");
    expect(key.after.name).toBe("ci");
  });

  it("attaches the api request's id, IP and user agent", async () => {
    const team = await createTeam();
    const token = await userToken(stack.jwtSecret, team.owner);
    const res = await fetch(`${stack.functionsUrl}/api/orgs/${team.orgId}/invitations`, {
      method: "POST",
      headers: {
        authorization: `Bearer ${token}`,
        "content-type": "application/json",
        "user-agent": "audit-test/1.0",
        // A forged first entry: the api trusts only the header the gateway sets (cf-connecting-ip).
        "x-forwarded-for": "203.0.113.7, 10.0.0.1",
      },
      body: JSON.stringify({ email: "via-api@test.local" }),
    });
    expect(res.status).toBe(201);
    const [row] = await auditOf(team.orgId, "public.invitations");
    expect(row).toMatchObject({ user_agent: "audit-test/1.0", ip: "127.0.0.1", request_id: res.headers.get("x-request-id") });
    expect(row.request_id).toBeTruthy();
  });

  it("is readable by org.manage holders, not by members or strangers", async () => {
    const team = await createTeam();
    const stranger = await createUser();
    await rpc(team.admin, "set_member_role", { p_org_id: team.orgId, p_user_id: team.viewer.id, p_role: "member" });
    const q = "select count(*)::int as n from notify.audit_log where org_id = $1";
    expect((await select(team.admin, q, [team.orgId]))[0].n).toBeGreaterThan(0);
    expect((await select(team.member, q, [team.orgId]))[0].n).toBe(0);
    expect((await select(stranger, q, [team.orgId]))[0].n).toBe(0);
  });

  it("cannot be changed by any role: authenticated, service_role or the database owner", async () => {
    const team = await createTeam();
    const before = (await auditOf(team.orgId, "public.org_members")).length;
    await expectSqlError(as(team.owner, (c) => c.query("update notify.audit_log set action = 'insert' where org_id = $1", [team.orgId])), "42501");
    await expectSqlError(as(team.owner, (c) => c.query("delete from notify.audit_log where org_id = $1", [team.orgId])), "42501");
    const service = { claims: { role: "service_role" } };
    await expectSqlError(as(service, (c) => c.query("update notify.audit_log set action = 'insert' where org_id = $1", [team.orgId])), "42501");
    await expectSqlError(as(service, (c) => c.query("delete from notify.audit_log where org_id = $1", [team.orgId])), "42501");
    await expectSqlError(admin.query("update notify.audit_log set after = '{}' where org_id = $1", [team.orgId]), "42501", /append-only/);
    await expectSqlError(admin.query("delete from notify.audit_log where org_id = $1", [team.orgId]), "42501", /append-only/);
    await expectSqlError(admin.query("truncate notify.audit_log"), "42501", /append-only/);
    expect((await auditOf(team.orgId, "public.org_members")).length).toBe(before);
  });

  it("goes with its org, and erasing a user keeps the rows but forgets who they were", async () => {
    const team = await createTeam();
    await rpc(team.admin, "set_member_role", { p_org_id: team.orgId, p_user_id: team.viewer.id, p_role: "member" });
    await admin.query("delete from auth.users where id = $1", [team.admin.id]);
    const rows = (await auditOf(team.orgId, "public.org_members")).filter((r) => r.action === "update");
    expect(rows[0].actor_user_id).toBeNull();
    await rpc(team.owner, "delete_org", { p_org_id: team.orgId, p_confirm_slug: team.slug });
    expect((await admin.query("select count(*)::int as n from notify.audit_log where org_id = $1", [team.orgId])).rows[0].n).toBe(0);
  });
});
