// INR plans for the talking-video product: Checkout offers card and UPI for rupee prices (and
// only cards otherwise; the fake Stripe refuses UPI for other currencies, as Stripe does), and
// opening a checkout changes nothing: access follows the webhook-confirmed subscription only.
import { describe, expect, it } from "vitest";
import { admin, createTeam } from "../helpers/db.ts";
import { fakeStripe } from "../helpers/fake-stripe.ts";
import { call } from "../helpers/http.ts";
import { tokenFor } from "../helpers/supabase.ts";

const urls = { success_url: "https://app.plinth.test/billing/done", cancel_url: "https://app.plinth.test/billing" };

async function checkout(priceId: string) {
  const team = await createTeam("INR", { plan: null });
  const res = await call(`/api/orgs/${team.orgId}/billing/checkout`, { token: await tokenFor(team.owner), json: { price_id: priceId, ...urls } });
  expect(res.status, res.raw).toBe(200);
  const { rows } = await admin.query(`select stripe_customer_id from billing.customers where org_id = $1`, [team.orgId]);
  const params = (await fakeStripe.requests("/v1/checkout/sessions")).filter((r) => r.params.customer === rows[0].stripe_customer_id).at(-1)!.params;
  return { team, params };
}

describe("Checkout for INR prices", () => {
  it("a rupee plan offers card and UPI; the plan changes only when Stripe's webhook confirms it", async () => {
    const { team, params } = await checkout("price_demo_pro_inr");
    expect(params.payment_method_types).toEqual(["card", "upi"]);
    expect(params.mode).toBe("subscription");
    const { rows } = await admin.query(`select billing.current_plan($1) as plan`, [team.orgId]);
    expect(rows[0].plan).toBe("free");
  });

  it("a rupee credit pack offers card and UPI too", async () => {
    expect((await checkout("price_demo_pack_inr")).params).toMatchObject({ mode: "payment", payment_method_types: ["card", "upi"] });
  });

  it("a dollar plan leaves the methods to Stripe (cards)", async () => {
    expect((await checkout("price_demo_pro_usd")).params.payment_method_types).toBeUndefined();
  });
});
