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
      actor_api_key_id: null,
      actor_role: "authenticated",
      target_id: team.viewer.id,
    });
    // Exactly the changed column: not the key columns, not updated_at.
    expect(rows[0].before).toEqual({ role: "viewer" });
    expect(rows[0].after).toEqual({ role: "member" });
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

  // The table owner can still disable the trigger and rewrite rows: that is not prevented but
  // detected, by the hash chain (audit-chain.test.ts).
  it("plain UPDATE, DELETE and TRUNCATE are refused to authenticated, service_role and the table owner (42501)", async () => {
    const team = await createTeam();
    const before = await auditOf(team.orgId, "public.org_members");
    await expectSqlError(as(team.owner, (c) => c.query("update notify.audit_log set action = 'insert' where org_id = $1", [team.orgId])), "42501");
    await expectSqlError(as(team.owner, (c) => c.query("delete from notify.audit_log where org_id = $1", [team.orgId])), "42501");
    const service = { claims: { role: "service_role" } };
    await expectSqlError(as(service, (c) => c.query("update notify.audit_log set action = 'insert' where org_id = $1", [team.orgId])), "42501");
    await expectSqlError(as(service, (c) => c.query("delete from notify.audit_log where org_id = $1", [team.orgId])), "42501");
    await expectSqlError(admin.query("update notify.audit_log set after = '{}' where org_id = $1", [team.orgId]), "42501", /append-only/);
    await expectSqlError(admin.query("delete from notify.audit_log where org_id = $1", [team.orgId]), "42501", /append-only/);
    await expectSqlError(admin.query("truncate notify.audit_log"), "42501", /append-only/);
    expect(await auditOf(team.orgId, "public.org_members")).toEqual(before);
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

  it("records orgs: the creation (whole row) and every change of name, slug, settings and MFA, exactly the changed fields", async () => {
    const team = await createTeam();
    const [created] = await auditOf(team.orgId, "public.orgs");
    const { rows: [org] } = await admin.query("select to_jsonb(o) as row from public.orgs o where id = $1", [team.orgId]);
    expect(created).toMatchObject({ action: "insert", actor_user_id: team.owner.id, target_id: team.orgId, before: null });
    expect(created.after).toEqual(org.row);

    await rpc(team.admin, "update_org", { p_org_id: team.orgId, p_name: "Renamed", p_settings: { theme: "dark" } });
    const slug = `audited-${team.orgId.slice(0, 8)}`;
    await rpc(team.owner, "update_org", { p_org_id: team.orgId, p_slug: slug, p_require_mfa: true }, { aal: "aal2" });
    const updates = (await auditOf(team.orgId, "public.orgs")).filter((r) => r.action === "update");
    expect(updates.map((r) => [r.actor_user_id, r.target_id, r.before, r.after])).toEqual([
      [team.admin.id, team.orgId, { name: org.row.name, settings: {} }, { name: "Renamed", settings: { theme: "dark" } }],
      [team.owner.id, team.orgId, { slug: team.slug, require_mfa: false }, { slug, require_mfa: true }],
    ]);
  });

  it("records custom roles (org_roles): insert, update and delete, each by its actor", async () => {
    const team = await createTeam();
    const role = await as(team.admin, async (c) => (await c.query(
      "insert into public.org_roles (org_id, key, name, rank, permissions) values ($1, 'editor', 'Editor', 20, '{content.read}') returning to_jsonb(org_roles) as row",
      [team.orgId])).rows[0].row);
    await as(team.admin, (c) => c.query("update public.org_roles set permissions = '{content.read,content.write}', name = 'Writer' where id = $1", [role.id]));
    const { rows: [current] } = await admin.query("select to_jsonb(r) as row from public.org_roles r where id = $1", [role.id]);
    await as(team.owner, (c) => c.query("delete from public.org_roles where id = $1", [role.id]));
    const rows = await auditOf(team.orgId, "public.org_roles");
    expect(rows.map((r) => [r.action, r.actor_user_id, r.target_id])).toEqual([
      ["insert", team.admin.id, role.id], ["update", team.admin.id, role.id], ["delete", team.owner.id, role.id],
    ]);
    expect([rows[0].before, rows[0].after]).toEqual([null, role]);
    expect([rows[1].before, rows[1].after]).toEqual([
      { name: "Editor", permissions: ["content.read"] },
      { name: "Writer", permissions: ["content.read", "content.write"] },
    ]);
    expect([rows[2].before, rows[2].after]).toEqual([current.row, null]);
  });

  it("records deletes with the whole row before (secrets masked): a removed member, a deleted key, a member who left", async () => {
    const team = await createTeam();
    const memberRow = async (userId: string) =>
      (await admin.query("select to_jsonb(m) as row from public.org_members m where org_id = $1 and user_id = $2", [team.orgId, userId])).rows[0].row;
    const removed = await memberRow(team.member.id);
    await rpc(team.admin, "remove_member", { p_org_id: team.orgId, p_user_id: team.member.id });
    const left = await memberRow(team.viewer.id);
    await rpc(team.viewer, "leave_org", { p_org_id: team.orgId });
    const deletes = (await auditOf(team.orgId, "public.org_members")).filter((r) => r.action === "delete");
    expect(deletes.map((r) => [r.actor_user_id, r.target_id, r.before, r.after])).toEqual([
      [team.admin.id, team.member.id, removed, null],
      [team.viewer.id, team.viewer.id, left, null],
    ]);

    const [key] = await rpc<{ api_key_id: string }>(team.owner, "create_api_key", { p_org_id: team.orgId, p_name: "doomed", p_scopes: ["content.read"] });
    const { rows: [k] } = await admin.query("select to_jsonb(k) as row from public.api_keys k where id = $1", [key.api_key_id]);
    await admin.query("delete from public.api_keys where id = $1", [key.api_key_id]);
    const [gone] = (await auditOf(team.orgId, "public.api_keys")).filter((r) => r.action === "delete");
    expect(gone).toMatchObject({ target_id: key.api_key_id, actor_role: "postgres", actor_user_id: null, after: null });
    expect(gone.before).toEqual({ ...k.row, secret_hash: "***" });
  });

  it("names an API key as the actor, with no user, from the session's claims; over the api a key cannot invite (403, nothing written)", async () => {
    const team = await createTeam();
    const [key] = await rpc<{ api_key_id: string; key: string }>(team.owner, "create_api_key", {
      p_org_id: team.orgId, p_name: "integration", p_scopes: ["members.manage"],
    });
    // Every RPC and RLS write of an audited table needs a user (or a member's rank), so no
    // client path lets a key write one today; the invitations route refuses keys outright.
    const res = await fetch(`${stack.functionsUrl}/api/orgs/${team.orgId}/invitations`, {
      method: "POST",
      headers: { "x-api-key": key.key, "content-type": "application/json" },
      body: JSON.stringify({ email: "by-key@test.local" }),
    });
    expect(res.status).toBe(403);
    expect((await res.json()).error.code).toBe("user_required");
    expect(await auditOf(team.orgId, "public.invitations")).toEqual([]);
    expect((await admin.query("select count(*)::int as n from public.invitations where org_id = $1", [team.orgId])).rows[0].n).toBe(0);

    // What the trigger records when a session carries a key's claims (as the api sets them for
    // a key) and writes an audited table: the key, and no user.
    const claims = { role: "authenticated", aud: "authenticated", api_key_id: key.api_key_id, org_id: team.orgId };
    const c = await admin.connect();
    try {
      await c.query("begin");
      await c.query("select set_config('request.jwt.claims', $1, true)", [JSON.stringify(claims)]);
      await c.query("update public.orgs set name = 'Renamed by a key' where id = $1", [team.orgId]);
      await c.query("commit");
    } finally {
      c.release();
    }
    const [row] = (await auditOf(team.orgId, "public.orgs")).filter((r) => r.action === "update");
    expect(row).toMatchObject({ actor_api_key_id: key.api_key_id, actor_user_id: null, actor_role: "authenticated", target_id: team.orgId });
    expect(row.after).toEqual({ name: "Renamed by a key" });
  });
});
