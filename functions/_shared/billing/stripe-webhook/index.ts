// Applying a verified Stripe event, exactly once, with no HTTP call inside a transaction.
//
// Per delivery:
//   0. an event already recorded is a duplicate: answered without calling Stripe.
//   1. fetch: the objects the event needs (the subscription or invoice it names) are retrieved
//      from Stripe with no transaction open. Before fetching a mirrored object, its row's
//      updated_at is read, to tell later whether another delivery wrote it meanwhile.
//   2. one short transaction (service role) claims the event (insert into billing.stripe_events
//      on conflict do nothing: a concurrent duplicate blocks on the primary key until the first
//      commits, then sees the conflict; if the first rolls back, the waiting one applies it) and
//      applies it: objects are locked (advisory lock on their id), state is upserted under the
//      row's watermark (a strictly older second changes nothing), outbox events are written.
//   3. if applying needs an object that was not fetched (a customer to resolve an org, a
//      product, a charge), or finds that its mirror row was written after the fetch (so the
//      fetch may be older than what is stored), the transaction rolls back (the claim too), the
//      object is fetched with no transaction open, and step 2 runs again.
// Any other error rolls everything back and the caller answers 5xx, so that Stripe retries.
// An object Stripe no longer has (404) is recorded as ignored: a retry cannot do better.
import { sql } from "kysely";
import type Stripe from "stripe";
import { asService, type Db } from "../../db/client.ts";
import { upsertPrice, upsertProduct } from "../catalog.ts";
import { onChargeRefunded, onDispute } from "./charges-disputes.ts";
import { onCheckoutSession } from "./checkout.ts";
import { type Applied, type Ctx, ignored, type IgnoredReason, invoiceKey, iso, mirrorOf, NeedFetch, Prefetched, subscriptionKey } from "./context.ts";
import { onInvoice } from "./invoices.ts";
import { onSubscription } from "./subscriptions.ts";

export type StripeEventOutcome =
  | { status: "duplicate" }
  | { status: "processed" | "ignored"; object_id: string | null; org_id: string | null; stale?: boolean; reason?: IgnoredReason };

/** How many fetch-and-apply rounds one delivery may take before it gives up (5xx; Stripe retries). */
const MAX_ROUNDS = 8;

export async function processStripeEvent(db: Db, stripe: Stripe, event: Stripe.Event): Promise<StripeEventOutcome> {
  if (await isRecorded(db, event.id)) return { status: "duplicate" };
  const fetched = new Prefetched();
  try {
    for (const [key, load] of initialFetches(stripe, event)) await fetchInto(db, fetched, key, load);
    for (let round = 0; round < MAX_ROUNDS; round++) {
      try {
        return await applyOnce(db, stripe, event, fetched);
      } catch (err) {
        if (!(err instanceof NeedFetch)) throw err;
        await fetchInto(db, fetched, err.key, err.load);
      }
    }
    throw new Error(`event ${event.id}: Stripe objects kept changing while it was applied; retry later`);
  } catch (err) {
    if (!isResourceMissing(err)) throw err;
    return recordIgnored(db, event, "object_missing");
  }
}

async function isRecorded(db: Db, id: string): Promise<boolean> {
  const { rows } = await sql`select 1 from billing.stripe_events where id = ${id}`.execute(db);
  return rows.length > 0;
}

/** Fetches one object (no transaction open), noting its mirror row's version first. */
async function fetchInto(db: Db, fetched: Prefetched, key: string, load: () => Promise<unknown>) {
  const mirror = mirrorOf(key);
  let version: string | null | undefined;
  if (mirror) {
    const { rows } = mirror.table === "subscriptions"
      ? await sql<{ v: string }>`select updated_at::text as v from billing.subscriptions where id = ${mirror.id}`.execute(db)
      : await sql<{ v: string }>`select updated_at::text as v from billing.invoices where id = ${mirror.id}`.execute(db);
    version = rows[0]?.v ?? null;
  }
  fetched.set(key, await load(), version);
}

const SUBSCRIPTION_EVENTS = [
  "customer.subscription.created", "customer.subscription.updated", "customer.subscription.deleted",
  "customer.subscription.paused", "customer.subscription.resumed", "customer.subscription.trial_will_end",
];
const INVOICE_EVENTS = ["invoice.paid", "invoice.payment_failed", "invoice.payment_action_required"];

/** What an event surely needs from Stripe, fetched before the first round. */
function initialFetches(stripe: Stripe, event: Stripe.Event): [string, () => Promise<unknown>][] {
  const obj = event.data.object as { id?: string; mode?: string; subscription?: string | { id: string } | null };
  if (SUBSCRIPTION_EVENTS.includes(event.type) && obj.id) {
    const id = obj.id;
    return [[subscriptionKey(id), () => stripe.subscriptions.retrieve(id)]];
  }
  if (INVOICE_EVENTS.includes(event.type) && obj.id) {
    const id = obj.id;
    return [[invoiceKey(id), () => stripe.invoices.retrieve(id)]];
  }
  if (event.type.startsWith("checkout.session.") && obj.mode === "subscription" && obj.subscription &&
      event.type !== "checkout.session.async_payment_failed") {
    const id = typeof obj.subscription === "string" ? obj.subscription : obj.subscription.id;
    return [[subscriptionKey(id), () => stripe.subscriptions.retrieve(id)]];
  }
  return [];
}

function isResourceMissing(err: unknown): boolean {
  const e = err as { code?: string; statusCode?: number };
  return e?.code === "resource_missing" && e.statusCode === 404;
}

async function recordIgnored(db: Db, event: Stripe.Event, reason: IgnoredReason): Promise<StripeEventOutcome> {
  const objectId = (event.data.object as { id?: unknown }).id;
  const id = typeof objectId === "string" ? objectId : null;
  return asService(db, async (tx) => {
    const { rows } = await sql`
      insert into billing.stripe_events (id, type, api_version, stripe_created, livemode, status, object_id, ignored_reason)
      values (${event.id}, ${event.type}, ${event.api_version ?? null}, ${iso(event.created)}::timestamptz, ${event.livemode ?? false},
              'ignored', ${id}, ${reason})
      on conflict (id) do nothing
      returning id`.execute(tx);
    return rows.length === 0 ? { status: "duplicate" as const } : { status: "ignored" as const, object_id: id, org_id: null, reason };
  });
}

function applyOnce(db: Db, stripe: Stripe, event: Stripe.Event, fetched: Prefetched): Promise<StripeEventOutcome> {
  return asService(db, async (tx) => {
    const claimed = await sql`
      insert into billing.stripe_events (id, type, api_version, stripe_created, livemode, status)
      values (${event.id}, ${event.type}, ${event.api_version ?? null}, ${iso(event.created)}::timestamptz, ${event.livemode ?? false}, 'processed')
      on conflict (id) do nothing
      returning id`.execute(tx);
    if (claimed.rows.length === 0) return { status: "duplicate" as const };
    const applied = await apply({ tx, stripe, event, fetched });
    await sql`update billing.stripe_events set status = ${applied.status}, object_id = ${applied.object_id},
                     resolved_org_id = ${applied.org_id}::uuid, ignored_reason = ${applied.reason ?? null}
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
    case "charge.dispute.updated":
    case "charge.dispute.closed":
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
      return Promise.resolve(ignored(typeof obj?.id === "string" ? obj.id : null, "unhandled_type"));
  }
}
