// checkout.session.*: a subscription checkout mirrors its subscription at once; a paid credit
// pack grants its credits once (keyed by the session) and takes any refund that came first.
import { sql } from "kysely";
import type Stripe from "stripe";
import { packCredits } from "../catalog.ts";
import { idOf } from "../stripe.ts";
import { applyEarlierRefunds } from "./charges-disputes.ts";
import { type Applied, type Ctx, emit, ignored, lockObject, resolveOrg } from "./context.ts";
import { mirrorNamedSubscription } from "./subscriptions.ts";

export async function onCheckoutSession(ctx: Ctx, session: Stripe.Checkout.Session): Promise<Applied> {
  const { tx, event } = ctx;
  const customerId = idOf(session.customer as string | { id: string } | null);
  const org = await resolveOrg(ctx, customerId, [session.metadata?.org_id, session.client_reference_id]);
  if (org.org_id === null) return ignored(session.id, org.reason);
  const orgId = org.org_id;

  if (session.mode === "subscription") {
    const subId = idOf(session.subscription as string | { id: string } | null);
    if (subId && event.type !== "checkout.session.async_payment_failed") await mirrorNamedSubscription(ctx, orgId, subId);
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
