// invoice.*: billing history, payment failures, and the monthly credits a paid subscription
// invoice brings: once per invoice for a monthly period, or the current month's for a period
// longer than a month (annual plans; the worker grants the months after it).
import { sql } from "kysely";
import type Stripe from "stripe";
import type { Tx } from "../../db/client.ts";
import { upsertProduct } from "../catalog.ts";
import { idOf } from "../stripe.ts";
import { type Applied, type Ctx, emit, freshInvoice, ignored, isStale, iso, lockObject, nextWatermark, resolveOrg } from "./context.ts";
import { mirrorNamedSubscription } from "./subscriptions.ts";

export async function onInvoice(ctx: Ctx, invoiceId: string): Promise<Applied> {
  const { tx, event } = ctx;
  await lockObject(tx, invoiceId);
  const { rows: existing } = await sql<{ watermark_created: string; watermark_event_id: string; version: string }>`
    select watermark_created, watermark_event_id, updated_at::text as version from billing.invoices where id = ${invoiceId} for update`
    .execute(tx);
  const inv = freshInvoice(ctx, invoiceId, existing[0]?.version ?? null);
  const details = inv.parent?.subscription_details;
  const subId = idOf(details?.subscription as string | { id: string } | null | undefined);
  const org = await resolveOrg(ctx, idOf(inv.customer as string | { id: string } | null),
    [details?.metadata?.org_id ?? inv.metadata?.org_id]);
  if (org.org_id === null) return ignored(invoiceId, org.reason);
  const orgId = org.org_id;

  const stale = isStale(event, existing[0]);
  if (!stale) {
    const [wmCreated, wmId] = nextWatermark(event, existing[0]);
    await sql`
      insert into billing.invoices (id, org_id, subscription_id, status, billing_reason, currency, amount_due, amount_paid,
                                    hosted_invoice_url, period_start, period_end, subscription_period_start, stripe_created,
                                    watermark_created, watermark_event_id)
      values (${inv.id}, ${orgId}::uuid, ${subId}, ${inv.status ?? null}, ${inv.billing_reason ?? null}, ${inv.currency.toLowerCase()},
              ${inv.amount_due ?? 0}, ${inv.amount_paid ?? 0}, ${inv.hosted_invoice_url ?? null},
              ${iso(inv.period_start)}::timestamptz, ${iso(inv.period_end)}::timestamptz,
              ${iso(subscriptionLine(inv)?.period?.start)}::timestamptz, ${iso(inv.created)}::timestamptz,
              ${wmCreated}, ${wmId})
      on conflict (id) do update set
        subscription_id = excluded.subscription_id, status = excluded.status, billing_reason = excluded.billing_reason,
        currency = excluded.currency, amount_due = excluded.amount_due, amount_paid = excluded.amount_paid,
        hosted_invoice_url = excluded.hosted_invoice_url, period_start = excluded.period_start, period_end = excluded.period_end,
        subscription_period_start = excluded.subscription_period_start,
        stripe_created = excluded.stripe_created, watermark_created = excluded.watermark_created,
        watermark_event_id = excluded.watermark_event_id`.execute(tx);
  }

  if (event.type === "invoice.paid" && inv.status === "paid" && subId &&
      (inv.billing_reason === "subscription_create" || inv.billing_reason === "subscription_cycle")) {
    // A subscription first seen on its invoice is mirrored now, so the org has its plan at once.
    await mirrorNamedSubscription(ctx, orgId, subId, true);
    await grantMonthlyCredits(ctx, orgId, inv, subId);
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

/**
 * A paid subscription invoice (first or renewal) grants its plan's monthly_ai_credits. The
 * paid invoice is the evidence, so neither the stored subscription's status (invoice.paid can
 * beat customer.subscription.updated) nor the org's current plan decides: the plan is that of
 * the invoice's subscription line.
 *   * A period of a month or less: once per invoice (source_ref = the invoice id), expiring at
 *     the end of the line's period.
 *   * A longer period (an annual plan): the credits of the period month the invoice is paid in,
 *     through billing.grant_subscription_month, keyed by subscription and month; the worker's
 *     billing.subscription_months job grants each following month while the subscription lives.
 */
async function grantMonthlyCredits(ctx: Ctx, orgId: string, inv: Stripe.Invoice, subId: string) {
  const { tx } = ctx;
  const { rows: already } = await sql`
    select 1 from billing.credit_grants where org_id = ${orgId}::uuid and category = 'subscription' and source_ref = ${inv.id}`.execute(tx);
  if (already.length > 0) return;
  const line = subscriptionLine(inv);
  // Throwing answers 5xx: Stripe retries rather than we grant a wrong amount.
  if (!line) throw new Error(`invoice ${inv.id} has no subscription line to take the plan from`);
  const plan = await planOfLine(ctx, line);
  const start = iso(line.period?.start);
  const end = iso(line.period?.end);
  if (start && end) {
    const { rows } = await sql<{ monthly: boolean }>`
      select billing.period_is_monthly_schedule(${start}::timestamptz, ${end}::timestamptz) as monthly`.execute(tx);
    if (rows[0].monthly) {
      await sql`select billing.grant_subscription_month(${orgId}::uuid, ${subId}, ${plan}, ${start}::timestamptz, ${end}::timestamptz)`
        .execute(tx);
      return;
    }
  }
  const amount = await monthlyCredits(tx, plan);
  if (!(amount > 0)) return;
  const periodEnd = (line.period?.end ?? 0) * 1000;
  const expiresAt = new Date(periodEnd > Date.now() + 60_000 ? periodEnd : Date.now() + 31 * 86_400_000);
  const { rows: grant } = await sql<{ id: string }>`
    select billing.grant_credits(${orgId}::uuid, 'subscription', ${amount}::bigint, ${`invoice-credits-${inv.id}`}, null,
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
    const product = ctx.fetched.get<Stripe.Product>(`product:${productId}`, () => ctx.stripe.products.retrieve(productId));
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
