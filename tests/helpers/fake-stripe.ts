// Stripe for tests: the real `stripe` SDK pointed at the suite's fake Stripe (started by
// global-setup from scripts/lib/fake-stripe.ts), the fake's control API (state, failures,
// recorded requests), object builders, and signed webhook deliveries to the real functions.
import { randomBytes } from "node:crypto";
import Stripe from "stripe";
import { inject } from "vitest";
import { newId, type StripeObject } from "../../scripts/lib/fake-stripe.ts";
import { admin } from "./db.ts";

export { startFakeStripe } from "../../scripts/lib/fake-stripe.ts";
export type { StripeObject };

const stack = inject("stack");

/** The real SDK, pointed at the fake. */
export function stripeClient(): Stripe {
  const base = new URL(stack.stripeApiBase);
  return new Stripe(stack.stripeSecretKey, {
    host: base.hostname,
    port: Number(base.port),
    protocol: "http",
    httpClient: Stripe.createFetchHttpClient(),
    maxNetworkRetries: 0,
  });
}

const stripe = stripeClient();
export const uid = (prefix: string) => newId(prefix);
export const nowSeconds = () => Math.floor(Date.now() / 1000);

async function control<T = unknown>(method: string, path: string, body?: unknown): Promise<T> {
  const res = await fetch(`${stack.stripeApiBase}${path}`, {
    method,
    headers: body === undefined ? {} : { "content-type": "application/json" },
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  if (!res.ok) throw new Error(`fake Stripe ${method} ${path}: ${res.status} ${await res.text()}`);
  return (await res.json()) as T;
}

export const fakeStripe = {
  put: <T extends StripeObject>(obj: T) => control<T>("PUT", `/_fake/objects/${obj.object}/${obj.id}`, obj),
  get: <T = StripeObject>(type: string, id: string) => control<T>("GET", `/_fake/objects/${type}/${id}`),
  /** Fails matching /v1 requests (path exact, or a prefix ending in *) with a Stripe error. */
  /** With delayMs and no status, matching requests are answered normally, only that much later. */
  fail: (rule: { path: string; method?: string; status?: number; type?: string; message?: string; times?: number; delayMs?: number }) =>
    control("POST", "/_fake/failures", rule),
  recover: (path?: string) => control("DELETE", `/_fake/failures${path ? `?path=${encodeURIComponent(path)}` : ""}`),
  requests: (path: string) =>
    control<{ method: string; path: string; params: Record<string, any> }[]>("GET", `/_fake/requests?path=${encodeURIComponent(path)}`),
};

// ---------------------------------------------------------------------------
// Object builders (the shapes of Stripe's API version the SDK pins)
// ---------------------------------------------------------------------------

export function product(opts: { id?: string; name?: string; plan?: string; credits?: number; active?: boolean } = {}): StripeObject {
  const metadata: Record<string, string> = {};
  if (opts.plan) metadata.plinth_plan = opts.plan;
  if (opts.credits) metadata.plinth_credits = String(opts.credits);
  const t = nowSeconds();
  return {
    id: opts.id ?? uid("prod"), object: "product", name: opts.name ?? "Test product", description: null,
    active: opts.active ?? true, metadata, created: t, updated: t, livemode: false,
  };
}

export function price(opts: {
  id?: string; product: string; amount?: number; currency?: string; recurring?: boolean; active?: boolean; interval?: "month" | "year";
}): StripeObject {
  const recurring = opts.recurring ?? true;
  return {
    id: opts.id ?? uid("price"), object: "price", product: opts.product, currency: opts.currency ?? "usd",
    unit_amount: opts.amount ?? 2000, active: opts.active ?? true, lookup_key: null, metadata: {}, created: nowSeconds(),
    livemode: false, type: recurring ? "recurring" : "one_time",
    recurring: recurring ? { interval: opts.interval ?? "month", interval_count: 1 } : null,
  };
}

export function customer(orgId: string, id = uid("cus")): StripeObject {
  return { id, object: "customer", email: null, name: null, metadata: { org_id: orgId }, created: nowSeconds(), livemode: false };
}

export function subscription(opts: {
  id?: string;
  customer: string;
  price: StripeObject;
  status?: string;
  quantity?: number;
  periodStart?: number;
  periodEnd?: number;
  trialEnd?: number | null;
  cancelAtPeriodEnd?: boolean;
  canceledAt?: number | null;
  metadata?: Record<string, string>;
}): StripeObject {
  const start = opts.periodStart ?? nowSeconds() - 60;
  const end = opts.periodEnd ?? start + 30 * 86_400;
  const id = opts.id ?? uid("sub");
  return {
    id, object: "subscription", customer: opts.customer, status: opts.status ?? "active", created: start, livemode: false,
    cancel_at_period_end: opts.cancelAtPeriodEnd ?? false, canceled_at: opts.canceledAt ?? null,
    trial_end: opts.trialEnd ?? null, metadata: opts.metadata ?? {},
    items: {
      object: "list", has_more: false, url: `/v1/subscription_items?subscription=${id}`,
      data: [{
        id: `si_${id}`, object: "subscription_item", price: opts.price, quantity: opts.quantity ?? 1,
        current_period_start: start, current_period_end: end, created: start, subscription: id, metadata: {},
      }],
    },
  };
}

/** An invoice; with a subscription and its price, a subscription line (the plan's price and period). */
export function invoice(opts: {
  id?: string;
  customer: string;
  subscription?: string | null;
  price?: StripeObject;
  periodStart?: number;
  periodEnd?: number;
  proration?: boolean;
  status?: string;
  billingReason?: string;
  amountDue?: number;
  amountPaid?: number;
  currency?: string;
}): StripeObject {
  const t = nowSeconds();
  const id = opts.id ?? uid("in");
  const amountDue = opts.amountDue ?? 2000;
  const lines = opts.subscription && opts.price
    ? [{
      id: uid("il"), object: "line_item", amount: amountDue, currency: opts.currency ?? "usd", description: null,
      invoice: id, livemode: false, metadata: {}, quantity: 1,
      period: { start: opts.periodStart ?? t - 60, end: opts.periodEnd ?? t + 30 * 86_400 },
      pricing: {
        type: "price_details", unit_amount_decimal: String(opts.price.unit_amount ?? amountDue),
        price_details: { price: opts.price.id, product: opts.price.product },
      },
      parent: {
        type: "subscription_item_details", invoice_item_details: null,
        subscription_item_details: {
          invoice_item: null, proration: opts.proration ?? false, proration_details: { credited_items: null },
          subscription: opts.subscription, subscription_item: `si_${opts.subscription}`,
        },
      },
    }]
    : [];
  return {
    id, object: "invoice", customer: opts.customer, status: opts.status ?? "paid",
    billing_reason: opts.billingReason ?? "subscription_create", currency: opts.currency ?? "usd",
    amount_due: amountDue, amount_paid: opts.amountPaid ?? (opts.status === "open" ? 0 : amountDue),
    hosted_invoice_url: "https://invoice.stripe.test/i/x", period_start: t - 60, period_end: t - 60, created: t, livemode: false,
    metadata: {},
    lines: { object: "list", data: lines, has_more: false, total_count: lines.length, url: `/v1/invoices/${id}/lines` },
    parent: opts.subscription
      ? { type: "subscription_details", quote_details: null, subscription_details: { subscription: opts.subscription, metadata: {} } }
      : null,
  };
}

/** How Stripe ties a payment intent to the invoice it paid (charges no longer name their invoice). */
export function invoicePayment(opts: { invoice: string; paymentIntent: string; amount: number }): StripeObject {
  const t = nowSeconds();
  return {
    id: uid("inpay"), object: "invoice_payment", amount_paid: opts.amount, amount_requested: opts.amount, created: t,
    currency: "usd", invoice: opts.invoice, is_default: true, livemode: false,
    payment: { type: "payment_intent", payment_intent: opts.paymentIntent }, status: "paid",
    status_transitions: { canceled_at: null, paid_at: t },
  };
}

export function checkoutSession(opts: {
  id?: string;
  customer: string;
  orgId: string;
  mode: "payment" | "subscription";
  paymentStatus?: "paid" | "unpaid" | "no_payment_required";
  priceId?: string;
  quantity?: number;
  subscription?: string | null;
  paymentIntent?: string | null;
  amountTotal?: number;
}): StripeObject {
  return {
    id: opts.id ?? uid("cs_test"), object: "checkout.session", mode: opts.mode, customer: opts.customer,
    client_reference_id: opts.orgId, status: "complete", payment_status: opts.paymentStatus ?? "paid",
    metadata: { org_id: opts.orgId, plinth_price_id: opts.priceId ?? "", plinth_quantity: String(opts.quantity ?? 1) },
    subscription: opts.subscription ?? null, payment_intent: opts.paymentIntent ?? null,
    amount_total: opts.amountTotal ?? 1000, currency: "usd", created: nowSeconds(), livemode: false,
  };
}

export function charge(opts: { id?: string; customer: string; paymentIntent: string; amount: number; refunded?: number }): StripeObject {
  return {
    id: opts.id ?? uid("ch"), object: "charge", customer: opts.customer, payment_intent: opts.paymentIntent,
    amount: opts.amount, amount_refunded: opts.refunded ?? 0, refunded: (opts.refunded ?? 0) >= opts.amount,
    currency: "usd", status: "succeeded", disputed: false, created: nowSeconds(), livemode: false, metadata: {},
  };
}

export function dispute(opts: { id?: string; charge: string; paymentIntent: string; amount: number; status?: string }): StripeObject {
  return {
    id: opts.id ?? uid("dp"), object: "dispute", charge: opts.charge, payment_intent: opts.paymentIntent, amount: opts.amount,
    currency: "usd", status: opts.status ?? "needs_response", reason: "fraudulent", created: nowSeconds(), livemode: false, metadata: {},
  };
}

// ---------------------------------------------------------------------------
// Webhook deliveries
// ---------------------------------------------------------------------------

export interface StripeEventJson {
  id: string;
  object: "event";
  type: string;
  created: number;
  api_version: string;
  livemode: boolean;
  pending_webhooks: number;
  request: { id: string | null; idempotency_key: string | null };
  data: { object: unknown };
}

export function event(type: string, object: unknown, opts: { id?: string; created?: number } = {}): StripeEventJson {
  return {
    id: opts.id ?? `evt_${randomBytes(12).toString("hex")}`, object: "event", type, created: opts.created ?? nowSeconds(),
    api_version: "2026-10-28.endive", livemode: false, pending_webhooks: 1, request: { id: null, idempotency_key: null },
    data: { object },
  };
}

export interface Delivery {
  status: number;
  body: any;
}

/** POSTs the event to the webhooks function, signed the way Stripe signs (or with the given header). */
export async function deliver(e: StripeEventJson | string, opts: { signature?: string | null; secret?: string } = {}): Promise<Delivery> {
  const payload = typeof e === "string" ? e : JSON.stringify(e);
  const signature = opts.signature === undefined
    ? stripe.webhooks.generateTestHeaderString({ payload, secret: opts.secret ?? stack.stripeWebhookSecret })
    : opts.signature;
  const headers: Record<string, string> = { "content-type": "application/json" };
  if (signature !== null) headers["stripe-signature"] = signature;
  const res = await fetch(`${stack.functionsUrl}/webhooks/stripe`, { method: "POST", headers, body: payload });
  const raw = await res.text();
  let body: unknown;
  try {
    body = JSON.parse(raw);
  } catch {
    body = raw;
  }
  return { status: res.status, body };
}

/** Delivers and expects a 200. */
export async function deliverOk(e: StripeEventJson): Promise<Delivery> {
  const res = await deliver(e);
  if (res.status !== 200) throw new Error(`webhook ${e.type} answered ${res.status}: ${JSON.stringify(res.body)}`);
  return res;
}

export interface Catalog {
  pro: { product: StripeObject; price: StripeObject };
  team: { product: StripeObject; price: StripeObject };
  pack: { product: StripeObject; price: StripeObject };
}

/** A fresh catalog (Pro, Team, a 500-credit pack) in the fake, mirrored through product/price webhooks. */
export async function createCatalog(): Promise<Catalog> {
  const pro = product({ name: "Pro", plan: "pro" });
  const team = product({ name: "Team", plan: "team" });
  const pack = product({ name: "500 credits", credits: 500 });
  const catalog: Catalog = {
    pro: { product: pro, price: price({ product: pro.id, amount: 2000 }) },
    team: { product: team, price: price({ product: team.id, amount: 6000 }) },
    pack: { product: pack, price: price({ product: pack.id, amount: 1000, recurring: false }) },
  };
  for (const { product: p, price: pr } of Object.values(catalog)) {
    await fakeStripe.put(p);
    await fakeStripe.put(pr);
    await deliverOk(event("product.created", p));
    await deliverOk(event("price.created", pr));
  }
  return catalog;
}

/**
 * A Stripe customer for the org (org_id in its metadata), in the fake. Linked (the default) also
 * records it in billing.customers, as the checkout route does before any event can arrive;
 * unlinked leaves the webhook to establish the link from a matching event.
 */
export async function createCustomer(orgId: string, opts: { linked?: boolean } = {}): Promise<StripeObject> {
  const c = await fakeStripe.put(customer(orgId));
  if (opts.linked ?? true) {
    await admin.query("insert into billing.customers (org_id, stripe_customer_id) values ($1, $2) on conflict (org_id) do nothing", [orgId, c.id]);
  }
  return c;
}
