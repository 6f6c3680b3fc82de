// Environment for the edge functions and the worker, validated once at start-up.
import { z } from "zod";

const optionalUrl = z.string().url().optional().or(z.literal("").transform(() => undefined));

export const ConfigSchema = z.object({
  /** Postgres URL; hosted projects provide it to every edge function. */
  SUPABASE_DB_URL: z.string().min(1),
  /** The project's API URL; its JWKS lives under /auth/v1/.well-known/jwks.json. */
  SUPABASE_URL: z.string().url(),
  SUPABASE_SERVICE_ROLE_KEY: z.string().min(1).optional(),
  /** Legacy HS256 secret. Leave unset on projects that sign with asymmetric keys only. */
  PLINTH_JWT_SECRET: z.string().min(32).optional(),
  /** Override for the JWKS URL; defaults to the project's own. */
  PLINTH_JWKS_URL: optionalUrl,
  /** Where people land from emails (invitation links). */
  PLINTH_APP_URL: z.string().url().default("http://127.0.0.1:3000"),
  PLINTH_MAX_BODY_BYTES: z.coerce.number().int().positive().default(1024 * 1024),
  PLINTH_DB_POOL_SIZE: z.coerce.number().int().positive().default(5),
  EMAIL_TRANSPORT: z.enum(["smtp", "resend"]).default("smtp"),
  EMAIL_FROM: z.string().min(3).default("Plinth <no-reply@plinth.local>"),
  /** smtp(s)://user:pass@host:port */
  SMTP_URL: z.string().default("smtp://127.0.0.1:54325"),
  RESEND_API_KEY: z.string().optional(),
  RESEND_API_URL: z.string().url().default("https://api.resend.com"),
  /** Lets outbound webhooks reach loopback addresses (and plain http there): local dev and tests only. */
  PLINTH_WEBHOOKS_ALLOW_LOOPBACK: z.stringbool().default(false),
  /** Signs one-click unsubscribe links in notification emails. Required in production: notifications wait until it is set. */
  PLINTH_UNSUBSCRIBE_SECRET: z.string().min(32).optional(),
  /** Stripe secret key (sk_…); billing routes answer 503 without it. */
  STRIPE_SECRET_KEY: z.string().min(1).optional().or(z.literal("").transform(() => undefined)),
  /** Signing secret of the Stripe webhook endpoint (whsec_…), or several comma-separated while rotating; the webhook answers 503 without it. */
  STRIPE_WEBHOOK_SECRET: z.string().min(1).optional().or(z.literal("").transform(() => undefined)),
  /** Another Stripe API base (the local fake: http://127.0.0.1:PORT); unset means api.stripe.com. */
  STRIPE_API_BASE: optionalUrl,
  /** The Chromium binary the worker prints deck PDFs with; unset: /usr/bin/chromium and the other usual places. */
  PLINTH_CHROMIUM_PATH: z.string().min(1).optional().or(z.literal("").transform(() => undefined)),
  /** How often async AI tasks (video) are polled at their provider; webhooks wake a poll sooner. */
  PLINTH_AI_POLL_MS: z.coerce.number().int().min(50).max(60_000).default(5000),
  /** Comma-separated origins that checkout and portal return URLs may point at; defaults to PLINTH_APP_URL's origin. */
  PLINTH_RETURN_ORIGINS: z.string().optional(),
  /**
   * Whether the worker runs the catalog's cron schedules. The test stack turns them off, so a
   * scheduled job (the invitation purge at :17, the minute sweeps) never runs in the middle of a
   * test; a test that needs one calls its handler or enqueues it itself.
   */
  PLINTH_WORKER_CRON: z.stringbool().default(true),
});

export type Config = z.infer<typeof ConfigSchema>;

export function loadConfig(env: Record<string, string | undefined>): Config {
  const parsed = ConfigSchema.safeParse(env);
  if (!parsed.success) {
    // Names only: values may be secrets.
    const bad = parsed.error.issues.map((i) => i.path.join(".")).join(", ");
    throw new Error(`invalid configuration: ${bad}`);
  }
  if (parsed.data.EMAIL_TRANSPORT === "resend" && !parsed.data.RESEND_API_KEY) {
    throw new Error("invalid configuration: RESEND_API_KEY is required when EMAIL_TRANSPORT=resend");
  }
  return parsed.data;
}

export function jwksUrl(cfg: Config): string {
  return cfg.PLINTH_JWKS_URL ?? new URL("/auth/v1/.well-known/jwks.json", cfg.SUPABASE_URL).toString();
}
