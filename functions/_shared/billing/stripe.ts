// The Stripe client, built from config. STRIPE_API_BASE points it at another host (the local
// fake); production leaves it unset. The fetch HTTP client works the same on Deno and Node.
import Stripe from "stripe";
import type { Config } from "../config.ts";
import { ApiError } from "../http/errors.ts";

export { Stripe };

const clients = new WeakMap<Config, Stripe>();

/** Host, port and protocol for the SDK, from a base URL such as http://127.0.0.1:54326. */
export function stripeConnection(base: string | undefined): { host?: string; port?: number; protocol?: "http" | "https" } {
  if (!base) return {};
  const url = new URL(base);
  const protocol = url.protocol === "http:" ? "http" : "https";
  return { host: url.hostname, port: url.port ? Number(url.port) : protocol === "http" ? 80 : 443, protocol };
}

export function createStripe(secretKey: string, apiBase?: string): Stripe {
  return new Stripe(secretKey, {
    ...stripeConnection(apiBase),
    httpClient: Stripe.createFetchHttpClient(),
    // Our own callers retry (Stripe redelivers webhooks; people retry checkouts).
    maxNetworkRetries: 0,
    timeout: 15_000,
    appInfo: { name: "plinth" },
  });
}

/** The per-config client; 503 when Stripe is not configured. */
export function stripeFor(cfg: Config): Stripe {
  if (!cfg.STRIPE_SECRET_KEY) throw new ApiError(503, "billing_not_configured", "Stripe is not configured (STRIPE_SECRET_KEY)");
  let client = clients.get(cfg);
  if (!client) {
    client = createStripe(cfg.STRIPE_SECRET_KEY, cfg.STRIPE_API_BASE);
    clients.set(cfg, client);
  }
  return client;
}

/** Origins that checkout and portal return URLs may use: PLINTH_RETURN_ORIGINS, else PLINTH_APP_URL's. */
export function returnOrigins(cfg: Config): string[] {
  const list = cfg.PLINTH_RETURN_ORIGINS?.split(",").map((s) => s.trim()).filter(Boolean) ?? [];
  const raw = list.length > 0 ? list : [cfg.PLINTH_APP_URL];
  return raw.flatMap((o) => {
    try {
      return [new URL(o).origin];
    } catch {
      return [];
    }
  });
}

export function isAllowedReturnUrl(cfg: Config, url: string): boolean {
  try {
    const u = new URL(url);
    return (u.protocol === "https:" || u.protocol === "http:") && returnOrigins(cfg).includes(u.origin);
  } catch {
    return false;
  }
}

/** The id of an expandable Stripe field (a string, an object with an id, or null). */
export function idOf(v: string | { id: string } | null | undefined): string | null {
  if (v == null) return null;
  return typeof v === "string" ? v : v.id;
}
