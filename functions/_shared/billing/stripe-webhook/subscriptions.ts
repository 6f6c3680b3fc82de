// customer.subscription.*: the subscription mirror, refetched from Stripe (before the
// transaction) and upserted under the event's watermark.
import { sql } from "kysely";
import type Stripe from "stripe";
import { upsertPrice } from "../catalog.ts";
import { idOf } from "../stripe.ts";
import { type Applied, type Ctx, emit, freshSubscription, ignored, isStale, iso, lockObject, nextWatermark, resolveOrg } from "./context.ts";

export async function onSubscription(ctx: Ctx, subscriptionId: string, metadata?: Record<string, string> | null): Promise<Applied> {
  await lockObject(ctx.tx, subscriptionId);
  const existing = await subscriptionRow(ctx, subscriptionId);
  const sub = freshSubscription(ctx, subscriptionId, existing?.version ?? null);
  const org = await resolveOrg(ctx, idOf(sub.customer as string | { id: string }), [sub.metadata?.org_id ?? metadata?.org_id]);
  if (org.org_id === null) return ignored(subscriptionId, org.reason);
  const stale = await mirrorSubscription(ctx, org.org_id, sub, existing);
  return { status: "processed", object_id: subscriptionId, org_id: org.org_id, stale };
}

type SubscriptionRow = { status: string; plan_key: string | null; watermark_created: string; watermark_event_id: string; version: string };

/** The mirror row, locked; `version` is its updated_at as text (for Prefetched.fresh). */
export async function subscriptionRow(ctx: Ctx, id: string): Promise<SubscriptionRow | undefined> {
  const { rows } = await sql<SubscriptionRow>`
    select status, plan_key, watermark_created, watermark_event_id, updated_at::text as version
    from billing.subscriptions where id = ${id} for update`.execute(ctx.tx);
  return rows[0];
}

/**
 * Upserts the refetched subscription under the event's watermark; returns true when the event
 * was stale. The caller holds the object lock and read `existing` under it.
 */
export async function mirrorSubscription(ctx: Ctx, orgId: string, sub: Stripe.Subscription, existing: SubscriptionRow | undefined): Promise<boolean> {
  const { tx, event } = ctx;
  if (isStale(event, existing)) return true;

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
  const [wmCreated, wmId] = nextWatermark(event, existing);

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

  const before = existing;
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

/** Locks, reads and mirrors a subscription named by another object (a checkout session, an invoice). */
export async function mirrorNamedSubscription(ctx: Ctx, orgId: string, subId: string, onlyIfUnknown = false) {
  await lockObject(ctx.tx, subId);
  const existing = await subscriptionRow(ctx, subId);
  if (onlyIfUnknown && existing) return;
  await mirrorSubscription(ctx, orgId, freshSubscription(ctx, subId, existing?.version ?? null), existing);
}
