// The webhooks edge function: inbound calls from providers, each verified by its provider's
// signature (verify_jwt = false). POST /webhooks/stripe applies Stripe events exactly once;
// POST /webhooks/ai/<provider id> wakes the poll of the AI job a provider's task belongs to.
import { Hono } from "hono";
import { bodyLimit } from "hono/body-limit";
import { requestId } from "hono/request-id";
import { z } from "zod";
import { createAdapterRegistry, type AdapterRegistry } from "../_shared/ai/adapters.ts";
import { handleProviderWebhook, WebhookRefused } from "../_shared/ai/provider-webhooks.ts";
import { createStripe, Stripe } from "../_shared/billing/stripe.ts";
import { processStripeEvent } from "../_shared/billing/stripe-webhook/index.ts";
import { type Config, loadConfig } from "../_shared/config.ts";
import { createDb, type Db } from "../_shared/db/client.ts";
import { errorBody } from "../_shared/http/errors.ts";
import { type JobSender, Producer } from "../_shared/jobs/queue.ts";

export interface WebhooksDeps {
  cfg: Config;
  db: Db;
  stripe?: Stripe;
  jobs: JobSender;
  ai: AdapterRegistry;
}

export function createWebhooksDeps(env: Record<string, string | undefined>): WebhooksDeps {
  const cfg = loadConfig(env);
  const { db } = createDb(cfg.SUPABASE_DB_URL, cfg.PLINTH_DB_POOL_SIZE);
  return {
    cfg,
    db,
    stripe: cfg.STRIPE_SECRET_KEY ? createStripe(cfg.STRIPE_SECRET_KEY, cfg.STRIPE_API_BASE) : undefined,
    jobs: new Producer(cfg.SUPABASE_DB_URL),
    ai: createAdapterRegistry(db, env),
  };
}

/** The part of an event we rely on before dispatching on its type. */
const StripeEventEnvelope = z.object({
  id: z.string().min(1).max(255),
  object: z.literal("event"),
  type: z.string().min(1).max(255),
  created: z.number().int().nonnegative(),
  livemode: z.boolean().optional(),
  api_version: z.string().nullable().optional(),
  data: z.object({ object: z.object({ id: z.string().min(1).max(255).optional(), object: z.string() }).passthrough() }),
});

// Stripe signs with HMAC-SHA256; SubtleCrypto works on Deno (and Node) without Node's crypto.
const cryptoProvider = Stripe.createSubtleCryptoProvider();

/**
 * STRIPE_WEBHOOK_SECRET holds one signing secret, or several separated by commas while a secret
 * is being rotated (the new one and the one it replaces): a delivery signed with any is accepted.
 */
export function webhookSecrets(value: string): string[] {
  return value.split(",").map((s) => s.trim()).filter(Boolean);
}

/** The verified event, or undefined when no secret's signature matches (or the timestamp is too old). */
async function verifyStripe(stripe: Stripe, raw: string, signature: string, secrets: string[]): Promise<unknown> {
  for (const secret of secrets) {
    try {
      return await stripe.webhooks.constructEventAsync(raw, signature, secret, undefined, cryptoProvider);
    } catch {
      // try the next secret
    }
  }
  return undefined;
}

export function createWebhooksApp(deps: WebhooksDeps) {
  const app = new Hono<{ Variables: { requestId: string } }>().basePath("/webhooks");
  app.use(requestId());
  app.use(bodyLimit({
    maxSize: Math.max(deps.cfg.PLINTH_MAX_BODY_BYTES, 512 * 1024),
    onError: (c) => c.json(errorBody("payload_too_large", "the body is too large"), 413),
  }));

  app.post("/stripe", async (c) => {
    const secret = deps.cfg.STRIPE_WEBHOOK_SECRET;
    if (!secret || !deps.stripe) {
      return c.json(errorBody("not_configured", "Stripe webhooks are not configured (STRIPE_WEBHOOK_SECRET, STRIPE_SECRET_KEY)"), 503);
    }
    const signature = c.req.header("stripe-signature");
    if (!signature) return c.json(errorBody("missing_signature", "the Stripe-Signature header is missing"), 400);
    const raw = await c.req.text();
    const verified = await verifyStripe(deps.stripe, raw, signature, webhookSecrets(secret));
    if (verified === undefined) {
      return c.json(errorBody("invalid_signature", "the Stripe signature does not match the payload"), 400);
    }
    const envelope = StripeEventEnvelope.safeParse(verified);
    if (!envelope.success) {
      const details = envelope.error.issues.map((i) => ({ path: i.path.join("."), message: i.message }));
      return c.json(errorBody("invalid_request", "not a Stripe event", details), 400);
    }
    const outcome = await processStripeEvent(deps.db, deps.stripe, verified as Stripe.Event);
    // A duplicate was applied by an earlier delivery: 2xx, so Stripe stops sending it.
    return c.json({ received: true, event_id: envelope.data.id, duplicate: outcome.status === "duplicate", ...outcome }, 200);
  });

  app.post("/ai/:provider", async (c) => {
    const providerId = c.req.param("provider");
    if (!/^[a-z][a-z0-9_-]{1,39}$/.test(providerId)) return c.json(errorBody("not_found", "no such provider"), 404);
    try {
      const outcome = await handleProviderWebhook(
        { db: deps.db, jobs: deps.jobs, secret: (id) => deps.ai.provider(id) },
        providerId, await c.req.text(), c.req.raw.headers,
      );
      return c.json({ received: true, ...outcome }, 200);
    } catch (err) {
      if (err instanceof WebhookRefused) return c.json(errorBody(err.code, err.message), err.httpStatus);
      throw err;
    }
  });

  app.notFound((c) => c.json(errorBody("not_found", `no route ${c.req.method} ${c.req.path}`), 404));
  app.onError((err, c) => {
    // 5xx so that the provider retries; the transaction rolled back, so the retry applies it.
    console.error(JSON.stringify({ msg: "webhook failed", request_id: c.get("requestId"), error: err.message }));
    return c.json(errorBody("internal", "the event could not be applied; retry later", { request_id: c.get("requestId") }), 500);
  });
  return app;
}
