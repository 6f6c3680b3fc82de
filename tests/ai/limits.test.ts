// Rate limits and spend limits on AI admission: the per-org and per-member token buckets from
// the plan (429 + Retry-After), the monthly caps from the org policy and the plan (402, exact at
// the boundary), the premium tier by plan (402) and the tiers and models the policy allows
// (403). A refusal reserves nothing.
import { randomUUID } from "node:crypto";
import OpenAI from "openai";
import { describe, expect, it } from "vitest";
import { gotrueClaims } from "../../scripts/lib/keys.ts";
import { admin, createTeam, type Team } from "../helpers/db.ts";
import { account } from "../helpers/credits.ts";
import { expectError } from "../helpers/http.ts";
import { fakeCalls, scriptFake } from "../helpers/fake-ai.ts";
import { createModel, giveCredits, jobRow, stack, submit, waitForJob } from "../helpers/ai.ts";
import { apiError, createApiKey, expectUnchanged, jobOf, openai, orgState, routeTier, setPolicy } from "../helpers/openai.ts";
import { tokenFor } from "../helpers/supabase.ts";

// Input is free and each output token costs 1 credit: a request with max_tokens N holds exactly N.
const PRICES = [
  { unit: "input_token", credits: 0, per_units: 1 },
  { unit: "output_token", credits: 1, per_units: 1 },
];

async function pricedModel() {
  return await createModel({ modality: "text", deployments: [{ provider: "openai", prices: PRICES }] });
}

/** One chat completion; the fake answers with `completion` output tokens, so it settles exactly that. */
async function spend(client: OpenAI, model: string, key: string, maxTokens: number, completion = maxTokens) {
  await scriptFake(stack.fakeAiUrl, key, { mode: "ok", text: "ok", usage: { prompt_tokens: 1, completion_tokens: completion } });
  const { response } = await client.chat.completions.create({ model, messages: [{ role: "user", content: "hi" }], max_tokens: maxTokens }).withResponse();
  const job = await jobRow(await jobOf(response.headers));
  expect(job).toMatchObject({ status: "succeeded", reserved_credits: maxTokens, settled_credits: completion });
  return job;
}

/** Puts an org's own bucket back to full: what a minute of waiting would do. */
async function refillOrgBucket(orgId: string) {
  await admin.query("update private.ai_rate_buckets set tokens = 10, refilled_at = clock_timestamp() where org_id = $1 and subject = 'org'", [orgId]);
}

describe("rate limits (a token bucket per org and per member, from the plan)", () => {
  it("the free plan's 10 requests a minute per org: the 11th, from any member, is 429 with Retry-After and reserves nothing", async () => {
    const team = await createTeam("Free AI", { plan: null });
    const other = await createTeam("Free AI other", { plan: null });
    await giveCredits(team.orgId, 1000);
    await giveCredits(other.orgId, 1000);
    const { model } = await pricedModel();
    const ask = (t: Team, who: keyof Pick<Team, "owner" | "admin" | "member">) =>
      tokenFor(t[who]).then((tok) => openai(tok, t.orgId).chat.completions.create({ model, messages: [{ role: "user", content: "hi" }], max_tokens: 5 }));

    // Ten requests spread over three members: no member reaches their own 10.
    for (const who of ["owner", "owner", "owner", "owner", "admin", "admin", "admin", "member", "member", "member"] as const) await ask(team, who);
    const before = await orgState(team.orgId);
    expect(before.jobs).toBe(10);

    const { data: err, response } = await tokenFor(team.member)
      .then((tok) => openai(tok, team.orgId).chat.completions.create({ model, messages: [{ role: "user", content: "hi" }], max_tokens: 5 }).withResponse())
      .then(() => ({ data: undefined, response: undefined }), (e: InstanceType<typeof OpenAI.APIError>) => ({ data: e, response: e }));
    expect(err).toBeInstanceOf(OpenAI.RateLimitError);
    expect(err!.message).toMatch(/10 AI requests per minute/);
    const retryAfter = Number(response!.headers!.get("retry-after"));
    // One token comes back every 6 s.
    expect(retryAfter).toBeGreaterThanOrEqual(1);
    expect(retryAfter).toBeLessThanOrEqual(6);
    await expectUnchanged(team.orgId, before);

    // The jobs endpoint shares the bucket, and answers in the standard shape.
    const res = await submit({ token: await tokenFor(team.admin) }, { org_id: team.orgId, modality: "text", model, input: { prompt: "hi", max_tokens: 5 } });
    expectError(res, 429, "rate_limited");
    expect(Number(res.headers.get("retry-after"))).toBeGreaterThanOrEqual(1);
    await expectUnchanged(team.orgId, before);

    // Another org's bucket is its own.
    await ask(other, "member");
    expect((await orgState(other.orgId)).jobs).toBe(1);

    // The bucket refills continuously: six seconds later one request fits again (and only one).
    await admin.query("update private.ai_rate_buckets set refilled_at = refilled_at - interval '6.5 seconds' where org_id = $1", [team.orgId]);
    await ask(team, "member");
    expect(await apiError(ask(team, "member"))).toBeInstanceOf(OpenAI.RateLimitError);
    expect((await orgState(team.orgId)).jobs).toBe(11);
  });

  it("the per-member bucket: a member past their own 10 is refused while others (and the org's key) go on", async () => {
    const team = await createTeam("Member AI", { plan: null });
    await giveCredits(team.orgId, 1000);
    const { model } = await pricedModel();
    const key = await createApiKey(team.admin, team.orgId);
    const body = { org_id: team.orgId, modality: "text", model, input: { prompt: "hi", max_tokens: 5 } };
    const memberToken = await tokenFor(team.member);

    const ids: string[] = [];
    for (let i = 0; i < 10; i++) {
      const res = await submit({ token: memberToken }, body);
      expect(res.status, res.raw).toBe(202);
      ids.push(res.body.id);
    }
    for (const id of ids) await waitForJob(id);
    // The org's bucket is full again (as a minute later), the member's own is still spent.
    await refillOrgBucket(team.orgId);
    const before = await orgState(team.orgId);
    const refused = await submit({ token: memberToken }, body);
    expectError(refused, 429, "rate_limited");
    expect(refused.body.error.message).toMatch(/10 AI requests per minute/);
    const retryAfter = Number(refused.headers.get("retry-after"));
    expect(retryAfter).toBeGreaterThanOrEqual(1);
    expect(retryAfter).toBeLessThanOrEqual(6);
    await expectUnchanged(team.orgId, before);
    // The org's token was given back with the refusal: the admin still has all ten.
    const { rows } = await admin.query("select tokens from private.ai_rate_buckets where org_id = $1 and subject = 'org'", [team.orgId]);
    expect(rows[0].tokens).toBeGreaterThanOrEqual(10);

    // The admin and the org's API key have buckets of their own.
    const adminRes = await submit({ token: await tokenFor(team.admin) }, body);
    expect(adminRes.status, adminRes.raw).toBe(202);
    const { org_id: _, ...keyBody } = body;
    const keyJobs: string[] = [];
    for (let i = 0; i < 9; i++) {
      const res = await submit({ apiKey: key.key }, keyBody);
      expect(res.status, res.raw).toBe(202);
      keyJobs.push(res.body.id);
    }
    // The org's ten are spent again (admin 1 + key 9): top it up to see the key's own limit.
    await refillOrgBucket(team.orgId);
    expect((await submit({ apiKey: key.key }, keyBody)).status).toBe(202);
    expectError(await submit({ apiKey: key.key }, keyBody), 429, "rate_limited");
    for (const id of [adminRes.body.id, ...keyJobs]) await waitForJob(id);
  });

  it("a refusal for policy or input does not use up the bucket", async () => {
    const team = await createTeam("Bucket AI", { plan: null });
    await giveCredits(team.orgId, 1000);
    const { model } = await pricedModel();
    await setPolicy(team.orgId, { allowed_tiers: ["economy"] });
    const token = await tokenFor(team.member);
    for (let i = 0; i < 6; i++) {
      expect((await submit({ token }, { org_id: team.orgId, modality: "text", tier: "balanced", input: { prompt: "hi" } })).status).toBe(403);
      expect((await submit({ token }, { org_id: team.orgId, modality: "text", model, input: { prompt: "hi\u0000" } })).status).toBe(400);
    }
    const body = { org_id: team.orgId, modality: "text", model, input: { prompt: "hi", max_tokens: 5 } };
    const ids: string[] = [];
    for (let i = 0; i < 10; i++) {
      const res = await submit({ token }, body);
      expect(res.status, `request ${i + 1}: ${res.raw}`).toBe(202);
      ids.push(res.body.id);
    }
    expect((await submit({ token }, body)).status).toBe(429);
    for (const id of ids) await waitForJob(id);
  });
});

describe("monthly spend caps", () => {
  it("the org cap (ai.org_policies): admitted exactly up to it, 402 one credit past it, nothing reserved", async () => {
    const team = await createTeam();
    await giveCredits(team.orgId, 1000);
    const { model, deployments } = await pricedModel();
    const owner = openai(await tokenFor(team.owner), team.orgId);
    const member = openai(await tokenFor(team.member), team.orgId);
    await spend(owner, model, deployments[0].key, 10, 7); // this month: 7

    // 7 spent + 10 held would be 17: one credit past a cap of 16.
    await setPolicy(team.orgId, { monthly_credit_cap: 16 });
    let before = await orgState(team.orgId);
    const err = await apiError(member.chat.completions.create({ model, messages: [{ role: "user", content: "hi" }], max_tokens: 10 }));
    expect(err.status).toBe(402);
    expect(err.message).toMatch(/monthly AI spend cap of 16/);
    await expectUnchanged(team.orgId, before);

    // At 17 it fits exactly.
    await setPolicy(team.orgId, { monthly_credit_cap: 17 });
    await spend(member, model, deployments[0].key, 10); // this month: 17
    before = await orgState(team.orgId);
    const calls = (await fakeCalls(stack.fakeAiUrl, deployments[0].key)).length;
    const res = await submit({ token: await tokenFor(team.owner) }, { org_id: team.orgId, modality: "text", model, input: { prompt: "hi", max_tokens: 1 } });
    expectError(res, 402, "payment_required");
    await expectUnchanged(team.orgId, before);
    expect((await fakeCalls(stack.fakeAiUrl, deployments[0].key)).length).toBe(calls);
    expect(await account(team.orgId)).toMatchObject({ balance: 1000 - 17, reserved: 0 });
  });

  it("the member cap: one member is stopped at theirs, exactly, while another goes on", async () => {
    const team = await createTeam();
    await giveCredits(team.orgId, 1000);
    const { model, deployments } = await pricedModel();
    await setPolicy(team.orgId, { member_monthly_credit_cap: 10 });
    const member = openai(await tokenFor(team.member), team.orgId);
    const admin_ = openai(await tokenFor(team.admin), team.orgId);
    await spend(member, model, deployments[0].key, 6); // the member: 6

    const before = await orgState(team.orgId);
    const err = await apiError(member.chat.completions.create({ model, messages: [{ role: "user", content: "hi" }], max_tokens: 5 }));
    expect(err.status).toBe(402);
    expect(err.message).toMatch(/your monthly AI spend cap of 10/);
    await expectUnchanged(team.orgId, before);

    await spend(member, model, deployments[0].key, 4); // the member: exactly 10
    await spend(admin_, model, deployments[0].key, 10); // the admin has a cap of their own
    expect((await apiError(member.chat.completions.create({ model, messages: [{ role: "user", content: "hi" }], max_tokens: 1 }))).status).toBe(402);
  });

  it("the plan's cap applies without a policy, and a policy cannot raise it", async () => {
    // Plans are global: this one lives only inside a transaction that is rolled back, so no
    // other test ever sees it. Admission runs in it as the member, as the api would.
    const team = await createTeam();
    await giveCredits(team.orgId, 1000);
    const { model } = await pricedModel();
    const plan = `t_ai_${randomUUID().slice(0, 8)}`;
    const c = await admin.connect();
    const asMember = () => c.query("select set_config('request.jwt.claims', $1, true), set_config('role', 'authenticated', true)", [JSON.stringify(gotrueClaims(team.member))]);
    const admit = (worst: number) =>
      c.query(
        `select reserved_credits::int from private.ai_admit_job($1, $2, null, 'api', 'text', null, $3,
           '{"prompt": "hi", "max_tokens": 1, "response_format": "text"}'::jsonb, '{"main": [{"deployment_id": "none"}]}'::jsonb, $4)`,
        [team.orgId, team.member.id, model, worst],
      );
    const refusedWith = async (worst: number) => {
      await c.query("savepoint s");
      const err = await admit(worst).then(() => undefined, (e: { code?: string; message: string }) => e);
      await c.query("rollback to savepoint s");
      return err;
    };
    try {
      await c.query("begin");
      await c.query("insert into billing.plans (key, name) values ($1, 'Capped')", [plan]);
      await c.query(
        `insert into billing.entitlements (plan_key, key, enabled, limit_value)
         select $1, key, enabled, case when key = 'ai_monthly_credit_cap' then 12 else limit_value end
         from billing.entitlements where plan_key = 'team'`,
        [plan],
      );
      await c.query("update billing.subscriptions set plan_key = $2 where org_id = $1", [team.orgId, plan]);
      await asMember();
      expect((await admit(12)).rows).toEqual([{ reserved_credits: 12 }]); // exactly the cap
      const err = await refusedWith(1);
      expect(err?.code).toBe("PT402");
      expect(err?.message).toMatch(/monthly AI spend cap of 12/);
      // The owner sets a higher cap of the org's own: the plan's still holds.
      await c.query("reset role");
      await c.query("insert into ai.org_policies (org_id, monthly_credit_cap) values ($1, 1000)", [team.orgId]);
      await asMember();
      expect((await refusedWith(1))?.code).toBe("PT402");
      // A lower one of its own narrows it.
      await c.query("reset role");
      await c.query("update ai.org_policies set monthly_credit_cap = 5 where org_id = $1", [team.orgId]);
      await c.query("delete from ai.jobs where org_id = $1", [team.orgId]);
      await asMember();
      expect((await admit(5)).rows).toEqual([{ reserved_credits: 5 }]);
      expect((await refusedWith(1))?.message).toMatch(/cap of 5/);
    } finally {
      await c.query("rollback");
      c.release();
    }
    expect((await admin.query("select count(*)::int as n from billing.plans where key = $1", [plan])).rows[0].n).toBe(0);
  });
});

describe("tiers and models by plan and policy", () => {
  it("the premium tier on the free plan is 402, on the team plan it runs", async () => {
    const free = await createTeam("Free premium", { plan: null });
    const team = await createTeam("Team premium");
    const { deployments } = await pricedModel();
    for (const t of [free, team]) {
      await giveCredits(t.orgId, 1000);
      await routeTier(t.orgId, "text", "premium", [deployments[0].id]);
    }
    const before = await orgState(free.orgId);
    const err = await apiError(openai(await tokenFor(free.member), free.orgId).chat.completions.create({ model: "plinth/premium", messages: [{ role: "user", content: "hi" }], max_tokens: 5 }));
    expect(err.status).toBe(402);
    expect(err.message).toMatch(/premium tier is not included/);
    expectError(await submit({ token: await tokenFor(free.owner) }, { org_id: free.orgId, modality: "text", tier: "premium", input: { prompt: "hi" } }), 402, "payment_required");
    await expectUnchanged(free.orgId, before);

    await scriptFake(stack.fakeAiUrl, deployments[0].key, { mode: "ok", text: "premium", usage: { prompt_tokens: 1, completion_tokens: 2 } });
    const res = await openai(await tokenFor(team.member), team.orgId).chat.completions.create({ model: "plinth/premium", messages: [{ role: "user", content: "hi" }], max_tokens: 5 });
    expect(res.choices[0].message.content).toBe("premium");
  });

  it("a tier the policy does not allow, or a model outside allowed_models, is 403", async () => {
    const team = await createTeam();
    await giveCredits(team.orgId, 1000);
    const allowed = await pricedModel();
    const other = await pricedModel();
    await routeTier(team.orgId, "text", "economy", [allowed.deployments[0].id]);
    await setPolicy(team.orgId, { allowed_tiers: ["economy"], allowed_models: [allowed.model] });
    const client = openai(await tokenFor(team.member), team.orgId);
    const before = await orgState(team.orgId);

    for (const model of ["plinth/balanced", "plinth/premium", other.model]) {
      const err = await apiError(client.chat.completions.create({ model, messages: [{ role: "user", content: "hi" }], max_tokens: 5 }));
      expect(err, model).toBeInstanceOf(OpenAI.PermissionDeniedError);
      expect(err.message).toMatch(/not allowed by this org's AI policy/);
    }
    expectError(await submit({ token: await tokenFor(team.member) }, { org_id: team.orgId, modality: "text", tier: "balanced", input: { prompt: "hi" } }), 403, "forbidden");
    await expectUnchanged(team.orgId, before);
    expect(await fakeCalls(stack.fakeAiUrl, other.deployments[0].key)).toHaveLength(0);

    // What the policy allows runs, by tier and by name.
    await scriptFake(stack.fakeAiUrl, allowed.deployments[0].key, [{ mode: "ok", text: "a" }, { mode: "ok", text: "b" }]);
    expect((await client.chat.completions.create({ model: "plinth/economy", messages: [{ role: "user", content: "hi" }], max_tokens: 5 })).choices[0].message.content).toBe("a");
    expect((await client.chat.completions.create({ model: allowed.model, messages: [{ role: "user", content: "hi" }], max_tokens: 5 })).choices[0].message.content).toBe("b");
  });
});
