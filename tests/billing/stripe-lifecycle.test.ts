// Subscription and credits lifecycles driven by signed Stripe events against the real
// functions: trial → active → past_due → canceled, an upgrade with proration, monthly credits
// once per invoice, credit packs with refunds and disputes clawing back (debt when spent).
import { beforeAll, describe, expect, it } from "vitest";
import { EVENT_PAYLOADS } from "../../functions/_shared/events/catalog.ts";
import { account, expectLedgerConsistent, op } from "../helpers/credits.ts";
import { admin, createTeam } from "../helpers/db.ts";
import {
  type Catalog,
  charge,
  checkoutSession,
  createCatalog,
  createCustomer,
  deliver,
  deliverOk,
  dispute,
  event,
  fakeStripe,
  invoice,
  invoicePayment,
  nowSeconds,
  price,
  product,
  type StripeObject,
  subscription,
  uid,
} from "../helpers/fake-stripe.ts";

let catalog: Catalog;
beforeAll(async () => {
  catalog = await createCatalog();
});

async function orgWithCustomer() {
  const team = await createTeam("Lifecycle", { plan: null });
  return { orgId: team.orgId, customer: await createCustomer(team.orgId) };
}

async function subRow(id: string) {
  const { rows } = await admin.query(
    `select status, plan_key, price_id, quantity, cancel_at_period_end, canceled_at, trial_end, current_period_end
     from billing.subscriptions where id = $1`,
    [id],
  );
  return rows[0];
}

async function currentPlan(orgId: string): Promise<string> {
  return (await admin.query("select billing.current_plan($1) as p", [orgId])).rows[0].p;
}

async function outbox(orgId: string, type: string) {
  const { rows } = await admin.query("select payload from notify.events where org_id = $1 and type = $2 order by seq", [orgId, type]);
  return rows.map((r) => r.payload as Record<string, any>);
}

async function grants(orgId: string) {
  const { rows } = await admin.query(
    "select category, amount::int, source_ref, expires_at from billing.credit_grants where org_id = $1 order by created_at",
    [orgId],
  );
  return rows;
}

/** Changes the subscription in the fake and delivers the event Stripe would send for it. */
async function move(sub: StripeObject, patch: Record<string, unknown>, type = "customer.subscription.updated") {
  const next = await fakeStripe.put({ ...sub, ...patch } as StripeObject);
  await deliverOk(event(type, next));
  return next;
}

describe("a subscription's whole life", () => {
  it("trial → active → past_due → canceled, with credits, payment failures and the plan following along", async () => {
    const { orgId, customer } = await orgWithCustomer();
    const trialEnd = nowSeconds() + 14 * 86_400;
    let sub = await fakeStripe.put(subscription({
      customer: customer.id, price: catalog.pro.price, status: "trialing", trialEnd, periodEnd: trialEnd,
    }));

    // Checkout completes: the customer is linked and the subscription mirrored at once.
    await deliverOk(event("checkout.session.completed", checkoutSession({ customer: customer.id, orgId, mode: "subscription", subscription: sub.id, paymentStatus: "no_payment_required" })));
    expect(await subRow(sub.id)).toMatchObject({ status: "trialing", plan_key: "pro", price_id: catalog.pro.price.id });
    expect(await currentPlan(orgId)).toBe("pro");
    await deliverOk(event("customer.subscription.created", sub));

    // The trial invoice (0) is paid: the plan's monthly credits, expiring at the period end.
    const trialInvoice = await fakeStripe.put(invoice({ customer: customer.id, subscription: sub.id, price: catalog.pro.price, periodEnd: trialEnd, amountDue: 0, billingReason: "subscription_create" }));
    await deliverOk(event("invoice.paid", trialInvoice));
    expect(await grants(orgId)).toEqual([
      { category: "subscription", amount: 5000, source_ref: trialInvoice.id, expires_at: new Date(trialEnd * 1000) },
    ]);
    await deliverOk(event("customer.subscription.trial_will_end", sub));
    expect(await subRow(sub.id)).toMatchObject({ status: "trialing" });

    // The trial converts.
    sub = await move(sub, { status: "active", trial_end: trialEnd });
    expect(await subRow(sub.id)).toMatchObject({ status: "active", plan_key: "pro" });
    const renewal = await fakeStripe.put(invoice({ customer: customer.id, subscription: sub.id, price: catalog.pro.price, billingReason: "subscription_cycle" }));
    await deliverOk(event("invoice.paid", renewal));
    await deliverOk(event("invoice.paid", renewal)); // another event id for the same invoice
    expect((await account(orgId)).balance).toBe(10_000);

    // The next renewal fails: the invoice is mirrored, the org hears about it, the sub goes past_due.
    const failed = await fakeStripe.put(invoice({ customer: customer.id, subscription: sub.id, price: catalog.pro.price, billingReason: "subscription_cycle", status: "open" }));
    await deliverOk(event("invoice.payment_failed", failed));
    const { rows: inv } = await admin.query("select status, amount_paid::int, billing_reason from billing.invoices where id = $1", [failed.id]);
    expect(inv).toEqual([{ status: "open", amount_paid: 0, billing_reason: "subscription_cycle" }]);
    const failures = await outbox(orgId, "billing.payment_failed");
    expect(failures).toEqual([{ invoice_id: failed.id, subscription_id: sub.id, amount_due: 2000, currency: "usd" }]);
    expect(EVENT_PAYLOADS["billing.payment_failed"].safeParse(failures[0]).success).toBe(true);
    await deliverOk(event("invoice.payment_action_required", failed));
    expect(await outbox(orgId, "billing.payment_action_required")).toHaveLength(1);
    // Paying that invoice later still would not grant twice; it is not paid, so nothing now.
    expect((await account(orgId)).balance).toBe(10_000);

    sub = await move(sub, { status: "past_due" });
    expect(await subRow(sub.id)).toMatchObject({ status: "past_due" });
    expect(await currentPlan(orgId)).toBe("pro"); // past_due keeps the plan while Stripe retries

    const canceledAt = nowSeconds();
    sub = await move(sub, { status: "canceled", canceled_at: canceledAt }, "customer.subscription.deleted");
    expect(await subRow(sub.id)).toMatchObject({ status: "canceled", canceled_at: new Date(canceledAt * 1000) });
    expect(await currentPlan(orgId)).toBe("free");

    const changes = await outbox(orgId, "billing.subscription_changed");
    expect(changes.map((c) => [c.previous_status, c.status])).toEqual([
      [null, "trialing"], ["trialing", "active"], ["active", "past_due"], ["past_due", "canceled"],
    ]);
    for (const c of changes) expect(EVENT_PAYLOADS["billing.subscription_changed"].safeParse(c).success).toBe(true);
    await expectLedgerConsistent(orgId);
  });

  it("paused and resumed subscriptions are mirrored", async () => {
    const { customer } = await orgWithCustomer();
    let sub = await fakeStripe.put(subscription({ customer: customer.id, price: catalog.team.price }));
    await deliverOk(event("customer.subscription.created", sub));
    sub = await move(sub, { status: "paused" }, "customer.subscription.paused");
    expect(await subRow(sub.id)).toMatchObject({ status: "paused" });
    sub = await move(sub, { status: "active" }, "customer.subscription.resumed");
    expect(await subRow(sub.id)).toMatchObject({ status: "active", plan_key: "team" });
  });

  it("an upgrade with proration: the plan follows the new price and the proration invoice is mirrored", async () => {
    const { orgId, customer } = await orgWithCustomer();
    const sub = await fakeStripe.put(subscription({ customer: customer.id, price: catalog.pro.price, quantity: 2 }));
    await deliverOk(event("customer.subscription.created", sub));
    expect(await currentPlan(orgId)).toBe("pro");
    expect(Number((await admin.query("select billing.limit_of($1, 'seats') as n", [orgId])).rows[0].n)).toBe(10);

    const upgraded = subscription({ id: sub.id, customer: customer.id, price: catalog.team.price, quantity: 2 });
    await fakeStripe.put(upgraded);
    await deliverOk(event("customer.subscription.updated", upgraded));
    expect(await subRow(sub.id)).toMatchObject({ status: "active", plan_key: "team", price_id: catalog.team.price.id, quantity: 2 });
    expect(await currentPlan(orgId)).toBe("team");
    expect(Number((await admin.query("select billing.limit_of($1, 'seats') as n", [orgId])).rows[0].n)).toBe(50);

    const proration = await fakeStripe.put(invoice({ customer: customer.id, subscription: sub.id, price: catalog.team.price, proration: true, billingReason: "subscription_update", amountDue: 7400 }));
    await deliverOk(event("invoice.paid", proration));
    const { rows } = await admin.query(
      "select org_id, subscription_id, status, billing_reason, amount_paid::int from billing.invoices where id = $1", [proration.id]);
    expect(rows).toEqual([{ org_id: orgId, subscription_id: sub.id, status: "paid", billing_reason: "subscription_update", amount_paid: 7400 }]);
    // Monthly credits come with the first and each renewal invoice, not with a proration.
    expect(await grants(orgId)).toEqual([]);
    const change = (await outbox(orgId, "billing.subscription_changed")).at(-1);
    expect(change).toMatchObject({ previous_plan_key: "pro", plan_key: "team", status: "active" });
  });
});

describe("credit packs, refunds and disputes", () => {
  async function buyPack(orgId: string, customerId: string, quantity = 2) {
    const paymentIntent = uid("pi");
    const session = checkoutSession({ customer: customerId, orgId, mode: "payment", priceId: catalog.pack.price.id, quantity, paymentIntent, amountTotal: 1000 * quantity });
    await deliverOk(event("checkout.session.completed", session));
    return { session, paymentIntent };
  }

  async function spend(orgId: string, amount: number) {
    const [res] = await op<{ id: string }>("reserve_credits", { p_org_id: orgId, p_amount: amount, p_idempotency_key: uid("spend") });
    await op("settle_credits", { p_reservation_id: res.id, p_amount: amount });
  }

  it("a partial refund takes back its share; a full refund after spending leaves debt; replays change nothing", async () => {
    const { orgId, customer } = await orgWithCustomer();
    const { paymentIntent } = await buyPack(orgId, customer.id);
    expect(await account(orgId)).toEqual({ balance: 1000, reserved: 0, debt: 0 });

    const ch = charge({ customer: customer.id, paymentIntent, amount: 2000 });
    const partial = event("charge.refunded", { ...ch, amount_refunded: 500 });
    await deliverOk(partial);
    expect(await account(orgId)).toEqual({ balance: 750, reserved: 0, debt: 0 });

    await spend(orgId, 700);
    expect(await account(orgId)).toEqual({ balance: 50, reserved: 0, debt: 0 });

    const full = event("charge.refunded", { ...ch, amount_refunded: 2000, refunded: true });
    await deliverOk(full);
    expect(await account(orgId)).toEqual({ balance: 0, reserved: 0, debt: 700 });
    await deliverOk(full);
    // The partial refund's event arriving again, late, under a new id: the charge keeps its larger refund.
    await deliverOk(event("charge.refunded", { ...ch, amount_refunded: 500 }));
    expect(await account(orgId)).toEqual({ balance: 0, reserved: 0, debt: 700 });

    const { rows } = await admin.query("select amount::int, amount_refunded::int, disputed from billing.charges where id = $1", [ch.id]);
    expect(rows).toEqual([{ amount: 2000, amount_refunded: 2000, disputed: false }]);
    const { rows: purchase } = await admin.query("select credits::int, credits_clawed_back::int from billing.credit_purchases where payment_intent_id = $1", [paymentIntent]);
    expect(purchase).toEqual([{ credits: 1000, credits_clawed_back: 1000 }]);
    const clawed = await outbox(orgId, "billing.credits_clawed_back");
    expect(clawed.map((c) => [c.amount, c.clawed_back, c.debt, c.reason])).toEqual([[250, 250, 0, "refund"], [750, 50, 700, "refund"]]);
    for (const c of clawed) expect(EVENT_PAYLOADS["billing.credits_clawed_back"].safeParse(c).success).toBe(true);

    // Debt is repaid first from the next grant (a subscription invoice).
    const sub = await fakeStripe.put(subscription({ customer: customer.id, price: catalog.pro.price }));
    await deliverOk(event("customer.subscription.created", sub));
    await deliverOk(event("invoice.paid", await fakeStripe.put(invoice({ customer: customer.id, subscription: sub.id, price: catalog.pro.price }))));
    expect(await account(orgId)).toEqual({ balance: 4300, reserved: 0, debt: 0 });
    await expectLedgerConsistent(orgId);
  });

  it("a dispute takes back every credit of the pack, as debt for what was spent", async () => {
    const { orgId, customer } = await orgWithCustomer();
    const { paymentIntent } = await buyPack(orgId, customer.id, 1);
    expect(await account(orgId)).toMatchObject({ balance: 500 });
    await spend(orgId, 200);
    const chargeId = uid("ch");
    // The charge is fetched from Stripe for its amount (the dispute names only its own).
    await fakeStripe.put(charge({ id: chargeId, customer: customer.id, paymentIntent, amount: 1000 }));
    const dp = event("charge.dispute.created", dispute({ charge: chargeId, paymentIntent, amount: 1000 }));
    await deliverOk(dp);
    await deliverOk(dp);
    expect(await account(orgId)).toEqual({ balance: 0, reserved: 0, debt: 200 });
    const { rows } = await admin.query("select org_id, disputed, amount::int from billing.charges where id = $1", [chargeId]);
    expect(rows).toEqual([{ org_id: orgId, disputed: true, amount: 1000 }]);
    // A refund of the disputed charge afterwards has nothing left to take.
    await deliverOk(event("charge.refunded", charge({ id: chargeId, customer: customer.id, paymentIntent, amount: 1000, refunded: 1000 })));
    expect(await account(orgId)).toEqual({ balance: 0, reserved: 0, debt: 200 });
    await expectLedgerConsistent(orgId);
  });

  it("a subscription refund takes back its share of the invoice's credits, only the difference as it grows", async () => {
    const { orgId, customer } = await orgWithCustomer();
    await buyPack(orgId, customer.id, 1);
    const sub = await fakeStripe.put(subscription({ customer: customer.id, price: catalog.pro.price }));
    const inv = await fakeStripe.put(invoice({ customer: customer.id, subscription: sub.id, price: catalog.pro.price }));
    await deliverOk(event("invoice.paid", inv));
    expect(await account(orgId)).toMatchObject({ balance: 5500 });
    const paymentIntent = uid("pi");
    await fakeStripe.put(invoicePayment({ invoice: inv.id, paymentIntent, amount: 2000 }));

    const ch = charge({ customer: customer.id, paymentIntent, amount: 2000 });
    await deliverOk(event("charge.refunded", { ...ch, amount_refunded: 500 }));
    expect(await account(orgId)).toEqual({ balance: 4250, reserved: 0, debt: 0 });
    const full = event("charge.refunded", { ...ch, amount_refunded: 2000, refunded: true });
    await deliverOk(full);
    await deliverOk(full);
    expect(await account(orgId)).toEqual({ balance: 500, reserved: 0, debt: 0 }); // the pack stays
    const { rows } = await admin.query("select org_id, invoice_id, amount_refunded::int, credits_clawed_back::int from billing.charges where id = $1", [ch.id]);
    expect(rows).toEqual([{ org_id: orgId, invoice_id: inv.id, amount_refunded: 2000, credits_clawed_back: 5000 }]);
    const clawed = await outbox(orgId, "billing.credits_clawed_back");
    expect(clawed.map((c) => [c.amount, c.reason, c.source_ref])).toEqual([[1250, "refund", inv.id], [3750, "refund", inv.id]]);
    await expectLedgerConsistent(orgId);
  });

  it("a dispute on a subscription charge we never mirrored finds the org through the charge's customer", async () => {
    const { orgId, customer } = await orgWithCustomer();
    const sub = await fakeStripe.put(subscription({ customer: customer.id, price: catalog.team.price }));
    const inv = await fakeStripe.put(invoice({ customer: customer.id, subscription: sub.id, price: catalog.team.price }));
    await deliverOk(event("invoice.paid", inv));
    expect(await account(orgId)).toMatchObject({ balance: 25_000 });
    await spend(orgId, 1000);
    const paymentIntent = uid("pi");
    await fakeStripe.put(invoicePayment({ invoice: inv.id, paymentIntent, amount: 6000 }));
    const ch = await fakeStripe.put(charge({ customer: customer.id, paymentIntent, amount: 6000 }));

    const dp = event("charge.dispute.created", dispute({ charge: ch.id, paymentIntent, amount: 6000 }));
    expect((await deliverOk(dp)).body).toMatchObject({ status: "processed", org_id: orgId });
    await deliverOk(dp);
    expect(await account(orgId)).toEqual({ balance: 0, reserved: 0, debt: 1000 });
    const { rows } = await admin.query("select org_id, disputed, invoice_id, credits_clawed_back::int from billing.charges where id = $1", [ch.id]);
    expect(rows).toEqual([{ org_id: orgId, disputed: true, invoice_id: inv.id, credits_clawed_back: 25_000 }]);
    await expectLedgerConsistent(orgId);
  });

  it("a refund that arrives before the pack purchase is recorded takes its share when the purchase lands", async () => {
    const { orgId, customer } = await orgWithCustomer();
    const paymentIntent = uid("pi");
    await deliverOk(event("charge.refunded", charge({ customer: customer.id, paymentIntent, amount: 2000, refunded: 500 })));
    expect(await account(orgId)).toMatchObject({ balance: 0 });
    const session = checkoutSession({ customer: customer.id, orgId, mode: "payment", priceId: catalog.pack.price.id, quantity: 2, paymentIntent, amountTotal: 2000 });
    await deliverOk(event("checkout.session.completed", session));
    expect(await account(orgId)).toEqual({ balance: 750, reserved: 0, debt: 0 });
    const { rows } = await admin.query("select credits::int, credits_clawed_back::int from billing.credit_purchases where payment_intent_id = $1", [paymentIntent]);
    expect(rows).toEqual([{ credits: 1000, credits_clawed_back: 250 }]);
    await expectLedgerConsistent(orgId);
  });

  it("a paid pack grants the credits named in its session even when the product has none now; unknown credits are a 5xx", async () => {
    const { orgId, customer } = await orgWithCustomer();
    const p = product({ name: "Retired pack" });
    const pr = price({ product: p.id, amount: 500, recurring: false });
    await deliverOk(event("product.created", p));
    await deliverOk(event("price.created", pr));
    const session = checkoutSession({ customer: customer.id, orgId, mode: "payment", priceId: pr.id, quantity: 3, paymentIntent: uid("pi") });
    const unknown = event("checkout.session.completed", session);
    expect((await deliver(unknown)).status).toBeGreaterThanOrEqual(500);
    expect(await account(orgId)).toMatchObject({ balance: 0 });

    const named = { ...session, metadata: { ...(session.metadata as Record<string, string>), plinth_credits: "40" } };
    await deliverOk(event("checkout.session.completed", named));
    expect(await account(orgId)).toMatchObject({ balance: 120 });
  });
});

describe("monthly credits follow the paid invoice", () => {
  it("invoice.paid before customer.subscription.updated (still incomplete) grants the month", async () => {
    const { orgId, customer } = await orgWithCustomer();
    const sub = await fakeStripe.put(subscription({ customer: customer.id, price: catalog.pro.price, status: "incomplete" }));
    await deliverOk(event("customer.subscription.created", sub));
    expect(await subRow(sub.id)).toMatchObject({ status: "incomplete" });
    const periodEnd = nowSeconds() + 30 * 86_400;
    const inv = await fakeStripe.put(invoice({ customer: customer.id, subscription: sub.id, price: catalog.pro.price, periodEnd }));
    await deliverOk(event("invoice.paid", inv));
    expect(await grants(orgId)).toEqual([
      { category: "subscription", amount: 5000, source_ref: inv.id, expires_at: new Date(periodEnd * 1000) },
    ]);
  });

  it("the plan comes from the invoice's price, fetching a product only known as a placeholder", async () => {
    const { orgId, customer } = await orgWithCustomer();
    const p = await fakeStripe.put(product({ name: "Team (new)", plan: "team" }));
    const pr = await fakeStripe.put(price({ product: p.id, amount: 6000 }));
    await deliverOk(event("price.created", pr)); // the product's own event has not come yet
    const sub = await fakeStripe.put(subscription({ customer: customer.id, price: pr }));
    await deliverOk(event("customer.subscription.created", sub));
    expect(await currentPlan(orgId)).toBe("free");
    await deliverOk(event("invoice.paid", await fakeStripe.put(invoice({ customer: customer.id, subscription: sub.id, price: pr }))));
    expect(await account(orgId)).toMatchObject({ balance: 25_000 });
    const { rows } = await admin.query("select name, plan_key from billing.products where id = $1", [p.id]);
    expect(rows).toEqual([{ name: "Team (new)", plan_key: "team" }]);
  });

  it("a product that names no plan: 5xx (Stripe retries), nothing granted", async () => {
    const { orgId, customer } = await orgWithCustomer();
    const p = await fakeStripe.put(product({ name: "Mystery" }));
    const pr = await fakeStripe.put(price({ product: p.id }));
    const sub = await fakeStripe.put(subscription({ customer: customer.id, price: pr }));
    const e = event("invoice.paid", await fakeStripe.put(invoice({ customer: customer.id, subscription: sub.id, price: pr })));
    expect((await deliver(e)).status).toBeGreaterThanOrEqual(500);
    expect(await account(orgId)).toMatchObject({ balance: 0 });
    const { rows } = await admin.query("select 1 from billing.stripe_events where id = $1", [e.id]);
    expect(rows).toHaveLength(0);
  });
});
