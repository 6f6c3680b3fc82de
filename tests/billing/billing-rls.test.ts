// Billing RLS from the client's side (issue #13): who reads each billing relation, and that no
// client writes any of them. Every read is done as PostgREST does it (claims + role in one
// transaction); every refused write re-reads the rows to prove nothing changed.
//   * billing history (customers, invoices, charges, disputes, credit purchases, reservations and
//     the allocations view): members with billing.manage read their org's rows; plain members,
//     viewers, strangers and an aal1 manager of an MFA org read nothing
//   * the catalog (plans, entitlements, products, prices): every signed-in user, active products
//     and prices only; anon nothing
//   * the subscription mirror and credit grants: no client (not even the org's owner) writes them
import { describe, expect, it } from "vitest";
import { addMember, admin, as, type Caller, createTeam, createUser, expectSqlError, select, type Team } from "../helpers/db.ts";
import { deliverOk, event, fakeStripe, price, product } from "../helpers/fake-stripe.ts";

const SERVICE: Caller = { claims: { role: "service_role", iss: "supabase-demo" } };

/** Runs a billing ledger operation as the service role (the only role that may call them). */
async function service<R = Record<string, unknown>>(query: string, params: unknown[]): Promise<R[]> {
  return as(SERVICE, async (c) => (await c.query(query, params)).rows as R[]);
}

/** The org's rows of a relation, read by the database owner (RLS bypassed), as a comparable snapshot. */
async function snapshot(relation: string, orgId: string): Promise<unknown[]> {
  const { rows } = await admin.query(`select to_jsonb(t) as r from ${relation} t where t.org_id = $1 order by t::text`, [orgId]);
  return rows.map((x) => x.r);
}

interface Seeded {
  team: Team;
  /** A member with a custom role that has billing.manage (and nothing else). */
  cashier: { id: string; email: string };
  ids: Record<string, string>;
}

/** One row in each billing history relation for a fresh Team org. */
async function seedHistory(name = "History"): Promise<Seeded> {
  const team = await createTeam(name);
  const t = team.orgId.slice(0, 8);
  const ids = {
    customer: `cus_rls_${t}`,
    invoice: `in_rls_${t}`,
    charge: `ch_rls_${t}`,
    dispute: `dp_rls_${t}`,
    purchase: `cs_rls_${t}`,
  } as Record<string, string>;
  await admin.query("insert into billing.customers (org_id, stripe_customer_id, email) values ($1, $2, 'billing@test.local')", [team.orgId, ids.customer]);
  await admin.query(
    `insert into billing.invoices (id, org_id, subscription_id, status, currency, amount_due, amount_paid)
     values ($1, $2, $3, 'paid', 'usd', 6000, 6000)`,
    [ids.invoice, team.orgId, `sub_test_${t}`],
  );
  await admin.query(
    `insert into billing.charges (id, org_id, invoice_id, payment_intent_id, currency, amount, status)
     values ($1, $2, $3, $4, 'usd', 6000, 'succeeded')`,
    [ids.charge, team.orgId, ids.invoice, `pi_rls_${t}`],
  );
  await admin.query(
    "insert into billing.disputes (id, org_id, charge_id, amount, currency, status) values ($1, $2, $3, 6000, 'usd', 'needs_response')",
    [ids.dispute, team.orgId, ids.charge],
  );
  const [grant] = await service<{ id: string }>(
    "select billing.grant_credits(p_org_id => $1, p_category => 'pack', p_amount => 500, p_idempotency_key => $2) as id",
    [team.orgId, `rls-grant-${t}`],
  );
  ids.grant = grant.id;
  await admin.query(
    `insert into billing.credit_purchases (checkout_session_id, org_id, payment_intent_id, quantity, credits, amount_total, currency, grant_id)
     values ($1, $2, $3, 1, 500, 1000, 'usd', $4)`,
    [ids.purchase, team.orgId, `pi_pack_${t}`, grant.id],
  );
  const [reservation] = await service<{ id: string }>(
    "select (billing.reserve_credits(p_org_id => $1, p_amount => 120, p_idempotency_key => $2)).id",
    [team.orgId, `rls-hold-${t}`],
  );
  ids.reservation = reservation.id;

  const cashier = await createUser();
  await admin.query("insert into public.org_roles (org_id, key, name, rank, permissions) values ($1, 'cashier', 'Cashier', 15, '{billing.manage}')", [team.orgId]);
  await addMember(team.orgId, cashier, "cashier");
  return { team, cashier, ids };
}

/** The billing history relations, each with the query that lists the org's rows by their key. */
const HISTORY: { relation: string; key: string; expected: (ids: Record<string, string>) => unknown[] }[] = [
  { relation: "billing.customers", key: "stripe_customer_id", expected: (i) => [i.customer] },
  { relation: "billing.invoices", key: "id", expected: (i) => [i.invoice] },
  { relation: "billing.charges", key: "id", expected: (i) => [i.charge] },
  { relation: "billing.disputes", key: "id", expected: (i) => [i.dispute] },
  { relation: "billing.credit_purchases", key: "checkout_session_id", expected: (i) => [i.purchase] },
  { relation: "billing.credit_reservations", key: "id", expected: (i) => [i.reservation] },
  // The view reads with the reader's rights: the reservation's hold on the pack grant.
  { relation: "billing.credit_allocations", key: "reservation_id || ':' || grant_id || ':' || amount", expected: (i) => [`${i.reservation}:${i.grant}:120`] },
];

async function keysAs(who: Caller, relation: string, key: string, orgId: string, aal: "aal1" | "aal2" = "aal1") {
  const rows = await select<{ k: string }>(who, `select ${key} as k from ${relation} where org_id = $1 order by 1`, [orgId], { aal });
  return rows.map((r) => r.k);
}

describe("billing history: only members with billing.manage read it", () => {
  it("owners, admins and a custom role with billing.manage read their org's rows of every history relation", async () => {
    const { team, cashier, ids } = await seedHistory();
    for (const { relation, key, expected } of HISTORY) {
      for (const who of [team.owner, team.admin, cashier]) {
        expect(await keysAs(who, relation, key, team.orgId), `${relation} as ${who === cashier ? "cashier" : who.email}`).toEqual(expected(ids));
      }
    }
  });

  it("plain members, viewers, strangers and another org's owner read nothing; anon is refused (42501)", async () => {
    const { team } = await seedHistory();
    const other = await createTeam("Elsewhere");
    const stranger = await createUser();
    for (const { relation, key } of HISTORY) {
      // The rows are there (the database owner sees them), so an empty answer is RLS at work.
      expect((await snapshot(relation, team.orgId)).length, relation).toBe(1);
      for (const [label, who] of [["member", team.member], ["viewer", team.viewer], ["stranger", stranger], ["other owner", other.owner]] as const) {
        expect(await keysAs(who, relation, key, team.orgId), `${relation} as ${label}`).toEqual([]);
        // Unfiltered, too: nothing of this org leaks into a listing.
        const all = await select<{ org_id: string }>(who, `select org_id from ${relation}`);
        expect(all.filter((r) => r.org_id === team.orgId), `${relation} listed as ${label}`).toEqual([]);
      }
      await expectSqlError(select("anon", `select 1 from ${relation}`), "42501");
    }
  });

  it("an org API key reads it only with the billing.manage scope, and only while live", async () => {
    const { team, ids } = await seedHistory("KeyHistory");
    const key = async (scopes: string[]) => {
      const [k] = await select<{ api_key_id: string }>(team.owner, "select api_key_id from public.create_api_key(p_org_id => $1, p_name => 'billing key', p_scopes => $2)", [team.orgId, scopes]);
      return { id: k.api_key_id, caller: { claims: { role: "authenticated", aud: "authenticated", api_key_id: k.api_key_id } } as Caller };
    };
    const billing = await key(["billing.manage"]);
    const content = await key(["content.read", "content.write"]);
    for (const { relation, key: column, expected } of HISTORY) {
      expect(await keysAs(billing.caller, relation, column, team.orgId), `${relation} with billing.manage`).toEqual(expected(ids));
      expect(await keysAs(content.caller, relation, column, team.orgId), `${relation} without it`).toEqual([]);
    }
    await select(team.owner, "select public.revoke_api_key($1)", [billing.id]);
    for (const { relation, key: column } of HISTORY) {
      expect(await keysAs(billing.caller, relation, column, team.orgId), `${relation} revoked`).toEqual([]);
    }
  });

  it("an owner whose session does not meet the org's MFA rule reads none of it; at aal2 they do", async () => {
    const { team, ids } = await seedHistory("MfaHistory");
    await admin.query("update public.orgs set require_mfa = true where id = $1", [team.orgId]);
    for (const { relation, key, expected } of HISTORY) {
      expect(await keysAs(team.owner, relation, key, team.orgId, "aal1"), `${relation} at aal1`).toEqual([]);
      expect(await keysAs(team.owner, relation, key, team.orgId, "aal2"), `${relation} at aal2`).toEqual(expected(ids));
    }
  });

  it("no client writes billing history, not even the org's owner (42501, nothing changes)", async () => {
    const { team, ids } = await seedHistory("Writes");
    const o = team.orgId;
    // Each attempt: the statement, its parameters, and the SQLSTATE (42501 unless given).
    const attempts: Record<string, [string, unknown[], string?][]> = {
      "billing.customers": [
        ["insert into billing.customers (org_id, stripe_customer_id) values ($1, 'cus_mine')", [o]],
        ["update billing.customers set stripe_customer_id = 'cus_mine' where org_id = $1", [o]],
        ["delete from billing.customers where org_id = $1", [o]],
      ],
      "billing.invoices": [
        ["insert into billing.invoices (id, org_id, currency, amount_due, amount_paid, status) values ('in_mine', $1, 'usd', 0, 0, 'paid')", [o]],
        ["update billing.invoices set status = 'void', amount_due = 0 where org_id = $1", [o]],
        ["delete from billing.invoices where org_id = $1", [o]],
      ],
      "billing.charges": [
        ["insert into billing.charges (id, org_id, currency, amount) values ('ch_mine', $1, 'usd', 1)", [o]],
        ["update billing.charges set amount_refunded = amount where org_id = $1", [o]],
        ["delete from billing.charges where org_id = $1", [o]],
      ],
      "billing.disputes": [
        ["insert into billing.disputes (id, org_id, charge_id, amount, currency, status) values ('dp_mine', $1, $2, 1, 'usd', 'won')", [o, ids.charge]],
        ["update billing.disputes set status = 'won', credits_restored = credits_clawed_back where org_id = $1", [o]],
        ["delete from billing.disputes where org_id = $1", [o]],
      ],
      "billing.credit_purchases": [
        ["insert into billing.credit_purchases (checkout_session_id, org_id, credits) values ('cs_mine', $1, 100000)", [o]],
        ["update billing.credit_purchases set credits = credits * 10 where org_id = $1", [o]],
        ["delete from billing.credit_purchases where org_id = $1", [o]],
      ],
      "billing.credit_reservations": [
        ["update billing.credit_reservations set amount = 1 where org_id = $1", [o]],
        ["delete from billing.credit_reservations where org_id = $1", [o]],
      ],
      // A view over the reservations' holds: not writable at all (55000), and no write grant either.
      "billing.credit_allocations": [
        ["delete from billing.credit_allocations where org_id = $1", [o], "55000"],
        ["update billing.credit_allocations set amount = 0 where org_id = $1", [o], "55000"],
      ],
    };
    for (const { relation } of HISTORY) {
      const before = await snapshot(relation, o);
      expect(before, relation).toHaveLength(1);
      for (const [query, params, code] of attempts[relation]) {
        await expectSqlError(as(team.owner, (c) => c.query(query, params)), code ?? "42501");
      }
      expect(await snapshot(relation, o), relation).toEqual(before);
    }
    // Nor does the account move.
    const { rows } = await admin.query("select balance::int, reserved::int from billing.credit_accounts where org_id = $1", [o]);
    expect(rows).toEqual([{ balance: 500, reserved: 120 }]);
  });
});

describe("the catalog: every signed-in user reads it, active products and prices only", () => {
  /**
   * A live product with a live price and a retired one, and a retired product with a price,
   * mirrored the documented way (Stripe's product and price events). They stay in the fake too,
   * so a concurrent `billing:sync` (another file) keeps them as they are; afterwards both sides
   * mark them inactive, as deleting them in Stripe would.
   */
  async function withCatalogRows<T>(fn: (ids: { liveProduct: string; oldProduct: string; livePrice: string; oldPrice: string; oldOfLive: string }) => Promise<T>) {
    const live = product({ name: "Live", plan: "pro" });
    const old = product({ name: "Retired", plan: "pro", active: false });
    const prices = [
      price({ product: live.id, amount: 2000 }),
      price({ product: old.id, amount: 1500, active: false }),
      price({ product: live.id, amount: 1800, currency: "eur", active: false }),
    ];
    const ids = { liveProduct: live.id, oldProduct: old.id, livePrice: prices[0].id, oldPrice: prices[1].id, oldOfLive: prices[2].id };
    try {
      for (const p of [live, old]) await deliverOk(event("product.created", await fakeStripe.put(p)));
      for (const p of prices) await deliverOk(event("price.created", await fakeStripe.put(p)));
      const { rows } = await admin.query("select id, active from billing.prices where product_id = any($1) order by id", [[live.id, old.id]]);
      expect(rows).toHaveLength(3);
      return await fn(ids);
    } finally {
      for (const p of [live, old, ...prices]) await fakeStripe.put({ ...p, active: false });
      await admin.query("update billing.prices set active = false where product_id = any($1)", [[live.id, old.id]]);
      await admin.query("update billing.products set active = false where id = any($1)", [[live.id, old.id]]);
    }
  }

  it("a signed-in user with no org reads plans and every entitlement, and active products and prices only", async () => {
    await withCatalogRows(async (ids) => {
      const stranger = await createUser();
      // The seeded plans (other files add plans of their own for a moment, so only these are compared).
      const seeded = ["free", "pro", "team"];
      const plans = await select<{ key: string }>(stranger, "select key from billing.plans where key = any($1) order by sort", [seeded]);
      expect(plans.map((p) => p.key)).toEqual(seeded);
      // Entitlements: all of them, including features a plan does not include (enabled = false).
      const ents = "select plan_key, key, enabled, limit_value from billing.entitlements where plan_key = any($1) order by plan_key, key";
      const { rows: all } = await admin.query(ents, [seeded]);
      expect(all.length).toBeGreaterThan(15);
      expect(await select(stranger, ents, [seeded])).toEqual(all);
      expect(all).toContainEqual({ plan_key: "free", key: "custom_domain", enabled: false, limit_value: null });

      const products = await select<{ id: string }>(stranger, "select id from billing.products where id = any($1)", [[ids.liveProduct, ids.oldProduct]]);
      expect(products.map((p) => p.id)).toEqual([ids.liveProduct]);
      const prices = await select<{ id: string }>(stranger, "select id from billing.prices where id = any($1) order by id", [[ids.livePrice, ids.oldPrice, ids.oldOfLive]]);
      // An inactive price of an active product is hidden too: the filter is per row.
      expect(prices.map((p) => p.id)).toEqual([ids.livePrice]);
      // The documented embed (prices with their product) works for the active pair.
      const embedded = await select(stranger, "select pr.id, p.name from billing.prices pr join billing.products p on p.id = pr.product_id where pr.id = any($1)", [[ids.livePrice, ids.oldPrice]]);
      expect(embedded).toEqual([{ id: ids.livePrice, name: "Live" }]);
    });
  });

  it("anon reads none of the catalog (42501)", async () => {
    for (const relation of ["billing.plans", "billing.entitlements", "billing.products", "billing.prices"]) {
      await expectSqlError(select("anon", `select 1 from ${relation}`), "42501");
    }
  });

  it("no client writes the catalog, not even an org owner (42501, nothing changes)", async () => {
    await withCatalogRows(async (ids) => {
      const team = await createTeam("CatalogWriter");
      const read = async () => (await admin.query(
        `select (select jsonb_agg(to_jsonb(p) order by p.key) from billing.plans p where p.key in ('free', 'pro', 'team', 'mine')) as plans,
                (select jsonb_agg(to_jsonb(e) order by e.plan_key, e.key) from billing.entitlements e where e.plan_key in ('free', 'pro', 'team')) as entitlements,
                (select jsonb_agg(to_jsonb(p) order by p.id) from billing.products p where p.id = any($1)) as products,
                (select jsonb_agg(to_jsonb(p) order by p.id) from billing.prices p where p.product_id = any($1)) as prices`,
        [[ids.liveProduct, ids.oldProduct]],
      )).rows[0];
      const before = await read();
      const attempts: [string, unknown[]][] = [
        ["insert into billing.plans (key, name) values ('mine', 'Mine')", []],
        ["update billing.plans set is_default = (key = 'team')", []],
        ["insert into billing.entitlements (plan_key, key, limit_value) values ('free', 'mine', 1)", []],
        ["update billing.entitlements set limit_value = null where plan_key = 'free' and key = 'seats'", []],
        ["delete from billing.entitlements where plan_key = 'free'", []],
        ["insert into billing.products (id, name, plan_key) values ('prod_mine', 'Mine', 'team')", []],
        ["update billing.products set active = true where id = $1", [ids.oldProduct]],
        ["delete from billing.products where id = $1", [ids.liveProduct]],
        ["insert into billing.prices (id, product_id, currency, unit_amount, type) values ('price_mine', $1, 'usd', 0, 'recurring')", [ids.liveProduct]],
        ["update billing.prices set unit_amount = 0 where id = $1", [ids.livePrice]],
        ["delete from billing.prices where id = $1", [ids.livePrice]],
      ];
      for (const [query, params] of attempts) {
        await expectSqlError(as(team.owner, (c) => c.query(query, params)), "42501");
        await expectSqlError(as("anon", (c) => c.query(query, params)), "42501");
      }
      expect(await read()).toEqual(before);
    });
  });
});

describe("the subscription mirror and credit grants: only webhook handling and the ledger write them", () => {
  it("members read their org's subscription; a stranger reads nothing", async () => {
    const team = await createTeam("SubRead", { plan: "pro" });
    const stranger = await createUser();
    for (const who of [team.owner, team.member, team.viewer]) {
      expect(await select(who, "select plan_key, status from billing.subscriptions where org_id = $1", [team.orgId])).toEqual([{ plan_key: "pro", status: "active" }]);
    }
    expect(await select(stranger, "select plan_key from billing.subscriptions where org_id = $1", [team.orgId])).toEqual([]);
    await expectSqlError(select("anon", "select 1 from billing.subscriptions"), "42501");
  });

  it("a billing manager cannot self-upgrade: insert, update and delete of the subscription are refused (42501), the plan stays", async () => {
    const team = await createTeam("SelfUpgrade", { plan: "pro" });
    const o = team.orgId;
    const before = await snapshot("billing.subscriptions", o);
    const attempts: [string, unknown[]][] = [
      ["update billing.subscriptions set plan_key = 'team' where org_id = $1", [o]],
      ["update billing.subscriptions set current_period_end = now() + interval '10 years' where org_id = $1", [o]],
      ["insert into billing.subscriptions (id, org_id, stripe_customer_id, status, plan_key, current_period_end) values ($2, $1, 'cus_self', 'active', 'team', now() + interval '10 years')", [o, `sub_self_${o.slice(0, 8)}`]],
      ["delete from billing.subscriptions where org_id = $1", [o]],
    ];
    for (const who of [team.owner, team.admin]) {
      for (const [query, params] of attempts) await expectSqlError(as(who, (c) => c.query(query, params)), "42501");
    }
    expect(await snapshot("billing.subscriptions", o)).toEqual(before);
    const [plan] = await select<{ plan: string }>(team.owner, "select billing.current_plan($1) as plan", [o]);
    expect(plan.plan).toBe("pro");
    // Refused writes leave no audit trail of a change either.
    const { rows } = await admin.query("select count(*)::int as n from notify.audit_log where org_id = $1 and target_table = 'billing.subscriptions' and action <> 'insert'", [o]);
    expect(rows[0].n).toBe(0);
  });

  it("a billing manager cannot mint credits: insert, update of remaining and delete of grants are refused (42501)", async () => {
    const team = await createTeam("MintCredits", { plan: null });
    const o = team.orgId;
    const [grant] = await service<{ id: string }>(
      "select billing.grant_credits(p_org_id => $1, p_category => 'manual', p_amount => 50, p_idempotency_key => 'rls-mint') as id",
      [o],
    );
    const before = await snapshot("billing.credit_grants", o);
    expect(before).toHaveLength(1);
    // The owner reads the grant (billing.manage), so the refusals below are not for want of seeing it.
    expect(await select(team.owner, "select id from billing.credit_grants where org_id = $1", [o])).toEqual([{ id: grant.id }]);
    const attempts: [string, unknown[]][] = [
      ["insert into billing.credit_grants (org_id, category, amount, remaining) values ($1, 'manual', 1000000, 1000000)", [o]],
      ["update billing.credit_grants set remaining = remaining + 1000 where org_id = $1", [o]],
      ["update billing.credit_grants set expires_at = null where org_id = $1", [o]],
      ["delete from billing.credit_grants where org_id = $1", [o]],
    ];
    for (const [query, params] of attempts) await expectSqlError(as(team.owner, (c) => c.query(query, params)), "42501");
    expect(await snapshot("billing.credit_grants", o)).toEqual(before);
    const { rows } = await admin.query("select balance::int from billing.credit_accounts where org_id = $1", [o]);
    expect(rows).toEqual([{ balance: 50 }]);
  });
});
