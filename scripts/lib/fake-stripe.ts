// A local stand-in for the parts of the Stripe API that Plinth calls, speaking Stripe's wire
// format: form-encoded requests (a[b][0][c]=v), JSON objects with an `object` field, lists with
// has_more / starting_after, and Stripe's error JSON with a 4xx. The real `stripe` SDK is
// pointed at it (host/port/protocol). Objects live in memory.
//
// Besides /v1, a control API under /_fake lets tests (which run in other processes) set
// state and inject failures:
//   PUT    /_fake/objects/<type>/<id>   body: the object (JSON); type = customer | subscription | invoice | product | price
//                                       | charge | invoice_payment
//   GET    /_fake/objects/<type>/<id>   the stored object
//   POST   /_fake/failures              body: { method?, path, status?, type?, message?, times?, delayMs? } (path: exact or
//                                       prefix ending in *); delayMs answers that much later, and with it and no status the
//                                       answer is the normal one (a slow Stripe)
//   DELETE /_fake/failures              clears every failure rule
//   GET    /_fake/requests?path=…       recorded requests (method, path, params), newest last
// Local development and tests only.
import { randomBytes } from "node:crypto";
import http from "node:http";
import type { AddressInfo } from "node:net";

export type StripeObject = Record<string, unknown> & { id: string; object: string };

export interface FakeStripe {
  url: string;
  port: number;
  /** A key the fake accepts (it accepts any sk_… key). */
  secretKey: string;
  store: Map<string, Map<string, StripeObject>>;
  close(): Promise<void>;
}

interface FailureRule {
  method?: string;
  path: string;
  status: number;
  /** Stripe's error type; default api_error for 5xx, invalid_request_error otherwise. */
  type?: string;
  message: string;
  times?: number;
  /** Answer this much later; without a status, the answer itself is the normal one. */
  delayMs?: number;
  /** Set when the rule only slows requests down. */
  passThrough?: boolean;
}

interface RecordedRequest {
  method: string;
  path: string;
  params: Record<string, unknown>;
  at: number;
}

const TYPES = [
  "customer", "checkout.session", "billing_portal.session", "subscription", "invoice", "product", "price", "charge", "invoice_payment",
] as const;

export const newId = (prefix: string) => `${prefix}_${randomBytes(12).toString("base64url").replace(/[-_]/g, "x")}`;
const now = () => Math.floor(Date.now() / 1000);

/** Parses Stripe's bracketed form encoding into nested objects and arrays. */
export function parseStripeForm(body: string): Record<string, unknown> {
  const out: Record<string, unknown> = {};
  for (const [rawKey, value] of new URLSearchParams(body)) {
    const parts = rawKey.replace(/\]/g, "").split("[");
    let node: Record<string, unknown> | unknown[] = out;
    for (let i = 0; i < parts.length; i++) {
      const part = parts[i];
      const last = i === parts.length - 1;
      const key: string | number = Array.isArray(node) ? Number(part) : part;
      if (last) {
        (node as Record<string | number, unknown>)[key] = value;
      } else {
        const nextIsIndex = /^\d+$/.test(parts[i + 1]);
        const existing = (node as Record<string | number, unknown>)[key];
        if (existing === undefined || existing === null || typeof existing !== "object") {
          (node as Record<string | number, unknown>)[key] = nextIsIndex ? [] : {};
        }
        node = (node as Record<string | number, unknown>)[key] as Record<string, unknown>;
      }
    }
  }
  return out;
}

class StripeHttpError extends Error {
  constructor(readonly status: number, readonly type: string, message: string, readonly code?: string, readonly param?: string) {
    super(message);
  }
}

const missing = (type: string, id: string) =>
  new StripeHttpError(404, "invalid_request_error", `No such ${type}: '${id}'`, "resource_missing", "id");

export interface FakeStripeOptions {
  port?: number;
  /** Objects to start with (for a keyless local stack: the demo catalog). */
  objects?: StripeObject[];
}

export async function startFakeStripe(opts: FakeStripeOptions = {}): Promise<FakeStripe> {
  const store = new Map<string, Map<string, StripeObject>>(TYPES.map((t) => [t, new Map()]));
  const failures: FailureRule[] = [];
  const requests: RecordedRequest[] = [];
  const idempotent = new Map<string, { status: number; body: unknown }>();
  let baseUrl = "";

  const table = (type: string) => {
    const t = store.get(type);
    if (!t) throw new StripeHttpError(400, "invalid_request_error", `unknown object type ${type}`);
    return t;
  };
  const put = (obj: StripeObject) => {
    table(obj.object).set(obj.id, obj);
    return obj;
  };
  for (const o of opts.objects ?? []) put(o);

  const get = (type: string, id: string) => {
    const o = table(type).get(id);
    if (!o) throw missing(type, id);
    return o;
  };

  /** Stripe's list envelope, newest first, with cursor pagination. */
  function list(type: string, url: string, params: Record<string, unknown>, filter: (o: StripeObject) => boolean = () => true) {
    const all = [...table(type).values()].filter(filter)
      .sort((a, b) => Number(b.created ?? 0) - Number(a.created ?? 0) || (a.id < b.id ? 1 : -1));
    const limit = Math.min(Math.max(Number(params.limit ?? 10), 1), 100);
    let start = 0;
    if (typeof params.starting_after === "string") {
      const i = all.findIndex((o) => o.id === params.starting_after);
      if (i < 0) throw missing(type, params.starting_after);
      start = i + 1;
    }
    const data = all.slice(start, start + limit);
    return { object: "list", url, has_more: start + limit < all.length, data };
  }

  const bool = (v: unknown) => (v === undefined ? undefined : v === "true" || v === true);

  function route(method: string, path: string, params: Record<string, unknown>): unknown {
    let m: RegExpExecArray | null;
    if (method === "POST" && path === "/v1/customers") {
      return put({
        id: newId("cus"), object: "customer", created: now(), livemode: false,
        email: params.email ?? null, name: params.name ?? null, metadata: params.metadata ?? {},
      });
    }
    if (method === "GET" && (m = /^\/v1\/customers\/([^/]+)$/.exec(path))) return get("customer", m[1]);

    if (method === "POST" && path === "/v1/checkout/sessions") {
      const mode = String(params.mode ?? "payment");
      const items = (params.line_items as { price?: string; quantity?: string }[] | undefined) ?? [];
      if (!["payment", "subscription", "setup"].includes(mode)) {
        throw new StripeHttpError(400, "invalid_request_error", `Invalid mode: ${mode}`, "parameter_invalid_string", "mode");
      }
      if (!params.success_url) throw new StripeHttpError(400, "invalid_request_error", "Missing required param: success_url.", "parameter_missing", "success_url");
      for (const [i, item] of items.entries()) {
        const price = table("price").get(String(item.price));
        if (!price) throw new StripeHttpError(400, "invalid_request_error", `No such price: '${item.price}'`, "resource_missing", `line_items[${i}][price]`);
        const recurring = price.type === "recurring";
        if (recurring !== (mode === "subscription")) {
          throw new StripeHttpError(400, "invalid_request_error",
            mode === "subscription"
              ? "You must specify at least one recurring price in `subscription` mode when using prices."
              : "You specified `payment` mode but passed a recurring price.", undefined, `line_items[${i}][price]`);
        }
      }
      if (params.customer && !table("customer").has(String(params.customer))) throw missing("customer", String(params.customer));
      // As Stripe: UPI takes rupees only.
      const methods = params.payment_method_types as string[] | undefined;
      const notInr = items.find((i) => table("price").get(String(i.price))?.currency !== "inr");
      if (methods?.includes("upi") && notInr) {
        throw new StripeHttpError(400, "invalid_request_error", "The payment method `upi` does not support the currency of this price; UPI requires inr.", "payment_method_unactivated", "payment_method_types");
      }
      const id = newId("cs_test");
      return put({
        id, object: "checkout.session", created: now(), livemode: false, mode,
        url: `${baseUrl}/checkout/pay/${id}`,
        customer: params.customer ?? null, client_reference_id: params.client_reference_id ?? null,
        success_url: params.success_url, cancel_url: params.cancel_url ?? null,
        metadata: params.metadata ?? {}, status: "open", payment_status: "unpaid",
        payment_method_types: (params.payment_method_types as string[] | undefined) ?? ["card"],
        payment_intent: null, subscription: null, amount_total: null, currency: null,
        line_items_requested: items.map((i) => ({ price: i.price, quantity: Number(i.quantity ?? 1) })),
      });
    }
    if (method === "GET" && (m = /^\/v1\/checkout\/sessions\/([^/]+)$/.exec(path))) return get("checkout.session", m[1]);
    if (method === "GET" && path === "/v1/checkout/sessions") {
      return list("checkout.session", path, params, (s) =>
        (!params.customer || s.customer === params.customer) && (!params.status || s.status === params.status));
    }

    if (method === "POST" && path === "/v1/billing_portal/sessions") {
      const customer = String(params.customer ?? "");
      get("customer", customer);
      const id = newId("bps");
      return put({
        id, object: "billing_portal.session", created: now(), livemode: false, customer,
        return_url: params.return_url ?? null, url: `${baseUrl}/billing/portal/${id}`,
      });
    }

    if (method === "GET" && (m = /^\/v1\/subscriptions\/([^/]+)$/.exec(path))) return get("subscription", m[1]);
    if (method === "GET" && path === "/v1/subscriptions") {
      return list("subscription", path, params, (s) =>
        (!params.customer || s.customer === params.customer) &&
        (params.status ? params.status === "all" || s.status === params.status : s.status !== "canceled"));
    }
    if (method === "GET" && (m = /^\/v1\/invoices\/([^/]+)$/.exec(path))) return get("invoice", m[1]);
    if (method === "GET" && (m = /^\/v1\/charges\/([^/]+)$/.exec(path))) return get("charge", m[1]);
    if (method === "GET" && path === "/v1/invoice_payments") {
      // Filters: invoice, payment[type] with payment[payment_intent], status.
      const payment = (params.payment ?? {}) as { type?: string; payment_intent?: string };
      return list("invoice_payment", path, params, (p) => {
        const paid = p.payment as { type?: string; payment_intent?: string };
        return (!params.invoice || p.invoice === params.invoice) && (!params.status || p.status === params.status) &&
          (!payment.type || (paid.type === payment.type && (!payment.payment_intent || paid.payment_intent === payment.payment_intent)));
      });
    }
    if (method === "GET" && path === "/v1/products") {
      const active = bool(params.active);
      return list("product", path, params, (p) => active === undefined || p.active === active);
    }
    if (method === "GET" && (m = /^\/v1\/products\/([^/]+)$/.exec(path))) return get("product", m[1]);
    if (method === "GET" && path === "/v1/prices") {
      const active = bool(params.active);
      return list("price", path, params, (p) =>
        (active === undefined || p.active === active) && (!params.product || p.product === params.product));
    }
    if (method === "GET" && (m = /^\/v1\/prices\/([^/]+)$/.exec(path))) return get("price", m[1]);
    throw new StripeHttpError(404, "invalid_request_error", `Unrecognized request URL (${method}: ${path}).`);
  }

  function control(method: string, path: string, url: URL, body: string): { status: number; body: unknown } {
    let m: RegExpExecArray | null;
    if ((m = /^\/_fake\/objects\/([a-z_.]+)\/([^/]+)$/.exec(path))) {
      if (method === "PUT") {
        const obj = JSON.parse(body) as StripeObject;
        return { status: 200, body: put({ ...obj, id: m[2], object: m[1] }) };
      }
      if (method === "GET") return { status: 200, body: get(m[1], m[2]) };
      if (method === "DELETE") return { status: 200, body: { deleted: table(m[1]).delete(m[2]) } };
    }
    if (path === "/_fake/failures" && method === "POST") {
      const rule = JSON.parse(body) as Partial<FailureRule>;
      if (!rule.path) return { status: 400, body: { error: "path is required" } };
      const passThrough = rule.delayMs !== undefined && rule.status === undefined;
      failures.push({ status: 500, message: "An unknown error occurred", ...rule, path: rule.path, passThrough });
      return { status: 200, body: { rules: failures.length } };
    }
    if (path === "/_fake/failures" && method === "DELETE") {
      const prefix = url.searchParams.get("path");
      for (let i = failures.length - 1; i >= 0; i--) if (!prefix || failures[i].path === prefix) failures.splice(i, 1);
      return { status: 200, body: { rules: failures.length } };
    }
    if (path === "/_fake/requests" && method === "GET") {
      const p = url.searchParams.get("path");
      return { status: 200, body: requests.filter((r) => !p || r.path === p || (p.endsWith("*") && r.path.startsWith(p.slice(0, -1)))) };
    }
    return { status: 404, body: { error: "no such control route" } };
  }

  function failureFor(method: string, path: string): FailureRule | undefined {
    const i = failures.findIndex((f) =>
      (!f.method || f.method.toUpperCase() === method) &&
      (f.path === path || (f.path.endsWith("*") && path.startsWith(f.path.slice(0, -1)))));
    if (i < 0) return undefined;
    const rule = failures[i];
    if (rule.times !== undefined && --rule.times <= 0) failures.splice(i, 1);
    return rule;
  }

  const server = http.createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on("data", (c: Buffer) => chunks.push(c));
    req.on("end", async () => {
      const body = Buffer.concat(chunks).toString("utf8");
      const url = new URL(req.url ?? "/", "http://fake");
      const method = (req.method ?? "GET").toUpperCase();
      const send = (status: number, payload: unknown) => {
        const text = JSON.stringify(payload);
        res.writeHead(status, { "content-type": "application/json", "request-id": newId("req") });
        res.end(text);
      };
      try {
        if (url.pathname.startsWith("/_fake/")) {
          const r = control(method, url.pathname, url, body);
          return send(r.status, r.body);
        }
        if (!url.pathname.startsWith("/v1/")) return send(404, { error: { type: "invalid_request_error", message: "Not found" } });
        const auth = req.headers.authorization ?? "";
        if (!/^Bearer sk_(test|live)_\S+$/.test(auth)) {
          return send(401, { error: { type: "invalid_request_error", message: "Invalid API Key provided." } });
        }
        const params = method === "GET" ? parseStripeForm(url.search.slice(1)) : parseStripeForm(body);
        requests.push({ method, path: url.pathname, params, at: Date.now() });
        if (requests.length > 5000) requests.splice(0, requests.length - 5000);
        let fail = failureFor(method, url.pathname);
        if (fail?.delayMs) await new Promise((r) => setTimeout(r, fail!.delayMs));
        if (fail?.passThrough) fail = undefined;
        if (fail) {
          const type = fail.type ?? (fail.status >= 500 ? "api_error" : "invalid_request_error");
          return send(fail.status, { error: { type, message: fail.message } });
        }
        const key = method === "POST" ? req.headers["idempotency-key"] : undefined;
        const cacheKey = typeof key === "string" ? `${url.pathname}:${key}` : undefined;
        if (cacheKey && idempotent.has(cacheKey)) {
          const hit = idempotent.get(cacheKey)!;
          return send(hit.status, hit.body);
        }
        const result = route(method, url.pathname, params);
        if (cacheKey) idempotent.set(cacheKey, { status: 200, body: result });
        return send(200, result);
      } catch (err) {
        if (err instanceof StripeHttpError) {
          return send(err.status, { error: { type: err.type, message: err.message, code: err.code, param: err.param } });
        }
        if (err instanceof SyntaxError) return send(400, { error: { type: "invalid_request_error", message: err.message } });
        return send(500, { error: { type: "api_error", message: (err as Error).message } });
      }
    });
  });
  await new Promise<void>((resolve, reject) => {
    server.once("error", reject);
    server.listen(opts.port ?? 0, "127.0.0.1", () => resolve());
  });
  const port = (server.address() as AddressInfo).port;
  baseUrl = `http://127.0.0.1:${port}`;
  return {
    url: baseUrl,
    port,
    secretKey: "sk_test_plinth_local_fake",
    store,
    close: () => new Promise<void>((resolve) => {
      server.closeAllConnections();
      server.close(() => resolve());
    }),
  };
}

/** The demo catalog and customers of sql/seed/04_billing.sql, so a keyless `npm start` can open checkouts. */
export function demoCatalog(): StripeObject[] {
  const created = now();
  const product = (id: string, name: string, metadata: Record<string, string>): StripeObject =>
    ({ id, object: "product", name, description: null, active: true, metadata, created, updated: created, livemode: false });
  const price = (id: string, product: string, currency: string, unit_amount: number, recurring: boolean, lookup_key: string): StripeObject => ({
    id, object: "price", product, currency, unit_amount, active: true, lookup_key, metadata: {}, created, livemode: false,
    type: recurring ? "recurring" : "one_time",
    recurring: recurring ? { interval: "month", interval_count: 1 } : null,
  });
  const customer = (id: string, email: string, org_id: string): StripeObject =>
    ({ id, object: "customer", email, name: null, metadata: { org_id }, created, livemode: false });
  return [
    customer("cus_demo_acme", "alice@acme.test", "a0000000-0000-4000-8000-00000000a000"),
    customer("cus_demo_globex", "gina@globex.test", "b0000000-0000-4000-8000-00000000b000"),
    product("prod_demo_pro", "Pro", { plinth_plan: "pro" }),
    product("prod_demo_team", "Team", { plinth_plan: "team" }),
    product("prod_demo_pack", "1,000 credits", { plinth_credits: "1000" }),
    price("price_demo_pro_usd", "prod_demo_pro", "usd", 2000, true, "pro_monthly_usd"),
    price("price_demo_pro_eur", "prod_demo_pro", "eur", 1900, true, "pro_monthly_eur"),
    price("price_demo_pro_inr", "prod_demo_pro", "inr", 149900, true, "pro_monthly_inr"),
    price("price_demo_team_usd", "prod_demo_team", "usd", 6000, true, "team_monthly_usd"),
    price("price_demo_team_eur", "prod_demo_team", "eur", 5500, true, "team_monthly_eur"),
    price("price_demo_team_inr", "prod_demo_team", "inr", 449900, true, "team_monthly_inr"),
    price("price_demo_pack_usd", "prod_demo_pack", "usd", 1000, false, "pack_1000_usd"),
    price("price_demo_pack_inr", "prod_demo_pack", "inr", 79900, false, "pack_1000_inr"),
  ];
}
