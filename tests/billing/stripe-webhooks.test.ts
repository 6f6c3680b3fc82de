// POST /webhooks/stripe on the real Deno functions, with payloads signed by the real SDK and
// objects refetched from the fake Stripe: signatures, exactly-once under duplicate and
// concurrent deliveries, ordering by watermark, rollback on failure, the catalog mirror.
import { execFile } from "node:child_process";
import path from "node:path";
import { promisify } from "node:util";
import { beforeAll, describe, expect, it } from "vitest";
import { EVENT_PAYLOADS } from "../../functions/_shared/events/catalog.ts";
import { account, expectLedgerConsistent } from "../helpers/credits.ts";
import { admin, createTeam, stack, type Team } from "../helpers/db.ts";
import {
  type Catalog,
  checkoutSession,
  createCatalog,
  createCustomer,
  deliver,
  deliverOk,
  event,
  fakeStripe,
  invoice,
  nowSeconds,
  price,
  product,
  type StripeObject,
  stripeClient,
  subscription,
  uid,
} from "../helpers/fake-stripe.ts";

const ROOT = path.resolve(import.meta.dirname, "../..");

let catalog: Catalog;
beforeAll(async () => {
  catalog = await createCatalog();
});

async function eventRow(id: string) {
  const { rows } = await admin.query("select id, type, status, object_id, resolved_org_id from billing.stripe_events where id = $1", [id]);
  return rows[0];
}

async function subRow(id: string) {
  const { rows } = await admin.query(
    "select org_id, status, plan_key, price_id, quantity, watermark_created::int as wm, watermark_event_id as wm_id from billing.subscriptions where id = $1",
    [id],
  );
  return rows[0];
}

async function outbox(orgId: string, type: string) {
  const { rows } = await admin.query("select type, subject_id, payload from notify.events where org_id = $1 and type = $2 order by seq", [orgId, type]);
  return rows as { type: string; subject_id: string; payload: Record<string, unknown> }[];
}

/** A free-plan org with a Stripe customer (the fake knows it; metadata org_id links it). */
async function orgWithCustomer(): Promise<{ team: Team; customer: StripeObject }> {
  const team = await createTeam("Billing", { plan: null });
  return { team, customer: await createCustomer(team.orgId) };
}

describe("signature verification", () => {
  it("refuses a payload signed with another secret, and changes nothing", async () => {
    const { customer } = await orgWithCustomer();
    const sub = await fakeStripe.put(subscription({ customer: customer.id, price: catalog.pro.price }));
    const e = event("customer.subscription.created", sub);
    const res = await deliver(e, { secret: "whsec_not_the_right_one" });
    expect(res.status).toBe(400);
    expect(res.body.error.code).toBe("invalid_signature");
    expect(await eventRow(e.id)).toBeUndefined();
    expect(await subRow(sub.id)).toBeUndefined();
  });

  it("refuses a payload changed after signing", async () => {
    const e = event("customer.subscription.created", { id: uid("sub"), object: "subscription" });
    const signed = JSON.stringify(e);
    const sig = stripeClient().webhooks.generateTestHeaderString({ payload: signed, secret: stack.stripeWebhookSecret });
    const res = await deliver(signed.replace("customer.subscription.created", "customer.subscription.deleted"), { signature: sig });
    expect(res.status).toBe(400);
    expect(await eventRow(e.id)).toBeUndefined();
  });

  it("refuses a request without the Stripe-Signature header", async () => {
    const e = event("product.created", product());
    const res = await deliver(e, { signature: null });
    expect(res.status).toBe(400);
    expect(res.body.error.code).toBe("missing_signature");
    expect(await eventRow(e.id)).toBeUndefined();
  });

  it("refuses an expired signature (older than the SDK's 5-minute tolerance)", async () => {
    const e = event("product.created", product());
    const payload = JSON.stringify(e);
    const sig = stripeClient().webhooks.generateTestHeaderString({
      payload, secret: stack.stripeWebhookSecret, timestamp: nowSeconds() - 3600,
    });
    expect((await deliver(payload, { signature: sig })).status).toBe(400);
  });

  it("answers 2xx to an unknown event type and records it as ignored", async () => {
    const e = event("radar.early_fraud_warning.created", { id: uid("issfr"), object: "radar.early_fraud_warning" });
    const res = await deliver(e);
    expect(res.status).toBe(200);
    expect(res.body.status).toBe("ignored");
    expect(await eventRow(e.id)).toMatchObject({ status: "ignored", type: "radar.early_fraud_warning.created" });
  });

  it("answers 404 for other paths", async () => {
    const res = await fetch(`${stack.functionsUrl}/webhooks/nope`, { method: "POST" });
    expect(res.status).toBe(404);
  });
});

describe("exactly once", () => {
  async function packSession(orgId: string, customerId: string) {
    return checkoutSession({
      customer: customerId, orgId, mode: "payment", priceId: catalog.pack.price.id, quantity: 2, paymentIntent: uid("pi"),
    });
  }

  it("a duplicate delivery is acknowledged and applied once", async () => {
    const { team, customer } = await orgWithCustomer();
    const e = event("checkout.session.completed", await packSession(team.orgId, customer.id));
    const first = await deliverOk(e);
    expect(first.body).toMatchObject({ status: "processed", duplicate: false });
    const second = await deliverOk(e);
    expect(second.body).toMatchObject({ duplicate: true });
    expect(await account(team.orgId)).toMatchObject({ balance: 1000, debt: 0 });
    expect(await outbox(team.orgId, "billing.credits_granted")).toHaveLength(1);
  });

  it("five concurrent deliveries of one event grant the credits once", async () => {
    const { team, customer } = await orgWithCustomer();
    const e = event("checkout.session.completed", await packSession(team.orgId, customer.id));
    const results = await Promise.all(Array.from({ length: 5 }, () => deliver(e)));
    expect(results.map((r) => r.status)).toEqual([200, 200, 200, 200, 200]);
    expect(results.filter((r) => !r.body.duplicate)).toHaveLength(1);
    expect(await account(team.orgId)).toMatchObject({ balance: 1000 });
    const { rows } = await admin.query("select credits::int, grant_id from billing.credit_purchases where org_id = $1", [team.orgId]);
    expect(rows).toEqual([{ credits: 1000, grant_id: expect.any(String) }]);
    const granted = await outbox(team.orgId, "billing.credits_granted");
    expect(granted).toHaveLength(1);
    expect(EVENT_PAYLOADS["billing.credits_granted"].parse(granted[0].payload)).toMatchObject({ amount: 1000, category: "pack" });
    await expectLedgerConsistent(team.orgId);
  });

  it("the same checkout session under another event (async payment succeeded) grants nothing more", async () => {
    const { team, customer } = await orgWithCustomer();
    const session = await packSession(team.orgId, customer.id);
    await deliverOk(event("checkout.session.completed", session));
    await deliverOk(event("checkout.session.async_payment_succeeded", session));
    expect(await account(team.orgId)).toMatchObject({ balance: 1000 });
  });

  it("an unpaid (async) checkout grants only once the payment succeeds", async () => {
    const { team, customer } = await orgWithCustomer();
    const session = await packSession(team.orgId, customer.id);
    await deliverOk(event("checkout.session.completed", { ...session, payment_status: "unpaid" }));
    expect(await account(team.orgId)).toMatchObject({ balance: 0 });
    await deliverOk(event("checkout.session.async_payment_failed", { ...session, payment_status: "unpaid" }));
    expect(await account(team.orgId)).toMatchObject({ balance: 0 });
    await deliverOk(event("checkout.session.async_payment_succeeded", session));
    expect(await account(team.orgId)).toMatchObject({ balance: 1000 });
  });
});

describe("ordering", () => {
  it("an older event delivered after a newer one changes nothing", async () => {
    const { team, customer } = await orgWithCustomer();
    const t = nowSeconds() - 100;
    const sub = await fakeStripe.put(subscription({ customer: customer.id, price: catalog.pro.price, status: "active" }));
    const created = event("customer.subscription.created", { ...sub, status: "incomplete" }, { created: t });
    const updated = event("customer.subscription.updated", sub, { created: t + 1 });

    await deliverOk(updated);
    expect(await subRow(sub.id)).toMatchObject({ org_id: team.orgId, status: "active", plan_key: "pro", wm: t + 1, wm_id: updated.id });

    // Stripe has moved on meanwhile; the stale event still must not touch the row.
    await fakeStripe.put({ ...sub, status: "past_due" });
    const res = await deliverOk(created);
    expect(res.body).toMatchObject({ status: "processed", stale: true });
    expect(await subRow(sub.id)).toMatchObject({ status: "active", wm: t + 1, wm_id: updated.id });
    expect(await eventRow(created.id)).toMatchObject({ status: "processed", resolved_org_id: team.orgId });

    // The event for that move brings it in.
    await deliverOk(event("customer.subscription.updated", { ...sub, status: "past_due" }, { created: t + 2 }));
    expect(await subRow(sub.id)).toMatchObject({ status: "past_due", wm: t + 2 });
  });

  it("two events in the same second: the watermark keeps the larger (created, id), in either order", async () => {
    for (const order of ["b-first", "a-first"] as const) {
      const { customer } = await orgWithCustomer();
      const t = nowSeconds() - 50;
      const sub = await fakeStripe.put(subscription({ customer: customer.id, price: catalog.team.price, quantity: 4 }));
      const a = event("customer.subscription.updated", sub, { created: t, id: `evt_${t}_a_${uid("x")}` });
      const b = event("customer.subscription.updated", sub, { created: t, id: `evt_${t}_b_${uid("x")}` });
      for (const e of order === "b-first" ? [b, a] : [a, b]) await deliverOk(e);
      expect(await subRow(sub.id), order).toMatchObject({ status: "active", plan_key: "team", quantity: 4, wm: t, wm_id: b.id });
      expect(await eventRow(a.id)).toMatchObject({ status: "processed" });
      expect(await eventRow(b.id)).toMatchObject({ status: "processed" });
    }
  });

  it("same second, smaller id delivered last: its change is not lost (ids do not order events within a second)", async () => {
    const { customer } = await orgWithCustomer();
    const t = nowSeconds() - 40;
    const sub = await fakeStripe.put(subscription({ customer: customer.id, price: catalog.pro.price, quantity: 1 }));
    const b = event("customer.subscription.updated", sub, { created: t, id: `evt_${t}_b_${uid("x")}` });
    await deliverOk(b);
    // A change made later in the same second; Stripe happened to give its event a smaller id.
    const changed = await fakeStripe.put({ ...sub, status: "past_due" });
    const a = event("customer.subscription.updated", changed, { created: t, id: `evt_${t}_a_${uid("x")}` });
    expect((await deliverOk(a)).body.stale).toBe(false);
    expect(await subRow(sub.id)).toMatchObject({ status: "past_due", wm: t, wm_id: b.id });
  });

  it("concurrent events for one subscription serialize and end on the newest", async () => {
    const { customer } = await orgWithCustomer();
    const t = nowSeconds() - 30;
    const sub = await fakeStripe.put(subscription({ customer: customer.id, price: catalog.pro.price }));
    const events = [0, 1, 2, 3].map((i) => event("customer.subscription.updated", sub, { created: t + i }));
    const results = await Promise.all(events.map((e) => deliver(e)));
    expect(results.map((r) => r.status)).toEqual([200, 200, 200, 200]);
    expect(await subRow(sub.id)).toMatchObject({ status: "active", wm: t + 3, wm_id: events[3].id });
  });
});

describe("failures roll back, and Stripe's retry applies the event", () => {
  it("Stripe failing on the refetch: 5xx, no event row, no state; the retry applies it", async () => {
    const { team, customer } = await orgWithCustomer();
    const sub = await fakeStripe.put(subscription({ customer: customer.id, price: catalog.pro.price }));
    const e = event("customer.subscription.created", sub);
    await fakeStripe.fail({ method: "GET", path: `/v1/subscriptions/${sub.id}`, status: 500 });
    try {
      const res = await deliver(e);
      expect(res.status).toBeGreaterThanOrEqual(500);
      expect(res.body.error.code).toBe("internal");
      expect(await eventRow(e.id)).toBeUndefined();
      expect(await subRow(sub.id)).toBeUndefined();
      expect(await outbox(team.orgId, "billing.subscription_changed")).toHaveLength(0);
    } finally {
      await fakeStripe.recover(`/v1/subscriptions/${sub.id}`);
    }
    const retry = await deliverOk(e);
    expect(retry.body).toMatchObject({ status: "processed", duplicate: false });
    expect(await subRow(sub.id)).toMatchObject({ status: "active", plan_key: "pro" });
    expect(await eventRow(e.id)).toMatchObject({ status: "processed" });
  });

  it("a failure after partial writes leaves none of them behind", async () => {
    const { team, customer } = await orgWithCustomer();
    const sub = await fakeStripe.put(subscription({ customer: customer.id, price: catalog.pro.price }));
    const inv = await fakeStripe.put(invoice({ customer: customer.id, subscription: sub.id, price: catalog.pro.price }));
    const e = event("invoice.paid", inv);
    // The invoice is upserted first; then mirroring the (unknown) subscription fails.
    await fakeStripe.fail({ method: "GET", path: `/v1/subscriptions/${sub.id}`, status: 503 });
    try {
      expect((await deliver(e)).status).toBeGreaterThanOrEqual(500);
    } finally {
      await fakeStripe.recover(`/v1/subscriptions/${sub.id}`);
    }
    const { rows: invoices } = await admin.query("select 1 from billing.invoices where id = $1", [inv.id]);
    expect(invoices).toHaveLength(0);
    expect(await eventRow(e.id)).toBeUndefined();
    expect(await account(team.orgId)).toMatchObject({ balance: 0 });

    await deliverOk(e);
    const { rows: after } = await admin.query("select status, amount_paid::int from billing.invoices where id = $1", [inv.id]);
    expect(after).toEqual([{ status: "paid", amount_paid: 2000 }]);
    expect(await account(team.orgId)).toMatchObject({ balance: 5000 });
  });

  it("an object Stripe no longer has (404 resource_missing on the refetch) is recorded as ignored, 2xx", async () => {
    const { customer } = await orgWithCustomer();
    const sub = subscription({ customer: customer.id, price: catalog.pro.price }); // never in the fake
    const e = event("customer.subscription.updated", sub);
    const res = await deliver(e);
    expect(res.status).toBe(200);
    expect(res.body).toMatchObject({ status: "ignored", object_id: sub.id });
    expect(await eventRow(e.id)).toMatchObject({ status: "ignored", object_id: sub.id });
    expect(await subRow(sub.id)).toBeUndefined();
    expect((await deliverOk(e)).body).toMatchObject({ duplicate: true });
  });

  it("an event whose customer belongs to no org is recorded as ignored", async () => {
    const stranger = await fakeStripe.put({ ...(await createCustomer("00000000-0000-4000-8000-000000000000", { linked: false })), metadata: {} });
    const sub = await fakeStripe.put(subscription({ customer: stranger.id, price: catalog.pro.price }));
    const e = event("customer.subscription.created", sub);
    expect((await deliverOk(e)).body.status).toBe("ignored");
    expect(await subRow(sub.id)).toBeUndefined();
  });
});

describe("catalog mirror", () => {
  async function productRow(id: string) {
    const { rows } = await admin.query("select name, active, plan_key, credits::int from billing.products where id = $1", [id]);
    return rows[0];
  }

  it("product and price events upsert, ignore stale updates and deactivate on delete", async () => {
    const p = product({ name: "Starter", plan: "pro" });
    const pr = price({ product: p.id, amount: 900 });
    const t = nowSeconds() - 100;
    // The price first: its product is held in place until the product event arrives.
    await deliverOk(event("price.created", pr, { created: t }));
    expect(await productRow(p.id)).toMatchObject({ name: p.id, plan_key: null });
    await deliverOk(event("product.created", p, { created: t }));
    expect(await productRow(p.id)).toEqual({ name: "Starter", active: true, plan_key: "pro", credits: null });

    await deliverOk(event("product.updated", { ...p, name: "Starter 2", metadata: { plinth_credits: "250" } }, { created: t + 2 }));
    await deliverOk(event("product.updated", { ...p, name: "Stale" }, { created: t + 1 }));
    expect(await productRow(p.id)).toEqual({ name: "Starter 2", active: true, plan_key: null, credits: 250 });

    // Stripe's deleted events carry the object as it was (no deleted: true).
    await deliverOk(event("price.deleted", { ...pr, active: true }, { created: t + 3 }));
    await deliverOk(event("product.deleted", { ...p, name: "Starter 2", active: true }, { created: t + 3 }));
    expect(await productRow(p.id)).toMatchObject({ active: false });
    const { rows } = await admin.query("select active, unit_amount::int from billing.prices where id = $1", [pr.id]);
    expect(rows).toEqual([{ active: false, unit_amount: 900 }]);
  });

  it("an unknown plinth_plan leaves the product without a plan", async () => {
    const p = product({ plan: "platinum" });
    await deliverOk(event("product.created", p));
    expect(await productRow(p.id)).toMatchObject({ plan_key: null });
  });

  it("npm run billing:sync mirrors every product and price, paging through Stripe's lists", async () => {
    const p = await fakeStripe.put(product({ name: "Only in Stripe", credits: 42 }));
    const pr = await fakeStripe.put(price({ product: p.id, amount: 4200, recurring: false }));
    const before = (await fakeStripe.requests("/v1/products")).length;
    const { stdout } = await promisify(execFile)("node_modules/.bin/tsx", ["scripts/billing-sync.ts"], {
      cwd: ROOT,
      env: {
        ...process.env,
        STRIPE_SECRET_KEY: stack.stripeSecretKey,
        STRIPE_API_BASE: stack.stripeApiBase,
        SUPABASE_DB_URL: stack.dbUrl,
        BILLING_SYNC_PAGE_SIZE: "3",
      },
    });
    expect(stdout).toMatch(/synced \d+ products and \d+ prices/);
    expect(await productRow(p.id)).toEqual({ name: "Only in Stripe", active: true, plan_key: null, credits: 42 });
    const { rows } = await admin.query("select product_id, type, active from billing.prices where id = $1", [pr.id]);
    expect(rows).toEqual([{ product_id: p.id, type: "one_time", active: true }]);
    const pages = (await fakeStripe.requests("/v1/products")).slice(before);
    expect(pages.length).toBeGreaterThan(1);
    expect(pages.slice(1).every((r) => typeof r.params.starting_after === "string")).toBe(true);
    // The demo catalog is in the fake too, so nothing it lists went inactive.
    expect(await productRow("prod_demo_pro")).toMatchObject({ active: true, plan_key: "pro" });
  });
});
