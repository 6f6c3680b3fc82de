// The billing routes of the api function over HTTP on real Deno, against the fake Stripe:
// checkout (subscription and credit pack), the billing portal and the summary, with every
// refusal (return-URL allow-list, a second subscription, no billing.manage, not a member).
import { beforeAll, describe, expect, it } from "vitest";
import { userToken } from "../../scripts/lib/keys.ts";
import { op } from "../helpers/credits.ts";
import { admin, as, createTeam, createUser, rpc, stack, type Team, type TestUser } from "../helpers/db.ts";
import { type Catalog, createCatalog, fakeStripe } from "../helpers/fake-stripe.ts";
import { call, expectError } from "../helpers/http.ts";

const OK = "https://app.plinth.test/billing/done";
const CANCEL = "https://app.plinth.test/billing";

let catalog: Catalog;
let team: Team;
let ownerToken: string;
let memberToken: string;
let strangerToken: string;
beforeAll(async () => {
  catalog = await createCatalog();
  team = await createTeam("Checkout", { plan: null });
  ownerToken = await userToken(stack.jwtSecret, team.owner);
  memberToken = await userToken(stack.jwtSecret, team.member);
  strangerToken = await userToken(stack.jwtSecret, await createUser());
});

const checkout = (orgId: string, token: string | undefined, body: Record<string, unknown>) =>
  call(`/api/orgs/${orgId}/billing/checkout`, { token, json: { success_url: OK, cancel_url: CANCEL, ...body } });

async function customerOf(orgId: string): Promise<string | undefined> {
  const { rows } = await admin.query("select stripe_customer_id from billing.customers where org_id = $1", [orgId]);
  return rows[0]?.stripe_customer_id;
}

/** A fresh org on the free plan with its owner's token: tests that create state make their own. */
async function freshOrg(name: string) {
  const org = await createTeam(name, { plan: null });
  return { org, token: await userToken(stack.jwtSecret, org.owner) };
}

async function lastSessionRequest(customerId: string) {
  const requests = await fakeStripe.requests("/v1/checkout/sessions");
  return requests.filter((r) => r.params.customer === customerId).at(-1)!.params;
}

describe("POST /api/orgs/{org_id}/billing/checkout", () => {
  it("opens a subscription checkout for a plan price, creating the org's Stripe customer first", async () => {
    const { org, token } = await freshOrg("FirstCheckout");
    expect(await customerOf(org.orgId)).toBeUndefined();
    const res = await checkout(org.orgId, token, { price_id: catalog.pro.price.id });
    expect(res.status, res.raw).toBe(200);
    expect(res.body).toEqual({ id: expect.stringMatching(/^cs_test_/), url: expect.stringContaining(res.body.id) });

    const customerId = (await customerOf(org.orgId))!;
    expect(customerId).toMatch(/^cus_/);
    const customer = await fakeStripe.get<{ metadata: Record<string, string>; email: string }>("customer", customerId);
    expect(customer.metadata.org_id).toBe(org.orgId);
    expect(customer.email).toBe(org.owner.email);

    const params = await lastSessionRequest(customerId);
    expect(params).toMatchObject({
      mode: "subscription",
      client_reference_id: org.orgId,
      success_url: OK,
      cancel_url: CANCEL,
      line_items: [{ price: catalog.pro.price.id, quantity: "1" }],
      metadata: { org_id: org.orgId, plinth_price_id: catalog.pro.price.id },
      subscription_data: { metadata: { org_id: org.orgId } },
    });
  });

  it("opens a one-off payment for a credit pack, reusing the customer", async () => {
    const { org, token } = await freshOrg("PackCheckout");
    // The first checkout creates the org's customer; the second must reuse it.
    expect((await checkout(org.orgId, token, { price_id: catalog.pack.price.id })).status).toBe(200);
    const customerId = (await customerOf(org.orgId))!;
    expect(customerId).toMatch(/^cus_/);
    const created = async () => (await fakeStripe.requests("/v1/customers")).filter((r) => r.method === "POST" && r.params.metadata?.org_id === org.orgId).length;
    expect(await created()).toBe(1);
    const res = await checkout(org.orgId, token, { price_id: catalog.pack.price.id, quantity: 3 });
    expect(res.status, res.raw).toBe(200);
    expect(await created()).toBe(1);
    expect(await customerOf(org.orgId)).toBe(customerId);
    const params = await lastSessionRequest(customerId);
    expect(params).toMatchObject({
      mode: "payment",
      line_items: [{ price: catalog.pack.price.id, quantity: "3" }],
      metadata: { plinth_price_id: catalog.pack.price.id, plinth_quantity: "3", plinth_credits: "500" },
    });
    expect(params.subscription_data).toBeUndefined();
  });

  it("refuses return URLs outside PLINTH_RETURN_ORIGINS", async () => {
    for (const body of [
      { success_url: "https://evil.example/ok" },
      { cancel_url: "http://app.plinth.test/billing" }, // scheme is part of the origin
      { success_url: "javascript:alert(1)" },
    ]) {
      const res = await checkout(team.orgId, ownerToken, { price_id: catalog.pro.price.id, ...body });
      expect(res.status, JSON.stringify(body)).toBe(400);
    }
    const res = await checkout(team.orgId, ownerToken, { price_id: catalog.pro.price.id, success_url: "https://evil.example/ok" });
    expectError(res, 400, "invalid_return_url");
  });

  it("refuses a second subscription while one is live (409), but still sells credit packs", async () => {
    const other = await createTeam("Subscribed", { plan: "pro" });
    const token = await userToken(stack.jwtSecret, other.owner);
    expectError(await checkout(other.orgId, token, { price_id: catalog.team.price.id }), 409, "subscription_exists");
    expect((await checkout(other.orgId, token, { price_id: catalog.pack.price.id })).status).toBe(200);
  });

  it("refuses a subscription checkout while an incomplete, unpaid or paused one is mirrored", async () => {
    for (const status of ["incomplete", "unpaid", "paused"]) {
      const other = await createTeam("Held", { plan: "pro" });
      await admin.query("update billing.subscriptions set status = $2 where org_id = $1", [other.orgId, status]);
      const token = await userToken(stack.jwtSecret, other.owner);
      expectError(await checkout(other.orgId, token, { price_id: catalog.team.price.id }), 409, "subscription_exists");
    }
  });

  it("two concurrent subscription checkouts: exactly one opens, the other gets 409", async () => {
    const org = await createTeam("Race", { plan: null });
    const token = await userToken(stack.jwtSecret, org.owner);
    const results = await Promise.all([catalog.pro, catalog.team].map((p) => checkout(org.orgId, token, { price_id: p.price.id })));
    expect(results.map((r) => r.status).sort()).toEqual([200, 409]);
    const refused = results.find((r) => r.status === 409)!;
    expectError(refused, 409, "subscription_exists");
    const opened = results.find((r) => r.status === 200)!;
    expect(refused.body.error.details).toMatchObject({ checkout_session_id: opened.body.id, url: opened.body.url });
  });

  it("maps Stripe's idempotency clash to 409 and its throttling or key refusal to 503", async () => {
    const org = await createTeam("Throttled", { plan: null });
    const token = await userToken(stack.jwtSecret, org.owner);
    const pack = { price_id: catalog.pack.price.id };
    await fakeStripe.fail({ method: "POST", path: "/v1/customers", status: 400, type: "idempotency_error", times: 1 });
    expectError(await checkout(org.orgId, token, pack), 409, "stripe_conflict");
    await fakeStripe.fail({ method: "POST", path: "/v1/checkout/sessions", status: 429, type: "rate_limit_error", times: 1 });
    expectError(await checkout(org.orgId, token, pack), 503, "stripe_unavailable");
    await fakeStripe.fail({ method: "POST", path: "/v1/checkout/sessions", status: 401, type: "authentication_error", message: "Invalid API Key provided: sk_test_****", times: 1 });
    const refused = await checkout(org.orgId, token, pack);
    expectError(refused, 503, "stripe_unavailable");
    expect(refused.raw).not.toContain("sk_test");
    expect((await checkout(org.orgId, token, pack)).status).toBe(200);
  });

  it("refuses members without billing.manage (403) and strangers (404); needs a user token", async () => {
    expectError(await checkout(team.orgId, memberToken, { price_id: catalog.pro.price.id }), 403, "forbidden");
    expectError(await checkout(team.orgId, strangerToken, { price_id: catalog.pro.price.id }), 404, "not_found");
    expectError(await checkout(team.orgId, undefined, { price_id: catalog.pro.price.id }), 401, "unauthorized");
  });

  it("validates the body: unknown or inactive prices, bad quantities, extra fields", async () => {
    expectError(await checkout(team.orgId, ownerToken, { price_id: "price_does_not_exist" }), 400, "invalid_price");
    expectError(await checkout(team.orgId, ownerToken, { price_id: catalog.pro.price.id, quantity: 0 }), 400, "invalid_request");
    expectError(await checkout(team.orgId, ownerToken, { price_id: catalog.pro.price.id, extra: 1 }), 400, "invalid_request");
    expectError(await call(`/api/orgs/not-a-uuid/billing/checkout`, { token: ownerToken, json: {} }), 400, "invalid_request");
  });

  it("answers 502 when Stripe is down, and works again after", async () => {
    const org = await createTeam("Outage", { plan: null });
    const token = await userToken(stack.jwtSecret, org.owner);
    await fakeStripe.fail({ method: "POST", path: "/v1/customers", status: 500, times: 1 });
    expectError(await checkout(org.orgId, token, { price_id: catalog.pack.price.id }), 502, "stripe_unavailable");
    expect(await customerOf(org.orgId)).toBeUndefined();
    expect((await checkout(org.orgId, token, { price_id: catalog.pack.price.id })).status).toBe(200);
  });
});

describe("POST /api/orgs/{org_id}/billing/portal", () => {
  it("opens the portal for the org's customer", async () => {
    // An org of its own whose customer its first checkout created, as in production.
    const { org, token } = await freshOrg("Portal");
    expect((await checkout(org.orgId, token, { price_id: catalog.pack.price.id })).status).toBe(200);
    const customerId = await customerOf(org.orgId);
    expect(customerId).toMatch(/^cus_/);
    const res = await call(`/api/orgs/${org.orgId}/billing/portal`, { token, json: { return_url: CANCEL } });
    expect(res.status, res.raw).toBe(200);
    expect(res.body).toEqual({ id: expect.stringMatching(/^bps_/), url: expect.any(String) });
    const portal = await fakeStripe.get<{ customer: string; return_url: string }>("billing_portal.session", res.body.id);
    expect(portal).toMatchObject({ customer: customerId, return_url: CANCEL });
  });

  it("answers 409 while the org has no customer, 400 for a foreign return URL, 403 without billing.manage", async () => {
    const fresh = await createTeam("NoCustomer", { plan: null });
    const token = await userToken(stack.jwtSecret, fresh.owner);
    expectError(await call(`/api/orgs/${fresh.orgId}/billing/portal`, { token, json: { return_url: CANCEL } }), 409, "no_customer");
    expectError(await call(`/api/orgs/${team.orgId}/billing/portal`, { token: ownerToken, json: { return_url: "https://evil.example" } }), 400, "invalid_return_url");
    expectError(await call(`/api/orgs/${team.orgId}/billing/portal`, { token: memberToken, json: { return_url: CANCEL } }), 403, "forbidden");
    expectError(await call(`/api/orgs/${team.orgId}/billing/portal`, { token: strangerToken, json: { return_url: CANCEL } }), 404, "not_found");
  });
});

describe("GET /api/orgs/{org_id}/billing/summary", () => {
  it("shows the plan, subscription, entitlements, usage and credits", async () => {
    const org = await createTeam("Summary", { plan: "pro" });
    const token = await userToken(stack.jwtSecret, org.owner);
    await rpc(org.owner, "invite_member", { p_org_id: org.orgId, p_email: `pending-${org.orgId.slice(0, 6)}@test.local` });
    await op("grant_credits", { p_org_id: org.orgId, p_category: "manual", p_amount: 300, p_idempotency_key: "summary-grant" });
    const [res1] = await op<{ id: string }>("reserve_credits", { p_org_id: org.orgId, p_amount: 120, p_idempotency_key: "summary-res" });
    expect(res1.id).toBeDefined();

    const res = await call(`/api/orgs/${org.orgId}/billing/summary`, { token });
    expect(res.status, res.raw).toBe(200);
    expect(res.body).toMatchObject({
      org_id: org.orgId,
      plan: { key: "pro", name: "Pro" },
      subscription: { status: "active", plan_key: "pro", cancel_at_period_end: false },
      usage: { seats: { used: 5, limit: 10 }, webhook_endpoints: { used: 0, limit: 5 } },
      credits: { balance: 300, reserved: 120, available: 180, debt: 0 },
    });
    expect(res.body.entitlements).toEqual(expect.arrayContaining([
      { key: "seats", enabled: true, limit: 10, description: expect.any(String) },
      { key: "custom_domain", enabled: true, limit: null, description: expect.any(String) },
    ]));
  });

  it("a free org shows the default plan and no subscription", async () => {
    const org = await createTeam("Free", { plan: null });
    const res = await call(`/api/orgs/${org.orgId}/billing/summary`, { token: await userToken(stack.jwtSecret, org.admin) });
    expect(res.status, res.raw).toBe(200);
    expect(res.body).toMatchObject({
      plan: { key: "free" }, subscription: null,
      usage: { seats: { used: 4, limit: 3 } }, credits: { balance: 0, reserved: 0, available: 0, debt: 0 },
    });
  });

  it("refuses members without billing.manage and strangers", async () => {
    expectError(await call(`/api/orgs/${team.orgId}/billing/summary`, { token: memberToken }), 403, "forbidden");
    expectError(await call(`/api/orgs/${team.orgId}/billing/summary`, { token: strangerToken }), 404, "not_found");
  });

  it("billing.summary is also an RPC with the same checks", async () => {
    const summary = await rpcBilling(team.owner, team.orgId);
    expect(summary.plan.key).toBe("free");
    await expect(rpcBilling(team.member, team.orgId)).rejects.toMatchObject({ code: "42501" });
  });
});

function rpcBilling(user: TestUser, orgId: string) {
  return as(user, async (c) => (await c.query("select billing.summary($1) as s", [orgId])).rows[0].s);
}
