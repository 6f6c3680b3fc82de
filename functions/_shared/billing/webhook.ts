// Applying a verified Stripe event, exactly once.
//
// One transaction (service role) per delivery:
//   1. claim: insert into billing.stripe_events on conflict do nothing. A concurrent duplicate
//      blocks on the primary key until the first commits, then sees the conflict: applied once.
//      If the first rolls back, the waiting one claims and applies it instead.
//   2. apply: subscription and invoice events lock the object (advisory lock on its id), refetch
//      it from Stripe and upsert the latest state, unless the row's watermark says a later
//      second's event was applied already (then the event is recorded and changes nothing).
//      The watermark keeps the largest (created, event id). Because the state is refetched
//      under the lock, applying any event that is not strictly older is always safe.
//   3. outbox events go out in the same transaction.
// Any error (ours or Stripe's) rolls everything back, the claim included, and the caller
// answers 5xx so that Stripe retries.
import { sql } from "kysely";
import type Stripe from "stripe";
import { asService, type Db, type Tx } from "../db/client.ts";
import { packCredits, upsertPrice, upsertProduct } from "./catalog.ts";
import { idOf } from "./stripe.ts";

export type StripeEventOutcome =
  | { status: "duplicate" }
  | { status: "processed" | "ignored"; object_id: string | null; org_id: string | null; stale?: boolean };

interface Ctx {
  tx: Tx;
  stripe: Stripe;
  event: Stripe.Event;
}

type Applied = { status: "processed" | "ignored"; object_id: string | null; org_id: string | null; stale?: boolean };

const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i;
const iso = (s: number | null | undefined) => (s == null ? null : new Date(s * 1000).toISOString());

export async function processStripeEvent(db: Db, stripe: Stripe, event: Stripe.Event): Promise<StripeEventOutcome> {
  try {
    return await applyOnce(db, stripe, event);
  } catch (err) {
    // The object is gone from Stripe (or was never this account's): a retry cannot do better, so
    // the event is recorded as ignored (the failed attempt rolled back) and Stripe stops sending it.
    if (!isResourceMissing(err)) throw err;
    return recordIgnored(db, event);
  }
}

function isResourceMissing(err: unknown): boolean {
  const e = err as { code?: string; statusCode?: number };
  return e?.code === "resource_missing" && e.statusCode === 404;
}

async function recordIgnored(db: Db, event: Stripe.Event): Promise<StripeEventOutcome> {
  const objectId = (event.data.object as { id?: unknown }).id;
  const id = typeof objectId === "string" ? objectId : null;
  return asService(db, async (tx) => {
    const { rows } = await sql`
      insert into billing.stripe_events (id, type, api_version, stripe_created, livemode, status, object_id)
      values (${event.id}, ${event.type}, ${event.api_version ?? null}, ${iso(event.created)}::timestamptz, ${event.livemode ?? false}, 'ignored', ${id})
      on conflict (id) do nothing
      returning id`.execute(tx);
    return rows.length === 0 ? { status: "duplicate" as const } : { status: "ignored" as const, object_id: id, org_id: null };
  });
}

function applyOnce(db: Db, stripe: Stripe, event: Stripe.Event): Promise<StripeEventOutcome> {
  return asService(db, async (tx) => {
    const claimed = await sql`
      insert into billing.stripe_events (id, type, api_version, stripe_created, livemode, status)
      values (${event.id}, ${event.type}, ${event.api_version ?? null}, ${iso(event.created)}::timestamptz, ${event.livemode ?? false}, 'processed')
      on conflict (id) do nothing
      returning id`.execute(tx);
    if (claimed.rows.length === 0) return { status: "duplicate" as const };
    const applied = await apply({ tx, stripe, event });
    await sql`update billing.stripe_events set status = ${applied.status}, object_id = ${applied.object_id},
                     resolved_org_id = ${applied.org_id}::uuid
              where id = ${event.id}`.execute(tx);
    return applied;
  });
}

function apply(ctx: Ctx): Promise<Applied> {
  const { event } = ctx;
  const obj = event.data.object as unknown as { id: string } & Record<string, unknown>;
  switch (event.type) {
    case "checkout.session.completed":
    case "checkout.session.async_payment_succeeded":
    case "checkout.session.async_payment_failed":
      return onCheckoutSession(ctx, obj as unknown as Stripe.Checkout.Session);
    case "customer.subscription.created":
    case "customer.subscription.updated":
    case "customer.subscription.deleted":
    case "customer.subscription.paused":
    case "customer.subscription.resumed":
    case "customer.subscription.trial_will_end":
      return onSubscription(ctx, obj.id, (obj as unknown as Stripe.Subscription).metadata);
    case "invoice.paid":
    case "invoice.payment_failed":
    case "invoice.payment_action_required":
      return onInvoice(ctx, obj.id);
    case "charge.refunded":
      return onChargeRefunded(ctx, obj as unknown as Stripe.Charge);
    case "charge.dispute.created":
      return onDispute(ctx, obj as unknown as Stripe.Dispute);
    case "product.created":
    case "product.updated":
    case "product.deleted":
      // Stripe's *.deleted events carry the object as it was, without deleted: true.
      return upsertProduct(ctx.tx, obj as unknown as Stripe.Product, event.created, event.type.endsWith(".deleted"))
        .then(() => ({ status: "processed" as const, object_id: obj.id, org_id: null }));
    case "price.created":
    case "price.updated":
    case "price.deleted":
      return upsertPrice(ctx.tx, obj as unknown as Stripe.Price, event.created, event.type.endsWith(".deleted"))
        .then(() => ({ status: "processed" as const, object_id: obj.id, org_id: null }));
    default:
      return Promise.resolve({ status: "ignored", object_id: typeof obj?.id === "string" ? obj.id : null, org_id: null });
  }
}

// ---------------------------------------------------------------------------
// Helpers
// ---------------------------------------------------------------------------

/** Serializes work on one Stripe object across concurrent deliveries, until commit. */
async function lockObject(tx: Tx, id: string) {
  await sql`select pg_advisory_xact_lock(hashtextextended(${`stripe:${id}`}, 0))`.execute(tx);
}

async function emit(tx: Tx, orgId: string, type: string, subjectKind: string, subjectId: string, payload: Record<string, unknown>) {
  await sql`select private.emit_event(${orgId}::uuid, ${type}, ${subjectKind}, ${subjectId}, ${JSON.stringify(payload)}::jsonb)`.execute(tx);
}

type Watermarked = { watermark_created: number | string; watermark_event_id: string };

/**
 * Whether the event is older than the row's watermark. Only a strictly older second is stale:
 * Stripe's event ids are not ordered, so within one second the id cannot tell which change
 * came last. The state is refetched under the object's lock, so applying it is safe anyway.
 */
function isStale(event: Stripe.Event, row: Watermarked | undefined) {
  return row !== undefined && event.created < Number(row.watermark_created);
}

/** The new watermark: the larger (created, event id) of the row's and the event's. */
function nextWatermark(event: Stripe.Event, row: Watermarked | undefined): [number, string] {
  if (!row) return [event.created, event.id];
  const wm = Number(row.watermark_created);
  if (event.created > wm) return [event.created, event.id];
  return [wm, event.id > row.watermark_event_id ? event.id : row.watermark_event_id];
}

/**
 * The org a Stripe customer belongs to: billing.customers, else org_id in the object's
 * metadata, else org_id in the Stripe customer's metadata (which our checkout always sets).
 * A customer learned from metadata is recorded for next time.
 */
async function resolveOrg(ctx: Ctx, customerId: string | null, metadata?: Record<string, string> | null): Promise<string | null> {
  const { tx } = ctx;
  if (customerId) {
    const { rows } = await sql<{ org_id: string }>`select org_id from billing.customers where stripe_customer_id = ${customerId}`.execute(tx);
    if (rows[0]) return rows[0].org_id;
  }
  let candidate = metadata?.org_id;
  let email: string | null = null;
  if ((!candidate || !UUID.test(candidate)) && customerId) {
    const customer = await ctx.stripe.customers.retrieve(customerId);
    if (!("deleted" in customer && customer.deleted)) {
      candidate = (customer as Stripe.Customer).metadata?.org_id;
      email = (customer as Stripe.Customer).email ?? null;
    }
  }
  if (!candidate || !UUID.test(candidate)) return null;
  const { rows } = await sql<{ id: string }>`select id from public.orgs where id = ${candidate}::uuid`.execute(tx);
  if (!rows[0]) return null;
  if (customerId) {
    await sql`insert into billing.customers (org_id, stripe_customer_id, email) values (${candidate}::uuid, ${customerId}, ${email})
              on conflict do nothing`.execute(tx);
  }
  return candidate;
}

// ---------------------------------------------------------------------------
// Subscriptions
// ---------------------------------------------------------------------------

async function onSubscription(ctx: Ctx, subscriptionId: string, metadata?: Record<string, string> | null): Promise<Applied> {
  await lockObject(ctx.tx, subscriptionId);
  const sub = await ctx.stripe.subscriptions.retrieve(subscriptionId);
  const orgId = await resolveOrg(ctx, idOf(sub.customer as string | { id: string }), sub.metadata ?? metadata);
  if (!orgId) return { status: "ignored", object_id: subscriptionId, org_id: null };
  const stale = await mirrorSubscription(ctx, orgId, sub);
  return { status: "processed", object_id: subscriptionId, org_id: orgId, stale };
}

/** Upserts the refetched subscription under the event's watermark; returns true when the event was stale. */
async function mirrorSubscription(ctx: Ctx, orgId: string, sub: Stripe.Subscription): Promise<boolean> {
  const { tx, event } = ctx;
  const { rows: existing } = await sql<{ status: string; plan_key: string | null; watermark_created: string; watermark_event_id: string }>`
    select status, plan_key, watermark_created, watermark_event_id from billing.subscriptions where id = ${sub.id} for update`.execute(tx);
  if (isStale(event, existing[0])) return true;

  const items = sub.items?.data ?? [];
  // Prices we have never seen are mirrored as they come embedded (version 0: never overwrites).
  for (const item of items) {
    if (item.price && typeof item.price === "object") await upsertPrice(tx, item.price, 0);
  }
  const priceIds = items.map((i) => i.price.id);
  const { rows: plans } = await sql<{ price_id: string; plan_key: string | null }>`
    select pr.id as price_id, p.plan_key from billing.prices pr join billing.products p on p.id = pr.product_id
    where pr.id = any(${priceIds}::text[])`.execute(tx);
  const planOf = new Map(plans.map((p) => [p.price_id, p.plan_key]));
  const main = items.find((i) => planOf.get(i.price.id)) ?? items[0];
  const planKey = main ? planOf.get(main.price.id) ?? null : null;
  const periodStart = main?.current_period_start ?? null;
  const periodEnd = main?.current_period_end ?? null;
  const customerId = idOf(sub.customer as string | { id: string })!;
  const [wmCreated, wmId] = nextWatermark(event, existing[0]);

  await sql`
    insert into billing.subscriptions (id, org_id, stripe_customer_id, status, price_id, plan_key, quantity, items,
                                       current_period_start, current_period_end, cancel_at_period_end, canceled_at,
                                       trial_end, stripe_created, watermark_created, watermark_event_id)
    values (${sub.id}, ${orgId}::uuid, ${customerId}, ${sub.status}, ${main?.price.id ?? null}, ${planKey},
            ${main?.quantity ?? 1}, ${JSON.stringify(items.map((i) => ({ id: i.id, price: i.price.id, quantity: i.quantity ?? 1 })))}::jsonb,
            ${iso(periodStart)}::timestamptz, ${iso(periodEnd)}::timestamptz, ${sub.cancel_at_period_end ?? false},
            ${iso(sub.canceled_at)}::timestamptz, ${iso(sub.trial_end)}::timestamptz, ${iso(sub.created)}::timestamptz,
            ${wmCreated}, ${wmId})
    on conflict (id) do update set
      stripe_customer_id = excluded.stripe_customer_id, status = excluded.status, price_id = excluded.price_id,
      plan_key = excluded.plan_key, quantity = excluded.quantity, items = excluded.items,
      current_period_start = excluded.current_period_start, current_period_end = excluded.current_period_end,
      cancel_at_period_end = excluded.cancel_at_period_end, canceled_at = excluded.canceled_at,
      trial_end = excluded.trial_end, stripe_created = excluded.stripe_created,
      watermark_created = excluded.watermark_created, watermark_event_id = excluded.watermark_event_id`.execute(tx);

  const before = existing[0];
  if (!before || before.status !== sub.status || before.plan_key !== planKey) {
    await emit(tx, orgId, "billing.subscription_changed", "subscription", sub.id, {
      subscription_id: sub.id,
      status: sub.status,
      plan_key: planKey,
      previous_status: before?.status ?? null,
      previous_plan_key: before?.plan_key ?? null,
    });
  }
  return false;
}

// ---------------------------------------------------------------------------
// Checkout
// ---------------------------------------------------------------------------

async function onCheckoutSession(ctx: Ctx, session: Stripe.Checkout.Session): Promise<Applied> {
  const { tx, event } = ctx;
  const customerId = idOf(session.customer as string | { id: string } | null);
  const hint = session.metadata?.org_id ?? session.client_reference_id ?? undefined;
  const orgId = await resolveOrg(ctx, customerId, hint ? { org_id: hint } : null);
  if (!orgId) return { status: "ignored", object_id: session.id, org_id: null };

  if (session.mode === "subscription") {
    const subId = idOf(session.subscription as string | { id: string } | null);
    if (subId && event.type !== "checkout.session.async_payment_failed") {
      await lockObject(tx, subId);
      const sub = await ctx.stripe.subscriptions.retrieve(subId);
      await mirrorSubscription(ctx, orgId, sub);
    }
    return { status: "processed", object_id: session.id, org_id: orgId };
  }

  if (session.mode !== "payment" || session.payment_status !== "paid" || event.type === "checkout.session.async_payment_failed") {
    return { status: "processed", object_id: session.id, org_id: orgId };
  }
  // Our checkout route names the price, quantity and credits per unit in the session's metadata
  // (line items are not part of the event). A session without them is not ours.
  const priceId = session.metadata?.plinth_price_id;
  if (!priceId) return { status: "processed", object_id: session.id, org_id: orgId };
  const quantity = Number.parseInt(session.metadata?.plinth_quantity ?? "1", 10);
  const { rows } = await sql<{ product_id: string; credits: number | null }>`
    select pr.product_id, p.credits from billing.prices pr join billing.products p on p.id = pr.product_id
    where pr.id = ${priceId}`.execute(tx);
  const credits = packCredits(session.metadata) ?? rows[0]?.credits;
  // Paid for, but we cannot tell how much: 5xx, so Stripe retries instead of a silent loss.
  if (!credits || !(quantity > 0)) throw new Error(`checkout session ${session.id}: credits per unit unknown`);

  const amount = credits * quantity;
  await lockObject(tx, session.id);
  const { rows: grant } = await sql<{ id: string }>`
    select billing.grant_credits(${orgId}::uuid, 'pack', ${amount}::bigint, ${event.id}, null, null, ${session.id}) as id`.execute(tx);
  const paymentIntentId = idOf(session.payment_intent as string | { id: string } | null);
  const inserted = await sql`
    insert into billing.credit_purchases (checkout_session_id, org_id, payment_intent_id, price_id, product_id, quantity,
                                          credits, amount_total, currency, grant_id)
    values (${session.id}, ${orgId}::uuid, ${paymentIntentId}, ${priceId},
            ${rows[0]?.product_id ?? null}, ${quantity}, ${amount}, ${session.amount_total ?? null}, ${session.currency ?? null}, ${grant[0].id}::uuid)
    on conflict (checkout_session_id) do nothing
    returning checkout_session_id`.execute(tx);
  if (inserted.rows.length > 0) {
    await emit(tx, orgId, "billing.credits_granted", "credit_grant", grant[0].id, {
      amount,
      category: "pack",
      source_ref: session.id,
    });
    await applyEarlierRefunds(ctx, paymentIntentId);
  }
  return { status: "processed", object_id: session.id, org_id: orgId };
}

/** A refund or dispute of the payment that arrived before its purchase was recorded takes its share now. */
async function applyEarlierRefunds(ctx: Ctx, paymentIntentId: string | null) {
  if (!paymentIntentId) return;
  const { rows } = await sql<{ id: string; amount: string; amount_refunded: string; disputed: boolean }>`
    select id, amount::text, amount_refunded::text, disputed from billing.charges
    where payment_intent_id = ${paymentIntentId} and (amount_refunded > 0 or disputed)
    order by disputed desc, amount_refunded desc limit 1`.execute(ctx.tx);
  const pack = await packFor(ctx.tx, paymentIntentId);
  if (!rows[0] || !pack) return;
  await clawBack(ctx, pack, clawTarget(pack, rows[0]), rows[0].disputed ? "dispute" : "refund", rows[0].id);
}

// ---------------------------------------------------------------------------
// Invoices
// ---------------------------------------------------------------------------

async function onInvoice(ctx: Ctx, invoiceId: string): Promise<Applied> {
  const { tx, event } = ctx;
  await lockObject(tx, invoiceId);
  const inv = await ctx.stripe.invoices.retrieve(invoiceId);
  const details = inv.parent?.subscription_details;
  const subId = idOf(details?.subscription as string | { id: string } | null | undefined);
  const orgId = await resolveOrg(ctx, idOf(inv.customer as string | { id: string } | null), details?.metadata ?? inv.metadata);
  if (!orgId) return { status: "ignored", object_id: invoiceId, org_id: null };

  const { rows: existing } = await sql<{ watermark_created: string; watermark_event_id: string }>`
    select watermark_created, watermark_event_id from billing.invoices where id = ${inv.id} for update`.execute(tx);
  const stale = isStale(event, existing[0]);
  if (!stale) {
    const [wmCreated, wmId] = nextWatermark(event, existing[0]);
    await sql`
      insert into billing.invoices (id, org_id, subscription_id, status, billing_reason, currency, amount_due, amount_paid,
                                    hosted_invoice_url, period_start, period_end, stripe_created, watermark_created, watermark_event_id)
      values (${inv.id}, ${orgId}::uuid, ${subId}, ${inv.status ?? null}, ${inv.billing_reason ?? null}, ${inv.currency.toLowerCase()},
              ${inv.amount_due ?? 0}, ${inv.amount_paid ?? 0}, ${inv.hosted_invoice_url ?? null},
              ${iso(inv.period_start)}::timestamptz, ${iso(inv.period_end)}::timestamptz, ${iso(inv.created)}::timestamptz,
              ${wmCreated}, ${wmId})
      on conflict (id) do update set
        subscription_id = excluded.subscription_id, status = excluded.status, billing_reason = excluded.billing_reason,
        currency = excluded.currency, amount_due = excluded.amount_due, amount_paid = excluded.amount_paid,
        hosted_invoice_url = excluded.hosted_invoice_url, period_start = excluded.period_start, period_end = excluded.period_end,
        stripe_created = excluded.stripe_created, watermark_created = excluded.watermark_created,
        watermark_event_id = excluded.watermark_event_id`.execute(tx);
  }

  if (event.type === "invoice.paid" && inv.status === "paid" && subId &&
      (inv.billing_reason === "subscription_create" || inv.billing_reason === "subscription_cycle")) {
    await mirrorUnknownSubscription(ctx, orgId, subId);
    await grantMonthlyCredits(ctx, orgId, inv);
  } else if (!stale && event.type === "invoice.payment_failed") {
    await emit(tx, orgId, "billing.payment_failed", "invoice", inv.id, {
      invoice_id: inv.id,
      subscription_id: subId,
      amount_due: inv.amount_due ?? 0,
      currency: inv.currency.toLowerCase(),
    });
  } else if (!stale && event.type === "invoice.payment_action_required") {
    await emit(tx, orgId, "billing.payment_action_required", "invoice", inv.id, {
      invoice_id: inv.id,
      subscription_id: subId,
      hosted_invoice_url: inv.hosted_invoice_url ?? null,
    });
  }
  return { status: "processed", object_id: inv.id, org_id: orgId, stale };
}

/** A subscription first seen on its invoice is mirrored now, so the org has its plan at once. */
async function mirrorUnknownSubscription(ctx: Ctx, orgId: string, subId: string) {
  const { rows } = await sql`select 1 from billing.subscriptions where id = ${subId}`.execute(ctx.tx);
  if (rows.length > 0) return;
  await lockObject(ctx.tx, subId);
  await mirrorSubscription(ctx, orgId, await ctx.stripe.subscriptions.retrieve(subId));
}

/**
 * A paid subscription invoice (first or renewal) grants its plan's monthly_ai_credits once: the
 * grant's source_ref is the invoice id. The paid invoice is the evidence, so neither the stored
 * subscription's status (invoice.paid can beat customer.subscription.updated) nor the org's
 * current plan decides: the plan is that of the invoice's subscription line. The credits expire
 * at the end of that line's period.
 */
async function grantMonthlyCredits(ctx: Ctx, orgId: string, inv: Stripe.Invoice) {
  const { tx, event } = ctx;
  const { rows: already } = await sql`
    select 1 from billing.credit_grants where org_id = ${orgId}::uuid and category = 'subscription' and source_ref = ${inv.id}`.execute(tx);
  if (already.length > 0) return;
  const line = subscriptionLine(inv);
  // Throwing answers 5xx: Stripe retries rather than we grant a wrong amount.
  if (!line) throw new Error(`invoice ${inv.id} has no subscription line to take the plan from`);
  const amount = await monthlyCredits(tx, await planOfLine(ctx, line));
  if (!(amount > 0)) return;
  const periodEnd = (line.period?.end ?? 0) * 1000;
  const expiresAt = new Date(periodEnd > Date.now() + 60_000 ? periodEnd : Date.now() + 31 * 86_400_000);
  const { rows: grant } = await sql<{ id: string }>`
    select billing.grant_credits(${orgId}::uuid, 'subscription', ${amount}::bigint, ${event.id}, null,
                                 ${expiresAt.toISOString()}::timestamptz, ${inv.id}) as id`.execute(tx);
  await emit(tx, orgId, "billing.credits_granted", "credit_grant", grant[0].id, {
    amount,
    category: "subscription",
    source_ref: inv.id,
  });
}

/** The invoice's line for the subscription's price (not a proration). */
function subscriptionLine(inv: Stripe.Invoice): Stripe.InvoiceLineItem | undefined {
  return inv.lines?.data?.find((l) =>
    l.parent?.type === "subscription_item_details" && !l.parent.subscription_item_details?.proration &&
    l.pricing?.price_details?.product);
}

/**
 * The plan of the line's product. A product we have not mirrored (or only as a placeholder,
 * when its price arrived first) is fetched from Stripe and mirrored; throws when it names no plan.
 */
async function planOfLine(ctx: Ctx, line: Stripe.InvoiceLineItem): Promise<string> {
  const productId = line.pricing!.price_details!.product;
  const planOf = async () =>
    (await sql<{ plan_key: string | null }>`select plan_key from billing.products where id = ${productId}`.execute(ctx.tx))
      .rows[0]?.plan_key ?? null;
  let plan = await planOf();
  if (!plan) {
    const product = await ctx.stripe.products.retrieve(productId);
    await upsertProduct(ctx.tx, product, product.updated ?? ctx.event.created);
    plan = await planOf();
  }
  if (!plan) throw new Error(`product ${productId} names no known plan (metadata plinth_plan)`);
  return plan;
}

async function monthlyCredits(tx: Tx, planKey: string): Promise<number> {
  const { rows } = await sql<{ amount: string | null }>`
    select limit_value::text as amount from billing.entitlements
    where plan_key = ${planKey} and key = 'monthly_ai_credits' and enabled`.execute(tx);
  return Number(rows[0]?.amount ?? 0);
}

// ---------------------------------------------------------------------------
// Refunds and disputes
// ---------------------------------------------------------------------------

/**
 * Credits a payment bought, and how many were already taken back: a pack (credit_purchases,
 * by payment intent) or a subscription month (the grant of the charge's invoice, tracked on
 * billing.charges).
 */
interface Clawable {
  kind: "pack" | "subscription";
  org_id: string;
  grant_id: string | null;
  credits: bigint;
  clawed: bigint;
  source_ref: string;
}

async function packFor(tx: Tx, paymentIntentId: string | null): Promise<Clawable | undefined> {
  if (!paymentIntentId) return undefined;
  const { rows } = await sql<{ checkout_session_id: string; org_id: string; credits: string; clawed: string; grant_id: string | null }>`
    select checkout_session_id, org_id, credits::text, credits_clawed_back::text as clawed, grant_id
    from billing.credit_purchases where payment_intent_id = ${paymentIntentId} for update`.execute(tx);
  const p = rows[0];
  return p && { kind: "pack", org_id: p.org_id, grant_id: p.grant_id, credits: BigInt(p.credits), clawed: BigInt(p.clawed), source_ref: p.checkout_session_id };
}

/** The subscription grant of the charge's invoice; the charge must be mirrored already. */
async function subscriptionGrantFor(tx: Tx, orgId: string, chargeId: string, invoiceId: string | null): Promise<Clawable | undefined> {
  if (!invoiceId) return undefined;
  const { rows } = await sql<{ id: string; amount: string; clawed: string }>`
    select g.id, g.amount::text, c.credits_clawed_back::text as clawed
    from billing.credit_grants g, billing.charges c
    where g.org_id = ${orgId}::uuid and g.category = 'subscription' and g.source_ref = ${invoiceId} and c.id = ${chargeId}
    for update of c`.execute(tx);
  const g = rows[0];
  return g && { kind: "subscription", org_id: orgId, grant_id: g.id, credits: BigInt(g.amount), clawed: BigInt(g.clawed), source_ref: invoiceId };
}

/**
 * The invoice a charge paid: charge.invoice where the payload has it (older API versions), else
 * what we mirrored, else Stripe's invoice payments for its payment intent.
 */
async function invoiceOfCharge(ctx: Ctx, chargeId: string, paymentIntentId: string | null, fromPayload: unknown): Promise<string | null> {
  const direct = idOf(fromPayload as string | { id: string } | null | undefined);
  if (direct) return direct;
  const { rows } = await sql<{ invoice_id: string | null }>`select invoice_id from billing.charges where id = ${chargeId}`.execute(ctx.tx);
  if (rows[0]?.invoice_id) return rows[0].invoice_id;
  if (!paymentIntentId) return null;
  const payments = await ctx.stripe.invoicePayments.list({ payment: { type: "payment_intent", payment_intent: paymentIntentId }, limit: 1 });
  return idOf(payments.data[0]?.invoice as string | { id: string } | undefined);
}

/** Takes back `target - already clawed` credits; a shortfall becomes debt. Idempotent by event id. */
async function clawBack(ctx: Ctx, c: Clawable, target: bigint, reason: "refund" | "dispute", chargeId: string) {
  const take = (target > c.credits ? c.credits : target) - c.clawed;
  if (take <= 0n) return;
  const { rows } = await sql<{ clawed_back: string; debt: string }>`
    select clawed_back::text, debt::text from billing.claw_back_credits(${c.org_id}::uuid, ${take.toString()}::bigint, ${ctx.event.id}, ${c.grant_id}::uuid)`
    .execute(ctx.tx);
  if (c.kind === "pack") {
    await sql`update billing.credit_purchases set credits_clawed_back = credits_clawed_back + ${take.toString()}::bigint
              where checkout_session_id = ${c.source_ref}`.execute(ctx.tx);
  } else {
    await sql`update billing.charges set credits_clawed_back = credits_clawed_back + ${take.toString()}::bigint
              where id = ${chargeId}`.execute(ctx.tx);
  }
  await emit(ctx.tx, c.org_id, "billing.credits_clawed_back", "charge", chargeId, {
    amount: Number(take),
    clawed_back: Number(rows[0].clawed_back),
    debt: Number(rows[0].debt),
    reason,
    source_ref: c.source_ref,
  });
}

/** What a charge's refunds and dispute take back: all for a dispute, else the refunded share (rounded down). */
function clawTarget(c: Clawable, charge: { amount: string; amount_refunded: string; disputed: boolean }): bigint {
  if (charge.disputed) return c.credits;
  const amount = BigInt(charge.amount);
  return amount > 0n ? (c.credits * BigInt(charge.amount_refunded)) / amount : 0n;
}

async function storedCharge(tx: Tx, chargeId: string) {
  const { rows } = await sql<{ amount: string; amount_refunded: string; disputed: boolean }>`
    select amount::text, amount_refunded::text, disputed from billing.charges where id = ${chargeId}`.execute(tx);
  return rows[0];
}

async function upsertCharge(tx: Tx, orgId: string, c: Stripe.Charge, disputed: boolean, invoiceId: string | null) {
  // Refunds only grow, so the larger amount_refunded wins whatever the delivery order.
  await sql`
    insert into billing.charges (id, org_id, invoice_id, payment_intent_id, currency, amount, amount_refunded, status, disputed, stripe_created)
    values (${c.id}, ${orgId}::uuid, ${invoiceId}, ${idOf(c.payment_intent as string | { id: string } | null)}, ${c.currency.toLowerCase()},
            ${c.amount}, ${c.amount_refunded ?? 0}, ${c.status ?? null}, ${disputed || c.disputed === true}, ${iso(c.created)}::timestamptz)
    on conflict (id) do update set
      amount_refunded = greatest(billing.charges.amount_refunded, excluded.amount_refunded),
      invoice_id = coalesce(billing.charges.invoice_id, excluded.invoice_id),
      status = excluded.status, disputed = billing.charges.disputed or excluded.disputed`.execute(tx);
}

async function onChargeRefunded(ctx: Ctx, charge: Stripe.Charge): Promise<Applied> {
  const { tx } = ctx;
  await lockObject(tx, charge.id);
  const paymentIntentId = idOf(charge.payment_intent as string | { id: string } | null);
  const pack = await packFor(tx, paymentIntentId);
  const orgId = pack?.org_id ?? await resolveOrg(ctx, idOf(charge.customer as string | { id: string } | null), charge.metadata);
  if (!orgId) return { status: "ignored", object_id: charge.id, org_id: null };
  const invoiceId = pack ? null : await invoiceOfCharge(ctx, charge.id, paymentIntentId, (charge as { invoice?: unknown }).invoice);
  await upsertCharge(tx, orgId, charge, false, invoiceId);
  const clawable = pack ?? await subscriptionGrantFor(tx, orgId, charge.id, invoiceId);
  if (clawable) {
    const stored = await storedCharge(tx, charge.id);
    // A refund event claws back only by refund: an earlier dispute already took everything.
    await clawBack(ctx, clawable, clawTarget(clawable, { ...stored, disputed: false }), "refund", charge.id);
  }
  return { status: "processed", object_id: charge.id, org_id: orgId };
}

/** Flags the charge as disputed, recording it from the dispute when we have not mirrored it. */
async function markDisputed(tx: Tx, orgId: string, chargeId: string, dispute: Stripe.Dispute, invoiceId: string | null) {
  await sql`
    insert into billing.charges (id, org_id, invoice_id, payment_intent_id, currency, amount, status, disputed, stripe_created)
    values (${chargeId}, ${orgId}::uuid, ${invoiceId}, ${idOf(dispute.payment_intent as string | { id: string } | null)},
            ${dispute.currency.toLowerCase()}, ${dispute.amount}, 'succeeded', true, ${iso(dispute.created)}::timestamptz)
    on conflict (id) do update set disputed = true, invoice_id = coalesce(billing.charges.invoice_id, excluded.invoice_id)`.execute(tx);
}

async function onDispute(ctx: Ctx, dispute: Stripe.Dispute): Promise<Applied> {
  const { tx } = ctx;
  const chargeId = idOf(dispute.charge as string | { id: string });
  if (!chargeId) return { status: "ignored", object_id: dispute.id, org_id: null };
  await lockObject(tx, chargeId);
  const paymentIntentId = idOf(dispute.payment_intent as string | { id: string } | null);
  const pack = await packFor(tx, paymentIntentId);
  const { rows: known } = await sql<{ org_id: string }>`select org_id from billing.charges where id = ${chargeId}`.execute(tx);
  let orgId: string | null = pack?.org_id ?? known[0]?.org_id ?? null;
  // A dispute names no customer: a charge we have not mirrored yet is fetched for its customer.
  let charge: Stripe.Charge | undefined;
  if (!orgId) {
    charge = await ctx.stripe.charges.retrieve(chargeId);
    orgId = await resolveOrg(ctx, idOf(charge.customer as string | { id: string } | null), charge.metadata);
  }
  if (!orgId) return { status: "ignored", object_id: dispute.id, org_id: null };
  const invoiceId = pack ? null : await invoiceOfCharge(ctx, chargeId, paymentIntentId, (charge as { invoice?: unknown } | undefined)?.invoice);
  if (charge) await upsertCharge(tx, orgId, charge, true, invoiceId);
  else await markDisputed(tx, orgId, chargeId, dispute, invoiceId);
  // A dispute takes the whole payment back, so every credit it bought goes.
  const clawable = pack ?? await subscriptionGrantFor(tx, orgId, chargeId, invoiceId);
  if (clawable) await clawBack(ctx, clawable, clawable.credits, "dispute", chargeId);
  return { status: "processed", object_id: dispute.id, org_id: orgId };
}
