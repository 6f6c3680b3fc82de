// The router's error-class table, driven through the scripted fakes by text jobs that the
// stack's worker runs: what is retried (and after how long), what falls back and to where, what
// is terminal for a deployment, the fallback cap, and the attempt rows each case leaves. Every
// job is charged the succeeding attempt only.
import { randomUUID } from "node:crypto";
import { describe, expect, it } from "vitest";
import { admin } from "../helpers/db.ts";
import { account } from "../helpers/credits.ts";
import { fakeCalls, scriptFake } from "../helpers/fake-ai.ts";
import { attemptsOf, createModel, reservation, stack, waitForJob } from "../helpers/ai.ts";
import { callCount, health, orgRoute, ownModel, ownProvider, submitJob, teamWithCredits, textModel } from "../helpers/ai-jobs.ts";

/** 12,000 bytes: a bound well above the 3,000 input tokens the fakes report. */
const PROMPT = "Route me. ".repeat(1200);
const USAGE = { prompt_tokens: 3000, completion_tokens: 1500 };
/** 3,000 x 1000/1M + 1,500 x 2000/1M at createModel's default prices. */
const CHARGE = 6;
/** (12,000 + 64) x 1000/1M + 2,000 x 2000/1M = 16.064, rounded up. */
const RESERVED = 17;
const body = (model: string) => ({ modality: "text", model, input: { prompt: PROMPT, max_tokens: 2000 } });
const ok = { mode: "ok", text: "Routed.", usage: USAGE };

/** Milliseconds between the n-th and (n+1)-th request a key received. */
async function gap(key: string, n = 0): Promise<number> {
  const calls = await fakeCalls(stack.fakeAiUrl, key);
  return calls[n + 1].at - calls[n].at;
}

describe("retryable errors: retry the deployment, then fall back", () => {
  it("a 429 is retried on the same deployment after its Retry-After", async () => {
    const team = await teamWithCredits(100);
    const { model, deployments: [a, b] } = await textModel(["openai", "openai"]);
    await scriptFake(stack.fakeAiUrl, a.key, [{ mode: "rate_limit", retryAfter: null, retryAfterMs: 400 }, ok]);
    const job = await waitForJob(await submitJob(team, body(model)));
    expect(job.status, JSON.stringify(job.error)).toBe("succeeded");
    expect(await attemptsOf(job.id)).toMatchObject([
      { kind: "initial", deployment_id: a.id, status: "failed", error_class: "rate_limit", credits: 0, billed: false },
      { kind: "retry", deployment_id: a.id, status: "succeeded", credits: CHARGE, billed: true },
    ]);
    expect(await gap(a.key)).toBeGreaterThanOrEqual(390);
    expect(await callCount(b.key)).toBe(0);
    expect(job.settled_credits).toBe(CHARGE);
    expect(await account(team.orgId)).toMatchObject({ balance: 100 - CHARGE, reserved: 0 });
  });

  it("a second 429 falls back to the next deployment, and only the fallback is charged", async () => {
    const team = await teamWithCredits(100);
    const { model, deployments: [a, b, c] } = await textModel(["openai", "anthropic", "openai"]);
    await scriptFake(stack.fakeAiUrl, a.key, [{ mode: "rate_limit", retryAfter: null, retryAfterMs: 50 }, { mode: "rate_limit", retryAfter: null, retryAfterMs: 50 }]);
    await scriptFake(stack.fakeAiUrl, b.key, { mode: "ok", text: "From Claude.", usage: { input_tokens: 3000, output_tokens: 1500 } });
    const job = await waitForJob(await submitJob(team, body(model)));
    expect(job.status, JSON.stringify(job.error)).toBe("succeeded");
    expect(job.output.text).toBe("From Claude.");
    expect(await attemptsOf(job.id)).toMatchObject([
      { kind: "initial", deployment_id: a.id, status: "failed", error_class: "rate_limit", credits: 0 },
      { kind: "retry", deployment_id: a.id, status: "failed", error_class: "rate_limit", credits: 0 },
      { kind: "fallback", deployment_id: b.id, status: "succeeded", credits: CHARGE },
    ]);
    expect(await callCount(c.key)).toBe(0);
    expect(job.deployment_id).toBe(b.id);
    expect(job.settled_credits).toBe(CHARGE);
    expect(await reservation(job.reservation_id!)).toMatchObject({ status: "posted", amount: RESERVED, settled_amount: CHARGE });
  });

  it("a 500 is retried after a backoff, and succeeds there", async () => {
    const team = await teamWithCredits(100);
    const { model, deployments: [a, b] } = await textModel(["openai", "openai"]);
    await scriptFake(stack.fakeAiUrl, a.key, [{ mode: "server_error" }, ok]);
    const job = await waitForJob(await submitJob(team, body(model)));
    expect(job.status, JSON.stringify(job.error)).toBe("succeeded");
    expect(await attemptsOf(job.id)).toMatchObject([
      { kind: "initial", deployment_id: a.id, status: "failed", error_class: "server" },
      { kind: "retry", deployment_id: a.id, status: "succeeded", credits: CHARGE },
    ]);
    expect(await gap(a.key)).toBeGreaterThanOrEqual(240);
    expect(await callCount(b.key)).toBe(0);
    expect(job.settled_credits).toBe(CHARGE);
  });

  it("a 529 (overloaded) twice falls back", async () => {
    const team = await teamWithCredits(100);
    const { model, deployments: [a, b] } = await textModel(["anthropic", "openai"]);
    await scriptFake(stack.fakeAiUrl, a.key, [{ mode: "overloaded" }, { mode: "overloaded" }]);
    await scriptFake(stack.fakeAiUrl, b.key, ok);
    const job = await waitForJob(await submitJob(team, body(model)));
    expect(job.status, JSON.stringify(job.error)).toBe("succeeded");
    expect(await attemptsOf(job.id)).toMatchObject([
      { kind: "initial", deployment_id: a.id, status: "failed", error_class: "overloaded" },
      { kind: "retry", deployment_id: a.id, status: "failed", error_class: "overloaded" },
      { kind: "fallback", deployment_id: b.id, status: "succeeded", credits: CHARGE },
    ]);
    expect(job.settled_credits).toBe(CHARGE);
  });

  it("a timeout is retried, then falls back; nothing is charged for the timed-out calls", async () => {
    const team = await teamWithCredits(100);
    const quick = await ownProvider("openai", { timeoutMs: 300 });
    const { model, deployments: [a, b] } = await textModel([quick, "openai"]);
    await scriptFake(stack.fakeAiUrl, a.key, [{ mode: "timeout" }, { mode: "timeout" }]);
    await scriptFake(stack.fakeAiUrl, b.key, ok);
    const job = await waitForJob(await submitJob(team, body(model)));
    expect(job.status, JSON.stringify(job.error)).toBe("succeeded");
    expect(await attemptsOf(job.id)).toMatchObject([
      { kind: "initial", deployment_id: a.id, status: "failed", error_class: "timeout", credits: 0, billed: false },
      { kind: "retry", deployment_id: a.id, status: "failed", error_class: "timeout", credits: 0, billed: false },
      { kind: "fallback", deployment_id: b.id, status: "succeeded", credits: CHARGE },
    ]);
    expect(job.settled_credits).toBe(CHARGE);
    expect(await account(team.orgId)).toMatchObject({ balance: 100 - CHARGE, reserved: 0 });
  });

  it("when every deployment keeps failing the job fails with the last error and nothing is charged", async () => {
    const team = await teamWithCredits(100);
    const { model, deployments: [a, b] } = await textModel(["openai", "openai"]);
    await scriptFake(stack.fakeAiUrl, a.key, [{ mode: "server_error" }, { mode: "server_error" }]);
    await scriptFake(stack.fakeAiUrl, b.key, [{ mode: "server_error" }, { mode: "overloaded" }]);
    const job = await waitForJob(await submitJob(team, body(model)));
    expect(job.status).toBe("failed");
    expect(job.error).toMatchObject({ code: "overloaded", class: "overloaded" });
    expect((await attemptsOf(job.id)).map((x) => [x.kind, x.deployment_id, x.error_class])).toEqual([
      ["initial", a.id, "server"],
      ["retry", a.id, "server"],
      ["fallback", b.id, "server"],
      ["retry", b.id, "overloaded"],
    ]);
    expect(job.settled_credits).toBe(0);
    expect(await reservation(job.reservation_id!)).toMatchObject({ status: "voided" });
    expect(await account(team.orgId)).toMatchObject({ balance: 100, reserved: 0 });
  });
});

describe("errors that are the request's or the deployment's for good", () => {
  it.each([
    ["auth", "auth", true],
    ["not_found", "not_found", true],
    ["bad_request", "bad_request", false],
  ] as const)("%s is terminal for the deployment: no retry, straight to the fallback", async (mode, cls, cools) => {
    const team = await teamWithCredits(100);
    const { model, deployments: [a, b] } = await textModel(["openai", "openai"]);
    await scriptFake(stack.fakeAiUrl, a.key, [{ mode }, ok]);
    await scriptFake(stack.fakeAiUrl, b.key, ok);
    const job = await waitForJob(await submitJob(team, body(model)));
    expect(job.status, JSON.stringify(job.error)).toBe("succeeded");
    expect(await attemptsOf(job.id)).toMatchObject([
      { kind: "initial", deployment_id: a.id, status: "failed", error_class: cls },
      { kind: "fallback", deployment_id: b.id, status: "succeeded", credits: CHARGE },
    ]);
    expect(await callCount(a.key)).toBe(1);
    // 401 and 404 cool the deployment for everyone; a bad request is the request's fault.
    const h = await health(a.id);
    if (cools) expect(h).toMatchObject({ cooldown_reason: cls });
    else expect(h?.cooldown_until ?? null).toBeNull();
    expect(job.settled_credits).toBe(CHARGE);
  });

  it("a context-window error skips every deployment without a larger window", async () => {
    const team = await teamWithCredits(100);
    const small = await textModel(["openai"], { contextWindow: 2000 });
    const same = await textModel(["openai"], { contextWindow: 2000 });
    const large = await textModel(["openai"], { contextWindow: 100_000 });
    await orgRoute(team.orgId, "text", "economy", [small.deployments[0].id, same.deployments[0].id, large.deployments[0].id]);
    await scriptFake(stack.fakeAiUrl, small.deployments[0].key, { mode: "context_window" });
    await scriptFake(stack.fakeAiUrl, large.deployments[0].key, { mode: "ok", text: "Long enough.", usage: { prompt_tokens: 100, completion_tokens: 400 } });
    // 400 bytes (about 100 tokens) + 500 max_tokens fits every window at admission.
    const job = await waitForJob(await submitJob(team, { modality: "text", tier: "economy", input: { prompt: "Fit me in. ".repeat(36) + "done", max_tokens: 500 } }));
    expect(job.status, JSON.stringify(job.error)).toBe("succeeded");
    expect(job.output.text).toBe("Long enough.");
    expect(await attemptsOf(job.id)).toMatchObject([
      { kind: "initial", deployment_id: small.deployments[0].id, status: "failed", error_class: "context_window" },
      { kind: "fallback", deployment_id: large.deployments[0].id, status: "succeeded" },
    ]);
    expect(await callCount(small.deployments[0].key)).toBe(1);
    expect(await callCount(same.deployments[0].key)).toBe(0);
    // A context-window error is the request's: it never cools the deployment.
    expect((await health(small.deployments[0].id))?.cooldown_until ?? null).toBeNull();
    // 100 x 1000/1M + 400 x 2000/1M = 0.9, rounded up once.
    expect(job.settled_credits).toBe(1);
  });

  it("a content-policy refusal is never retried and falls back only to a policy alternative", async () => {
    const team = await teamWithCredits(100);
    const { model, deployments: [a, b, c] } = await textModel(["openai", "openai", "anthropic"], { policyAlternative: [false, false, true] });
    await scriptFake(stack.fakeAiUrl, a.key, [{ mode: "content_policy" }, ok]);
    await scriptFake(stack.fakeAiUrl, b.key, ok);
    await scriptFake(stack.fakeAiUrl, c.key, { mode: "ok", text: "Alternative.", usage: { input_tokens: 3000, output_tokens: 1500 } });
    const job = await waitForJob(await submitJob(team, body(model)));
    expect(job.status, JSON.stringify(job.error)).toBe("succeeded");
    expect(job.output.text).toBe("Alternative.");
    expect(await attemptsOf(job.id)).toMatchObject([
      { kind: "initial", deployment_id: a.id, status: "refused", error_class: "content_policy", credits: 0 },
      { kind: "fallback", deployment_id: c.id, status: "succeeded", credits: CHARGE },
    ]);
    expect(await callCount(a.key)).toBe(1);
    expect(await callCount(b.key)).toBe(0);
    expect((await health(a.id))?.cooldown_until ?? null).toBeNull();
    expect(job.settled_credits).toBe(CHARGE);
  });

  it("a content-policy refusal with no policy alternative fails the job, uncharged", async () => {
    const team = await teamWithCredits(100);
    const { model, deployments: [a, b] } = await textModel(["openai", "openai"]);
    await scriptFake(stack.fakeAiUrl, a.key, { mode: "content_policy" });
    await scriptFake(stack.fakeAiUrl, b.key, ok);
    const job = await waitForJob(await submitJob(team, body(model)));
    expect(job.status).toBe("failed");
    expect(job.error).toMatchObject({ code: "content_policy", class: "content_policy" });
    expect(await attemptsOf(job.id)).toMatchObject([{ kind: "initial", deployment_id: a.id, status: "refused" }]);
    expect(await callCount(b.key)).toBe(0);
    expect(job.settled_credits).toBe(0);
    expect(await reservation(job.reservation_id!)).toMatchObject({ status: "voided" });
    expect(await account(team.orgId)).toMatchObject({ balance: 100, reserved: 0 });
  });
});

describe("a refusal inside a 200", () => {
  it("Stability's CONTENT_FILTERED is a refusal: its provider cost is recorded, nothing charged, and only a policy alternative is tried", async () => {
    const team = await teamWithCredits(100);
    const { model, deployments: [stability, plain, alt] } = await ownModel({
      modality: "image",
      deployments: [
        { provider: "stability", providerModel: `sd3-${randomUUID().slice(0, 8)}`, prices: [{ unit: "image", credits: 6, provider_cost_micros: 30_000 }] },
        { provider: "openai" },
        { provider: "openai", policyAlternative: true },
      ],
    });
    await scriptFake(stack.fakeAiUrl, stability.key, { mode: "content_filter" });
    const job = await waitForJob(await submitJob(team, { modality: "image", model, input: { prompt: "Something filtered" } }));
    expect(job.status, JSON.stringify(job.error)).toBe("succeeded");
    expect(await attemptsOf(job.id)).toMatchObject([
      { kind: "initial", deployment_id: stability.id, status: "refused", error_class: "content_policy", billed: true, credits: 0, units: { image: 1 } },
      { kind: "fallback", deployment_id: alt.id, status: "succeeded", credits: 5 },
    ]);
    expect(await callCount(plain.key)).toBe(0);
    const { rows: [j] } = await admin.query(`select settled_credits::int, provider_cost_micros::int from ai.jobs where id = $1`, [job.id]);
    // Stability's 30,000 micros for the filtered image, and the alternative's 20,000.
    expect(j).toEqual({ settled_credits: 5, provider_cost_micros: 50_000 });
    expect(await account(team.orgId)).toMatchObject({ balance: 95, reserved: 0 });
  });
});

describe("limits", () => {
  it("caps the fallbacks: after the first deployment and three fallbacks the job fails", async () => {
    const team = await teamWithCredits(100);
    const m = await createModel({ modality: "text", deployments: ["openai", "openai", "openai", "openai", "openai"].map((provider) => ({ provider })) });
    for (const d of m.deployments) await scriptFake(stack.fakeAiUrl, d.key, [{ mode: "bad_request" }, ok]);
    const job = await waitForJob(await submitJob(team, body(m.model)));
    expect(job.status).toBe("failed");
    expect(job.error).toMatchObject({ code: "bad_request" });
    expect((await attemptsOf(job.id)).map((x) => [x.kind, x.deployment_id])).toEqual([
      ["initial", m.deployments[0].id],
      ["fallback", m.deployments[1].id],
      ["fallback", m.deployments[2].id],
      ["fallback", m.deployments[3].id],
    ]);
    expect(await callCount(m.deployments[4].key)).toBe(0);
    expect(await account(team.orgId)).toMatchObject({ balance: 100, reserved: 0 });
  });

  it("a Retry-After beyond the retry budget falls back at once instead of waiting", async () => {
    const team = await teamWithCredits(100);
    const { model, deployments: [a, b] } = await textModel(["openai", "openai"]);
    // 120 s is past the worker's 30 s budget for waiting on Retry-After.
    await scriptFake(stack.fakeAiUrl, a.key, [{ mode: "rate_limit", retryAfter: 120 }, ok]);
    await scriptFake(stack.fakeAiUrl, b.key, ok);
    const started = Date.now();
    const job = await waitForJob(await submitJob(team, body(model)));
    expect(job.status, JSON.stringify(job.error)).toBe("succeeded");
    expect(Date.now() - started).toBeLessThan(20_000);
    expect(await attemptsOf(job.id)).toMatchObject([
      { kind: "initial", deployment_id: a.id, error_class: "rate_limit" },
      { kind: "fallback", deployment_id: b.id, status: "succeeded" },
    ]);
    expect(await callCount(a.key)).toBe(1);
  });
});
