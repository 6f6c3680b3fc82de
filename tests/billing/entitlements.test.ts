// Plans and entitlements: the default plan, a live subscription's plan, and the seat limit
// that invitations respect.
import { describe, expect, it } from "vitest";
import { admin, createTeam, createUser, expectSqlError, rpc, select } from "../helpers/db.ts";

describe("entitlements", () => {
  it("an org without a live subscription is on the default (free) plan", async () => {
    const team = await createTeam("Free", { plan: null });
    const { rows } = await admin.query(
      "select billing.current_plan($1) as plan, billing.limit_of($1, 'seats')::int as seats, billing.entitled($1, 'custom_domain') as domain",
      [team.orgId],
    );
    expect(rows[0]).toEqual({ plan: "free", seats: 3, domain: false });
  });

  it("a live subscription's plan applies; a canceled one does not", async () => {
    const team = await createTeam("Pro", { plan: "pro" });
    const q = "select billing.current_plan($1) as plan, billing.entitled($1, 'custom_domain') as domain, billing.limit_of($1, 'nope') as missing";
    expect((await admin.query(q, [team.orgId])).rows[0]).toEqual({ plan: "pro", domain: true, missing: "0" });
    await admin.query("update billing.subscriptions set status = 'canceled' where org_id = $1", [team.orgId]);
    expect((await admin.query(q, [team.orgId])).rows[0].plan).toBe("free");
  });

  it("an unlimited entitlement reads as null", async () => {
    await admin.query("update billing.entitlements set limit_value = null where plan_key = 'team' and key = 'storage_gb'");
    const team = await createTeam();
    const { rows } = await admin.query("select billing.limit_of($1, 'storage_gb') as v", [team.orgId]);
    expect(rows[0].v).toBeNull();
    await admin.query("update billing.entitlements set limit_value = 500 where plan_key = 'team' and key = 'storage_gb'");
  });

  it("inviting beyond the plan's seats is refused with PT402 and a clear message; nothing changes", async () => {
    const owner = await createUser();
    const [org] = await rpc<{ id: string }>(owner, "create_org", { p_name: "Tiny" });
    await rpc(owner, "invite_member", { p_org_id: org.id, p_email: "one@tiny.test" });
    await rpc(owner, "invite_member", { p_org_id: org.id, p_email: "two@tiny.test" });
    // Free plan: 3 seats = the owner + 2 pending invitations.
    await expectSqlError(rpc(owner, "invite_member", { p_org_id: org.id, p_email: "three@tiny.test" }), "PT402", /3 seats/);
    // Re-inviting a pending email replaces it and needs no new seat.
    await rpc(owner, "invite_member", { p_org_id: org.id, p_email: "two@tiny.test" });
    const { rows } = await admin.query("select count(*)::int as n from public.invitations where org_id = $1 and revoked_at is null", [org.id]);
    expect(rows[0].n).toBe(2);
  });

  it("everyone signed in reads the plan catalog; anon reads nothing; members see their subscription", async () => {
    const team = await createTeam();
    const stranger = await createUser();
    expect((await select(stranger, "select key from billing.plans order by sort")).map((r) => r.key)).toEqual(["free", "pro", "team"]);
    expect(await select(team.viewer, "select plan_key from billing.subscriptions where org_id = $1", [team.orgId])).toEqual([{ plan_key: "team" }]);
    expect(await select(stranger, "select plan_key from billing.subscriptions where org_id = $1", [team.orgId])).toEqual([]);
    await expectSqlError(select("anon", "select key from billing.plans"), "42501");
  });
});
