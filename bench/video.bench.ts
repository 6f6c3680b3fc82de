// Benchmark: the talking-video module's own cost on top of the AI gateway, with providers that
// answer at once.
//
// 1. Job overhead: talking videos end to end per second — a photo uploaded through the Storage
//    API, validated (storage event through the outbox, magic bytes and pixels, the face check as
//    an AI job whose outcome comes back through the outbox), the video job made, started
//    (validated and admitted), its first provider failing so it falls back once, the output
//    stored — against the gateway's bare job path in the same run: video jobs admitted straight
//    to the local provider and stored. Same concurrency, alternating rounds after a warm-up of 8
//    a side (bench/lib/rounds.ts), the median ratio. Every round, each side's jobs must all have
//    completed (counted by their ids), and every video must have fallen back exactly once.
//    Target >= 0.5.
// 2. Validator: the time to check a 100 MB MP4 (moov after the media data, the worst case) for a
//    platform, read from Storage by byte ranges; and the same check on the bytes in memory.
// Runs in Node, in-process: the shared code the Deno worker runs, a pg-boss worker per queue as
// the long-lived worker polls them, the outbox dispatched in a loop, and the Storage stand-in.
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { sql } from "kysely";
import pg from "pg";
import type { PgBoss } from "pg-boss";
import { createAdapterRegistry } from "../functions/_shared/ai/adapters.ts";
import { aiHandlers } from "../functions/_shared/ai/jobs.ts";
import { encodePng } from "../functions/_shared/ai/providers/local-media.ts";
import { admitJob } from "../functions/_shared/ai/submit.ts";
import { asService, asUser, type Claims, createDb } from "../functions/_shared/db/client.ts";
import { dispatchBatch } from "../functions/_shared/events/dispatcher.ts";
import { createBoss, enqueue, ensureQueues } from "../functions/_shared/jobs/queue.ts";
import { workOptions } from "../functions/_shared/jobs/runner.ts";
import { createVideoConsumer } from "../functions/_shared/video/consumer.ts";
import { videoHandlers } from "../functions/_shared/video/jobs.ts";
import { probeMp4 } from "../functions/_shared/video/mp4.ts";
import { checkAgainstSpec, type PlatformSpec } from "../functions/_shared/video/platform-check.ts";
import { putObject } from "../functions/_shared/content/storage.ts";
import { rangeReader } from "../functions/_shared/video/storage.ts";
import { gotrueClaims, projectKeys } from "../scripts/lib/keys.ts";
import { startFakeAi } from "../scripts/fakes/ai.ts";
import { startGateway } from "../scripts/platform/gateway.ts";
import { craftMp4 } from "../tests/helpers/mp4.ts";
import { freePort } from "../tests/setup/free-port.ts";
import { tallyBy, timedJobs, waitUntil } from "./lib/concurrency.ts";
import { alternatingRounds, type Round, roundLines } from "./lib/rounds.ts";
import { summarize } from "./lib/stats.ts";
import { type BenchResult, scaleParam } from "./lib/verdict.ts";

const SCALE = {
  jobs: scaleParam("jobs a side per round", "BENCH_VIDEO_JOBS", 40),
  rounds: scaleParam("rounds", "BENCH_VIDEO_ROUNDS", 3),
};
const JOBS = SCALE.jobs.value;
const ROUNDS = SCALE.rounds.value;
const WARM_UP = 8;
const VALIDATOR_RUNS = Number(process.env.BENCH_VIDEO_VALIDATOR_RUNS ?? 20);
const CONCURRENCY = 8;
const ORGS = 8;
const TARGET = 0.5;
const SECRET = "bench-jwt-secret-bench-jwt-secret-0000000000";
const orgId = (i: number) => `0b100000-0000-4000-8000-${(i + 1).toString(16).padStart(12, "0")}`;
const userId = (i: number) => `0b100000-0000-4000-9000-${(i + 1).toString(16).padStart(12, "0")}`;
const PHOTO = encodePng(480, 600, [200, 150, 120], [50, 60, 80]);

async function seed(c: pg.Client, fakeUrl: string) {
  await c.query(`insert into billing.plans (key, name, is_default, sort) values ('bench', 'Bench', false, 9)`);
  await c.query(`insert into billing.entitlements (plan_key, key, enabled, limit_value) values
                 ('bench', 'ai_requests_per_minute', true, null), ('bench', 'ai_member_requests_per_minute', true, null),
                 ('bench', 'ai_premium_tier', true, null), ('bench', 'ai_monthly_credit_cap', true, null),
                 ('bench', 'video_jobs_per_day', true, null), ('bench', 'video_max_seconds', true, null),
                 ('bench', 'video_concurrent_jobs', true, null), ('bench', 'video_generations_per_hour', true, null)`);
  for (let i = 0; i < ORGS; i++) {
    await c.query(`insert into auth.users (instance_id, id, aud, role, email, encrypted_password, raw_app_meta_data, raw_user_meta_data, created_at, updated_at)
                   values ('00000000-0000-0000-0000-000000000000', $1, 'authenticated', 'authenticated', $2, '', '{}', '{}', now(), now())`, [userId(i), `bench${i}@video.test`]);
    await c.query(`insert into public.orgs (id, slug, name, kind, created_by) values ($1, $2, 'Bench video', 'team', $3)`, [orgId(i), `bench-video-${i}`, userId(i)]);
    await c.query(`insert into public.org_members (org_id, user_id, role) values ($1, $2, 'owner')`, [orgId(i), userId(i)]);
    await c.query(`insert into billing.subscriptions (id, org_id, stripe_customer_id, status, plan_key, current_period_end)
                   values ($1, $2, $3, 'active', 'bench', now() + interval '30 days')`, [`sub_vbench_${i}`, orgId(i), `cus_vbench_${i}`]);
    await c.query(`select billing.grant_credits($1, 'manual', 1000000000, 'bench')`, [orgId(i)]);
  }
  await c.query(`update ai.providers set enabled = true where id = 'local'`);
  // A first provider that refuses every create at once (422: not its fault, no cooldown): each video falls back once.
  await c.query(`insert into ai.providers (id, kind, base_url, api_key_secret, timeout_ms) values ('bench-runway', 'runway', $1, 'BENCH_RUNWAY_KEY', 10000)`, [`${fakeUrl}/runway`]);
  await c.query(`insert into ai.models (id, modality) values ('bench-video', 'video')`);
  await c.query(`insert into ai.deployments (id, model_id, provider_id, provider_model) values ('bench-runway/video', 'bench-video', 'bench-runway', 'bench-video')`);
  await c.query(`insert into ai.prices (deployment_id, unit, per_units, provider_cost_micros, credits, effective_from) values ('bench-runway/video', 'video_second', 1, 0, 1, now() - interval '1 day')`);
  await c.query(`insert into video.tiers (key, name, ai_tier, max_seconds) values ('bench', 'Bench', 'balanced', 300)`);
  await c.query(`insert into video.tier_deployments (tier_key, position, deployment_id) values ('bench', 0, 'bench-runway/video'), ('bench', 1, 'local/video')`);
  await c.query(`insert into video.tier_prices (tier_key, per_units, inr_minor, usd_cents, credits, effective_from) values ('bench', 100, 1500, 18, 18, now() - interval '1 day')`);
}

export async function run(url: string): Promise<BenchResult> {
  const fake = await startFakeAi();
  const dataDir = fs.mkdtempSync(path.join(os.tmpdir(), "plinth-video-bench-"));
  const gateway = await startGateway({ port: await freePort(), dbUrl: url, jwtSecret: SECRET, dataDir, functionsUpstream: "http://127.0.0.1:1", log: () => {} });
  const { serviceRoleKey } = await projectKeys(SECRET);
  const storage = { url: gateway.url, serviceRoleKey };
  // A pool: the concurrent clients of a round each wait on their own rows.
  const c = new pg.Pool({ connectionString: url, max: CONCURRENCY + 2 });
  const seeder = await c.connect();
  await seed(seeder as unknown as pg.Client, fake.url);
  seeder.release();
  // Every create of the failing deployment answers 422 at once.
  await fetch(`${fake.url}/__fake/script`, { method: "POST", headers: { "content-type": "application/json" }, body: JSON.stringify({ key: "runway:bench-video", steps: Array.from({ length: JOBS * (ROUNDS + 2) }, () => ({ mode: "bad_request" })) }) });

  const { db, pool: dbPool } = createDb(url, 16);
  const adapters = createAdapterRegistry(db, { BENCH_RUNWAY_KEY: "bench" });
  const boss: PgBoss = createBoss(url, { role: "worker", max: 8 });
  await boss.start();
  await ensureQueues(boss);
  const sender = { ready: async () => boss };
  const ai = {
    adapters, storage, pollMs: 1,
    schedule: async (name: "ai.run" | "ai.poll", jobId: string, delayMs: number) =>
      void (await boss.send(name, { job_id: jobId }, { singletonKey: jobId, startAfter: new Date(Date.now() + delayMs) })),
  };
  const handlers = { ...aiHandlers({ db, ...ai }), ...videoHandlers({ db, storage, jobs: sender, ai }) } as Record<string, (data: unknown) => Promise<unknown>>;
  for (const [name, workers] of [["ai.run", 8], ["ai.poll", 4], ["video.validate_upload", 4], ["video.start", 4]] as const) {
    await boss.work(name, workOptions(workers, 1), async (jobs) => {
      await Promise.all(jobs.map(async (job) => boss.complete(name, job.id, (await handlers[name](job.data)) as object)));
    });
  }
  // The outbox, dispatched as the worker's pump does, to the consumer this module adds.
  let dispatching = true;
  const consumers = [createVideoConsumer(sender)];
  const dispatcher = (async () => {
    while (dispatching) {
      const r = await dispatchBatch(db, consumers).catch(() => ({ events: 0 }));
      if (!r.events) await new Promise((res) => setTimeout(res, 2));
    }
  })();

  const count = async (sql: string) => Number((await c.query(sql)).rows[0].n);
  let serial = 0;

  // One talking video: upload, wait for its validation, make the job; its id.
  async function oneVideo(i: number): Promise<string> {
    const o = i % ORGS;
    const name = `${orgId(o)}/bench/${serial++}.png`;
    await putObject(storage, "photos", name, PHOTO, "image/png");
    let photo: string | undefined;
    await waitUntil(async () => {
      const r = (await c.query(`select id, status from video.uploads where path = $1`, [name])).rows[0];
      if (r?.status === "rejected") throw new Error(`the bench photo was rejected`);
      photo = r?.status === "passed" ? r.id : undefined;
      return !!photo;
    });
    // As the member through the api: the job and its start in one transaction.
    return await asUser(db, gotrueClaims({ id: userId(o), email: `bench${o}@video.test` }) as Claims, async (tx) => {
      const { job_id } = (await sql<{ job_id: string }>`
        select job_id from video.create_job(${orgId(o)}, 'bench', ${photo}, ${JSON.stringify({ text: "Hello from the bench, twice as fast.", voice: "v" })}::jsonb)`.execute(tx)).rows[0];
      await enqueue(sender, tx, "video.start", { job_id }, { singletonKey: job_id });
      return job_id;
    });
  }

  const videoRound = (n: number) => timedJobs(n, CONCURRENCY, oneVideo, tallyBy(c, `select count(*) filter (where status in ('completed', 'failed', 'rejected', 'canceled')) as finished,
    count(*) filter (where status = 'completed') as ok from video.jobs where id = any($1::uuid[])`));

  const bareRound = (n: number) => timedJobs(n, CONCURRENCY, (i) => asService(db, async (tx) => {
    const o = i % ORGS;
    return (await admitJob(tx, sender, { orgId: orgId(o), userId: userId(o), apiKeyId: null }, {
      modality: "video", model: "local-video", source: "bench",
      input: { prompt: "A talking portrait", script: { text: "Hello from the bench, twice as fast.", voice: "v" }, duration_seconds: 4 },
    })).job.id;
  }), tallyBy(c, `select count(*) filter (where status in ('succeeded', 'failed', 'canceled')) as finished,
    count(*) filter (where status = 'succeeded') as ok from ai.jobs where id = any($1::uuid[])`));

  const jobs = (round: Round) => (round.warmUp ? WARM_UP : JOBS);
  const r = await alternatingRounds({
    rounds: ROUNDS,
    pipeline: (round) => videoRound(jobs(round)),
    baseline: (round) => bareRound(jobs(round)),
    expect: (round) => ({ jobs: jobs(round), succeeded: jobs(round) }),
    compare: (v, b) => ({ ratio: v.rate / b.rate }),
  });
  const videos = WARM_UP + ROUNDS * JOBS;
  const fallbacks = await count(`select count(*) as n from ai.attempts a join ai.jobs j on j.id = a.job_id where j.source = 'video' and a.kind = 'fallback'`);
  const failures = [...r.unequal, ...(fallbacks === videos ? [] : [`${fallbacks} fallbacks for ${videos} videos (one each expected)`])];

  // Validator: a 100 MB MP4 with its moov at the end, in Storage.
  const big = craftMp4({ width: 1080, height: 1920, seconds: 60, fps: 30, moovFirst: false, mdatBytes: 100 * 1024 * 1024 });
  await putObject(storage, "ai-outputs", `${orgId(0)}/bench/big.mp4`, big, "video/mp4");
  const { rows: [spec] } = await c.query<PlatformSpec>(`select *, max_seconds::float8 as max_seconds, min_seconds::float8 as min_seconds, min_fps::float8 as min_fps, max_fps::float8 as max_fps
                                                        from video.current_platform_specs where platform = 'instagram_reels'`);
  const viaStorage: number[] = [];
  const inMemory: number[] = [];
  for (let i = 0; i < VALIDATOR_RUNS; i++) {
    let t0 = performance.now();
    const reader = (await rangeReader(storage, "ai-outputs", `${orgId(0)}/bench/big.mp4`))!;
    const violations = checkAgainstSpec(await probeMp4(reader.size, reader.read), spec);
    viaStorage.push(performance.now() - t0);
    if (violations.map((v) => v.rule).join() !== "faststart") throw new Error(`unexpected violations: ${JSON.stringify(violations)}`);
    t0 = performance.now();
    checkAgainstSpec(await probeMp4(big.length, (s, e) => Promise.resolve(big.subarray(s, e))), spec);
    inMemory.push(performance.now() - t0);
  }
  const storageMs = summarize(viaStorage);
  const memoryMs = summarize(inMemory);

  dispatching = false;
  await dispatcher;
  await boss.stop({ graceful: false });
  await dbPool.end();
  await c.end();
  await gateway.close();
  await fake.close();
  fs.rmSync(dataDir, { recursive: true, force: true });

  console.log("\nvideo: talking videos end to end (upload validated with a face check, job, one fallback, output stored) vs the gateway's bare video job");
  for (const l of roundLines(r, (x) => `${x.pipeline.rate.toFixed(1)} videos/s vs ${x.baseline.rate.toFixed(1)} bare jobs/s`)) console.log(l);
  console.log(`  fallbacks made: ${fallbacks} for ${videos} videos (one per video)`);
  console.log(`  validator, 100 MB MP4 (moov last) from Storage by ranges: p50 ${storageMs.p50.toFixed(1)} ms, p95 ${storageMs.p95.toFixed(1)} ms; in memory p50 ${memoryMs.p50.toFixed(2)} ms`);
  return {
    name: "video",
    scale: Object.values(SCALE),
    gates: [{ label: "median ratio", value: r.medians.ratio, op: ">=", target: TARGET }],
    failures,
  };
}
