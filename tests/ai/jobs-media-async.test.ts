// Media jobs on asynchronous providers, run by the stack's worker against the fakes: "succeeded
// after the caller timed out" is resolved by looking the task up (one task at the provider, one
// charge, settled on the seconds the provider reports); a refusal ends the job with no fallback
// and no charge; a failed task falls back; Replicate's duplicate and late webhooks change nothing.
//
// D-ID talks made by jobs carry no name, so the fake keys them all "did:talks": the D-ID cases
// live in this file only, run one after another, and count that key's calls as deltas.
import { describe, expect, it } from "vitest";
import { admin } from "../helpers/db.ts";
import { account, expectLedgerConsistent } from "../helpers/credits.ts";
import { scriptFake } from "../helpers/fake-ai.ts";
import { attemptsOf, reservation, stack, waitForJob } from "../helpers/ai.ts";
import { creates, eventually, ownModel, ownProvider, submitJob, teamWithCredits, uploadPhoto } from "../helpers/ai-jobs.ts";

const DID = "did:talks";
/** createModel's video price: 3 credits a second. */
const PER_SECOND = 3;

async function videoJob(team: Awaited<ReturnType<typeof teamWithCredits>>, model: string, extra: Record<string, unknown> = {}) {
  return await submitJob(team, {
    modality: "video",
    model,
    input: { image_path: await uploadPhoto(team.orgId), script: { text: "Hello from the photo", voice: "en-US-JennyNeural" }, prompt: "Talk", ...extra },
  });
}

async function events(jobId: string, type: string): Promise<number> {
  const { rows } = await admin.query(`select count(*)::int as n from notify.events where subject_kind = 'ai_job' and subject_id = $1 and type = $2`, [jobId, type]);
  return rows[0].n;
}

describe("succeeded after the caller timed out", () => {
  it("Runway: the submit's answer is lost, the task is found by our key, never submitted again", async () => {
    const team = await teamWithCredits(100);
    const quick = await ownProvider("runway", { timeoutMs: 300 });
    const { model, deployments: [d] } = await ownModel({ modality: "video", deployments: [{ provider: quick }] });
    await scriptFake(stack.fakeAiUrl, d.key, { mode: "succeed_after_timeout", pollsUntilDone: 1 });
    const id = await videoJob(team, model, { duration_seconds: 4 });
    const job = await waitForJob(id);
    expect(job.status, JSON.stringify(job.error)).toBe("succeeded");
    expect(await creates(d.key)).toBe(1);
    const attempts = await attemptsOf(id);
    expect(attempts).toMatchObject([{ attempt_no: 1, kind: "initial", status: "succeeded", units: { video_second: 4 }, credits: 4 * PER_SECOND }]);
    expect(job.settled_credits).toBe(12);
    expect(job.output).toMatchObject({ duration_seconds: 4, files: [{ bucket: "ai-outputs", path: `${team.orgId}/${id}/0.mp4`, mime_type: "video/mp4" }] });
    expect(await account(team.orgId)).toMatchObject({ balance: 88, reserved: 0 });
    await expectLedgerConsistent(team.orgId);
  });

  it("D-ID: the talk is found by its user_data, and settled on the duration D-ID reports", async () => {
    const team = await teamWithCredits(100);
    const quick = await ownProvider("did", { timeoutMs: 300 });
    const { model } = await ownModel({ modality: "video", deployments: [{ provider: quick }] });
    const before = await creates(DID);
    await scriptFake(stack.fakeAiUrl, DID, { mode: "succeed_after_timeout", pollsUntilDone: 1, durationSeconds: 3.5 });
    // 5 seconds asked (and reserved); D-ID reports 3.5.
    const id = await videoJob(team, model, { duration_seconds: 5 });
    const job = await waitForJob(id);
    expect(job.status, JSON.stringify(job.error)).toBe("succeeded");
    expect(job.reserved_credits).toBe(5 * PER_SECOND);
    expect(await creates(DID)).toBe(before + 1);
    const [attempt] = await attemptsOf(id);
    expect(attempt).toMatchObject({ status: "succeeded", units: { video_second: 3.5 } });
    // 3.5 x 3 = 10.5, rounded up once.
    expect(job.settled_credits).toBe(11);
    expect(job.output.duration_seconds).toBe(3.5);
    expect(await reservation(job.reservation_id!)).toMatchObject({ status: "posted", amount: 15, settled_amount: 11 });
    expect(await account(team.orgId)).toMatchObject({ balance: 89, reserved: 0 });
  });

  it("Replicate (an image): the prediction is found by the attempt key its webhook URL carries", async () => {
    const team = await teamWithCredits(100);
    const quick = await ownProvider("replicate", { timeoutMs: 300 });
    const { model, deployments: [d] } = await ownModel({ modality: "image", deployments: [{ provider: quick, providerModel: `plinth-test/${quick}` }] });
    await scriptFake(stack.fakeAiUrl, d.key, { mode: "succeed_after_timeout", outputCount: 2 });
    const id = await submitJob(team, { modality: "image", model, input: { prompt: "Two boats", n: 2 } });
    const job = await waitForJob(id);
    expect(job.status, JSON.stringify(job.error)).toBe("succeeded");
    expect(await creates(d.key)).toBe(1);
    expect(await attemptsOf(id)).toMatchObject([{ attempt_no: 1, status: "succeeded", units: { image: 2 }, credits: 10 }]);
    expect(job.output.files.map((f: { path: string }) => f.path)).toEqual([`${team.orgId}/${id}/0.png`, `${team.orgId}/${id}/1.png`]);
    expect(job.settled_credits).toBe(10);
  });

  it("a submit that never reached the provider is sent again once the lookup confirms it", async () => {
    const team = await teamWithCredits(100);
    const quick = await ownProvider("runway", { timeoutMs: 300 });
    const { model, deployments: [d] } = await ownModel({ modality: "video", deployments: [{ provider: quick }] });
    // The create times out without making a task; the retry succeeds.
    await scriptFake(stack.fakeAiUrl, d.key, [{ mode: "timeout" }, { mode: "ok", pollsUntilDone: 1 }]);
    const id = await videoJob(team, model, { duration_seconds: 2 });
    const job = await waitForJob(id);
    expect(job.status, JSON.stringify(job.error)).toBe("succeeded");
    expect(await attemptsOf(id)).toMatchObject([
      { kind: "initial", status: "failed", error_class: "timeout", credits: 0 },
      { kind: "retry", status: "succeeded", credits: 6 },
    ]);
    expect(job.settled_credits).toBe(6);
  });
});

describe("refusals end the job; failures fall back", () => {
  it("D-ID rejects the talk: the job fails at once, no other provider is asked, nothing is charged", async () => {
    const team = await teamWithCredits(100);
    const { model, deployments: [did, runway] } = await ownModel({ modality: "video", deployments: [{ provider: "did" }, { provider: "runway", policyAlternative: true }] });
    await scriptFake(stack.fakeAiUrl, DID, { mode: "refuse", pollsUntilDone: 1 });
    const id = await videoJob(team, model);
    const job = await waitForJob(id);
    expect(job.status).toBe("failed");
    expect(job.error).toMatchObject({ code: "refused", class: "content_policy" });
    expect(await attemptsOf(id)).toMatchObject([{ deployment_id: did.id, status: "refused", credits: 0 }]);
    expect(await creates(runway.key)).toBe(0);
    expect(job.settled_credits).toBe(0);
    expect(await reservation(job.reservation_id!)).toMatchObject({ status: "voided" });
    expect(await account(team.orgId)).toMatchObject({ balance: 100, reserved: 0 });
    expect(await events(id, "ai.job_failed")).toBe(1);
  });

  it("Runway fails the task on safety: the job fails, D-ID is never asked", async () => {
    const team = await teamWithCredits(100);
    const { model, deployments: [runway] } = await ownModel({ modality: "video", deployments: [{ provider: "runway" }, { provider: "did", policyAlternative: true }] });
    const before = await creates(DID);
    await scriptFake(stack.fakeAiUrl, runway.key, { mode: "refuse", pollsUntilDone: 1 });
    const job = await waitForJob(await videoJob(team, model));
    expect(job.status).toBe("failed");
    expect(job.error).toMatchObject({ code: "refused" });
    expect(await creates(runway.key)).toBe(1);
    expect(await creates(DID)).toBe(before);
    expect(await account(team.orgId)).toMatchObject({ balance: 100, reserved: 0 });
  });

  it("a task that fails on the provider's side is retried, then falls back; only the success is charged", async () => {
    const team = await teamWithCredits(100);
    const { model, deployments: [a, b] } = await ownModel({ modality: "video", deployments: [{ provider: "runway" }, { provider: "runway" }] });
    await scriptFake(stack.fakeAiUrl, a.key, [{ mode: "fail", pollsUntilDone: 1 }, { mode: "fail", pollsUntilDone: 1 }]);
    await scriptFake(stack.fakeAiUrl, b.key, { mode: "ok", pollsUntilDone: 1 });
    const job = await waitForJob(await videoJob(team, model, { duration_seconds: 2 }));
    expect(job.status, JSON.stringify(job.error)).toBe("succeeded");
    expect((await attemptsOf(job.id)).map((x) => [x.kind, x.deployment_id, x.status, x.credits])).toEqual([
      ["initial", a.id, "failed", 0],
      ["retry", a.id, "failed", 0],
      ["fallback", b.id, "succeeded", 6],
    ]);
    expect(job.settled_credits).toBe(6);
  });
});

describe("image routes mixing task and synchronous providers", () => {
  it("a failed Replicate task falls back to a synchronous image provider", async () => {
    const team = await teamWithCredits(100);
    const { model, deployments: [replicate, openai] } = await ownModel({ modality: "image", deployments: [{ provider: "replicate" }, { provider: "openai" }] });
    await scriptFake(stack.fakeAiUrl, replicate.key, [{ mode: "fail" }, { mode: "fail" }]);
    const id = await submitJob(team, { modality: "image", model, input: { prompt: "A kite" } });
    const job = await waitForJob(id);
    expect(job.status, JSON.stringify(job.error)).toBe("succeeded");
    expect((await attemptsOf(id)).map((a) => [a.kind, a.deployment_id, a.status])).toEqual([
      ["initial", replicate.id, "failed"],
      ["retry", replicate.id, "failed"],
      ["fallback", openai.id, "succeeded"],
    ]);
    expect(job.output.files).toMatchObject([{ path: `${team.orgId}/${id}/0.png` }]);
    expect(job.settled_credits).toBe(5);
  });

  it("a synchronous image call that times out is retried like any call, not left waiting as a task", async () => {
    const team = await teamWithCredits(100);
    const quick = await ownProvider("openai", { timeoutMs: 300 });
    const { model, deployments: [d] } = await ownModel({ modality: "image", deployments: [{ provider: quick }] });
    await scriptFake(stack.fakeAiUrl, d.key, [{ mode: "timeout" }, { mode: "ok" }]);
    const id = await submitJob(team, { modality: "image", model, input: { prompt: "A slow lighthouse" } });
    const job = await waitForJob(id, undefined, 10_000);
    expect(job.status, JSON.stringify(job.error)).toBe("succeeded");
    expect(await attemptsOf(id)).toMatchObject([
      { kind: "initial", status: "failed", error_class: "timeout" },
      { kind: "retry", status: "succeeded", credits: 5 },
    ]);
  });
});

describe("Replicate callbacks", () => {
  async function imageJob(mode: Record<string, unknown>) {
    const team = await teamWithCredits(100);
    const { model, deployments: [d] } = await ownModel({ modality: "image", deployments: [{ provider: "replicate" }] });
    await scriptFake(stack.fakeAiUrl, d.key, mode);
    const id = await submitJob(team, { modality: "image", model, input: { prompt: "A lighthouse at dusk" } });
    return { team, d, id };
  }

  async function receipts(jobId: string): Promise<number> {
    const { rows } = await admin.query(
      `select count(*)::int as n from private.ai_webhook_receipts r
       where r.provider_id = 'replicate' and r.provider_task_id = (select provider_request_id from ai.attempts where job_id = $1 and attempt_no = 1)`,
      [jobId],
    );
    return rows[0].n;
  }

  it("signed callbacks are verified and recorded, and the job ends once", async () => {
    const { team, d, id } = await imageJob({ mode: "ok" });
    const job = await waitForJob(id);
    expect(job.status, JSON.stringify(job.error)).toBe("succeeded");
    // start, output and completed: every delivery verified and recorded.
    await eventually(async () => (await receipts(id)) >= 3, "three webhook receipts");
    expect(await creates(d.key)).toBe(1);
    expect(job.settled_credits).toBe(5);
    expect(await account(team.orgId)).toMatchObject({ balance: 95, reserved: 0 });
  });

  it("a completed webhook delivered twice ends the job once, charged once", async () => {
    const { team, id } = await imageJob({ mode: "webhook_twice" });
    const job = await waitForJob(id);
    expect(job.status, JSON.stringify(job.error)).toBe("succeeded");
    await eventually(async () => (await receipts(id)) >= 3, "the webhook receipts");
    expect(await events(id, "ai.job_succeeded")).toBe(1);
    expect(job.settled_credits).toBe(5);
    expect(await account(team.orgId)).toMatchObject({ balance: 95, reserved: 0 });
    await expectLedgerConsistent(team.orgId);
  });

  it("a webhook arriving after the poll ended the job changes nothing", async () => {
    const { team, id } = await imageJob({ mode: "webhook_late", webhookDelayMs: 800 });
    const job = await waitForJob(id);
    expect(job.status, JSON.stringify(job.error)).toBe("succeeded");
    const { rows: [ended] } = await admin.query(`select finished_at, settled_credits::int from ai.jobs where id = $1`, [id]);
    // The late completed delivery arrives after the job has ended, and wakes a poll that finds it ended.
    await eventually(async () => (await receipts(id)) >= 3, "the late webhook");
    await eventually(async () => {
      const { rows } = await admin.query(`select count(*)::int as n from pgboss.job where name = 'ai.poll' and singleton_key = $1 and state <> 'completed'`, [id]);
      return rows[0].n === 0;
    }, "the woken poll to finish");
    const { rows: [after] } = await admin.query(`select status, finished_at, settled_credits::int from ai.jobs where id = $1`, [id]);
    expect(after).toEqual({ status: "succeeded", finished_at: ended.finished_at, settled_credits: 5 });
    expect(await events(id, "ai.job_succeeded")).toBe(1);
    expect(await account(team.orgId)).toMatchObject({ balance: 95, reserved: 0 });
    await expectLedgerConsistent(team.orgId);
  });
});
