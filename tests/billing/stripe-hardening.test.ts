// The Stripe leftovers of issue #8, over HTTP on the real functions against the fake Stripe:
//   * Stripe is called before the claim-and-apply transaction, never inside it
//   * annual plans grant their monthly credits every month (the paid invoice, then the worker)
//   * a partial dispute takes only its share; a won dispute gives back exactly what it took
//   * an event for a customer we have not linked applies only when it names the customer's org
//   * two webhook signing secrets during a rotation
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { EVENT_PAYLOADS } from "../../functions/_shared/events/catalog.ts";
import { Producer } from "../../functions/_shared/jobs/queue.ts";
import { account, expectLedgerConsistent, op } from "../helpers/credits.ts";
import { admin, createTeam, select, stack } from "../helpers/db.ts";
import {
  type Catalog,
  charge,
  checkoutSession,
  createCatalog,
  createCustomer,
  customer,
  deliver,
  deliverOk,
  dispute,
  event,
  fakeStripe,
  invoice,
  invoicePayment,
  nowSeconds,
  price,
  type StripeObject,
  subscription,
  uid,
} from "../helpers/fake-stripe.ts";
import { waitForJobCompleted } from "../helpers/notifications.ts";

let catalog: Catalog;
beforeAll(async () => {
  catalog = await createCatalog();
});

async function orgWithCustomer(opts: { linked?: boolean } = {}) {
  const team = await createTeam("Stripe hardening", { plan: null });
  return { team, orgId: team.orgId, customer: await createCustomer(team.orgId, opts) };
}

async function eventRow(id: string) {
  const { rows } = await admin.query(
    "select status, object_id, resolved_org_id, ignored_reason from billing.stripe_events where id = $1", [id]);
  return rows[0];
}

async function subRow(id: string) {
  const { rows } = await admin.query("select org_id, status, plan_key from billing.subscriptions where id = $1", [id]);
  return rows[0];
}

async function grants(orgId: string) {
  const { rows } = await admin.query(
    "select category, amount::int, source_ref, expires_at from billing.credit_grants where org_id = $1 order by created_at, source_ref",
    [orgId],
  );
  return rows as { category: string; amount: number; source_ref: string; expires_at: Date | null }[];
}

async function outbox(orgId: string, type: string) {
  const { rows } = await admin.query("select payload from notify.events where org_id = $1 and type = $2 order by seq", [orgId, type]);
  return rows.map((r) => r.payload as Record<string, any>);
}

async function linkedOrg(customerId: string): Promise<string | undefined> {
  const { rows } = await admin.query("select org_id from billing.customers where stripe_customer_id = $1", [customerId]);
  return rows[0]?.org_id;
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** Waits until the fake Stripe has received a request for the path (the delivery is now waiting on it). */
async function waitForRequest(path: string, count = 1) {
  for (let i = 0; i < 200; i++) {
    if ((await fakeStripe.requests(path)).length >= count) return;
    await sleep(25);
  }
  throw new Error(`no request for ${path}`);
}

// ---------------------------------------------------------------------------
// 1. Stripe is called with no transaction open
// ---------------------------------------------------------------------------

/**
 * Whether the event's claim is free right now: a probe inserts the same event id and rolls back.
 * A delivery that had claimed it in an open transaction would make the probe wait (55P03 here).
 */
async function claimIsFree(eventId: string): Promise<boolean> {
  const c = await admin.connect();
  try {
    await c.query("begin");
    await c.query("set local lock_timeout = '300ms'");
    await c.query(
      "insert into billing.stripe_events (id, type, stripe_created, status) values ($1, 'probe', now(), 'ignored')", [eventId]);
    return true;
  } catch (err) {
    if ((err as { code?: string }).code === "55P03") return false;
    throw err;
  } finally {
    await c.query("rollback").catch(() => {});
    c.release();
  }
}

/** Whether any session holds the webhook's lock on the Stripe object. */
async function objectLocked(objectId: string): Promise<boolean> {
  const { rows } = await admin.query(
    `select count(*)::int as n from pg_locks
     where locktype = 'advisory' and granted
       and ((classid::bigint << 32) | objid::bigint) = hashtextextended('stripe:' || $1, 0)`,
    [objectId],
  );
  return rows[0].n > 0;
}

describe("Stripe is called before the claim-and-apply transaction", () => {
  it("while Stripe is slow to answer, the event is not claimed and its object not locked; then it applies once", async () => {
    const { orgId, customer: cus } = await orgWithCustomer();
    const sub = await fakeStripe.put(subscription({ customer: cus.id, price: catalog.pro.price }));
    const path = `/v1/subscriptions/${sub.id}`;
    const e = event("customer.subscription.created", sub);
    await fakeStripe.fail({ method: "GET", path, delayMs: 1500, times: 1 });
    const pending = deliver(e);
    await waitForRequest(path);
    expect(await objectLocked(sub.id)).toBe(false);
    expect(await claimIsFree(e.id)).toBe(true);
    expect(await eventRow(e.id)).toBeUndefined();
    const res = await pending;
    expect(res.status).toBe(200);
    expect(res.body).toMatchObject({ status: "processed", duplicate: false, org_id: orgId });
    expect(await subRow(sub.id)).toMatchObject({ org_id: orgId, status: "active", plan_key: "pro" });
    expect(await outbox(orgId, "billing.subscription_changed")).toHaveLength(1);
  });

  it("two deliveries of one event while Stripe is slow: both answer 2xx, the credits are granted once", async () => {
    const { orgId, customer: cus } = await orgWithCustomer();
    const sub = await fakeStripe.put(subscription({ customer: cus.id, price: catalog.pro.price }));
    const inv = await fakeStripe.put(invoice({ customer: cus.id, subscription: sub.id, price: catalog.pro.price }));
    const e = event("invoice.paid", inv);
    await fakeStripe.fail({ method: "GET", path: `/v1/invoices/${inv.id}`, delayMs: 800, times: 2 });
    const results = await Promise.all([deliver(e), deliver(e)]);
    expect(results.map((r) => r.status)).toEqual([200, 200]);
    expect(results.filter((r) => r.body.duplicate)).toHaveLength(1);
    expect(await account(orgId)).toMatchObject({ balance: 5000, debt: 0 });
    expect(await outbox(orgId, "billing.credits_granted")).toHaveLength(1);
    await expectLedgerConsistent(orgId);
  });

  it("a duplicate delivery is answered without calling Stripe", async () => {
    const { customer: cus } = await orgWithCustomer();
    const sub = await fakeStripe.put(subscription({ customer: cus.id, price: catalog.pro.price }));
    const path = `/v1/subscriptions/${sub.id}`;
    const e = event("customer.subscription.updated", sub);
    await deliverOk(e);
    const calls = (await fakeStripe.requests(path)).length;
    expect((await deliverOk(e)).body).toMatchObject({ duplicate: true });
    expect((await fakeStripe.requests(path)).length).toBe(calls);
  });

  it("Stripe failing on an object needed midway (the customer): 5xx, nothing recorded or applied; the retry applies it once", async () => {
    const { orgId, customer: cus } = await orgWithCustomer({ linked: false });
    const session = checkoutSession({
      customer: cus.id, orgId, mode: "payment", priceId: catalog.pack.price.id, quantity: 1, paymentIntent: uid("pi"),
    });
    const e = event("checkout.session.completed", session);
    await fakeStripe.fail({ method: "GET", path: `/v1/customers/${cus.id}`, status: 500, times: 1 });
    const failed = await deliver(e);
    expect(failed.status).toBeGreaterThanOrEqual(500);
    expect(await eventRow(e.id)).toBeUndefined();
    expect(await linkedOrg(cus.id)).toBeUndefined();
    expect(await account(orgId)).toMatchObject({ balance: 0 });

    expect((await deliverOk(e)).body).toMatchObject({ status: "processed", duplicate: false, org_id: orgId });
    expect((await deliverOk(e)).body).toMatchObject({ duplicate: true });
    expect(await account(orgId)).toMatchObject({ balance: 500 });
    expect(await linkedOrg(cus.id)).toBe(orgId);
    await expectLedgerConsistent(orgId);
  });
});

// ---------------------------------------------------------------------------
// 2. Annual plans: monthly credits every month
// ---------------------------------------------------------------------------

/** `start` plus k months, in UTC, as Postgres counts months (Jan 31 + 1 month = Feb 28). */
async function monthsAfter(start: number, k: number): Promise<Date> {
  const { rows } = await admin.query(
    "select ((to_timestamp($1) at time zone 'UTC') + make_interval(months => $2)) at time zone 'UTC' as t", [start, k]);
  return rows[0].t as Date;
}

const worker = new Producer(stack.dbUrl);
afterAll(() => worker.stop());

/** Runs billing.subscription_months on the real worker as if at `now`. */
async function runMonthsJob(now: Date) {
  const id = await (await worker.ready()).send("billing.subscription_months", { now: now.toISOString() });
  // Fails the test if the job failed or never finished, instead of handing back no output.
  return (await waitForJobCompleted(id!)).output as Record<string, number>;
}

describe("annual plans grant their monthly credits every month", () => {
  let yearly: StripeObject;
  beforeAll(async () => {
    yearly = await fakeStripe.put(price({ product: catalog.pro.product.id, amount: 20_000, interval: "year" }));
    await deliverOk(event("price.created", yearly));
  });

  async function annualSubscriber() {
    const { orgId, customer: cus } = await orgWithCustomer();
    const start = nowSeconds() - 3600;
    const end = start + 365 * 86_400;
    const sub = await fakeStripe.put(subscription({ customer: cus.id, price: yearly, periodStart: start, periodEnd: end }));
    await deliverOk(event("customer.subscription.created", sub));
    const inv = await fakeStripe.put(invoice({
      customer: cus.id, subscription: sub.id, price: yearly, periodStart: start, periodEnd: end, amountDue: 20_000,
    }));
    return { orgId, cus, sub, inv, start, end };
  }

  it("the paid annual invoice grants the first month's credits, expiring at the month's end (not the year's)", async () => {
    const { orgId, sub, inv, start } = await annualSubscriber();
    await deliverOk(event("invoice.paid", inv));
    await deliverOk(event("invoice.paid", inv)); // the same invoice under another event id
    expect(await grants(orgId)).toEqual([{
      category: "subscription", amount: 5000, source_ref: expect.stringMatching(new RegExp(`^${sub.id}-period-\\d{8}T\\d{6}-month-0$`)),
      expires_at: await monthsAfter(start, 1),
    }]);
    expect(await account(orgId)).toMatchObject({ balance: 5000 });
    const granted = await outbox(orgId, "billing.credits_granted");
    expect(granted).toHaveLength(1);
    expect(EVENT_PAYLOADS["billing.credits_granted"].parse(granted[0])).toMatchObject({ amount: 5000, category: "subscription" });
  });

  it("each following month is granted once by the schedule, and not before the month starts", async () => {
    const { orgId, sub, inv, start } = await annualSubscriber();
    await deliverOk(event("invoice.paid", inv));
    // Later in the first month: nothing more.
    await op("grant_due_subscription_months", { p_now: new Date((start + 10 * 86_400) * 1000).toISOString() });
    expect(await grants(orgId)).toHaveLength(1);

    const month1 = new Date((await monthsAfter(start, 1)).getTime() + 3600_000);
    await op("grant_due_subscription_months", { p_now: month1.toISOString() });
    await op("grant_due_subscription_months", { p_now: month1.toISOString() });
    // Two runs at once in month 2: still one grant.
    const month2 = new Date((await monthsAfter(start, 2)).getTime() + 60_000);
    await Promise.all([0, 1, 2].map(() => op("grant_due_subscription_months", { p_now: month2.toISOString() })));

    const all = await grants(orgId);
    expect(all.map((g) => [g.amount, g.expires_at])).toEqual([
      [5000, await monthsAfter(start, 1)],
      [5000, await monthsAfter(start, 2)],
      [5000, await monthsAfter(start, 3)],
    ]);
    expect(new Set(all.map((g) => g.source_ref)).size).toBe(3);
    expect(all.map((g) => g.source_ref.replace(/^.*-month-/, ""))).toEqual(["0", "1", "2"]);
    expect(all.every((g) => g.source_ref.startsWith(`${sub.id}-period-`))).toBe(true);
    expect(await outbox(orgId, "billing.credits_granted")).toHaveLength(3);
    await expectLedgerConsistent(orgId);
  });

  it("the worker's billing.subscription_months job grants the month", async () => {
    const { orgId, inv, start } = await annualSubscriber();
    await deliverOk(event("invoice.paid", inv));
    const month1 = new Date((await monthsAfter(start, 1)).getTime() + 3600_000);
    const out = await runMonthsJob(month1);
    expect(out).toMatchObject({ failed: 0 });
    expect(out.granted).toBeGreaterThanOrEqual(1);
    expect((await grants(orgId)).map((g) => g.expires_at)).toEqual([await monthsAfter(start, 1), await monthsAfter(start, 2)]);
  });

  it("a refund of the annual payment takes back its share of the months granted so far", async () => {
    const { orgId, cus, inv, start } = await annualSubscriber();
    await deliverOk(event("invoice.paid", inv));
    await op("grant_due_subscription_months", { p_now: new Date((await monthsAfter(start, 1)).getTime() + 3600_000).toISOString() });
    expect(await account(orgId)).toMatchObject({ balance: 10_000 });
    const paymentIntent = uid("pi");
    await fakeStripe.put(invoicePayment({ invoice: inv.id, paymentIntent, amount: 20_000 }));
    const ch = charge({ customer: cus.id, paymentIntent, amount: 20_000 });
    await deliverOk(event("charge.refunded", { ...ch, amount_refunded: 10_000 }));
    expect(await account(orgId)).toEqual({ balance: 5000, reserved: 0, debt: 0 });
    await deliverOk(event("charge.refunded", { ...ch, amount_refunded: 20_000, refunded: true }));
    expect(await account(orgId)).toEqual({ balance: 0, reserved: 0, debt: 0 });
    const { rows } = await admin.query("select invoice_id, credits_clawed_back::int as n from billing.charges where id = $1", [ch.id]);
    expect(rows).toEqual([{ invoice_id: inv.id, n: 10_000 }]);
    await expectLedgerConsistent(orgId);
  });

  it("stops when the subscription ends (canceled) or is not paid (past_due)", async () => {
    for (const status of ["canceled", "past_due"]) {
      const { orgId, sub, inv, start } = await annualSubscriber();
      await deliverOk(event("invoice.paid", inv));
      const moved = await fakeStripe.put({ ...sub, status, canceled_at: status === "canceled" ? nowSeconds() : null });
      await deliverOk(event(status === "canceled" ? "customer.subscription.deleted" : "customer.subscription.updated", moved));
      await op("grant_due_subscription_months", { p_now: new Date((await monthsAfter(start, 1)).getTime() + 3600_000).toISOString() });
      expect(await grants(orgId), status).toHaveLength(1);
    }
  });

  it("a monthly plan still gets its credits once per paid invoice, never from the schedule", async () => {
    const { orgId, customer: cus } = await orgWithCustomer();
    const sub = await fakeStripe.put(subscription({ customer: cus.id, price: catalog.pro.price }));
    await deliverOk(event("customer.subscription.created", sub));
    const inv = await fakeStripe.put(invoice({ customer: cus.id, subscription: sub.id, price: catalog.pro.price }));
    await deliverOk(event("invoice.paid", inv));
    await op("grant_due_subscription_months", { p_now: new Date(Date.now() + 3600_000).toISOString() });
    expect((await grants(orgId)).map((g) => [g.amount, g.source_ref])).toEqual([[5000, inv.id]]);
  });

  it("the schedule function is for the service role only", async () => {
    const { team } = await orgWithCustomer();
    await expect(select(team.owner, "select * from billing.grant_due_subscription_months()")).rejects.toMatchObject({ code: "42501" });
    await expect(select(team.owner, "select billing.grant_subscription_month($1, 'sub_x', 'pro', now() - interval '1 day', now() + interval '1 year')",
      [team.orgId])).rejects.toMatchObject({ code: "42501" });
  });

  it("refuses a month without a period (22023)", async () => {
    const { orgId } = await orgWithCustomer();
    await expect(op("grant_subscription_month", {
      p_org_id: orgId, p_subscription_id: "sub_x", p_plan_key: "pro", p_period_start: null, p_period_end: null,
    })).rejects.toMatchObject({ code: "22023" });
  });
});

// ---------------------------------------------------------------------------
// 3. Disputes
// ---------------------------------------------------------------------------

describe("disputes take back their share, and give it back when won", () => {
  /** A paid 1,000-credit pack (2 × 500) whose charge of 2,000 is in the fake. */
  async function packBuyer() {
    const { orgId, customer: cus, team } = await orgWithCustomer();
    const paymentIntent = uid("pi");
    const session = checkoutSession({
      customer: cus.id, orgId, mode: "payment", priceId: catalog.pack.price.id, quantity: 2, paymentIntent, amountTotal: 2000,
    });
    await deliverOk(event("checkout.session.completed", session));
    const ch = await fakeStripe.put(charge({ customer: cus.id, paymentIntent, amount: 2000 }));
    expect(await account(orgId)).toEqual({ balance: 1000, reserved: 0, debt: 0 });
    return { orgId, team, cus, paymentIntent, ch };
  }

  async function spend(orgId: string, amount: number) {
    const [res] = await op<{ id: string }>("reserve_credits", { p_org_id: orgId, p_amount: amount, p_idempotency_key: uid("spend") });
    await op("settle_credits", { p_reservation_id: res.id, p_amount: amount });
  }

  async function disputeRow(id: string) {
    const { rows } = await admin.query(
      "select org_id, charge_id, amount::int, status, credits_clawed_back::int as clawed, credits_restored::int as restored from billing.disputes where id = $1",
      [id]);
    return rows[0];
  }

  async function clawedOnPurchase(paymentIntent: string) {
    const { rows } = await admin.query("select credits_clawed_back::int as n from billing.credit_purchases where payment_intent_id = $1", [paymentIntent]);
    return rows[0].n as number;
  }

  it("a partial dispute takes back only its share (rounded down); duplicates change nothing", async () => {
    const { orgId, paymentIntent, ch } = await packBuyer();
    const dp = dispute({ charge: ch.id, paymentIntent, amount: 500 });
    const created = event("charge.dispute.created", dp);
    expect((await deliverOk(created)).body).toMatchObject({ status: "processed", org_id: orgId });
    expect(await account(orgId)).toEqual({ balance: 750, reserved: 0, debt: 0 });
    expect((await deliverOk(created)).body).toMatchObject({ duplicate: true });
    await deliverOk(event("charge.dispute.created", dp)); // the same dispute under another event id
    await deliverOk(event("charge.dispute.updated", { ...dp, status: "under_review" }));
    expect(await account(orgId)).toEqual({ balance: 750, reserved: 0, debt: 0 });
    expect(await disputeRow(dp.id)).toEqual({ org_id: orgId, charge_id: ch.id, amount: 500, status: "under_review", clawed: 250, restored: 0 });
    const clawed = await outbox(orgId, "billing.credits_clawed_back");
    expect(clawed.map((c) => [c.amount, c.reason])).toEqual([[250, "dispute"]]);
    expect(EVENT_PAYLOADS["billing.credits_clawed_back"].safeParse(clawed[0]).success).toBe(true);

    // 333 of 2000 on 1000 credits is 166.5: rounded down, in the customer's favour.
    const { orgId: other, paymentIntent: pi2, ch: ch2 } = await packBuyer();
    await deliverOk(event("charge.dispute.created", dispute({ charge: ch2.id, paymentIntent: pi2, amount: 333 })));
    expect(await account(other)).toMatchObject({ balance: 834 });
    await expectLedgerConsistent(orgId);
  });

  it("a won dispute gives back exactly what it took, once, and a late 'created' takes nothing again", async () => {
    const { orgId, paymentIntent, ch } = await packBuyer();
    const dp = dispute({ charge: ch.id, paymentIntent, amount: 500 });
    await deliverOk(event("charge.dispute.created", dp));
    expect(await account(orgId)).toMatchObject({ balance: 750 });
    const won = event("charge.dispute.closed", { ...dp, status: "won" });
    await deliverOk(won);
    expect(await account(orgId)).toEqual({ balance: 1000, reserved: 0, debt: 0 });
    expect((await deliverOk(won)).body).toMatchObject({ duplicate: true });
    await deliverOk(event("charge.dispute.closed", { ...dp, status: "won" }));
    await deliverOk(event("charge.dispute.created", dp)); // reordered: arrives after the close
    expect(await account(orgId)).toEqual({ balance: 1000, reserved: 0, debt: 0 });
    expect(await disputeRow(dp.id)).toMatchObject({ status: "won", clawed: 250, restored: 250 });
    expect(await clawedOnPurchase(paymentIntent)).toBe(0);
    const granted = await outbox(orgId, "billing.credits_granted");
    expect(granted.at(-1)).toEqual({ amount: 250, category: "pack", source_ref: dp.id });
    await expectLedgerConsistent(orgId);
  });

  it("a full dispute takes everything (debt for what was spent); won, the debt is repaid and the rest returns", async () => {
    const { orgId, paymentIntent, ch } = await packBuyer();
    await spend(orgId, 200);
    const dp = dispute({ charge: ch.id, paymentIntent, amount: 2000 });
    await deliverOk(event("charge.dispute.created", dp));
    expect(await account(orgId)).toEqual({ balance: 0, reserved: 0, debt: 200 });
    await deliverOk(event("charge.dispute.closed", { ...dp, status: "won" }));
    expect(await account(orgId)).toEqual({ balance: 800, reserved: 0, debt: 0 });
    await expectLedgerConsistent(orgId);
  });

  it("a lost dispute keeps what it took; duplicates change nothing", async () => {
    const { orgId, paymentIntent, ch } = await packBuyer();
    const dp = dispute({ charge: ch.id, paymentIntent, amount: 1000 });
    await deliverOk(event("charge.dispute.created", dp));
    const lost = event("charge.dispute.closed", { ...dp, status: "lost" });
    await deliverOk(lost);
    await deliverOk(lost);
    await deliverOk(event("charge.dispute.closed", { ...dp, status: "lost" }));
    await deliverOk(event("charge.dispute.closed", { ...dp, status: "won" })); // a closed dispute is final
    expect(await account(orgId)).toEqual({ balance: 500, reserved: 0, debt: 0 });
    expect(await disputeRow(dp.id)).toMatchObject({ status: "lost", clawed: 500, restored: 0 });
  });

  it("a dispute closed as lost before its 'created' arrives takes its share once", async () => {
    const { orgId, paymentIntent, ch } = await packBuyer();
    const dp = dispute({ charge: ch.id, paymentIntent, amount: 1000 });
    await deliverOk(event("charge.dispute.closed", { ...dp, status: "lost" }));
    await deliverOk(event("charge.dispute.created", dp));
    expect(await account(orgId)).toEqual({ balance: 500, reserved: 0, debt: 0 });
  });

  it("a partial refund and a partial dispute of one charge take their two shares; the win returns only the dispute's", async () => {
    const { orgId, cus, paymentIntent, ch } = await packBuyer();
    const dp = dispute({ charge: ch.id, paymentIntent, amount: 500 });
    await deliverOk(event("charge.dispute.created", dp));
    await deliverOk(event("charge.refunded", charge({ id: ch.id, customer: cus.id, paymentIntent, amount: 2000, refunded: 1000 })));
    expect(await account(orgId)).toMatchObject({ balance: 250 });
    await deliverOk(event("charge.dispute.closed", { ...dp, status: "won" }));
    expect(await account(orgId)).toMatchObject({ balance: 500 });
    expect(await clawedOnPurchase(paymentIntent)).toBe(500);
    await expectLedgerConsistent(orgId);
  });

  it("a dispute that arrives before its pack purchase is recorded takes its share when the purchase lands", async () => {
    const { orgId, customer: cus } = await orgWithCustomer();
    const paymentIntent = uid("pi");
    const ch = await fakeStripe.put(charge({ customer: cus.id, paymentIntent, amount: 2000 }));
    const dp = dispute({ charge: ch.id, paymentIntent, amount: 500 });
    expect((await deliverOk(event("charge.dispute.created", dp))).body).toMatchObject({ status: "processed", org_id: orgId });
    expect(await account(orgId)).toMatchObject({ balance: 0 });
    const session = checkoutSession({
      customer: cus.id, orgId, mode: "payment", priceId: catalog.pack.price.id, quantity: 2, paymentIntent, amountTotal: 2000,
    });
    await deliverOk(event("checkout.session.completed", session));
    expect(await account(orgId)).toEqual({ balance: 750, reserved: 0, debt: 0 });
    expect(await disputeRow(dp.id)).toMatchObject({ clawed: 250 });
    await expectLedgerConsistent(orgId);
  });

  it("billing managers read their org's disputes; members and other orgs' managers do not", async () => {
    const { team, paymentIntent, ch } = await packBuyer();
    const dp = dispute({ charge: ch.id, paymentIntent, amount: 500 });
    await deliverOk(event("charge.dispute.created", dp));
    const stranger = (await createTeam("Other", { plan: null })).owner;
    expect(await select(team.owner, "select id, amount::int from billing.disputes where id = $1", [dp.id])).toEqual([{ id: dp.id, amount: 500 }]);
    expect(await select(team.member, "select id from billing.disputes where id = $1", [dp.id])).toEqual([]);
    expect(await select(stranger, "select id from billing.disputes where id = $1", [dp.id])).toEqual([]);
    await expect(select(team.owner, "update billing.disputes set credits_restored = 0 where id = $1", [dp.id]))
      .rejects.toMatchObject({ code: "42501" });
    await expect(select("anon", "select id from billing.disputes")).rejects.toMatchObject({ code: "42501" });
  });
});

// ---------------------------------------------------------------------------
// 4. Customers we have not linked
// ---------------------------------------------------------------------------

describe("an unlinked customer's event applies only when it names the customer's own org", () => {
  it("matching client_reference_id and metadata: applied, and the customer is linked", async () => {
    const { orgId, customer: cus } = await orgWithCustomer({ linked: false });
    const sub = await fakeStripe.put(subscription({ customer: cus.id, price: catalog.pro.price }));
    const e = event("checkout.session.completed", checkoutSession({ customer: cus.id, orgId, mode: "subscription", subscription: sub.id }));
    expect((await deliverOk(e)).body).toMatchObject({ status: "processed", org_id: orgId });
    expect(await linkedOrg(cus.id)).toBe(orgId);
    expect(await subRow(sub.id)).toMatchObject({ org_id: orgId, plan_key: "pro" });
  });

  it("another org's id in client_reference_id (the attack): ignored with the reason, nothing changed", async () => {
    const victim = await createTeam("Victim", { plan: null });
    const attacker = await orgWithCustomer({ linked: false });
    // The attacker's own customer, and a checkout for it naming the victim's org.
    const session = checkoutSession({
      customer: attacker.customer.id, orgId: victim.orgId, mode: "payment", priceId: catalog.pack.price.id, quantity: 2,
      paymentIntent: uid("pi"),
    });
    const e = event("checkout.session.completed", session);
    const res = await deliverOk(e);
    expect(res.body).toMatchObject({ status: "ignored", reason: "org_mismatch", org_id: null });
    expect(await eventRow(e.id)).toEqual({ status: "ignored", object_id: session.id, resolved_org_id: null, ignored_reason: "org_mismatch" });
    expect(await linkedOrg(attacker.customer.id)).toBeUndefined();
    expect(await account(victim.orgId)).toMatchObject({ balance: 0 });
    expect(await account(attacker.orgId)).toMatchObject({ balance: 0 });
    const { rows } = await admin.query("select 1 from billing.credit_purchases where checkout_session_id = $1", [session.id]);
    expect(rows).toHaveLength(0);
  });

  it("only client_reference_id naming another org (metadata absent): ignored", async () => {
    const victim = await createTeam("Victim", { plan: null });
    const attacker = await orgWithCustomer({ linked: false });
    const sub = await fakeStripe.put(subscription({ customer: attacker.customer.id, price: catalog.team.price }));
    const session = { ...checkoutSession({ customer: attacker.customer.id, orgId: victim.orgId, mode: "subscription", subscription: sub.id }), metadata: {} };
    const res = await deliverOk(event("checkout.session.completed", session));
    expect(res.body).toMatchObject({ status: "ignored", reason: "org_mismatch" });
    expect(await subRow(sub.id)).toBeUndefined();
    expect(await linkedOrg(attacker.customer.id)).toBeUndefined();
  });

  it("a customer without org metadata: ignored (customer_not_linked), even when the event names an existing org", async () => {
    const victim = await createTeam("Victim", { plan: null });
    const stranger = await fakeStripe.put({ ...customer(victim.orgId), metadata: {} });
    const sub = await fakeStripe.put(subscription({ customer: stranger.id, price: catalog.pro.price, metadata: { org_id: victim.orgId } }));
    const e = event("customer.subscription.created", sub);
    expect((await deliverOk(e)).body).toMatchObject({ status: "ignored", reason: "customer_not_linked" });
    expect(await eventRow(e.id)).toMatchObject({ ignored_reason: "customer_not_linked" });
    expect(await subRow(sub.id)).toBeUndefined();
  });

  it("an event that names no org for an unlinked customer: ignored, nothing changed", async () => {
    const { orgId, customer: cus } = await orgWithCustomer({ linked: false });
    const sub = await fakeStripe.put(subscription({ customer: cus.id, price: catalog.pro.price }));
    const e = event("customer.subscription.created", sub);
    expect((await deliverOk(e)).body).toMatchObject({ status: "ignored", reason: "customer_not_linked" });
    expect(await subRow(sub.id)).toBeUndefined();
    expect(await linkedOrg(cus.id)).toBeUndefined();
    expect(await outbox(orgId, "billing.subscription_changed")).toHaveLength(0);
  });

  it("a linked customer's events apply without naming the org", async () => {
    const { orgId, customer: cus } = await orgWithCustomer();
    const sub = await fakeStripe.put(subscription({ customer: cus.id, price: catalog.pro.price }));
    expect((await deliverOk(event("customer.subscription.created", sub))).body).toMatchObject({ status: "processed", org_id: orgId });
  });
});

// ---------------------------------------------------------------------------
// 5. Signing secret rotation
// ---------------------------------------------------------------------------

describe("two signing secrets during a rotation", () => {
  it("accepts an event signed with the previous secret, and with the current one", async () => {
    for (const secret of [stack.stripeWebhookSecretPrevious, stack.stripeWebhookSecret]) {
      const e = event("radar.early_fraud_warning.created", { id: uid("issfr"), object: "radar.early_fraud_warning" });
      const res = await deliver(e, { secret });
      expect(res.status, secret).toBe(200);
      expect(await eventRow(e.id)).toMatchObject({ status: "ignored", ignored_reason: "unhandled_type" });
    }
  });

  it("refuses an event signed with a secret it does not know (400), recording nothing", async () => {
    const e = event("radar.early_fraud_warning.created", { id: uid("issfr"), object: "radar.early_fraud_warning" });
    const res = await deliver(e, { secret: "whsec_plinth_some_other_endpoint" });
    expect(res.status).toBe(400);
    expect(res.body.error.code).toBe("invalid_signature");
    expect(await eventRow(e.id)).toBeUndefined();
  });
});
