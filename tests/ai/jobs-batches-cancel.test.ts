// Cancelling (the reservation is voided at once; a call still in flight is discarded when it
// returns; only the submitter or a billing manager may), batches (all admitted or none; progress
// is the sum of their jobs'; cancelled as one), and live status on user:<id>.
import { describe, expect, it } from "vitest";
import { admin, createTeam } from "../helpers/db.ts";
import { account, expectLedgerConsistent } from "../helpers/credits.ts";
import { fakeCalls, scriptFake } from "../helpers/fake-ai.ts";
import { attemptsOf, jobRow, stack, waitForJob } from "../helpers/ai.ts";
import { call } from "../helpers/http.ts";
import { eventually, ownModel, submitJob, teamWithCredits, textModel, uploadPhoto } from "../helpers/ai-jobs.ts";
import { tokenFor } from "../helpers/supabase.ts";

const input = (prompt: string) => ({ prompt, max_tokens: 1000 });
/** Reserved for a short prompt and 1000 max tokens at the default prices: (bytes + 64)/1000 + 2, rounded up. */
const RESERVED = 3;

/** Waits until the job's first call is in flight (its attempt written, not closed). */
async function inFlight(jobId: string) {
  await eventually(async () => (await attemptsOf(jobId)).some((a) => a.status === "pending"), "the call to be in flight");
}

describe("cancel", () => {
  it("voids the reservation at once; the call in flight is discarded when it returns", async () => {
    const team = await teamWithCredits(100);
    const { model, deployments: [d] } = await textModel(["openai"]);
    await scriptFake(stack.fakeAiUrl, d.key, { mode: "slow", delayMs: 1200, usage: { prompt_tokens: 10, completion_tokens: 900 } });
    const id = await submitJob(team, { modality: "text", model, input: input("Take your time") });
    await inFlight(id);
    expect(await account(team.orgId)).toMatchObject({ balance: 100, reserved: RESERVED });
    const res = await call(`/api/ai/jobs/${id}/cancel`, { token: team.token, method: "POST" });
    expect(res.status, res.raw).toBe(200);
    expect(res.body).toMatchObject({ id, status: "canceled", settled_credits: 0, error: { code: "canceled" } });
    expect(await account(team.orgId)).toMatchObject({ balance: 100, reserved: 0 });
    // The provider answers after all: the answer is not used and not charged.
    await eventually(async () => (await attemptsOf(id))[0].status === "succeeded", "the slow call to return");
    const after = await jobRow(id);
    expect(after).toMatchObject({ status: "canceled", settled_credits: 0, output: null });
    expect(await account(team.orgId)).toMatchObject({ balance: 100, reserved: 0 });
    await expectLedgerConsistent(team.orgId);
    // Cancelling an ended job changes nothing.
    const again = await call(`/api/ai/jobs/${id}/cancel`, { token: team.token, method: "POST" });
    expect(again.body).toMatchObject({ status: "canceled" });
  });

  it("only the submitter or a billing manager may cancel; others get 404 and the job runs on", async () => {
    const team = await teamWithCredits(100);
    const { model, deployments: [d] } = await textModel(["openai"]);
    await scriptFake(stack.fakeAiUrl, d.key, [{ mode: "slow", delayMs: 800 }, { mode: "slow", delayMs: 800 }]);
    const id = await submitJob(team, { modality: "text", model, input: input("Mine") });
    const other = await createTeam();
    for (const [who, token] of [
      ["a viewer of the org", await tokenFor(team.viewer)],
      ["a member of another org", await tokenFor(other.member)],
    ] as const) {
      const res = await call(`/api/ai/jobs/${id}/cancel`, { token, method: "POST" });
      expect(res.status, `${who}: ${res.raw}`).toBe(404);
      const read = await call(`/api/ai/jobs/${id}`, { token });
      expect(read.status, who).toBe(404);
    }
    expect((await waitForJob(id)).status).toBe("succeeded");

    // The org's owner holds billing.manage: they may cancel a member's job.
    const second = await submitJob(team, { modality: "text", model, input: input("Stop it") });
    await inFlight(second);
    const byOwner = await call(`/api/ai/jobs/${second}/cancel`, { token: await tokenFor(team.owner), method: "POST" });
    expect(byOwner.status, byOwner.raw).toBe(200);
    expect(byOwner.body.status).toBe("canceled");
  });
});

describe("cancelling an async job", () => {
  it("the poller cancels the task at the provider, and nothing is charged", async () => {
    const team = await teamWithCredits(100);
    const { model, deployments: [d] } = await ownModel({ modality: "video", deployments: [{ provider: "runway" }] });
    // A long render: it is still running when cancelled.
    await scriptFake(stack.fakeAiUrl, d.key, { mode: "ok", pollsUntilDone: 500 });
    const id = await submitJob(team, { modality: "video", model, input: { image_path: await uploadPhoto(team.orgId), prompt: "Slowly", duration_seconds: 2 } });
    await eventually(async () => (await attemptsOf(id)).some((a) => a.status === "submitted"), "the task to be submitted");
    expect(await account(team.orgId)).toMatchObject({ reserved: 6 });
    const res = await call(`/api/ai/jobs/${id}/cancel`, { token: team.token, method: "POST" });
    expect(res.body).toMatchObject({ status: "canceled", settled_credits: 0 });
    expect(await account(team.orgId)).toMatchObject({ balance: 100, reserved: 0 });
    await eventually(async () => (await attemptsOf(id))[0].status === "canceled", "the poller to close the task");
    const deletes = (await fakeCalls(stack.fakeAiUrl, `${d.key}:task`)).filter((c) => c.method === "DELETE");
    expect(deletes).toHaveLength(1);
    expect((await jobRow(id)).status).toBe("canceled");
  });
});

describe("batches", () => {
  it("progress is the sum of the jobs'; cancelling the batch cancels what has not ended", async () => {
    const team = await teamWithCredits(100);
    const { model, deployments: [d] } = await textModel(["openai"]);
    // The first job to call answers at once; the other two are still generating when the batch is cancelled.
    await scriptFake(stack.fakeAiUrl, d.key, [
      { mode: "ok", usage: { prompt_tokens: 5, completion_tokens: 500 } },
      { mode: "slow", delayMs: 1500 },
      { mode: "slow", delayMs: 1500 },
    ]);
    const res = await call("/api/ai/batches", { token: team.token, json: { org_id: team.orgId, modality: "text", model, label: "three", inputs: [input("one"), input("two"), input("six")] } });
    expect(res.status, res.raw).toBe(202);
    const { batch_id: batchId, job_ids: ids } = res.body as { batch_id: string; job_ids: string[] };
    expect(ids).toHaveLength(3);
    await eventually(async () => {
      const rows = await Promise.all(ids.map(jobRow));
      const done = rows.filter((r) => r.status === "succeeded");
      const generating = rows.filter((r) => r.status === "running" && r.progress === 20);
      return done.length === 1 && generating.length === 2;
    }, "one job done and two generating");
    const batch = await call(`/api/ai/batches/${batchId}`, { token: team.token });
    expect(batch.status, batch.raw).toBe(200);
    // (100 + 20 + 20) / 3, rounded down: a batch shows 100 only once every job has ended.
    expect(batch.body).toMatchObject({ batch_id: batchId, label: "three", total: 3, succeeded: 1, pending: 2, canceled: 0, progress: 46, held_credits: 2 * RESERVED, spent_credits: 2 });
    const listed = await call(`/api/ai/jobs?batch_id=${batchId}`, { token: team.token });
    expect(listed.body.jobs.map((j: { id: string }) => j.id).sort()).toEqual([...ids].sort());

    const canceled = await call(`/api/ai/batches/${batchId}/cancel`, { token: team.token, method: "POST" });
    expect(canceled.status, canceled.raw).toBe(200);
    expect(canceled.body).toEqual({ canceled: 2 });
    const after = await call(`/api/ai/batches/${batchId}`, { token: team.token });
    expect(after.body).toMatchObject({ succeeded: 1, canceled: 2, pending: 0, progress: 100, held_credits: 0, spent_credits: 2 });
    expect(after.body.canceled_at).not.toBeNull();
    expect(await account(team.orgId)).toMatchObject({ balance: 98, reserved: 0 });
    // Once the slow calls return, nothing changes.
    await eventually(async () => (await Promise.all(ids.map(attemptsOf))).flat().every((a) => a.status !== "pending"), "the slow calls to return");
    expect(await account(team.orgId)).toMatchObject({ balance: 98, reserved: 0 });
    await expectLedgerConsistent(team.orgId);
    // Another member cannot see or cancel the batch.
    const viewer = await tokenFor(team.viewer);
    expect((await call(`/api/ai/batches/${batchId}`, { token: viewer })).status).toBe(404);
    expect((await call(`/api/ai/batches/${batchId}/cancel`, { token: viewer, method: "POST" })).status).toBe(404);
  });

  it("a batch the credits cannot cover is refused whole, and nothing is held", async () => {
    const team = await teamWithCredits(2 * RESERVED);
    const { model, deployments: [d] } = await textModel(["openai"]);
    const res = await call("/api/ai/batches", { token: team.token, json: { org_id: team.orgId, modality: "text", model, inputs: [input("a"), input("b"), input("c")] } });
    expect(res.status, res.raw).toBe(402);
    const { rows: [n] } = await admin.query(
      `select (select count(*)::int from ai.batches where org_id = $1) as batches, (select count(*)::int from ai.jobs where org_id = $1) as jobs`,
      [team.orgId],
    );
    expect(n).toEqual({ batches: 0, jobs: 0 });
    expect(await account(team.orgId)).toMatchObject({ balance: 2 * RESERVED, reserved: 0 });
    expect(await fakeCalls(stack.fakeAiUrl, d.key)).toHaveLength(0);
  });
});

describe("live status", () => {
  it("broadcasts status and progress on user:<id>, ending with the charge", async () => {
    const team = await teamWithCredits(100);
    const { model, deployments: [d] } = await textModel(["openai"]);
    await scriptFake(stack.fakeAiUrl, d.key, { mode: "ok", text: "Live.", usage: { prompt_tokens: 5, completion_tokens: 500 } });
    const id = await submitJob(team, { modality: "text", model, input: input("Tell me live") });
    await waitForJob(id);
    const { rows } = await admin.query(
      `select payload from realtime.messages where topic = $1 and event = 'ai.job' and payload ->> 'job_id' = $2 order by inserted_at`,
      [`user:${team.member.id}`, id],
    );
    const seen = rows.map((r) => r.payload as { status: string; progress: number; message: string | null; credits: number | null });
    expect(seen[0]).toMatchObject({ status: "queued", progress: 0 });
    expect(seen.at(-1)).toMatchObject({ status: "succeeded", progress: 100, credits: 2 });
    expect(seen.map((p) => p.status)).toContain("running");
    expect(seen.some((p) => p.status === "running" && p.message === "generating")).toBe(true);
    const progress = seen.map((p) => p.progress);
    expect(progress).toEqual([...progress].sort((a, b) => a - b));
    // Nothing about this job goes to the org channel or another user's.
    const { rows: [elsewhere] } = await admin.query(
      `select count(*)::int as n from realtime.messages where event = 'ai.job' and payload ->> 'job_id' = $1 and topic <> $2`,
      [id, `user:${team.member.id}`],
    );
    expect(elsewhere.n).toBe(0);
  });
});
