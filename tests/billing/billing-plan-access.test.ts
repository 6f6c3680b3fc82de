// Who learns an org's plan (issue #13): billing.current_plan, entitled and limit_of answer only
// callers who may read the org's data (docs/billing.md): its members, its own live API keys and
// the service role. Anyone else gets null / false / 0; anon may not call them at all. The
// MFA-blocked member is covered in tests/db/hardening-security.test.ts. billing.summary as an
// RPC: billing managers only, 42501 for other members and PT404 for strangers.
import { describe, expect, it } from "vitest";
import { addMember, admin, type Caller, createTeam, createUser, expectSqlError, rpc, select } from "../helpers/db.ts";

const PLAN = "select billing.current_plan($1) as plan, billing.entitled($1, 'custom_domain') as domain, billing.limit_of($1, 'seats')::int as seats";
const NOTHING = { plan: null, domain: false, seats: 0 };
const PRO = { plan: "pro", domain: true, seats: 10 };

async function planAs(who: Caller, orgId: string) {
  const [row] = await select(who, PLAN, [orgId]);
  return row;
}

async function apiKeyCaller(owner: Parameters<typeof rpc>[0], orgId: string): Promise<{ id: string; caller: Caller }> {
  const [k] = await rpc<{ api_key_id: string }>(owner, "create_api_key", { p_org_id: orgId, p_name: "plan key", p_scopes: ["content.read"] });
  return { id: k.api_key_id, caller: { claims: { role: "authenticated", aud: "authenticated", api_key_id: k.api_key_id } } };
}

describe("current_plan, entitled and limit_of called by a signed-in user", () => {
  it("every member of the org learns its plan, whatever their role", async () => {
    const team = await createTeam("PlanPro", { plan: "pro" });
    // The service role's answer is the reference.
    const { rows } = await admin.query(PLAN, [team.orgId]);
    expect(rows[0]).toEqual(PRO);
    for (const who of [team.owner, team.admin, team.member, team.viewer]) {
      expect(await planAs(who, team.orgId)).toEqual(PRO);
    }
    // And the default plan for an org without a subscription.
    const free = await createTeam("PlanFree", { plan: null });
    expect(await planAs(free.viewer, free.orgId)).toEqual({ plan: "free", domain: false, seats: 3 });
  });

  it("a stranger, a member of another org and a removed member learn nothing (null, false, 0)", async () => {
    const team = await createTeam("PlanSecret", { plan: "pro" });
    const stranger = await createUser();
    const other = await createTeam("PlanOther", { plan: "team" });
    for (const who of [stranger, other.owner, other.member]) {
      expect(await planAs(who, team.orgId)).toEqual(NOTHING);
    }
    // Their own org still answers: the guard is per org, not per caller.
    expect(await planAs(other.member, other.orgId)).toEqual({ plan: "team", domain: true, seats: 50 });
    // Membership is read live: removed, the member learns nothing more.
    const leaver = await createUser();
    await addMember(team.orgId, leaver, "member");
    expect(await planAs(leaver, team.orgId)).toEqual(PRO);
    await admin.query("delete from public.org_members where org_id = $1 and user_id = $2", [team.orgId, leaver.id]);
    expect(await planAs(leaver, team.orgId)).toEqual(NOTHING);
    // An unknown org answers the same as a foreign one: nothing tells them apart.
    expect(await planAs(stranger, "00000000-0000-4000-8000-00000000dead")).toEqual(NOTHING);
  });

  it("the org's own live API key learns its plan; a revoked key and another org's key do not", async () => {
    const team = await createTeam("PlanKey", { plan: "pro" });
    const other = await createTeam("PlanKeyOther", { plan: "team" });
    const mine = await apiKeyCaller(team.owner, team.orgId);
    const theirs = await apiKeyCaller(other.owner, other.orgId);
    expect(await planAs(mine.caller, team.orgId)).toEqual(PRO);
    expect(await planAs(theirs.caller, team.orgId)).toEqual(NOTHING);
    await rpc(team.owner, "revoke_api_key", { p_api_key_id: mine.id });
    expect(await planAs(mine.caller, team.orgId)).toEqual(NOTHING);
  });

  it("anon may not call them (42501)", async () => {
    const team = await createTeam("PlanAnon", { plan: "pro" });
    for (const q of ["select billing.current_plan($1)", "select billing.entitled($1, 'custom_domain')", "select billing.limit_of($1, 'seats')"]) {
      await expectSqlError(select("anon", q, [team.orgId]), "42501");
    }
  });
});

describe("billing.summary as an RPC", () => {
  it("billing managers (owner, admin, a custom role with billing.manage) get the summary", async () => {
    const team = await createTeam("SummaryRpc", { plan: "pro" });
    const cashier = await createUser();
    await admin.query("insert into public.org_roles (org_id, key, name, rank, permissions) values ($1, 'cashier', 'Cashier', 15, '{billing.manage}')", [team.orgId]);
    await addMember(team.orgId, cashier, "cashier");
    for (const who of [team.owner, team.admin, cashier]) {
      const [row] = await select<{ s: Record<string, any> }>(who, "select billing.summary($1) as s", [team.orgId]);
      expect(row.s).toMatchObject({ org_id: team.orgId, plan: { key: "pro" }, subscription: { status: "active", plan_key: "pro" } });
    }
  });

  it("refuses members without billing.manage (42501), strangers and other orgs' owners (PT404), and anon (42501)", async () => {
    const team = await createTeam("SummaryDenied", { plan: "pro" });
    const other = await createTeam("SummaryOther");
    const stranger = await createUser();
    for (const who of [team.member, team.viewer]) {
      await expectSqlError(select(who, "select billing.summary($1)", [team.orgId]), "42501", /billing\.manage/);
    }
    for (const who of [stranger, other.owner]) {
      await expectSqlError(select(who, "select billing.summary($1)", [team.orgId]), "PT404", /org not found/);
    }
    // An org that does not exist reads the same as one the caller is not in.
    await expectSqlError(select(stranger, "select billing.summary($1)", ["00000000-0000-4000-8000-00000000dead"]), "PT404");
    await expectSqlError(select("anon", "select billing.summary($1)", [team.orgId]), "42501");
  });
});
