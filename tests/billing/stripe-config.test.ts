// The billing routes' configuration (docs/billing.md "Connecting a Stripe account"): without
// STRIPE_SECRET_KEY checkout and the portal answer 503 and change nothing; without
// PLINTH_RETURN_ORIGINS, return URLs must be on the origin of PLINTH_APP_URL. The suite's stack
// has both set, so these build the api function's app in-process (the same createApiApp the
// edge function serves) with the environment under test, against the suite's database and fake
// Stripe.
import { afterAll, describe, expect, it } from "vitest";
import { createApiApp, createApiDeps } from "../../functions/api/app.ts";
import type { ApiDeps } from "../../functions/api/context.ts";
import { userToken } from "../../scripts/lib/keys.ts";
import { admin, createTeam, stack } from "../helpers/db.ts";
import { createCustomer, fakeStripe } from "../helpers/fake-stripe.ts";

const PACK = "price_demo_pack_usd"; // the seeded demo catalog (in the database and in the fake)
const built: ApiDeps[] = [];
afterAll(async () => {
  for (const deps of built) {
    await deps.db.destroy();
    await deps.jobs.stop();
  }
});

/** The api app as the edge function builds it, from this environment (plus the suite's database and JWT secret). */
function apiWith(env: Record<string, string | undefined>) {
  const deps = createApiDeps({
    SUPABASE_DB_URL: stack.dbUrl,
    SUPABASE_URL: "http://127.0.0.1:1",
    PLINTH_JWT_SECRET: stack.jwtSecret,
    PLINTH_DB_POOL_SIZE: "2",
    ...env,
  });
  built.push(deps);
  const app = createApiApp(deps);
  return async (path: string, token: string, json?: unknown) => {
    const res = await app.request(`/api${path}`, {
      method: json === undefined ? "GET" : "POST",
      headers: { authorization: `Bearer ${token}`, "content-type": "application/json" },
      body: json === undefined ? undefined : JSON.stringify(json),
    });
    const raw = await res.text();
    return { status: res.status, raw, body: raw ? JSON.parse(raw) : undefined };
  };
}

const withStripe = { STRIPE_SECRET_KEY: stack.stripeSecretKey, STRIPE_API_BASE: stack.stripeApiBase };

async function customerOf(orgId: string): Promise<string | undefined> {
  const { rows } = await admin.query("select stripe_customer_id from billing.customers where org_id = $1", [orgId]);
  return rows[0]?.stripe_customer_id;
}

/** Requests the fake Stripe received that name this org (customers and sessions carry its id in metadata). */
async function stripeCallsFor(orgId: string) {
  const all = [...await fakeStripe.requests("/v1/customers"), ...await fakeStripe.requests("/v1/checkout/sessions")];
  return all.filter((r) => JSON.stringify(r.params).includes(orgId));
}

describe("without STRIPE_SECRET_KEY", () => {
  for (const [label, key] of [["unset", undefined], ["empty", ""]] as const) {
    it(`checkout and the portal answer 503 billing_not_configured and change nothing (key ${label})`, async () => {
      const call = apiWith({ STRIPE_SECRET_KEY: key, STRIPE_API_BASE: stack.stripeApiBase, PLINTH_RETURN_ORIGINS: "https://app.plinth.test" });
      const team = await createTeam("NoStripe", { plan: null });
      const token = await userToken(stack.jwtSecret, team.owner);

      const res = await call(`/orgs/${team.orgId}/billing/checkout`, token, {
        price_id: PACK, success_url: "https://app.plinth.test/ok", cancel_url: "https://app.plinth.test/billing",
      });
      expect(res.status, res.raw).toBe(503);
      expect(res.body.error).toMatchObject({ code: "billing_not_configured", message: expect.stringContaining("STRIPE_SECRET_KEY") });
      expect(await customerOf(team.orgId)).toBeUndefined();
      expect(await stripeCallsFor(team.orgId)).toEqual([]);

      // The portal of an org that already has a customer: 503 too, no session opened.
      const linked = await createTeam("NoStripePortal", { plan: null });
      const customer = await createCustomer(linked.orgId);
      const before = (await fakeStripe.requests("/v1/billing_portal/sessions")).length;
      const portal = await call(`/orgs/${linked.orgId}/billing/portal`, await userToken(stack.jwtSecret, linked.owner), { return_url: "https://app.plinth.test/billing" });
      expect(portal.status, portal.raw).toBe(503);
      expect(portal.body.error.code).toBe("billing_not_configured");
      expect((await fakeStripe.requests("/v1/billing_portal/sessions")).length).toBe(before);
      expect(await customerOf(linked.orgId)).toBe(customer.id);

      // Permissions are still checked first: no hint of the configuration to a member or a stranger.
      const member = await call(`/orgs/${team.orgId}/billing/checkout`, await userToken(stack.jwtSecret, team.member), {
        price_id: PACK, success_url: "https://app.plinth.test/ok", cancel_url: "https://app.plinth.test/billing",
      });
      expect(member.status, member.raw).toBe(403);

      // The summary needs no Stripe call, so it still answers.
      const summary = await call(`/orgs/${team.orgId}/billing/summary`, token);
      expect(summary.status, summary.raw).toBe(200);
      expect(summary.body.plan.key).toBe("free");
    });
  }
});

describe("PLINTH_RETURN_ORIGINS", () => {
  it("defaults to the origin of PLINTH_APP_URL: that origin is allowed, any other (even the stack's) is refused", async () => {
    const call = apiWith({ ...withStripe, PLINTH_APP_URL: "https://studio.example.com/app/home" });
    const team = await createTeam("DefaultOrigin", { plan: null });
    const token = await userToken(stack.jwtSecret, team.owner);
    const body = (success: string, cancel = "https://studio.example.com/billing") => ({ price_id: PACK, success_url: success, cancel_url: cancel });

    for (const bad of [
      "https://app.plinth.test/ok", // allowed by the stack's PLINTH_RETURN_ORIGINS, not by this app's
      "http://studio.example.com/ok", // scheme
      "https://studio.example.com:8443/ok", // port
      "https://evil.studio.example.com/ok", // subdomain
    ]) {
      const res = await call(`/orgs/${team.orgId}/billing/checkout`, token, body(bad));
      expect(res.status, `${bad}: ${res.raw}`).toBe(400);
      expect(res.body.error.code).toBe("invalid_return_url");
    }
    expect(await customerOf(team.orgId)).toBeUndefined();

    const ok = await call(`/orgs/${team.orgId}/billing/checkout`, token, body("https://studio.example.com/billing/ok?x=1"));
    expect(ok.status, ok.raw).toBe(200);
    const sessions = (await fakeStripe.requests("/v1/checkout/sessions")).filter((r) => r.params.client_reference_id === team.orgId);
    expect(sessions.at(-1)?.params).toMatchObject({ success_url: "https://studio.example.com/billing/ok?x=1", cancel_url: "https://studio.example.com/billing" });

    // The portal follows the same rule.
    const portalBad = await call(`/orgs/${team.orgId}/billing/portal`, token, { return_url: "https://app.plinth.test/billing" });
    expect(portalBad.status, portalBad.raw).toBe(400);
    expect(portalBad.body.error.code).toBe("invalid_return_url");
    const portal = await call(`/orgs/${team.orgId}/billing/portal`, token, { return_url: "https://studio.example.com/billing" });
    expect(portal.status, portal.raw).toBe(200);
  });

  it("an empty PLINTH_RETURN_ORIGINS also falls back to PLINTH_APP_URL's origin; a set one replaces it", async () => {
    const team = await createTeam("OriginList", { plan: null });
    const token = await userToken(stack.jwtSecret, team.owner);
    const body = (origin: string) => ({ price_id: PACK, success_url: `${origin}/ok`, cancel_url: `${origin}/billing` });

    const empty = apiWith({ ...withStripe, PLINTH_APP_URL: "https://studio.example.com", PLINTH_RETURN_ORIGINS: " , " });
    expect((await empty(`/orgs/${team.orgId}/billing/checkout`, token, body("https://studio.example.com"))).status).toBe(200);

    const listed = apiWith({ ...withStripe, PLINTH_APP_URL: "https://studio.example.com", PLINTH_RETURN_ORIGINS: "https://shop.example.com, https://www.example.com" });
    const refused = await listed(`/orgs/${team.orgId}/billing/checkout`, token, body("https://studio.example.com"));
    expect(refused.status, refused.raw).toBe(400);
    expect(refused.body.error.code).toBe("invalid_return_url");
    for (const origin of ["https://shop.example.com", "https://www.example.com"]) {
      const res = await listed(`/orgs/${team.orgId}/billing/checkout`, token, body(origin));
      expect(res.status, `${origin}: ${res.raw}`).toBe(200);
    }
  });
});
