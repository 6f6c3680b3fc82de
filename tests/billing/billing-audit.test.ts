// Billing in the audit log (docs/audit.md, docs/billing.md): the org's Stripe customer and its
// subscriptions are recorded on every insert, update and delete, whoever writes them: the
// checkout route (the customer, with the request's id, IP and user agent), the Stripe webhook
// (the subscription mirror) and admins in Studio. Only the changed columns of an update are kept.
import { beforeAll, describe, expect, it } from "vitest";
import { userToken } from "../../scripts/lib/keys.ts";
import { admin, createTeam, stack } from "../helpers/db.ts";
import { type Catalog, checkoutSession, createCatalog, createCustomer, deliverOk, event, fakeStripe, type StripeObject, subscription } from "../helpers/fake-stripe.ts";
import { call } from "../helpers/http.ts";

let catalog: Catalog;
beforeAll(async () => {
  catalog = await createCatalog();
});

async function auditOf(orgId: string, table: string) {
  const { rows } = await admin.query(
    `select action, target_id, actor_user_id, actor_role, before, after, request_id, ip, user_agent
     from notify.audit_log where org_id = $1 and target_table = $2 order by seq`,
    [orgId, table],
  );
  return rows;
}

describe("billing in the audit log", () => {
  it("the checkout route's new customer is recorded with the request it came from", async () => {
    const team = await createTeam("AuditCustomer", { plan: null });
    const token = await userToken(stack.jwtSecret, team.owner);
    const res = await call(`/api/orgs/${team.orgId}/billing/checkout`, {
      token,
      // The gateway sets CF-Connecting-IP from the connection, overwriting the client's value.
      headers: { "user-agent": "billing-audit/1.0", "cf-connecting-ip": "203.0.113.9" },
      json: { price_id: catalog.pack.price.id, success_url: "https://app.plinth.test/ok", cancel_url: "https://app.plinth.test/billing" },
    });
    expect(res.status, res.raw).toBe(200);
    const { rows: [customer] } = await admin.query("select stripe_customer_id from billing.customers where org_id = $1", [team.orgId]);
    expect(await auditOf(team.orgId, "billing.customers")).toEqual([
      expect.objectContaining({
        action: "insert",
        // The table is keyed by the org: its key is the target.
        target_id: team.orgId,
        actor_role: "service_role",
        before: null,
        after: expect.objectContaining({ org_id: team.orgId, stripe_customer_id: customer.stripe_customer_id, email: team.owner.email }),
        request_id: res.headers.get("x-request-id"),
        ip: "127.0.0.1",
        user_agent: "billing-audit/1.0",
      }),
    ]);
    // A second checkout reuses the customer: nothing new to record.
    const again = await call(`/api/orgs/${team.orgId}/billing/checkout`, {
      token,
      json: { price_id: catalog.pack.price.id, success_url: "https://app.plinth.test/ok", cancel_url: "https://app.plinth.test/billing" },
    });
    expect(again.status, again.raw).toBe(200);
    expect(await auditOf(team.orgId, "billing.customers")).toHaveLength(1);
  });

  it("the webhook's subscription changes are recorded: the insert in full, each update with only what changed", async () => {
    const team = await createTeam("AuditSub", { plan: null });
    const customer = await createCustomer(team.orgId);
    let sub: StripeObject = await fakeStripe.put(subscription({ customer: customer.id, price: catalog.pro.price }));
    await deliverOk(event("checkout.session.completed", checkoutSession({ customer: customer.id, orgId: team.orgId, mode: "subscription", subscription: sub.id })));
    sub = await fakeStripe.put({ ...sub, status: "past_due" } as StripeObject);
    await deliverOk(event("customer.subscription.updated", sub));

    const rows = await auditOf(team.orgId, "billing.subscriptions");
    expect(rows.map((r) => r.action)).toEqual(["insert", "update"]);
    expect(rows[0]).toMatchObject({
      target_id: sub.id, actor_role: "service_role", actor_user_id: null, before: null,
      after: { id: sub.id, org_id: team.orgId, status: "active", plan_key: "pro", price_id: catalog.pro.price.id },
    });
    expect(rows[1]).toMatchObject({ target_id: sub.id, actor_role: "service_role", before: { status: "active" }, after: { status: "past_due" } });
    // Only the changed columns (and the event watermark that moved with them), never bookkeeping.
    expect(Object.keys(rows[1].after).sort()).toEqual(Object.keys(rows[1].before).sort());
    expect(rows[1].after).not.toHaveProperty("updated_at");
    expect(rows[1].after).not.toHaveProperty("plan_key");
  });

  it("an admin's change in Studio (the database owner) and a deletion are recorded too", async () => {
    const team = await createTeam("AuditStudio", { plan: "pro" });
    const id = `sub_test_${team.orgId.slice(0, 8)}`;
    await admin.query("update billing.subscriptions set plan_key = 'team' where id = $1", [id]);
    await admin.query("delete from billing.subscriptions where id = $1", [id]);
    const rows = await auditOf(team.orgId, "billing.subscriptions");
    expect(rows.map((r) => [r.action, r.actor_role])).toEqual([["insert", "postgres"], ["update", "postgres"], ["delete", "postgres"]]);
    expect(rows[1]).toMatchObject({ target_id: id, before: { plan_key: "pro" }, after: { plan_key: "team" } });
    expect(rows[2]).toMatchObject({ target_id: id, before: { id, plan_key: "team" }, after: null });
  });
});
