// charge.refunded and charge.dispute.*: taking back the credits a payment bought.
//
// What a charge takes back is its refunded share plus what its open or lost disputes took:
//   refund share  = floor(credits × amount_refunded / charge amount)
//   dispute share = floor(credits × disputed amount / charge amount), taken when the dispute
//                   opens (or when the purchase it concerns is recorded, if that comes later)
// Both round down (in the customer's favour), and together never exceed the credits bought.
// A dispute closed in the org's favour (won, or an inquiry closed without a chargeback) grants
// back exactly what it took, once. A shortfall (credits already spent) becomes debt.
import { sql } from "kysely";
import type Stripe from "stripe";
import type { Tx } from "../../db/client.ts";
import { idOf } from "../stripe.ts";
import { type Applied, type Ctx, emit, ignored, iso, lockObject, resolveOrg } from "./context.ts";

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

/** Dispute statuses that leave the money with the merchant: what the dispute took comes back. */
const FAVOURABLE = new Set(["won", "warning_closed", "prevented"]);
const FINAL = new Set(["won", "lost", "warning_closed", "prevented"]);

async function packFor(tx: Tx, paymentIntentId: string | null): Promise<Clawable | undefined> {
  if (!paymentIntentId) return undefined;
  const { rows } = await sql<{ checkout_session_id: string; org_id: string; credits: string; clawed: string; grant_id: string | null }>`
    select checkout_session_id, org_id, credits::text, credits_clawed_back::text as clawed, grant_id
    from billing.credit_purchases where payment_intent_id = ${paymentIntentId} for update`.execute(tx);
  const p = rows[0];
  return p && { kind: "pack", org_id: p.org_id, grant_id: p.grant_id, credits: BigInt(p.credits), clawed: BigInt(p.clawed), source_ref: p.checkout_session_id };
}

/**
 * The subscription credits the charge's invoice bought; the charge must be mirrored already.
 * A monthly invoice bought its one grant (source_ref = the invoice). A longer period's invoice
 * (an annual plan) bought the period's monthly grants: those granted so far count, the latest
 * first in line to be taken.
 */
async function subscriptionGrantFor(tx: Tx, orgId: string, chargeId: string, invoiceId: string | null): Promise<Clawable | undefined> {
  if (!invoiceId) return undefined;
  const { rows: charge } = await sql<{ clawed: string }>`
    select credits_clawed_back::text as clawed from billing.charges where id = ${chargeId} for update`.execute(tx);
  if (!charge[0]) return undefined;
  const { rows } = await sql<{ id: string; amount: string }>`
    select 0 as pref, g.id, g.amount::text from billing.credit_grants g
    where g.org_id = ${orgId}::uuid and g.category = 'subscription' and g.source_ref = ${invoiceId}
    union all
    -- A longer period's months: source_ref <subscription>-period-<period start, UTC>-month-<n>.
    select 1, x.id, x.amount::text from (
      select (array_agg(g.id order by g.created_at desc, g.id desc))[1] as id, sum(g.amount) as amount
      from billing.invoices i
      cross join lateral (select i.subscription_id || '-period-'
                                 || to_char(i.subscription_period_start at time zone 'UTC', 'YYYYMMDD"T"HH24MISS') || '-month-' as prefix) p
      join billing.credit_grants g
        on g.org_id = i.org_id and g.category = 'subscription' and left(g.source_ref, length(p.prefix)) = p.prefix
      where i.id = ${invoiceId} and i.org_id = ${orgId}::uuid and i.subscription_period_start is not null) x
    where x.id is not null
    order by pref limit 1`.execute(tx);
  const g = rows[0];
  return g && { kind: "subscription", org_id: orgId, grant_id: g.id, credits: BigInt(g.amount), clawed: BigInt(charge[0].clawed), source_ref: invoiceId };
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
  const payments = ctx.fetched.get<Stripe.ApiList<Stripe.InvoicePayment>>(`invoice_payments:${paymentIntentId}`,
    () => ctx.stripe.invoicePayments.list({ payment: { type: "payment_intent", payment_intent: paymentIntentId }, limit: 1 }));
  return idOf(payments.data[0]?.invoice as string | { id: string } | undefined);
}

/** Records `take` credits as taken back from the purchase or the charge. */
async function addClawed(ctx: Ctx, c: Clawable, chargeId: string, delta: bigint) {
  if (c.kind === "pack") {
    await sql`update billing.credit_purchases set credits_clawed_back = credits_clawed_back + ${delta.toString()}::bigint
              where checkout_session_id = ${c.source_ref}`.execute(ctx.tx);
  } else {
    await sql`update billing.charges set credits_clawed_back = credits_clawed_back + ${delta.toString()}::bigint
              where id = ${chargeId}`.execute(ctx.tx);
  }
  c.clawed += delta;
}

/** Takes back `take` credits (a shortfall becomes debt), idempotent by key. */
async function clawBack(ctx: Ctx, c: Clawable, take: bigint, key: string, reason: "refund" | "dispute", chargeId: string) {
  if (take <= 0n) return;
  const { rows } = await sql<{ clawed_back: string; debt: string }>`
    select clawed_back::text, debt::text from billing.claw_back_credits(${c.org_id}::uuid, ${take.toString()}::bigint, ${key}, ${c.grant_id}::uuid)`
    .execute(ctx.tx);
  await addClawed(ctx, c, chargeId, take);
  await emit(ctx.tx, c.org_id, "billing.credits_clawed_back", "charge", chargeId, {
    amount: Number(take),
    clawed_back: Number(rows[0].clawed_back),
    debt: Number(rows[0].debt),
    reason,
    source_ref: c.source_ref,
  });
}

type StoredCharge = { amount: string; amount_refunded: string };

async function storedCharge(tx: Tx, chargeId: string): Promise<StoredCharge | undefined> {
  const { rows } = await sql<StoredCharge>`
    select amount::text, amount_refunded::text from billing.charges where id = ${chargeId}`.execute(tx);
  return rows[0];
}

const share = (credits: bigint, part: bigint, whole: bigint) => (whole > 0n ? (credits * part) / whole : 0n);

/** Brings what the charge's refunds took up to its refunded share (on top of what open disputes hold). */
async function clawRefunded(ctx: Ctx, c: Clawable, chargeId: string, key: string) {
  const charge = await storedCharge(ctx.tx, chargeId);
  if (!charge) return;
  const { rows } = await sql<{ held: string }>`
    select coalesce(sum(credits_clawed_back - credits_restored), 0)::text as held from billing.disputes where charge_id = ${chargeId}`
    .execute(ctx.tx);
  let target = share(c.credits, BigInt(charge.amount_refunded), BigInt(charge.amount)) + BigInt(rows[0].held);
  if (target > c.credits) target = c.credits;
  await clawBack(ctx, c, target - c.clawed, key, "refund", chargeId);
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

export async function onChargeRefunded(ctx: Ctx, charge: Stripe.Charge): Promise<Applied> {
  const { tx } = ctx;
  await lockObject(tx, charge.id);
  const paymentIntentId = idOf(charge.payment_intent as string | { id: string } | null);
  const pack = await packFor(tx, paymentIntentId);
  let orgId = pack?.org_id ?? null;
  if (!orgId) {
    const org = await resolveOrg(ctx, idOf(charge.customer as string | { id: string } | null), [charge.metadata?.org_id]);
    if (org.org_id === null) return ignored(charge.id, org.reason);
    orgId = org.org_id;
  }
  const invoiceId = pack ? null : await invoiceOfCharge(ctx, charge.id, paymentIntentId, (charge as { invoice?: unknown }).invoice);
  await upsertCharge(tx, orgId, charge, false, invoiceId);
  const clawable = pack ?? await subscriptionGrantFor(tx, orgId, charge.id, invoiceId);
  if (clawable) await clawRefunded(ctx, clawable, charge.id, `refund-${ctx.event.id}`);
  return { status: "processed", object_id: charge.id, org_id: orgId };
}

/** A refund or dispute of the payment that arrived before its purchase was recorded takes its share now. */
export async function applyEarlierRefunds(ctx: Ctx, paymentIntentId: string | null) {
  if (!paymentIntentId) return;
  const { rows } = await sql<{ id: string }>`
    select c.id from billing.charges c
    where c.payment_intent_id = ${paymentIntentId}
      and (c.amount_refunded > 0 or c.disputed or exists (select 1 from billing.disputes d where d.charge_id = c.id))
    order by c.amount_refunded desc limit 1`.execute(ctx.tx);
  const pack = await packFor(ctx.tx, paymentIntentId);
  if (!rows[0] || !pack) return;
  const chargeId = rows[0].id;
  const { rows: disputes } = await sql<DisputeRow>`
    select id, amount::text, status, clawed_at, restored_at, credits_clawed_back::text as clawed
    from billing.disputes where charge_id = ${chargeId} and clawed_at is null order by id for update`.execute(ctx.tx);
  const charge = await storedCharge(ctx.tx, chargeId);
  for (const d of disputes) {
    if (FAVOURABLE.has(d.status)) await settleDispute(ctx, d.id, 0n);
    else await clawDispute(ctx, pack, chargeId, d, BigInt(charge!.amount));
  }
  await clawRefunded(ctx, pack, chargeId, `refund-${ctx.event.id}`);
}

type DisputeRow = { id: string; amount: string; status: string; clawed_at: string | null; restored_at: string | null; clawed: string };

/** Marks the dispute's claw-back as done, with what it took. */
async function settleDispute(ctx: Ctx, disputeId: string, took: bigint) {
  await sql`update billing.disputes set credits_clawed_back = ${took.toString()}::bigint, clawed_at = now()
            where id = ${disputeId}`.execute(ctx.tx);
}

/** Takes the dispute's share of the credits (less what was already taken back), once. */
async function clawDispute(ctx: Ctx, c: Clawable, chargeId: string, d: DisputeRow, chargeAmount: bigint) {
  let take = share(c.credits, BigInt(d.amount), chargeAmount);
  if (take > c.credits - c.clawed) take = c.credits - c.clawed;
  if (take < 0n) take = 0n;
  await clawBack(ctx, c, take, `dispute-${d.id}`, "dispute", chargeId);
  await settleDispute(ctx, d.id, take);
}

/** Gives back exactly what the dispute took, once. */
async function restoreDispute(ctx: Ctx, c: Clawable, chargeId: string, d: DisputeRow) {
  const amount = BigInt(d.clawed);
  if (d.restored_at || amount <= 0n) {
    if (!d.restored_at) await sql`update billing.disputes set restored_at = now() where id = ${d.id}`.execute(ctx.tx);
    return;
  }
  // A subscription month's credits come back with the month's expiry (none if it has passed).
  const { rows: orig } = await sql<{ expires_at: string | null }>`
    select case when expires_at > now() + interval '1 minute' then expires_at end as expires_at
    from billing.credit_grants where id = ${c.grant_id}::uuid`.execute(ctx.tx);
  const category = c.kind === "pack" ? "pack" : "subscription";
  const { rows: grant } = await sql<{ id: string }>`
    select billing.grant_credits(${c.org_id}::uuid, ${category}, ${amount.toString()}::bigint, ${`dispute-restore-${d.id}`}, null,
                                 ${orig[0]?.expires_at ?? null}::timestamptz, ${d.id}) as id`.execute(ctx.tx);
  await addClawed(ctx, c, chargeId, -amount);
  await sql`update billing.disputes set credits_restored = ${amount.toString()}::bigint, restored_at = now() where id = ${d.id}`
    .execute(ctx.tx);
  await emit(ctx.tx, c.org_id, "billing.credits_granted", "credit_grant", grant[0].id, {
    amount: Number(amount),
    category,
    source_ref: d.id,
  });
}

/**
 * charge.dispute.created / updated / closed. The dispute row keeps what was applied: a closed
 * status is final (a late "created" changes nothing), the claw-back runs once (clawed_at), the
 * restore once (restored_at).
 */
export async function onDispute(ctx: Ctx, dispute: Stripe.Dispute): Promise<Applied> {
  const { tx } = ctx;
  const chargeId = idOf(dispute.charge as string | { id: string });
  if (!chargeId) return ignored(dispute.id, "object_missing");
  await lockObject(tx, chargeId);
  const paymentIntentId = idOf(dispute.payment_intent as string | { id: string } | null);
  const pack = await packFor(tx, paymentIntentId);
  const { rows: known } = await sql<{ org_id: string }>`select org_id from billing.charges where id = ${chargeId}`.execute(tx);
  let orgId: string | null = pack?.org_id ?? known[0]?.org_id ?? null;
  // A dispute names no customer, nor the charge's amount: a charge we have not mirrored is fetched.
  let charge: Stripe.Charge | undefined;
  if (!known[0]) {
    charge = ctx.fetched.get<Stripe.Charge>(`charge:${chargeId}`, () => ctx.stripe.charges.retrieve(chargeId));
    if (!orgId) {
      const org = await resolveOrg(ctx, idOf(charge.customer as string | { id: string } | null), [charge.metadata?.org_id]);
      if (org.org_id === null) return ignored(dispute.id, org.reason);
      orgId = org.org_id;
    }
  }
  const invoiceId = pack ? null : await invoiceOfCharge(ctx, chargeId, paymentIntentId, (charge as { invoice?: unknown } | undefined)?.invoice);
  if (charge) await upsertCharge(tx, orgId!, charge, true, invoiceId);
  else {
    await sql`update billing.charges set disputed = true, invoice_id = coalesce(invoice_id, ${invoiceId})
              where id = ${chargeId}`.execute(tx);
  }

  const status = String(dispute.status);
  await sql`
    insert into billing.disputes (id, org_id, charge_id, payment_intent_id, amount, currency, status, reason, stripe_created)
    values (${dispute.id}, ${orgId}::uuid, ${chargeId}, ${paymentIntentId}, ${dispute.amount}, ${dispute.currency.toLowerCase()},
            ${status}, ${dispute.reason ?? null}, ${iso(dispute.created)}::timestamptz)
    on conflict (id) do update set status = excluded.status, amount = excluded.amount, reason = excluded.reason
    where billing.disputes.status <> all (${[...FINAL]}::text[])`.execute(tx);
  const { rows } = await sql<DisputeRow>`
    select id, amount::text, status, clawed_at, restored_at, credits_clawed_back::text as clawed
    from billing.disputes where id = ${dispute.id} for update`.execute(tx);
  const d = rows[0];

  const clawable = pack ?? await subscriptionGrantFor(tx, orgId!, chargeId, invoiceId);
  // The purchase is not recorded yet: its checkout applies this dispute when it lands.
  if (!clawable) return { status: "processed", object_id: dispute.id, org_id: orgId };
  if (FAVOURABLE.has(d.status)) {
    if (d.clawed_at) await restoreDispute(ctx, clawable, chargeId, d);
    else await settleDispute(ctx, d.id, 0n); // closed in the org's favour before anything was taken
  } else if (!d.clawed_at) {
    const stored = await storedCharge(tx, chargeId);
    await clawDispute(ctx, clawable, chargeId, d, BigInt(stored!.amount));
  }
  return { status: "processed", object_id: dispute.id, org_id: orgId };
}
