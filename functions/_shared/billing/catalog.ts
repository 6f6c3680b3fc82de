// The Stripe catalog mirror: products (plan_key from metadata plinth_plan, credits from
// metadata plinth_credits) and prices. Written by product.* / price.* webhooks and by
// `npm run billing:sync`; a stale write (older than what the row has) changes nothing.
import { sql } from "kysely";
import type Stripe from "stripe";
import { asService, type Db, type Tx } from "../db/client.ts";
import { idOf } from "./stripe.ts";

const secondsToIso = (s: number) => new Date(s * 1000).toISOString();

/** metadata.plinth_credits as a positive whole number, else null. */
export function packCredits(metadata: Record<string, string> | null | undefined): number | null {
  const raw = metadata?.plinth_credits?.trim();
  if (!raw || !/^\d{1,15}$/.test(raw)) return null;
  const n = Number(raw);
  return n > 0 ? n : null;
}

/**
 * Upserts a product; `version` (unix seconds) orders writes: older ones are ignored. `deleted`
 * deactivates it (a product.deleted event's object does not say so itself).
 */
export async function upsertProduct(tx: Tx, p: Stripe.Product | Stripe.DeletedProduct, version: number, deleted = false): Promise<void> {
  if (deleted || ("deleted" in p && p.deleted)) {
    await sql`update billing.products set active = false, stripe_updated_at = ${secondsToIso(version)}::timestamptz
              where id = ${p.id} and (stripe_updated_at is null or stripe_updated_at <= ${secondsToIso(version)}::timestamptz)`.execute(tx);
    return;
  }
  const product = p as Stripe.Product;
  const metadata = product.metadata ?? {};
  const plan = metadata.plinth_plan?.trim() || null;
  await sql`
    insert into billing.products (id, name, description, active, plan_key, credits, metadata, stripe_updated_at)
    values (${product.id}, ${product.name ?? product.id}, ${product.description ?? null}, ${product.active ?? true},
            (select key from billing.plans where key = ${plan}), ${packCredits(metadata)},
            ${JSON.stringify(metadata)}::jsonb, ${secondsToIso(version)}::timestamptz)
    on conflict (id) do update set
      name = excluded.name, description = excluded.description, active = excluded.active,
      plan_key = excluded.plan_key, credits = excluded.credits, metadata = excluded.metadata,
      stripe_updated_at = excluded.stripe_updated_at
    where billing.products.stripe_updated_at is null or billing.products.stripe_updated_at <= excluded.stripe_updated_at`
    .execute(tx);
}

export async function upsertPrice(tx: Tx, p: Stripe.Price | Stripe.DeletedPrice, version: number, deleted = false): Promise<void> {
  if (deleted || ("deleted" in p && p.deleted)) {
    await sql`update billing.prices set active = false, stripe_updated_at = ${secondsToIso(version)}::timestamptz
              where id = ${p.id} and (stripe_updated_at is null or stripe_updated_at <= ${secondsToIso(version)}::timestamptz)`.execute(tx);
    return;
  }
  const price = p as Stripe.Price;
  const productId = idOf(price.product as string | { id: string });
  if (!productId) throw new Error(`price ${price.id} has no product`);
  // A price can arrive before its product: hold the place; the product's own event fills it in.
  await sql`insert into billing.products (id, name) values (${productId}, ${productId}) on conflict (id) do nothing`.execute(tx);
  await sql`
    insert into billing.prices (id, product_id, currency, unit_amount, type, recurring_interval, interval_count, active,
                                lookup_key, metadata, stripe_updated_at)
    values (${price.id}, ${productId}, ${price.currency.toLowerCase()}, ${price.unit_amount ?? null}, ${price.type},
            ${price.recurring?.interval ?? null}, ${price.recurring?.interval_count ?? null}, ${price.active ?? true},
            ${price.lookup_key ?? null}, ${JSON.stringify(price.metadata ?? {})}::jsonb, ${secondsToIso(version)}::timestamptz)
    on conflict (id) do update set
      product_id = excluded.product_id, currency = excluded.currency, unit_amount = excluded.unit_amount,
      type = excluded.type, recurring_interval = excluded.recurring_interval, interval_count = excluded.interval_count,
      active = excluded.active, lookup_key = excluded.lookup_key, metadata = excluded.metadata,
      stripe_updated_at = excluded.stripe_updated_at
    where billing.prices.stripe_updated_at is null or billing.prices.stripe_updated_at <= excluded.stripe_updated_at`
    .execute(tx);
}

/**
 * Full resync: every product and price in Stripe (active or not) into the mirror, and
 * anything mirrored that Stripe no longer lists marked inactive. One transaction.
 */
export async function resyncCatalog(
  stripe: Stripe,
  db: Db,
  opts: { pageSize?: number } = {},
): Promise<{ products: number; prices: number; deactivated: number }> {
  const limit = opts.pageSize ?? 100;
  const products: Stripe.Product[] = [];
  const prices: Stripe.Price[] = [];
  await stripe.products.list({ limit }).autoPagingEach((p) => {
    products.push(p);
  });
  await stripe.prices.list({ limit }).autoPagingEach((p) => {
    prices.push(p);
  });
  const version = Math.floor(Date.now() / 1000);
  return asService(db, async (tx) => {
    for (const p of products) await upsertProduct(tx, p, Math.max(p.updated ?? 0, version));
    for (const p of prices) await upsertPrice(tx, p, version);
    const productIds = products.map((p) => p.id);
    const priceIds = prices.map((p) => p.id);
    const a = await sql`update billing.prices set active = false where active and not (id = any(${priceIds}::text[]))`.execute(tx);
    const b = await sql`update billing.products set active = false where active and not (id = any(${productIds}::text[]))`.execute(tx);
    return {
      products: products.length,
      prices: prices.length,
      deactivated: Number(a.numAffectedRows ?? 0) + Number(b.numAffectedRows ?? 0),
    };
  });
}
