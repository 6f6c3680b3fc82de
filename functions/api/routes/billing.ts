// Billing routes that need Stripe: Checkout and the Billing Portal, plus a one-call summary.
// Each needs billing.manage in the org, checked as the caller (RLS helpers), and a signed-in
// user: an API key cannot buy things.
import { createRoute, type OpenAPIHono, z } from "@hono/zod-openapi";
import { sql } from "kysely";
import { aiMonthUsage } from "../../_shared/ai/usage.ts";
import { isAllowedReturnUrl, stripeFor } from "../../_shared/billing/stripe.ts";
import { asService, asUser, type RequestMeta, type Tx } from "../../_shared/db/client.ts";
import { ApiError } from "../../_shared/http/errors.ts";
import type { ApiEnv } from "../context.ts";
import { requestMeta, requireAuth, requireUser } from "../middleware.ts";
import { commonErrors, json, UuidParam } from "../schemas.ts";


const ReturnUrl = z.string().url().max(2048);

const CheckoutBody = z
  .object({
    price_id: z.string().min(1).max(255).regex(/^[A-Za-z0-9_]+$/),
    quantity: z.number().int().min(1).max(1000).default(1),
    success_url: ReturnUrl,
    cancel_url: ReturnUrl,
  })
  .strict()
  .openapi("CheckoutRequest");

const SessionSchema = z.object({ id: z.string(), url: z.string() }).openapi("StripeSession");

const checkoutRoute = createRoute({
  method: "post",
  path: "/orgs/{org_id}/billing/checkout",
  summary: "Start a Stripe Checkout: a subscription for a recurring price, a one-off payment for a credit pack (needs billing.manage).",
  security: [{ bearer: [] }],
  middleware: [requireAuth, requireUser] as const,
  request: {
    params: z.object({ org_id: UuidParam }),
    body: { required: true, content: { "application/json": { schema: CheckoutBody } } },
  },
  responses: {
    200: json(SessionSchema, "The Checkout Session; send the customer to url"),
    ...commonErrors,
  },
});

const PortalBody = z.object({ return_url: ReturnUrl }).strict().openapi("PortalRequest");

const portalRoute = createRoute({
  method: "post",
  path: "/orgs/{org_id}/billing/portal",
  summary: "Open the Stripe Billing Portal for the org's customer (needs billing.manage).",
  security: [{ bearer: [] }],
  middleware: [requireAuth, requireUser] as const,
  request: {
    params: z.object({ org_id: UuidParam }),
    body: { required: true, content: { "application/json": { schema: PortalBody } } },
  },
  responses: {
    200: json(SessionSchema, "The portal session; send the customer to url"),
    ...commonErrors,
  },
});

const Usage = z.object({ used: z.number().int().nullable(), limit: z.number().int().nullable() });

const SummarySchema = z
  .object({
    org_id: z.string().uuid(),
    plan: z.object({ key: z.string(), name: z.string() }).nullable(),
    subscription: z
      .object({
        id: z.string(),
        status: z.string(),
        plan_key: z.string().nullable(),
        price_id: z.string().nullable(),
        quantity: z.number().int(),
        current_period_start: z.string().nullable(),
        current_period_end: z.string().nullable(),
        cancel_at_period_end: z.boolean(),
        canceled_at: z.string().nullable(),
        trial_end: z.string().nullable(),
      })
      .nullable(),
    entitlements: z.array(z.object({
      key: z.string(),
      enabled: z.boolean(),
      limit: z.number().int().nullable(),
      description: z.string().nullable(),
    })),
    usage: z.object({ seats: Usage, webhook_endpoints: Usage }),
    credits: z.object({ balance: z.number().int(), reserved: z.number().int(), available: z.number().int(), debt: z.number().int() }),
    ai: z.object({
      credits: z.number().int(),
      provider_cost_micros: z.number().int(),
      attempts: z.number().int(),
      by_model: z.array(z.object({ model_id: z.string().nullable(), credits: z.number().int(), provider_cost_micros: z.number().int(), attempts: z.number().int() })),
    }).openapi({ description: "AI usage this month (UTC), from ai.usage_daily" }),
  })
  .openapi("BillingSummary");

const summaryRoute = createRoute({
  method: "get",
  path: "/orgs/{org_id}/billing/summary",
  summary: "The org's plan, subscription, entitlements, usage against limits, credit balance and this month's AI usage (needs billing.manage).",
  security: [{ bearer: [] }],
  middleware: [requireAuth, requireUser] as const,
  request: { params: z.object({ org_id: UuidParam }) },
  responses: {
    200: json(SummarySchema, "Billing summary"),
    ...commonErrors,
  },
});

/** 404 when the caller cannot see the org, 403 without billing.manage. Runs as the caller. */
async function assertBillingManager(tx: Tx, orgId: string) {
  const { rows } = await sql<{ member: boolean; allowed: boolean }>`
    select exists (select 1 from private.accessible_org_ids() x where x = ${orgId}::uuid) as member,
           private.has_permission(${orgId}::uuid, 'billing.manage') as allowed`.execute(tx);
  if (!rows[0]?.allowed) {
    if (rows[0]?.member) throw new ApiError(403, "forbidden", "billing needs the billing.manage permission");
    throw new ApiError(404, "not_found", "org not found");
  }
}

function assertReturnUrls(c: { get: (k: "deps") => { cfg: Parameters<typeof isAllowedReturnUrl>[0] } }, urls: Record<string, string>) {
  const bad = Object.entries(urls).filter(([, u]) => !isAllowedReturnUrl(c.get("deps").cfg, u));
  if (bad.length > 0) {
    throw new ApiError(400, "invalid_return_url", "return URLs must be on an allowed origin (PLINTH_RETURN_ORIGINS)",
      bad.map(([path]) => ({ path, message: "origin not allowed" })));
  }
}

/**
 * Stripe's answers as ours: its 4xx on our input (a bad price, say) are the caller's problem; a
 * clash on an idempotency key is a conflict to retry; throttling or a key Stripe refuses is our
 * service being unavailable (never the key or Stripe's message in the answer); outages are a 502.
 */
function fromStripeError(err: unknown): never {
  const e = err as { type?: string; statusCode?: number; message?: string };
  if (e?.type === "StripeIdempotencyError") {
    throw new ApiError(409, "stripe_conflict", "a concurrent request is already doing this; try again");
  }
  if (e?.type === "StripeRateLimitError" || e?.type === "StripeAuthenticationError" || e?.type === "StripePermissionError") {
    throw new ApiError(503, "stripe_unavailable", "billing is temporarily unavailable; try again later");
  }
  if (e?.type === "StripeInvalidRequestError" && e.statusCode && e.statusCode < 500) {
    throw new ApiError(400, "stripe_invalid_request", e.message ?? "Stripe refused the request");
  }
  if (e?.type === "StripeAPIError" || e?.type === "StripeConnectionError" || (e?.statusCode ?? 0) >= 500) {
    throw new ApiError(502, "stripe_unavailable", "Stripe did not answer; try again");
  }
  throw err;
}

/** Statuses of a subscription that still belongs to the org: a second one would double-bill it. */
const HELD = ["trialing", "active", "past_due", "incomplete", "unpaid", "paused"];

/**
 * Serializes subscription checkouts of one org until commit, so two concurrent ones cannot both
 * pass the checks below.
 */
async function lockOrgCheckout(tx: Tx, orgId: string) {
  await sql`select pg_advisory_xact_lock(hashtextextended(${`billing-checkout:${orgId}`}, 0))`.execute(tx);
}

/**
 * 409 when the org already has a subscription (mirrored), or a subscription checkout still open
 * in Stripe (not mirrored until it completes); the latter's url lets the client resume it.
 */
async function assertNoSubscription(tx: Tx, stripe: ReturnType<typeof stripeFor>, orgId: string, customerId: string) {
  const { rows } = await sql<{ id: string; status: string }>`
    select id, status from billing.subscriptions where org_id = ${orgId}::uuid and status = any(${HELD}::text[]) limit 1`.execute(tx);
  if (rows[0]) {
    throw new ApiError(409, "subscription_exists", "the org already has a subscription; change it in the billing portal",
      { subscription_id: rows[0].id, status: rows[0].status });
  }
  const open = await stripe.checkout.sessions.list({ customer: customerId, status: "open", limit: 100 }).catch(fromStripeError);
  const pending = open.data.find((s) => s.mode === "subscription");
  if (pending) {
    throw new ApiError(409, "subscription_exists", "a subscription checkout is already open for the org; finish or wait for it",
      { checkout_session_id: pending.id, url: pending.url });
  }
}

export function registerBilling(app: OpenAPIHono<ApiEnv>) {
  app.openapi(checkoutRoute, async (c) => {
    const { org_id } = c.req.valid("param");
    const body = c.req.valid("json");
    const { db, cfg } = c.get("deps");
    const principal = c.get("principal");
    assertReturnUrls(c, { success_url: body.success_url, cancel_url: body.cancel_url });

    const ctx = await asUser(db, principal.claims, async (tx) => {
      await assertBillingManager(tx, org_id);
      const { rows: prices } = await sql<{ type: string; currency: string; credits: number | null; plan_key: string | null }>`
        select pr.type, pr.currency, p.credits, p.plan_key from billing.prices pr join billing.products p on p.id = pr.product_id
        where pr.id = ${body.price_id} and pr.active and p.active`.execute(tx);
      const { rows: org } = await sql<{ name: string }>`select name from public.orgs where id = ${org_id}::uuid`.execute(tx);
      return { price: prices[0], orgName: org[0]?.name };
    }, requestMeta(c));

    if (!ctx.price) throw new ApiError(400, "invalid_price", "no such active price");
    const mode = ctx.price.type === "recurring" ? "subscription" : ctx.price.credits ? "payment" : undefined;
    if (!mode) throw new ApiError(400, "invalid_price", "the price is neither a plan subscription nor a credit pack");

    const stripe = stripeFor(cfg);
    const email = typeof principal.claims.email === "string" ? principal.claims.email : undefined;
    const customerId = await ensureCustomer(db, stripe, org_id, ctx.orgName, email, requestMeta(c));
    // Server-set, so the webhook grants what was sold even if the product changes meanwhile.
    const metadata: Record<string, string> = { org_id, plinth_price_id: body.price_id, plinth_quantity: String(body.quantity) };
    if (mode === "payment") metadata.plinth_credits = String(ctx.price.credits);
    // Rupee prices offer UPI beside cards (UPI subscriptions run on Stripe's e-mandates, which
    // confirm late: access still changes only on the webhook-confirmed state).
    const methods = ctx.price.currency.toLowerCase() === "inr" ? { payment_method_types: ["card", "upi"] as ("card" | "upi")[] } : {};
    const create = () =>
      stripe.checkout.sessions.create({
        mode,
        customer: customerId,
        client_reference_id: org_id,
        line_items: [{ price: body.price_id, quantity: body.quantity }],
        success_url: body.success_url,
        cancel_url: body.cancel_url,
        metadata,
        ...methods,
        ...(mode === "subscription"
          ? { subscription_data: { metadata: { org_id } } }
          : { payment_intent_data: { metadata } }),
      }).catch(fromStripeError);
    const session = mode === "payment" ? await create() : await asService(db, async (tx) => {
      await lockOrgCheckout(tx, org_id);
      await assertNoSubscription(tx, stripe, org_id, customerId);
      return create();
    });
    if (!session.url) throw new Error("Stripe returned a Checkout Session without a url");
    return c.json({ id: session.id, url: session.url }, 200);
  });

  app.openapi(portalRoute, async (c) => {
    const { org_id } = c.req.valid("param");
    const body = c.req.valid("json");
    const { db, cfg } = c.get("deps");
    assertReturnUrls(c, { return_url: body.return_url });
    const customerId = await asUser(db, c.get("principal").claims, async (tx) => {
      await assertBillingManager(tx, org_id);
      const { rows } = await sql<{ stripe_customer_id: string }>`
        select stripe_customer_id from billing.customers where org_id = ${org_id}::uuid`.execute(tx);
      return rows[0]?.stripe_customer_id;
    }, requestMeta(c));
    if (!customerId) throw new ApiError(409, "no_customer", "the org has no Stripe customer yet; start a checkout first");
    const session = await stripeFor(cfg).billingPortal.sessions.create({ customer: customerId, return_url: body.return_url })
      .catch(fromStripeError);
    return c.json({ id: session.id, url: session.url }, 200);
  });

  app.openapi(summaryRoute, async (c) => {
    const { org_id } = c.req.valid("param");
    const { db } = c.get("deps");
    const summary = await asUser(db, c.get("principal").claims, async (tx) => {
      await assertBillingManager(tx, org_id);
      const { rows } = await sql<{ summary: Omit<z.infer<typeof SummarySchema>, "ai"> }>`select billing.summary(${org_id}::uuid) as summary`.execute(tx);
      return { ...rows[0].summary, ai: await aiMonthUsage(tx, org_id) };
    }, requestMeta(c));
    return c.json(summary, 200);
  });
}

/**
 * The org's Stripe customer, created on first use with the org id in its metadata. The
 * idempotency key makes concurrent first checkouts get the same customer from Stripe. The row is
 * written as the service role (clients have no write grant), with the request's id, IP and user
 * agent for its audit-log entry, as every change made through the api function has.
 */
async function ensureCustomer(
  db: Parameters<typeof asService>[0],
  stripe: ReturnType<typeof stripeFor>,
  orgId: string,
  orgName: string | undefined,
  email: string | undefined,
  request: RequestMeta,
): Promise<string> {
  const existing = await asService(db, async (tx) => {
    const { rows } = await sql<{ stripe_customer_id: string }>`
      select stripe_customer_id from billing.customers where org_id = ${orgId}::uuid`.execute(tx);
    return rows[0]?.stripe_customer_id;
  });
  if (existing) return existing;
  const customer = await stripe.customers.create(
    { name: orgName, email, metadata: { org_id: orgId } },
    { idempotencyKey: `plinth-customer-${orgId}` },
  ).catch(fromStripeError);
  return asService(db, async (tx) => {
    await sql`select set_config('plinth.request', ${JSON.stringify(request)}, true)`.execute(tx);
    // Concurrent first checkouts get the same customer id, and both rows are unique on it as
    // well as on the org: with only org_id as the arbiter, the loser could fail on the other
    // index (23505) instead of doing nothing. Any conflict means the row is there.
    await sql`insert into billing.customers (org_id, stripe_customer_id, email)
              values (${orgId}::uuid, ${customer.id}, ${email ?? null}) on conflict do nothing`.execute(tx);
    const { rows } = await sql<{ stripe_customer_id: string }>`
      select stripe_customer_id from billing.customers where org_id = ${orgId}::uuid`.execute(tx);
    return rows[0].stripe_customer_id;
  });
}
