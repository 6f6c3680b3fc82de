// A worker killed mid-job: whatever point it died at, the next run (pg-boss retries it) finishes
// the job, calls no provider for work already done, never submits an async task twice, and the
// org is charged once. The dead worker's state is made by running the worker's own code in this
// process up to the point of death; the stack's real worker then takes over.
import { afterAll, describe, expect, it } from "vitest";
import { openAttempt } from "../../functions/_shared/ai/attempts.ts";
import { pollJob } from "../../functions/_shared/ai/async.ts";
import { sweep } from "../../functions/_shared/ai/jobs.ts";
import { setProgress } from "../../functions/_shared/ai/job-store.ts";
import { runJob } from "../../functions/_shared/ai/run-job.ts";
import { admin } from "../helpers/db.ts";
import { account, expectLedgerConsistent } from "../helpers/credits.ts";
import { fakeCalls, scriptFake } from "../helpers/fake-ai.ts";
import { attemptsOf, createModel, reservation, stack, waitForJob } from "../helpers/ai.ts";
import { callCount, orgRoute, teamWithCredits, textModel, uploadPhoto } from "../helpers/ai-jobs.ts";
import { admitOnly, handToWorker, inProcessWorker, type InProcessWorker, statusOf } from "../helpers/ai-worker.ts";

const workers: InProcessWorker[] = [];
function worker(opts: Parameters<typeof inProcessWorker>[0] = {}) {
  const w = inProcessWorker(opts);
  workers.push(w);
  return w;
}
afterAll(async () => {
  for (const w of workers) await w.close();
});

const PROMPT = "Survive the crash. ".repeat(200);
const ok = { mode: "ok", text: "Still here.", usage: { prompt_tokens: 900, completion_tokens: 1000 } };
/** 900 x 1000/1M + 1000 x 2000/1M = 2.9 -> 3. */
const CHARGE = 3;

describe("text jobs", () => {
  it("a call in flight when the worker died is abandoned; the retried run calls again and charges once", async () => {
    const team = await teamWithCredits(100);
    const { model, deployments: [d] } = await textModel(["openai"]);
    await scriptFake(stack.fakeAiUrl, d.key, ok);
    const w = worker();
    const job = await admitOnly(w, { orgId: team.orgId, userId: team.member.id }, { modality: "text", model, input: { prompt: PROMPT, max_tokens: 1000 } });
    // What the dead run left: the job running and its first call written, never closed.
    await setProgress(w.deps.db, job.id, 20, "generating");
    await openAttempt(w.deps.db, job, "main", "initial", job.route.main[0]);
    await handToWorker("ai.run", job.id);
    const done = await waitForJob(job.id);
    expect(done.status, JSON.stringify(done.error)).toBe("succeeded");
    expect(await attemptsOf(job.id)).toMatchObject([
      { attempt_no: 1, kind: "initial", status: "abandoned", credits: 0 },
      { attempt_no: 2, kind: "retry", status: "succeeded", credits: CHARGE },
    ]);
    expect(await callCount(d.key)).toBe(1);
    expect(done.settled_credits).toBe(CHARGE);
    expect(await reservation(done.reservation_id!)).toMatchObject({ status: "posted", settled_amount: CHARGE });
    expect(await account(team.orgId)).toMatchObject({ balance: 100 - CHARGE, reserved: 0 });
    await expectLedgerConsistent(team.orgId);
  });

  it("killed after the provider answered but before the job was finished: the next run finishes from that answer", async () => {
    const team = await teamWithCredits(100);
    const { model, deployments: [d] } = await textModel(["openai"]);
    await scriptFake(stack.fakeAiUrl, d.key, [ok, { mode: "ok", text: "A second answer." }]);
    const w = worker({ dieAt: /ai_finish_job/ });
    const job = await admitOnly(w, { orgId: team.orgId, userId: team.member.id }, { modality: "text", model, input: { prompt: PROMPT, max_tokens: 1000 } });
    await expect(runJob(w.deps, job.id)).rejects.toThrow("the worker was killed");
    expect(await statusOf(job.id)).toBe("running");
    expect(await attemptsOf(job.id)).toMatchObject([{ status: "succeeded", credits: CHARGE }]);

    await handToWorker("ai.run", job.id);
    const done = await waitForJob(job.id);
    expect(done.status, JSON.stringify(done.error)).toBe("succeeded");
    expect(done.output.text).toBe("Still here.");
    expect(await callCount(d.key)).toBe(1);
    expect(await attemptsOf(job.id)).toHaveLength(1);
    expect(done.settled_credits).toBe(CHARGE);
    expect(await account(team.orgId)).toMatchObject({ balance: 100 - CHARGE, reserved: 0 });
    await expectLedgerConsistent(team.orgId);
    // The answer was kept on the attempt only until the job ended.
    expect((await admin.query(`select count(*)::int as n from ai.attempts where job_id = $1 and result is not null`, [job.id])).rows[0].n).toBe(0);
  });

  it("killed after moderation flagged the input: the next run still refuses it, uncharged", async () => {
    const team = await teamWithCredits(100);
    const mod = await createModel({ modality: "moderation", deployments: [{ provider: "openai" }] });
    await orgRoute(team.orgId, "moderation", "economy", [mod.deployments[0].id]);
    await admin.query(`insert into ai.org_policies (org_id, moderate_input) values ($1, true)`, [team.orgId]);
    const { model, deployments: [d] } = await textModel(["openai"]);
    const w = worker({ dieAt: /ai_finish_job/ });
    const job = await admitOnly(w, { orgId: team.orgId, userId: team.member.id }, { modality: "text", model, input: { prompt: "Say FLAGME loudly", max_tokens: 100 } });
    await expect(runJob(w.deps, job.id)).rejects.toThrow("the worker was killed");

    await handToWorker("ai.run", job.id);
    const done = await waitForJob(job.id);
    expect(done.status).toBe("failed");
    expect(done.error).toMatchObject({ code: "input_flagged" });
    expect(await callCount(d.key)).toBe(0);
    expect(await callCount(mod.deployments[0].key)).toBe(1);
    expect(await account(team.orgId)).toMatchObject({ balance: 100, reserved: 0 });
  });
});

describe("async media jobs", () => {
  async function videoSetup() {
    const team = await teamWithCredits(100);
    const { model, deployments: [d] } = await createModel({ modality: "video", deployments: [{ provider: "runway" }] });
    const input = { image_path: await uploadPhoto(team.orgId), prompt: "A slow pan", duration_seconds: 4 };
    return { team, model, d, input };
  }

  it("killed mid-submit: the submit is resolved by looking it up, never sent again", async () => {
    const { team, model, d, input } = await videoSetup();
    await scriptFake(stack.fakeAiUrl, d.key, { mode: "ok", pollsUntilDone: 1 });
    const w = worker();
    const job = await admitOnly(w, { orgId: team.orgId, userId: team.member.id }, { modality: "video", model, input });
    // The dead run wrote its attempt and sent the submit (keyed by the attempt id); the answer was lost with it.
    await setProgress(w.deps.db, job.id, 10, "submitting");
    const attempt = await openAttempt(w.deps.db, job, "main", "initial", job.route.main[0]);
    const runway = await w.deps.adapters.get("runway");
    await runway.submit!({ model: d.providerModel, input: { image_url: "https://example.test/face.png", prompt: "A slow pan", duration_seconds: 4 }, idempotencyKey: attempt.id });

    await handToWorker("ai.run", job.id);
    const done = await waitForJob(job.id);
    expect(done.status, JSON.stringify(done.error)).toBe("succeeded");
    // One task at the provider: the one the dead run created.
    expect((await fakeCalls(stack.fakeAiUrl, d.key)).filter((c) => c.method === "POST")).toHaveLength(1);
    expect(await attemptsOf(job.id)).toMatchObject([{ attempt_no: 1, status: "succeeded", units: { video_second: 4 }, credits: 12 }]);
    expect(done.settled_credits).toBe(12);
    expect(done.output.files).toHaveLength(1);
    expect(await account(team.orgId)).toMatchObject({ balance: 88, reserved: 0 });
    await expectLedgerConsistent(team.orgId);
  });

  it("killed after the task's output was stored but before the job was finished: the next run finishes it", async () => {
    const { team, model, d, input } = await videoSetup();
    await scriptFake(stack.fakeAiUrl, d.key, { mode: "ok", pollsUntilDone: 1 });
    const w = worker({ dieAt: /ai_finish_job/ });
    const job = await admitOnly(w, { orgId: team.orgId, userId: team.member.id }, { modality: "video", model, input });
    expect(await runJob(w.deps, job.id)).toEqual({ status: "running" });
    expect(w.scheduled.at(-1)).toMatchObject({ name: "ai.poll", jobId: job.id });
    await expect(pollJob(w.deps, job.id)).rejects.toThrow("the worker was killed");
    expect(await statusOf(job.id)).toBe("running");
    expect(await attemptsOf(job.id)).toMatchObject([{ status: "succeeded", credits: 12 }]);

    // pg-boss retries the poll.
    await handToWorker("ai.poll", job.id);
    const done = await waitForJob(job.id);
    expect(done.status, JSON.stringify(done.error)).toBe("succeeded");
    expect(done.output.files).toHaveLength(1);
    expect((await fakeCalls(stack.fakeAiUrl, d.key)).filter((c) => c.method === "POST")).toHaveLength(1);
    expect(await attemptsOf(job.id)).toHaveLength(1);
    expect(done.settled_credits).toBe(12);
    expect(await account(team.orgId)).toMatchObject({ balance: 88, reserved: 0 });
  });
});

describe("the sweep", () => {
  /** Moves a job's clock back, as if it had been left alone that long (triggers off, this session only). */
  async function age(jobId: string, updatedAgo: string, createdAgo = updatedAgo) {
    const c = await admin.connect();
    try {
      await c.query("set session_replication_role = replica");
      await c.query(`update ai.jobs set updated_at = now() - $2::interval, created_at = now() - $3::interval where id = $1`, [jobId, updatedAgo, createdAgo]);
    } finally {
      await c.query("reset session_replication_role");
      c.release();
    }
  }

  it("picks up jobs whose run or poll was lost, and ends those too old to settle", async () => {
    const team = await teamWithCredits(100);
    const { model, deployments: [d] } = await textModel(["openai"]);
    const video = await createModel({ modality: "video", deployments: [{ provider: "runway" }] });
    await scriptFake(stack.fakeAiUrl, d.key, ok);
    const w = worker();
    const who = { orgId: team.orgId, userId: team.member.id };
    const text = (prompt: string) => ({ modality: "text" as const, model, input: { prompt, max_tokens: 1000 } });
    const lost = await admitOnly(w, who, text("Lost run"));
    const polled = await admitOnly(w, who, { modality: "video", model: video.model, input: { image_path: await uploadPhoto(team.orgId), prompt: "x", duration_seconds: 2 } });
    const task = await openAttempt(w.deps.db, polled, "main", "initial", polled.route.main[0]);
    await admin.query(`update ai.attempts set status = 'submitted', provider_request_id = 'task-1' where id = $1`, [task.id]);
    const stuck = await admitOnly(w, who, text("Stuck"));
    const fresh = await admitOnly(w, who, text("Fresh"));
    // Right before sweeping (the stack's own sweep runs once a minute): a run lost before it
    // started, a task whose polls were lost, a job stuck for a day (its reservation cannot be
    // trusted any more), and one quiet for a minute only (left alone).
    await age(lost.id, "11 minutes");
    await age(polled.id, "11 minutes");
    await age(stuck.id, "11 minutes", "24 hours");
    await age(fresh.id, "1 minute");
    await sweep(w.deps);
    const mine = w.scheduled.filter((s) => [lost.id, polled.id, stuck.id, fresh.id].includes(s.jobId));
    expect(mine).toEqual(expect.arrayContaining([
      { name: "ai.run", jobId: lost.id, delayMs: 0 },
      { name: "ai.poll", jobId: polled.id, delayMs: 0 },
    ]));
    expect(mine).toHaveLength(2);
    const ended = await admin.query(`select status, error ->> 'code' as code, settled_credits::int from ai.jobs where id = $1`, [stuck.id]);
    expect(ended.rows[0]).toEqual({ status: "failed", code: "stalled", settled_credits: 0 });
    expect(await statusOf(fresh.id)).toBe("queued");

    // What the sweep queued runs like any run.
    await handToWorker("ai.run", lost.id);
    expect((await waitForJob(lost.id)).status).toBe("succeeded");
    for (const id of [polled.id, fresh.id]) await admin.query(`select private.ai_finish_job($1, 'canceled')`, [id]);
    expect(await account(team.orgId)).toMatchObject({ balance: 100 - CHARGE, reserved: 0 });
    await expectLedgerConsistent(team.orgId);
  });
});
