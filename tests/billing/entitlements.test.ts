// Plans and entitlements: the default plan, a live subscription's plan, and the seat limit
// that invitations respect.
import { randomUUID } from "node:crypto";
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
    // A plan of this test's own, so no other test (in this file or another) sees the change.
    const plan = `unl_${randomUUID().slice(0, 8)}`;
    try {
      await admin.query("insert into billing.plans (key, name, sort) values ($1, 'Unlimited storage', 99)", [plan]);
      await admin.query(
        "insert into billing.entitlements (plan_key, key, enabled, limit_value) values ($1, 'storage_gb', true, null), ($1, 'seats', true, 7)",
        [plan],
      );
      const team = await createTeam("Unlimited", { plan });
      const { rows } = await admin.query("select billing.limit_of($1, 'storage_gb') as storage, billing.limit_of($1, 'seats')::int as seats", [team.orgId]);
      // null (unlimited) is not 0 (not included): a limit the plan does not name reads 0.
      expect(rows[0]).toEqual({ storage: null, seats: 7 });
      expect((await admin.query("select billing.limit_of($1, 'webhook_endpoints')::int as v", [team.orgId])).rows[0].v).toBe(0);
      // A member asking gets the same answer as the service role.
      expect(await select(team.member, "select billing.limit_of($1, 'storage_gb') as storage", [team.orgId])).toEqual([{ storage: null }]);
    } finally {
      // Deleting the plan cascades to its entitlements and clears the test org's subscription plan.
      await admin.query("delete from billing.plans where key = $1", [plan]);
    }
  });

  it("a disabled entitlement reads as not entitled and limit 0, even with a limit set", async () => {
    const plan = `off_${randomUUID().slice(0, 8)}`;
    try {
      await admin.query("insert into billing.plans (key, name, sort) values ($1, 'Switched off', 99)", [plan]);
      await admin.query("insert into billing.entitlements (plan_key, key, enabled, limit_value) values ($1, 'storage_gb', false, 40)", [plan]);
      const team = await createTeam("SwitchedOff", { plan });
      const { rows } = await admin.query("select billing.entitled($1, 'storage_gb') as on, billing.limit_of($1, 'storage_gb')::int as v", [team.orgId]);
      expect(rows[0]).toEqual({ on: false, v: 0 });
    } finally {
      await admin.query("delete from billing.plans where key = $1", [plan]);
    }
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

  it("everyone signed in reads the plan catalog (plans, entitlements, active products and prices); anon reads none of it; members see their subscription", async () => {
    const team = await createTeam();
    const stranger = await createUser();
    // Other tests may add plans of their own for a moment: the three seeded ones come first, in order.
    expect((await select(stranger, "select key from billing.plans where key in ('free', 'pro', 'team') order by sort")).map((r) => r.key)).toEqual(["free", "pro", "team"]);
    // The seeded entitlements, as the docs' table lists them.
    const ents = await select<{ plan_key: string; key: string; enabled: boolean; limit_value: string | null }>(
      stranger,
      "select plan_key, key, enabled, limit_value from billing.entitlements where plan_key in ('free', 'pro', 'team') and key in ('seats', 'custom_domain')",
    );
    expect(ents).toEqual(expect.arrayContaining([
      { plan_key: "free", key: "seats", enabled: true, limit_value: "3" },
      { plan_key: "team", key: "seats", enabled: true, limit_value: "50" },
      { plan_key: "free", key: "custom_domain", enabled: false, limit_value: null },
      { plan_key: "pro", key: "custom_domain", enabled: true, limit_value: null },
    ]));
    expect(ents).toHaveLength(6);
    // The mirrored Stripe catalog: every active product and price the database has, and only those.
    const { rows: live } = await admin.query(
      "select pr.id from billing.prices pr join billing.products p on p.id = pr.product_id where pr.active and p.active and p.id like 'prod_demo%' order by pr.id",
    );
    expect(live.length).toBeGreaterThan(0);
    expect(await select(stranger, "select pr.id from billing.prices pr join billing.products p on p.id = pr.product_id where p.id like 'prod_demo%' order by pr.id")).toEqual(live);
    expect(await select(team.viewer, "select plan_key from billing.subscriptions where org_id = $1", [team.orgId])).toEqual([{ plan_key: "team" }]);
    expect(await select(stranger, "select plan_key from billing.subscriptions where org_id = $1", [team.orgId])).toEqual([]);
    for (const relation of ["billing.plans", "billing.entitlements", "billing.products", "billing.prices", "billing.subscriptions"]) {
      await expectSqlError(select("anon", `select 1 from ${relation}`), "42501");
    }
  });
});
