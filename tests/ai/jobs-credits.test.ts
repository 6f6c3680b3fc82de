// Credits stay exact under concurrency and failure: 100 jobs racing for credits that cover 60,
// streams cut by the provider (billed to us, not to the org), moderation refusals, and the
// idempotency key. The ledger's invariants hold after each.
import { describe, expect, it } from "vitest";
import { admin, createTeam } from "../helpers/db.ts";
import { account, expectLedgerConsistent } from "../helpers/credits.ts";
import { fakeCalls, scriptFake } from "../helpers/fake-ai.ts";
import { attemptsOf, createModel, giveCredits, jobRow, reservation, stack, submit, waitForJob } from "../helpers/ai.ts";
import { admitOnly, handToWorker, inProcessWorker } from "../helpers/ai-worker.ts";
import { tokenFor } from "../helpers/supabase.ts";
import { callCount, orgRoute, submitJob, teamWithCredits, textModel } from "../helpers/ai-jobs.ts";

const M = 1_000_000;

describe("100 concurrent jobs against credits for 60", () => {
  it("admits exactly 60, refuses 40 with 402 before any provider call, and charges the 60 exactly", async () => {
    // Output only is priced: every job reserves 1000 x 10,000/1M = 10 credits and, answering
    // with all 1000 tokens, is charged exactly that. So however the 100 submits interleave with
    // the runs, credits for 60 admit 60: no settle ever frees credits for a 61st.
    const { model, deployments: [d] } = await createModel({
      modality: "text",
      deployments: [{ provider: "openai", prices: [{ unit: "input_token", credits: 0, per_units: M }, { unit: "output_token", credits: 10_000, per_units: M, provider_cost_micros: 2_000_000 }] }],
    });
    await scriptFake(stack.fakeAiUrl, d.key, Array(100).fill({ mode: "ok", text: "Counted.", usage: { prompt_tokens: 5, completion_tokens: 1000 } }));
    const team = await teamWithCredits(600);
    const results = await Promise.all(
      Array.from({ length: 100 }, (_, i) => submit({ token: team.token }, { org_id: team.orgId, modality: "text", model, input: { prompt: `Job ${i}`, max_tokens: 1000 } })),
    );
    const admitted = results.filter((r) => r.status === 202);
    const refused = results.filter((r) => r.status === 402);
    expect(results.filter((r) => r.status !== 202 && r.status !== 402).map((r) => r.raw)).toEqual([]);
    expect(admitted).toHaveLength(60);
    expect(refused).toHaveLength(40);
    expect(refused.every((r) => r.body.error.code === "payment_required")).toBe(true);
    expect(admitted.every((r) => r.body.reserved_credits === 10)).toBe(true);
    // The refused left nothing behind: no job row, no reservation.
    const { rows: [counts] } = await admin.query(
      `select (select count(*)::int from ai.jobs where org_id = $1) as jobs,
              (select count(*)::int from billing.credit_reservations where org_id = $1) as reservations`,
      [team.orgId],
    );
    expect(counts).toEqual({ jobs: 60, reservations: 60 });

    const ended = await Promise.all(admitted.map((r) => waitForJob(r.body.id)));
    expect(ended.filter((j) => j.status === "succeeded" && j.settled_credits === 10)).toHaveLength(60);
    // Each refused job never reached the provider: one call per admitted job, and not one more.
    expect(await callCount(d.key)).toBe(60);
    expect(await account(team.orgId)).toMatchObject({ balance: 0, reserved: 0 });
    await expectLedgerConsistent(team.orgId);
    // And nothing more fits.
    const after = await submit({ token: team.token }, { org_id: team.orgId, modality: "text", model, input: { prompt: "One more", max_tokens: 1000 } });
    expect(after.status).toBe(402);
  });
});

describe("streams cut by the provider", () => {
  const PROMPT = "Stream this to me please. ".repeat(400); // 10,400 bytes, 2,600 tokens by the fakes' count
  const body = (model: string) => ({ modality: "text", model, input: { prompt: PROMPT, max_tokens: 2000 } });

  it("an OpenAI stream cut mid-way: the attempt failed but billed (prompt and streamed text), retried, and only the success charged", async () => {
    const team = await teamWithCredits(100);
    const { model, deployments: [a] } = await textModel(["openai"]);
    await scriptFake(stack.fakeAiUrl, a.key, [
      { mode: "stream_cut", text: "one two three four five six seven eight", chunks: 2 },
      { mode: "ok", text: "Whole answer.", usage: { prompt_tokens: 2600, completion_tokens: 1000 } },
    ]);
    const job = await waitForJob(await submitJob(team, body(model)));
    expect(job.status, JSON.stringify(job.error)).toBe("succeeded");
    expect(job.output.text).toBe("Whole answer.");
    const [cut, retry] = await attemptsOf(job.id);
    expect(cut).toMatchObject({ kind: "initial", status: "failed", error_class: "server", billed: true, credits: 0 });
    // OpenAI reports no usage on a cut stream: the prompt is counted from its bytes, the output from the text.
    expect(cut.units.input_token).toBe(2600);
    expect(cut.units.output_token).toBeGreaterThan(0);
    // 2,600 x 1000/1M + 1,000 x 2000/1M = 4.6 -> 5 credits, charged for the succeeded attempt only.
    expect(retry).toMatchObject({ kind: "retry", status: "succeeded", billed: true, credits: 5 });
    const { rows: [j] } = await admin.query(`select settled_credits::int, provider_cost_micros::int from ai.jobs where id = $1`, [job.id]);
    const { rows: costs } = await admin.query(`select provider_cost_micros::int as c from ai.attempts where job_id = $1 order by attempt_no`, [job.id]);
    expect(j.provider_cost_micros).toBe(costs[0].c + costs[1].c);
    expect(costs[0].c).toBeGreaterThan(0);
    expect(j.settled_credits).toBe(retry.credits);
    expect(await account(team.orgId)).toMatchObject({ balance: 100 - retry.credits, reserved: 0 });
    await expectLedgerConsistent(team.orgId);
  });

  it("an Anthropic stream cut twice falls back; the cut attempts keep message_start's input tokens", async () => {
    const team = await teamWithCredits(100);
    const { model, deployments: [a, b] } = await textModel(["anthropic", "openai"]);
    const cut = { mode: "stream_cut", text: "alpha beta gamma delta epsilon", chunks: 1, usage: { input_tokens: 2500 } };
    await scriptFake(stack.fakeAiUrl, a.key, [cut, cut]);
    await scriptFake(stack.fakeAiUrl, b.key, { mode: "ok", text: "Fallback answer.", usage: { prompt_tokens: 2600, completion_tokens: 500 } });
    const job = await waitForJob(await submitJob(team, body(model)));
    expect(job.status, JSON.stringify(job.error)).toBe("succeeded");
    const attempts = await attemptsOf(job.id);
    expect(attempts).toMatchObject([
      { kind: "initial", deployment_id: a.id, status: "failed", billed: true, credits: 0, units: { input_token: 2500 } },
      { kind: "retry", deployment_id: a.id, status: "failed", billed: true, credits: 0, units: { input_token: 2500 } },
      { kind: "fallback", deployment_id: b.id, status: "succeeded", billed: true },
    ]);
    // 2,600 x 1000/1M + 500 x 2000/1M = 3.6 -> 4.
    expect(attempts[2].credits).toBe(4);
    expect(job.settled_credits).toBe(4);
    expect(await account(team.orgId)).toMatchObject({ balance: 96, reserved: 0 });
  });

  it("an error event in the middle of a stream is billed like a cut, and the job falls back", async () => {
    const team = await teamWithCredits(100);
    const { model, deployments: [a, b] } = await textModel(["openai", "openai"]);
    const broken = { mode: "stream_error", text: "half an answer and then", chunks: 2, errorType: "server_error" };
    await scriptFake(stack.fakeAiUrl, a.key, [broken, broken]);
    await scriptFake(stack.fakeAiUrl, b.key, { mode: "ok", text: "Fine.", usage: { prompt_tokens: 2600, completion_tokens: 500 } });
    const job = await waitForJob(await submitJob(team, body(model)));
    expect(job.status, JSON.stringify(job.error)).toBe("succeeded");
    const attempts = await attemptsOf(job.id);
    expect(attempts).toMatchObject([
      { kind: "initial", status: "failed", error_class: "server", billed: true, credits: 0 },
      { kind: "retry", status: "failed", error_class: "server", billed: true, credits: 0 },
      { kind: "fallback", deployment_id: b.id, status: "succeeded", credits: 4 },
    ]);
    expect(attempts[0].units.input_token).toBe(2600);
    expect(job.settled_credits).toBe(4);
  });

  it("a stream cut on the only deployment, twice, fails the job and voids the reservation", async () => {
    const team = await teamWithCredits(100);
    const { model, deployments: [a] } = await textModel(["openai"]);
    await scriptFake(stack.fakeAiUrl, a.key, [{ mode: "stream_cut" }, { mode: "stream_cut" }]);
    const job = await waitForJob(await submitJob(team, body(model)));
    expect(job.status).toBe("failed");
    expect((await attemptsOf(job.id)).map((x) => [x.status, x.billed])).toEqual([["failed", true], ["failed", true]]);
    expect(job.settled_credits).toBe(0);
    expect(await reservation(job.reservation_id!)).toMatchObject({ status: "voided" });
    expect(await account(team.orgId)).toMatchObject({ balance: 100, reserved: 0 });
    await expectLedgerConsistent(team.orgId);
  });
});

describe("input moderation", () => {
  async function moderatedTeam() {
    const team = await teamWithCredits(100);
    const mod = await createModel({ modality: "moderation", deployments: [{ provider: "openai" }] });
    await orgRoute(team.orgId, "moderation", "economy", [mod.deployments[0].id]);
    await admin.query(`insert into ai.org_policies (org_id, moderate_input) values ($1, true)`, [team.orgId]);
    return { team, mod };
  }

  it("refuses flagged input without calling the model and without charge", async () => {
    const { team, mod } = await moderatedTeam();
    const { model, deployments: [d] } = await textModel(["openai"]);
    const job = await waitForJob(await submitJob(team, { modality: "text", model, input: { prompt: "Please write FLAGME in big letters", max_tokens: 100 } }));
    expect(job.status).toBe("failed");
    expect(job.error).toMatchObject({ code: "input_flagged", class: "content_policy", details: { categories: ["violence"] } });
    expect(await attemptsOf(job.id)).toMatchObject([{ purpose: "moderation", deployment_id: mod.deployments[0].id, status: "succeeded" }]);
    expect(await callCount(d.key)).toBe(0);
    expect(await callCount(mod.deployments[0].key)).toBe(1);
    expect(job.settled_credits).toBe(0);
    expect(await reservation(job.reservation_id!)).toMatchObject({ status: "voided" });
    expect(await account(team.orgId)).toMatchObject({ balance: 100, reserved: 0 });
  });

  it("lets clean input through: moderation first, then the model", async () => {
    const { team, mod } = await moderatedTeam();
    const { model, deployments: [d] } = await textModel(["openai"]);
    await scriptFake(stack.fakeAiUrl, d.key, { mode: "ok", text: "Clean.", usage: { prompt_tokens: 5, completion_tokens: 500 } });
    const job = await waitForJob(await submitJob(team, { modality: "text", model, input: { prompt: "A friendly greeting", max_tokens: 1000 } }));
    expect(job.status, JSON.stringify(job.error)).toBe("succeeded");
    expect((await attemptsOf(job.id)).map((a) => [a.purpose, a.deployment_id, a.status])).toEqual([
      ["moderation", mod.deployments[0].id, "succeeded"],
      ["main", d.id, "succeeded"],
    ]);
    expect(job.settled_credits).toBe(2);
    // Moderation sees the input the model gets.
    const [call] = await fakeCalls(stack.fakeAiUrl, mod.deployments[0].key);
    expect(JSON.stringify((call.body as { input: unknown }).input)).toContain("A friendly greeting");
  });

  it("without the policy, flagged-looking input is not moderated", async () => {
    const team = await teamWithCredits(100);
    const { model } = await textModel(["openai"]);
    const job = await waitForJob(await submitJob(team, { modality: "text", model, input: { prompt: "FLAGME is just a word here", max_tokens: 100 } }));
    expect(job.status).toBe("succeeded");
    expect((await attemptsOf(job.id)).map((a) => a.purpose)).toEqual(["main"]);
  });
});

describe("idempotency key", () => {
  it("the same key returns the same job with 200, reserved and run once", async () => {
    const team = await teamWithCredits(100);
    const { model, deployments: [d] } = await textModel(["openai"]);
    const req = { org_id: team.orgId, modality: "text", model, input: { prompt: "Only once", max_tokens: 1000 } };
    const first = await submit({ token: team.token }, req, { "idempotency-key": "order-42" });
    expect(first.status, first.raw).toBe(202);
    const again = await submit({ token: team.token }, req, { "idempotency-key": "order-42" });
    expect(again.status, again.raw).toBe(200);
    expect(again.body.id).toBe(first.body.id);
    const job = await waitForJob(first.body.id);
    const late = await submit({ token: team.token }, req, { "idempotency-key": "order-42" });
    expect(late.status).toBe(200);
    expect(late.body).toMatchObject({ id: job.id, status: "succeeded" });
    const other = await submit({ token: team.token }, req, { "idempotency-key": "order-43" });
    expect(other.status).toBe(202);
    expect(other.body.id).not.toBe(job.id);
    await waitForJob(other.body.id);
    const { rows: [n] } = await admin.query(`select count(*)::int as n from billing.credit_reservations where org_id = $1`, [team.orgId]);
    expect(n.n).toBe(2);
    expect(await callCount(d.key)).toBe(2);
  });

  it("two requests racing with the same key make one job", async () => {
    const team = await teamWithCredits(100);
    const { model, deployments: [d] } = await textModel(["openai"]);
    const req = { org_id: team.orgId, modality: "text", model, input: { prompt: "Race me", max_tokens: 1000 } };
    const results = await Promise.all(Array.from({ length: 4 }, () => submit({ token: team.token }, req, { "idempotency-key": "same-key" })));
    // One is admitted; the others wait for it and get its job.
    expect(results.map((r) => r.status).sort()).toEqual([200, 200, 200, 202]);
    const created = results.filter((r) => r.status === 202);
    expect(new Set(results.map((r) => r.body.id))).toEqual(new Set([created[0].body.id]));
    await waitForJob(created[0].body.id);
    const retried = await submit({ token: team.token }, req, { "idempotency-key": "same-key" });
    expect(retried.status).toBe(200);
    expect(retried.body).toMatchObject({ id: created[0].body.id, status: "succeeded" });
    const { rows: [n] } = await admin.query(`select count(*)::int as jobs, (select count(*)::int from billing.credit_reservations where org_id = $1) as res from ai.jobs where org_id = $1`, [team.orgId]);
    expect(n).toEqual({ jobs: 1, res: 1 });
    expect(await callCount(d.key)).toBe(1);
    expect((await jobRow(created[0].body.id)).settled_credits).toBe(retried.body.settled_credits);
  });
});

describe("what a job is priced from", () => {
  it("reserves the worst case over every deployment of the route, and charges the one that answered", async () => {
    const team = await teamWithCredits(100);
    const cheap = await textModel(["openai"]);
    const dear = await createModel({
      modality: "text",
      deployments: [{ provider: "openai", prices: [{ unit: "input_token", credits: 5000, per_units: M }, { unit: "output_token", credits: 10_000, per_units: M }] }],
    });
    await orgRoute(team.orgId, "text", "economy", [cheap.deployments[0].id, dear.deployments[0].id]);
    await scriptFake(stack.fakeAiUrl, cheap.deployments[0].key, { mode: "ok", usage: { prompt_tokens: 1000, completion_tokens: 1000 } });
    const prompt = "Price me. ".repeat(400); // 4,000 bytes
    const res = await submit({ token: team.token }, { org_id: team.orgId, modality: "text", tier: "economy", input: { prompt, max_tokens: 1000 } });
    expect(res.status, res.raw).toBe(202);
    // The dear one bounds it: 4,064 x 5000/1M + 1,000 x 10,000/1M = 30.32 -> 31 (the cheap one: 6.064).
    expect(res.body.reserved_credits).toBe(31);
    const job = await waitForJob(res.body.id);
    expect(job.deployment_id).toBe(cheap.deployments[0].id);
    // 1,000 x 1000/1M + 1,000 x 2000/1M = 3.
    expect(job.settled_credits).toBe(3);
    expect(await callCount(dear.deployments[0].key)).toBe(0);
  });

  it("charges the prices in force when the job was submitted, not when it ran", async () => {
    const team = await teamWithCredits(100);
    const { model, deployments: [d] } = await textModel(["openai"]);
    const usage = { prompt_tokens: 2, completion_tokens: 500 };
    await scriptFake(stack.fakeAiUrl, d.key, [{ mode: "ok", usage }, { mode: "ok", usage }]);
    const w = inProcessWorker();
    try {
      const job = await admitOnly(w, { orgId: team.orgId, userId: team.member.id }, { modality: "text", model, input: { prompt: "Old price", max_tokens: 1000 } });
      // The price goes up tenfold before the job runs.
      await admin.query(
        `insert into ai.prices (deployment_id, unit, per_units, provider_cost_micros, credits) values ($1, 'input_token', $2, 0, 10000), ($1, 'output_token', $2, 0, 20000)`,
        [d.id, M],
      );
      await handToWorker("ai.run", job.id);
      const done = await waitForJob(job.id);
      expect(done.status).toBe("succeeded");
      // 2 x 1000/1M + 500 x 2000/1M = 1.002 -> 2.
      expect(done.reserved_credits).toBe(3);
      expect(done.settled_credits).toBe(2);
      // A job submitted now reserves and pays the new price: 2 x 10,000/1M + 500 x 20,000/1M = 10.02 -> 11.
      const later = await waitForJob(await submitJob(team, { modality: "text", model, input: { prompt: "New price", max_tokens: 1000 } }));
      expect(later.reserved_credits).toBe(21);
      expect(later.settled_credits).toBe(11);
      expect(await account(team.orgId)).toMatchObject({ balance: 87, reserved: 0 });
    } finally {
      await w.close();
    }
  });

  it("a model without a price for what the request needs is refused before anything is reserved (fail closed)", async () => {
    const team = await teamWithCredits(100);
    const { model, deployments: [d] } = await createModel({ modality: "text", deployments: [{ provider: "openai", prices: [{ unit: "input_token", credits: 1000, per_units: M }] }] });
    const res = await submit({ token: team.token }, { org_id: team.orgId, modality: "text", model, input: { prompt: "No output price", max_tokens: 100 } });
    expect(res.status, res.raw).toBe(400);
    expect(res.body.error.code).toBe("no_route");
    expect(await account(team.orgId)).toMatchObject({ balance: 100, reserved: 0 });
    // In a route, such a deployment is passed over.
    const priced = await textModel(["openai"]);
    await orgRoute(team.orgId, "text", "economy", [d.id, priced.deployments[0].id]);
    const job = await waitForJob(await submitJob(team, { modality: "text", tier: "economy", input: { prompt: "Route around it", max_tokens: 100 } }));
    expect(job.status).toBe("succeeded");
    expect(job.deployment_id).toBe(priced.deployments[0].id);
    expect(await callCount(d.key)).toBe(0);
  });
});

describe("spend caps and rate limits", () => {
  /** 300 output tokens at 10,000/1M: reserves and charges exactly 3 credits. */
  async function flatModel() {
    const m = await createModel({
      modality: "text",
      deployments: [{ provider: "openai", prices: [{ unit: "input_token", credits: 0, per_units: M }, { unit: "output_token", credits: 10_000, per_units: M }] }],
    });
    await scriptFake(stack.fakeAiUrl, m.deployments[0].key, Array(10).fill({ mode: "ok", usage: { prompt_tokens: 3, completion_tokens: 300 } }));
    return m;
  }
  const flat = (model: string) => ({ modality: "text", model, input: { prompt: "Cap me", max_tokens: 300 } });

  it("the org's monthly cap counts what its jobs hold and spent", async () => {
    const team = await teamWithCredits(100);
    const { model } = await flatModel();
    await admin.query(`insert into ai.org_policies (org_id, monthly_credit_cap) values ($1, 7)`, [team.orgId]);
    await waitForJob(await submitJob(team, flat(model)));
    await submitJob(team, flat(model));
    const refused = await submit({ token: team.token }, { org_id: team.orgId, ...flat(model) });
    expect(refused.status, refused.raw).toBe(402);
    expect(refused.body.error.message).toMatch(/monthly AI spend cap of 7/);
    expect((await admin.query(`select count(*)::int as n from ai.jobs where org_id = $1`, [team.orgId])).rows[0].n).toBe(2);
  });

  it("a member's cap stops that member only", async () => {
    const team = await teamWithCredits(100);
    const { model } = await flatModel();
    await admin.query(`insert into ai.org_policies (org_id, member_monthly_credit_cap) values ($1, 5)`, [team.orgId]);
    await waitForJob(await submitJob(team, flat(model)));
    const refused = await submit({ token: team.token }, { org_id: team.orgId, ...flat(model) });
    expect(refused.status, refused.raw).toBe(402);
    expect(refused.body.error.message).toMatch(/your monthly AI spend cap of 5/);
    const admin_ = await submit({ token: await tokenFor(team.admin) }, { org_id: team.orgId, ...flat(model) });
    expect(admin_.status, admin_.raw).toBe(202);
    await waitForJob(admin_.body.id);
    expect(await account(team.orgId)).toMatchObject({ balance: 94, reserved: 0 });
  });

  it("the plan's rate limit answers 429 with Retry-After, before anything is reserved", async () => {
    const team = await createTeam("Free", { plan: null });
    await giveCredits(team.orgId, 100);
    const token = await tokenFor(team.member);
    const { model } = await flatModel();
    // The free plan allows 10 requests a minute.
    const results = [];
    for (let i = 0; i < 11; i++) results.push(await submit({ token }, { org_id: team.orgId, ...flat(model) }));
    expect(results.slice(0, 10).map((r) => r.status)).toEqual(Array(10).fill(202));
    const limited = results[10];
    expect(limited.status, limited.raw).toBe(429);
    expect(Number(limited.headers.get("retry-after"))).toBeGreaterThanOrEqual(1);
    expect((await admin.query(`select count(*)::int as n from billing.credit_reservations where org_id = $1`, [team.orgId])).rows[0].n).toBe(10);
    await Promise.all(results.slice(0, 10).map((r) => waitForJob(r.body.id)));
    await expectLedgerConsistent(team.orgId);
  });
});
