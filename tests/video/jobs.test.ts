// Talking-video jobs over the api and the stack's worker, against the local provider and the
// Runway fake: the state machine as Realtime shows it, tier routing with fallback and the
// "unknown" submit (one video, one charge), refusals without fallback, the settle on the
// reported seconds at the tier's price, completion only once the file is in Storage, a user's
// retry as a new attempt, cancel, and the plan's limits.
import { randomUUID } from "node:crypto";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { admin, createTeam } from "../helpers/db.ts";
import { account, expectLedgerConsistent } from "../helpers/credits.ts";
import { fakeCalls, scriptFake } from "../helpers/fake-ai.ts";
import { call, expectError } from "../helpers/http.ts";
import { giveCredits, reservation, stack } from "../helpers/ai.ts";
import { creates, eventually, ownModel, ownProvider, teamWithCredits } from "../helpers/ai-jobs.ts";
import { broadcasts, rtClient, subscribe } from "../helpers/realtime.ts";
import { sha256 } from "../helpers/storage.ts";
import { tokenFor } from "../helpers/supabase.ts";
import { makeVideo, ownTier, passedPhoto, videoJob, waitVideo } from "../helpers/video.ts";

type Team = Awaited<ReturnType<typeof teamWithCredits>>;
const SCRIPT = { text: "x".repeat(45), voice: "en-US-JennyNeural" }; // 45 characters: 4 s estimated, 3 s spoken

async function quote(tier: string, seconds: number) {
  const { rows } = await admin.query(`select credits::int, inr_minor::int, usd_cents::int from video.quote($1, $2)`, [tier, seconds]);
  return rows[0] as { credits: number; inr_minor: number; usd_cents: number };
}

async function settles(reservationId: string): Promise<number> {
  const { rows } = await admin.query(`select count(*)::int as n from billing.credit_entries where reservation_id = $1 and kind = 'settle'`, [reservationId]);
  return rows[0].n;
}

async function aiJob(id: string) {
  return (await admin.query(`select reservation_id, reserved_credits::int, settled_credits::int from ai.jobs where id = $1`, [id])).rows[0];
}

async function runway(opts: { timeoutMs?: number } = {}) {
  const provider = await ownProvider("runway", opts);
  const { deployments: [d] } = await ownModel({ modality: "video", deployments: [{ provider }] });
  return d;
}

let team: Team;
let photo: string;
beforeAll(async () => {
  team = await teamWithCredits(1000);
  photo = await passedPhoto(team.token, team.orgId, team.member.id);
});

describe("a talking video from start to finish (local provider)", () => {
  const cleanup: (() => Promise<unknown>)[] = [];
  afterAll(async () => {
    for (const f of cleanup) await f();
  });

  it("goes queued → validating → reserved → submitting → processing → storing → completed, live on user:<id>", async () => {
    const sb = await rtClient({ token: team.token });
    const ch = sb.channel(`user:${team.member.id}`, { config: { private: true } });
    const inbox = broadcasts(ch);
    await subscribe(ch);
    cleanup.push(() => sb.removeAllChannels());
    // 1.5 credits a second.
    const tier = await ownTier(["local/video"], { credits: 3, per_units: 2 });
    const before = await account(team.orgId);
    const id = await makeVideo(team.token, { org_id: team.orgId, tier, photo_id: photo, script: SCRIPT, title: "Hello" });
    await inbox.waitFor((m) => m.event === "video.job" && m.payload.job_id === id && m.payload.status === "completed", 20_000, "completed");
    const states = inbox.items.filter((m) => m.event === "video.job" && m.payload.job_id === id).map((m) => m.payload.status as string);
    const order = ["queued", "validating", "reserved", "submitting", "processing", "storing", "completed"];
    expect(states.filter((s, i) => s !== states[i - 1])).toEqual(order);

    expect(inbox.items.find((m) => m.event === "video.job" && m.payload.status === "completed")?.payload).toMatchObject({ progress: 100, credits: 5 });
    // Reserved for the estimate (4 s), settled on the 3 s the provider reported, the rest released.
    const job = await waitVideo(id);
    expect(job).toMatchObject({ status: "completed", est_seconds: 4, output_seconds: 3, attempt: 1, run: 1 });
    expect(job.quoted_credits).toBe((await quote(tier, 4)).credits);
    const q3 = await quote(tier, 3);
    expect(job.charged_credits).toBe(q3.credits);
    expect(job.charged_inr_minor).toBe(q3.inr_minor);
    const ai = await aiJob(job.ai_job_id!);
    expect(ai).toMatchObject({ reserved_credits: 6, settled_credits: 5 });
    expect(await reservation(ai.reservation_id)).toMatchObject({ status: "posted", amount: 6, settled_amount: 5 });
    expect(await settles(ai.reservation_id)).toBe(1);
    expect(await account(team.orgId)).toMatchObject({ balance: before.balance - 5, reserved: 0 });
    await expectLedgerConsistent(team.orgId);
  });

  it("completes only with the file in Storage: the download is the checksummed file", async () => {
    const tier = await ownTier(["local/video"], { credits: 1 });
    const id = await makeVideo(team.token, { org_id: team.orgId, tier, photo_id: photo, script: SCRIPT });
    const job = await waitVideo(id);
    expect(job.output).toMatchObject({ bucket: "ai-outputs", path: `${team.orgId}/${job.ai_job_id}/0.mp4`, mime_type: "video/mp4" });
    const dl = await call(`/api/video/jobs/${id}/download`, { token: team.token });
    expect(dl.status, dl.raw).toBe(200);
    const file = new Uint8Array(await (await fetch(dl.body.url)).arrayBuffer());
    expect(file.length).toBe(job.output!.bytes);
    expect(await sha256(file)).toBe(job.output!.sha256);
  });

  it("a video whose file cannot be stored stays storing: never completed, nothing charged", async () => {
    const d = await runway();
    await scriptFake(stack.fakeAiUrl, d.key, { mode: "ok", pollsUntilDone: 1, output: ["http://127.0.0.1:1/gone.mp4"] });
    const tier = await ownTier([d.id], { credits: 1 });
    const id = await makeVideo(team.token, { org_id: team.orgId, tier, photo_id: photo, script: SCRIPT });
    await waitVideo(id, ["storing"]);
    await new Promise((r) => setTimeout(r, 1500));
    const job = await videoJob(id);
    expect(job.status).toBe("storing");
    expect(job.charged_credits).toBeNull();
    expect((await aiJob(job.ai_job_id!)).settled_credits).toBeNull();
    expectError(await call(`/api/video/jobs/${id}/download`, { token: team.token }), 409, "not_ready");
    await call(`/api/video/jobs/${id}/cancel`, { token: team.token, method: "POST" });
  });
});

describe("tier routing, fallback and refusals (Runway fake)", () => {
  it("a submit that timed out but succeeded at the provider makes exactly one video and one charge", async () => {
    const a = await runway({ timeoutMs: 300 });
    const b = await runway();
    await scriptFake(stack.fakeAiUrl, a.key, { mode: "succeed_after_timeout", pollsUntilDone: 1 });
    const tier = await ownTier([a.id, b.id], { credits: 2 });
    const id = await makeVideo(team.token, { org_id: team.orgId, tier, photo_id: photo, script: SCRIPT });
    const job = await waitVideo(id);
    expect(job.status, JSON.stringify(job.error)).toBe("completed");
    expect(await creates(a.key)).toBe(1);
    expect(await creates(b.key)).toBe(0);
    const attempts = (await call(`/api/video/jobs/${id}`, { token: team.token })).body.attempts;
    expect(attempts).toMatchObject([{ attempt: 1, run: 1, deployment_id: a.id, status: "succeeded" }]);
    // Runway makes what was asked (the 4 s estimate): 2 credits a second.
    expect(job.charged_credits).toBe((await quote(tier, 4)).credits);
    expect(await settles((await aiJob(job.ai_job_id!)).reservation_id)).toBe(1);
  });

  it("a confirmed failure falls back along the tier's chain; only the success is charged", async () => {
    const a = await runway();
    const b = await runway();
    await scriptFake(stack.fakeAiUrl, a.key, [{ mode: "fail", pollsUntilDone: 1 }, { mode: "fail", pollsUntilDone: 1 }]);
    await scriptFake(stack.fakeAiUrl, b.key, { mode: "ok", pollsUntilDone: 1 });
    const tier = await ownTier([a.id, b.id], { credits: 2 });
    const job = await waitVideo(await makeVideo(team.token, { org_id: team.orgId, tier, photo_id: photo, script: SCRIPT }));
    expect(job.status, JSON.stringify(job.error)).toBe("completed");
    const attempts = (await call(`/api/video/jobs/${job.id}`, { token: team.token })).body.attempts;
    expect(attempts.map((x: { kind: string; deployment_id: string; status: string }) => [x.kind, x.deployment_id, x.status])).toEqual([
      ["initial", a.id, "failed"], ["retry", a.id, "failed"], ["fallback", b.id, "succeeded"],
    ]);
    expect(job.attempt).toBe(3);
    expect(job.charged_credits).toBe((await quote(tier, 4)).credits);
  });

  it("a provider's refusal ends the job: no fallback, nothing charged, no retry", async () => {
    const a = await runway();
    const b = await runway();
    await scriptFake(stack.fakeAiUrl, a.key, { mode: "refuse", pollsUntilDone: 1 });
    const tier = await ownTier([a.id, b.id], { credits: 2 });
    const before = await account(team.orgId);
    const job = await waitVideo(await makeVideo(team.token, { org_id: team.orgId, tier, photo_id: photo, script: SCRIPT }));
    expect(job).toMatchObject({ status: "failed", error: { code: "refused" }, charged_credits: 0 });
    expect(await creates(b.key)).toBe(0);
    expect(await reservation((await aiJob(job.ai_job_id!)).reservation_id)).toMatchObject({ status: "voided" });
    expect(await account(team.orgId)).toEqual(before);
    const retry = await call(`/api/video/jobs/${job.id}/retry`, { token: team.token, method: "POST" });
    expectError(retry, 409, "conflict");
  });

  it("a user's retry is a new attempt on the same job, charged once", async () => {
    const a = await runway();
    await scriptFake(stack.fakeAiUrl, a.key, [{ mode: "fail", pollsUntilDone: 1 }, { mode: "fail", pollsUntilDone: 1 }, { mode: "ok", pollsUntilDone: 1 }]);
    const tier = await ownTier([a.id], { credits: 2 });
    const failed = await waitVideo(await makeVideo(team.token, { org_id: team.orgId, tier, photo_id: photo, script: SCRIPT }));
    expect(failed).toMatchObject({ status: "failed", attempt: 2, run: 1, charged_credits: 0 });
    const firstRun = failed.ai_job_id!;
    // The two failures cooled the deployment (the gateway's shared health); the retry need not wait it out here.
    await admin.query(`delete from ai.deployment_health where deployment_id = $1`, [a.id]);
    const res = await call(`/api/video/jobs/${failed.id}/retry`, { token: team.token, method: "POST" });
    expect(res.status, res.raw).toBe(202);
    const job = await waitVideo(failed.id);
    expect(job).toMatchObject({ status: "completed", attempt: 3, run: 2 });
    const attempts = (await call(`/api/video/jobs/${job.id}`, { token: team.token })).body.attempts;
    expect(attempts.map((x: { attempt: number; run: number; status: string }) => [x.attempt, x.run, x.status])).toEqual([[1, 1, "failed"], [2, 1, "failed"], [3, 2, "succeeded"]]);
    expect(await reservation((await aiJob(firstRun)).reservation_id)).toMatchObject({ status: "voided" });
    expect(job.charged_credits).toBe((await quote(tier, 4)).credits);
    await expectLedgerConsistent(team.orgId);
  });

  it("cancel releases the credits at once and stops the task at the provider", async () => {
    const a = await runway();
    await scriptFake(stack.fakeAiUrl, a.key, { mode: "ok", pollsUntilDone: 10_000 });
    const tier = await ownTier([a.id], { credits: 2 });
    const id = await makeVideo(team.token, { org_id: team.orgId, tier, photo_id: photo, script: SCRIPT });
    const running = await waitVideo(id, ["processing"]);
    const res = await call(`/api/video/jobs/${id}/cancel`, { token: team.token, method: "POST" });
    expect(res.body).toMatchObject({ status: "canceled", charged: { credits: 0 } });
    expect(await reservation((await aiJob(running.ai_job_id!)).reservation_id)).toMatchObject({ status: "voided" });
    await eventually(async () => (await fakeCalls(stack.fakeAiUrl, `${a.key}:task`)).some((c) => c.method === "DELETE"), "the cancel at Runway");
    expect((await videoJob(id)).status).toBe("canceled");
  });

  it("a script the org's moderation flags is rejected, free", async () => {
    const mod = await teamWithCredits(100);
    const modPhoto = await passedPhoto(mod.token, mod.orgId, mod.member.id);
    await admin.query(`insert into ai.org_policies (org_id, moderate_input) values ($1, true)`, [mod.orgId]);
    const tier = await ownTier(["local/video"], { credits: 1 });
    const job = await waitVideo(await makeVideo(mod.token, { org_id: mod.orgId, tier, photo_id: modPhoto, script: { text: "FLAGME please", voice: "v" } }));
    expect(job).toMatchObject({ status: "rejected", error: { code: "input_flagged" }, charged_credits: 0 });
    expect(await account(mod.orgId)).toMatchObject({ balance: 100, reserved: 0 });
  });
});

describe("limits (the seeded plans: free makes 5 a day, 1 at a time, up to 30 s; every plan 10 an hour)", () => {
  async function teamOn(plan: "free" | "pro", credits = 1000): Promise<Team & { photo: string }> {
    const t = await createTeam("Limits", { plan: plan === "free" ? null : plan });
    await giveCredits(t.orgId, credits);
    const token = await tokenFor(t.member);
    return { ...t, token, photo: await passedPhoto(token, t.orgId, t.member.id) };
  }
  const count = async (orgId: string) => (await admin.query(`select count(*)::int as n from video.jobs where org_id = $1`, [orgId])).rows[0].n;
  const make = (t: Team, body: Record<string, unknown>) => call("/api/video/jobs", { token: t.token, json: { org_id: t.orgId, ...body } });
  const cancel = (t: Team, id: string) => call(`/api/video/jobs/${id}/cancel`, { token: t.token, method: "POST" });

  it("the plan's longest video, videos in progress at once, and videos a day", async () => {
    const t = await teamOn("free");
    const a = await runway();
    await scriptFake(stack.fakeAiUrl, a.key, { mode: "ok", pollsUntilDone: 10_000 });
    const tier = await ownTier([a.id], { credits: 1 });
    const long = await make(t, { tier, photo_id: t.photo, script: { text: "y".repeat(400), voice: "v" } });
    expectError(long, 402, "payment_required");
    expect(long.body.error.message).toMatch(/up to 30 seconds/);
    const first = await make(t, { tier, photo_id: t.photo, script: SCRIPT });
    expect(first.status, first.raw).toBe(202);
    const busy = await make(t, { tier, photo_id: t.photo, script: SCRIPT });
    expectError(busy, 429, "rate_limited");
    expect(busy.body.error.message).toMatch(/in progress/);
    await cancel(t, first.body.id);
    for (let i = 1; i < 5; i++) {
      const r = await make(t, { tier, photo_id: t.photo, script: SCRIPT });
      expect(r.status, r.raw).toBe(202);
      await cancel(t, r.body.id);
    }
    const day = await make(t, { tier, photo_id: t.photo, script: SCRIPT });
    expectError(day, 402, "payment_required");
    expect(day.body.error.message).toMatch(/5 talking videos a day/);
    expect(await count(t.orgId)).toBe(5);
  });

  it("the hourly generation bucket: the 11th in an hour is 429 with Retry-After", async () => {
    const t = await teamOn("pro");
    const tier = await ownTier(["local/video"], { credits: 1 });
    for (let i = 0; i < 10; i++) {
      const r = await make(t, { tier, photo_id: t.photo, script: SCRIPT });
      expect(r.status, r.raw).toBe(202);
      await cancel(t, r.body.id);
    }
    const eleventh = await make(t, { tier, photo_id: t.photo, script: SCRIPT });
    expectError(eleventh, 429, "rate_limited");
    expect(eleventh.body.error.message).toMatch(/10 video generations per hour/);
    expect(Number(eleventh.headers.get("retry-after"))).toBeGreaterThan(0);
    expect(await count(t.orgId)).toBe(10);
  });

  it("credits: too few for the quote is 402 and nothing is made; the same Idempotency-Key returns the first job", async () => {
    const t = await teamOn("pro", 3);
    const tier = await ownTier(["local/video"], { credits: 1 }); // 4 s: 4 credits
    const poor = await make(t, { tier, photo_id: t.photo, script: SCRIPT });
    expectError(poor, 402, "payment_required");
    expect(poor.body.error.message).toMatch(/insufficient credits: 3 available, 4 needed/);
    expect(await count(t.orgId)).toBe(0);
    const cheap = await ownTier(["local/video"], { credits: 1, per_units: 2 });
    const key = randomUUID();
    const first = await call("/api/video/jobs", { token: t.token, json: { org_id: t.orgId, tier: cheap, photo_id: t.photo, script: SCRIPT }, headers: { "idempotency-key": key } });
    expect(first.status, first.raw).toBe(202);
    const again = await call("/api/video/jobs", { token: t.token, json: { org_id: t.orgId, tier: cheap, photo_id: t.photo, script: SCRIPT }, headers: { "idempotency-key": key } });
    expect(again.status).toBe(200);
    expect(again.body.id).toBe(first.body.id);
    expect(await count(t.orgId)).toBe(1);
  });
});
