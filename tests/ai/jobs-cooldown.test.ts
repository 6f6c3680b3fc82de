// Cooldowns every worker shares (ai.deployment_health, private.ai_record_health): what cools a
// deployment and for how long, that cooldown_until only moves later, the only deployment of a
// route is not cooled on a single 429, the failure-rate rule and its minimum sample, and a job
// whose every deployment is cooling waits for the first to come back instead of failing.
import { describe, expect, it } from "vitest";
import { admin } from "../helpers/db.ts";
import { fakeCalls, scriptFake } from "../helpers/fake-ai.ts";
import { attemptsOf, jobRow, stack, waitForJob } from "../helpers/ai.ts";
import { callCount, eventually, health, submitJob, teamWithCredits, textModel } from "../helpers/ai-jobs.ts";

const PROMPT = "Cool down. ".repeat(400);
const USAGE = { prompt_tokens: 1000, completion_tokens: 500 };
const ok = { mode: "ok", text: "Done.", usage: USAGE };
const body = (model: string) => ({ modality: "text", model, input: { prompt: PROMPT, max_tokens: 1000 } });

/** Calls the shared rule as a worker does; returns the deployment's cooldown_until. */
async function record(id: string, ok: boolean, cls: string | null = null, status: number | null = null, retryAfterMs: number | null = null, sole = false): Promise<Date | null> {
  const { rows } = await admin.query(`select private.ai_record_health($1, $2, $3, $4, $5, $6) as until`, [id, ok, status, cls, retryAfterMs, sole]);
  return rows[0].until;
}

const secondsFromNow = (d: Date | null | undefined) => (d ? (d.getTime() - Date.now()) / 1000 : null);

describe("the shared cooldown rules", () => {
  it("cools for Retry-After (capped at 5 minutes) or 10 s, and only ever moves cooldown_until later", async () => {
    const { deployments: [a] } = await textModel(["openai"]);
    const first = await record(a.id, false, "rate_limit", 429, 60_000);
    expect(secondsFromNow(first)).toBeGreaterThan(55);
    expect(secondsFromNow(first)).toBeLessThanOrEqual(60);
    // A 500 without Retry-After would cool for 10 s: the 60 s cooldown stays, with its reason.
    expect(await record(a.id, false, "server", 500)).toEqual(first);
    expect(await health(a.id)).toMatchObject({ cooldown_reason: "rate_limit", last_status: 500, last_error_class: "server" });
    // A success does not end a cooldown either.
    expect(await record(a.id, true)).toEqual(first);
    expect(await health(a.id)).toMatchObject({ cooldown_until: first, last_status: 200 });
    // A longer one extends it; a Retry-After of an hour is capped at 5 minutes.
    const longer = await record(a.id, false, "overloaded", 503, 3_600_000);
    expect(secondsFromNow(longer)).toBeGreaterThan(295);
    expect(secondsFromNow(longer)).toBeLessThanOrEqual(300);
    expect(await health(a.id)).toMatchObject({ cooldown_reason: "overloaded" });
    const { deployments: [b] } = await textModel(["openai"]);
    expect(secondsFromNow(await record(b.id, false, "server", 500))).toBeGreaterThan(9);
    expect(secondsFromNow(await record(b.id, false, "server", 500))).toBeLessThanOrEqual(10);
  });

  it.each([
    ["rate_limit", 429, true],
    ["auth", 401, true],
    ["not_found", 404, true],
    ["timeout", 408, true],
    ["server", 500, true],
    ["overloaded", 529, true],
    ["bad_request", 400, false],
    ["context_window", 400, false],
    ["content_policy", 400, false],
  ] as const)("%s (%s) cools the deployment: %s", async (cls, status, cools) => {
    const { deployments: [a] } = await textModel(["openai"]);
    const until = await record(a.id, false, cls, status);
    if (cools) expect(secondsFromNow(until)).toBeGreaterThan(5);
    else expect(until).toBeNull();
  });

  it("a 429 never cools the only deployment a request could use", async () => {
    const { deployments: [a] } = await textModel(["openai"]);
    expect(await record(a.id, false, "rate_limit", 429, 30_000, true)).toBeNull();
    // Other errors still cool it.
    expect(secondsFromNow(await record(a.id, false, "server", 500, null, true))).toBeGreaterThan(5);
  });

  it("the failure-rate rule needs at least 5 calls in the window, and counts only the deployment's failures", async () => {
    const { deployments: [a, b] } = await textModel(["openai", "openai"]);
    // Repeated 429s on an only deployment: not one of them cools it, but the rate does at the 5th call.
    for (let i = 0; i < 4; i++) expect(await record(a.id, false, "rate_limit", 429, 1000, true)).toBeNull();
    expect(await health(a.id)).toMatchObject({ window_requests: 4, window_failures: 4 });
    const until = await record(a.id, false, "rate_limit", 429, 1000, true);
    expect(secondsFromNow(until)).toBeGreaterThan(25);
    expect(await health(a.id)).toMatchObject({ cooldown_reason: "failure rate", window_requests: 5, window_failures: 5 });
    // Bad requests are the caller's: any number of them never cools a deployment.
    for (let i = 0; i < 8; i++) expect(await record(b.id, false, i % 2 ? "context_window" : "bad_request", 400)).toBeNull();
    expect(await record(b.id, false, "content_policy", 400)).toBeNull();
    expect(await health(b.id)).toMatchObject({ cooldown_until: null, window_requests: 9, window_failures: 0 });
  });

  it("the rate needs more than half failing", async () => {
    const { deployments: [a] } = await textModel(["openai"]);
    for (const okay of [false, true, false, true, true, false]) expect(await record(a.id, okay, okay ? null : "rate_limit", okay ? null : 429, null, true)).toBeNull();
    expect(await health(a.id)).toMatchObject({ window_requests: 6, window_failures: 3, cooldown_until: null });
    expect(secondsFromNow(await record(a.id, false, "rate_limit", 429, null, true))).toBeGreaterThan(25);
  });
});

describe("cooldowns through jobs", () => {
  it("a failure is written to the shared table, and the next job skips the cooling deployment", async () => {
    const team = await teamWithCredits(100);
    const { model, deployments: [a, b] } = await textModel(["openai", "openai"]);
    await scriptFake(stack.fakeAiUrl, a.key, [{ mode: "rate_limit", retryAfter: 60 }, ok]);
    await scriptFake(stack.fakeAiUrl, b.key, [ok, ok]);
    const first = await waitForJob(await submitJob(team, body(model)));
    expect(first.status, JSON.stringify(first.error)).toBe("succeeded");
    const h = await health(a.id);
    expect(h).toMatchObject({ cooldown_reason: "rate_limit", last_status: 429, last_error_class: "rate_limit", window_failures: 1 });
    expect(secondsFromNow(h!.cooldown_until)).toBeGreaterThan(50);
    expect(await health(b.id)).toMatchObject({ cooldown_until: null, last_status: 200 });

    const second = await waitForJob(await submitJob(team, body(model)));
    expect(second.status, JSON.stringify(second.error)).toBe("succeeded");
    expect(await attemptsOf(second.id)).toMatchObject([{ kind: "initial", deployment_id: b.id, status: "succeeded" }]);
    expect(await callCount(a.key)).toBe(1);
  });

  it("the only deployment of a route is not cooled by a 429: the job retries it", async () => {
    const team = await teamWithCredits(100);
    const { model, deployments: [a] } = await textModel(["openai"]);
    await scriptFake(stack.fakeAiUrl, a.key, [{ mode: "rate_limit", retryAfter: null, retryAfterMs: 100 }, ok]);
    const job = await waitForJob(await submitJob(team, body(model)));
    expect(job.status, JSON.stringify(job.error)).toBe("succeeded");
    expect(await attemptsOf(job.id)).toMatchObject([
      { kind: "initial", status: "failed", error_class: "rate_limit" },
      { kind: "retry", status: "succeeded" },
    ]);
    expect(await health(a.id)).toMatchObject({ cooldown_until: null, last_status: 200, window_requests: 2, window_failures: 1 });
  });

  it("when every deployment is cooling the job waits for the earliest to come back, then runs", async () => {
    const team = await teamWithCredits(100);
    const { model, deployments: [a, b] } = await textModel(["openai", "openai"]);
    await admin.query(
      `insert into ai.deployment_health (deployment_id, cooldown_until, cooldown_reason) values
         ($1, clock_timestamp() + interval '1.5 seconds', 'rate_limit'), ($2, clock_timestamp() + interval '1 hour', 'server')`,
      [a.id, b.id],
    );
    const backAt = (await health(a.id))!.cooldown_until!.getTime();
    await scriptFake(stack.fakeAiUrl, a.key, ok);
    const id = await submitJob(team, body(model));
    const waiting = await eventually(async () => {
      const r = await admin.query(`select status, progress_message from ai.jobs where id = $1`, [id]);
      return r.rows[0].progress_message === "waiting for a provider" ? r.rows[0] : undefined;
    }, "the job to wait for a provider");
    expect(waiting.status).toBe("running");
    expect(await attemptsOf(id)).toEqual([]);
    const job = await waitForJob(id);
    expect(job.status, JSON.stringify(job.error)).toBe("succeeded");
    expect(await attemptsOf(id)).toMatchObject([{ kind: "initial", deployment_id: a.id, status: "succeeded" }]);
    const [call] = await fakeCalls(stack.fakeAiUrl, a.key);
    expect(call.at).toBeGreaterThanOrEqual(backAt);
    expect(await callCount(b.key)).toBe(0);
    expect((await jobRow(id)).settled_credits).toBe(2);
  });

  it("repeated 429s on the only deployment cool it by failure rate; a later job then waits", async () => {
    const team = await teamWithCredits(100);
    const { model, deployments: [a] } = await textModel(["openai"]);
    const limited = { mode: "rate_limit", retryAfter: null, retryAfterMs: 20 };
    await scriptFake(stack.fakeAiUrl, a.key, Array(6).fill(limited));
    // Two tries per job: jobs 1 and 2 leave 4 failed calls (no cooldown), job 3's first call is the 5th.
    for (let i = 0; i < 2; i++) {
      const job = await waitForJob(await submitJob(team, body(model)));
      expect(job.status).toBe("failed");
      expect(job.error).toMatchObject({ code: "rate_limit" });
      expect((await health(a.id))?.cooldown_until ?? null).toBeNull();
    }
    const third = await waitForJob(await submitJob(team, body(model)));
    expect(third.status).toBe("failed");
    expect(await health(a.id)).toMatchObject({ cooldown_reason: "failure rate" });
    expect(await callCount(a.key)).toBe(6);
    // The fourth job finds its only deployment cooling: it is not failed, and nothing is called.
    const fourth = await submitJob(team, body(model));
    await eventually(async () => (await jobRow(fourth)).status === "running" && (await admin.query(`select progress_message from ai.jobs where id = $1`, [fourth])).rows[0].progress_message === "waiting for a provider", "the job to wait");
    expect(await callCount(a.key)).toBe(6);
    expect(await attemptsOf(fourth)).toEqual([]);
    // Not left to run when the cooldown ends.
    await admin.query(`select private.ai_finish_job($1, 'canceled')`, [fourth]);
  });
});
