// Benchmark: the AI gateway's own cost, with providers that answer at once.
//
// 1. Throughput: text jobs end to end (admission with reservation and enqueue in one
//    transaction, a pg-boss worker running the router, attempt rows, settle, events) per second,
//    from members of 50 orgs, against raw pg-boss (send in a transaction, fetch, complete) at the
//    same concurrency, in alternating rounds after a warm-up of 50 jobs a side
//    (bench/lib/rounds.ts); the median ratio is reported. Every round, each side's jobs must all
//    have succeeded (counted by their ids). Target >= 0.3. One hot org is printed too: its
//    credits and rate limits are exact, so its admissions take turns on the org's ledger row.
// 2. Latency: submit to completion of single jobs in long-lived worker mode (NOTIFY wakes the
//    worker), minus the provider call itself, from the job's own timestamps. Target p95 < 50 ms.
// 3. Chat: the OpenAI-compatible endpoint (served over HTTP) against the same SDK calling the
//    fake provider directly, in alternating rounds after a warm-up of 20 requests a side; every
//    request must be answered on both sides. Target: the median over the rounds of the added
//    p95 (Plinth's p95 - direct p95) < 20 ms.
// Runs in Node, in-process: the same shared code the Deno worker and functions run.
import { serve } from "@hono/node-server";
import type { AddressInfo } from "node:net";
import OpenAI from "openai";
import pg from "pg";
import type { PgBoss } from "pg-boss";
import { createApiApp, createApiDeps } from "../functions/api/app.ts";
import { createAdapterRegistry } from "../functions/_shared/ai/adapters.ts";
import { aiHandlers } from "../functions/_shared/ai/jobs.ts";
import { admitJob } from "../functions/_shared/ai/submit.ts";
import { asService, createDb } from "../functions/_shared/db/client.ts";
import { createBoss, ensureQueues } from "../functions/_shared/jobs/queue.ts";
import { workOptions } from "../functions/_shared/jobs/runner.ts";
import { userToken } from "../scripts/lib/keys.ts";
import { startFakeAi } from "../scripts/fakes/ai.ts";
import { tallyBy, timedJobs, waitUntil } from "./lib/concurrency.ts";
import { alternatingRounds, type Round, roundLines } from "./lib/rounds.ts";
import { summarize } from "./lib/stats.ts";
import { type BenchResult, scaleParam } from "./lib/verdict.ts";

const SCALE = {
  jobs: scaleParam("jobs a side per round", "BENCH_AI_JOBS", 400),
  rounds: scaleParam("rounds", "BENCH_AI_ROUNDS", 3),
  latencySamples: scaleParam("single jobs timed", "BENCH_AI_LATENCY_SAMPLES", 200),
  chatSamples: scaleParam("chat requests a side per round", "BENCH_AI_CHAT_SAMPLES", 150),
};
const JOBS = SCALE.jobs.value;
const ROUNDS = SCALE.rounds.value;
const LATENCY_SAMPLES = SCALE.latencySamples.value;
const CHAT_SAMPLES = SCALE.chatSamples.value;
const WARM_UP = { jobs: 50, chat: 20 };
/** ai.run's slots in the worker (jobs/catalog.ts). */
const CONCURRENCY = 8;
const ORGS = 50;
const orgId = (i: number) => `0a100000-0000-4000-8000-${(i + 1).toString(16).padStart(12, "0")}`;
const userId = (i: number) => `0a100000-0000-4000-9000-${(i + 1).toString(16).padStart(12, "0")}`;
const ORG = orgId(0);
const USER = userId(0);
const SECRET = "bench-jwt-secret-bench-jwt-secret-0000000000";
const TARGETS = { throughput: 0.3, latencyP95Ms: 50, chatAddedP95Ms: 20 };

async function seed(c: pg.Client, fakeUrl: string) {
  for (let i = 0; i < ORGS; i++) {
    await c.query(`insert into auth.users (instance_id, id, aud, role, email, encrypted_password, raw_app_meta_data, raw_user_meta_data, created_at, updated_at)
                   values ('00000000-0000-0000-0000-000000000000', $1, 'authenticated', 'authenticated', $2, '', '{}', '{}', now(), now())`, [userId(i), `bench${i}@ai.test`]);
    await c.query(`insert into public.orgs (id, slug, name, kind, created_by) values ($1, $2, 'Bench AI', 'team', $3)`, [orgId(i), `bench-ai-${i}`, userId(i)]);
    await c.query(`insert into public.org_members (org_id, user_id, role) values ($1, $2, 'owner')`, [orgId(i), userId(i)]);
  }
  // A plan without AI rate limits, so the bench measures the gateway, not the bucket.
  await c.query(`insert into billing.plans (key, name, description, is_default, sort) values ('bench', 'Bench', 'bench', false, 9)`);
  await c.query(`insert into billing.entitlements (plan_key, key, enabled, limit_value) values
                 ('bench', 'ai_requests_per_minute', true, null), ('bench', 'ai_member_requests_per_minute', true, null),
                 ('bench', 'ai_premium_tier', true, null), ('bench', 'ai_monthly_credit_cap', true, null)`);
  for (let i = 0; i < ORGS; i++) {
    await c.query(`insert into billing.subscriptions (id, org_id, stripe_customer_id, status, plan_key, current_period_end)
                   values ($1, $2, $3, 'active', 'bench', now() + interval '30 days')`, [`sub_bench_${i}`, orgId(i), `cus_bench_${i}`]);
    await c.query(`select billing.grant_credits($1, 'manual', 1000000000, 'bench')`, [orgId(i)]);
  }
  await c.query(`update ai.providers set enabled = true where id = 'local'`);
  // The chat deployment: the OpenAI wire format against the in-process fake.
  await c.query(`insert into ai.providers (id, kind, base_url, api_key_secret, timeout_ms) values ('bench-openai', 'openai', $1, 'BENCH_OPENAI_KEY', 10000)`, [`${fakeUrl}/openai/v1`]);
  await c.query(`insert into ai.models (id, modality, capabilities, context_window, max_output) values ('bench-chat', 'text', '{stream}', 100000, 4096)`);
  await c.query(`insert into ai.deployments (id, model_id, provider_id, provider_model) values ('bench-openai/chat', 'bench-chat', 'bench-openai', 'bench-chat')`);
  await c.query(`insert into ai.prices (deployment_id, unit, per_units, provider_cost_micros, credits, effective_from) values
                 ('bench-openai/chat', 'input_token', 1000000, 0, 100, now() - interval '1 day'),
                 ('bench-openai/chat', 'output_token', 1000000, 0, 100, now() - interval '1 day')`);
}

export async function run(url: string): Promise<BenchResult> {
  const fake = await startFakeAi();
  const c = new pg.Client({ connectionString: url });
  await c.connect();
  await seed(c, fake.url);
  const { db, pool: dbPool } = createDb(url, 12);
  const env = { BENCH_OPENAI_KEY: "bench" };
  const adapters = createAdapterRegistry(db, env);
  const boss: PgBoss = createBoss(url, { role: "worker", max: 6 });
  await boss.start();
  await ensureQueues(boss);
  const sender = { ready: async () => boss };
  const handlers = aiHandlers({
    db, adapters, storage: { url: "http://127.0.0.1:1", serviceRoleKey: "" },
    schedule: async (name, jobId, delayMs) => void (await boss.send(name, { job_id: jobId }, { singletonKey: jobId, startAfter: new Date(Date.now() + delayMs) })),
  });
  // Both sides poll and fetch exactly as the long-lived worker does (runner.ts).
  const options = workOptions(CONCURRENCY, 1);
  await boss.work("ai.run", options, async (jobs) => {
    await Promise.all(jobs.map(async (job) => boss.complete("ai.run", job.id, (await handlers["ai.run"](job.data)) as object)));
  });
  await boss.createQueue("bench.bare", { notify: true });
  await boss.work("bench.bare", options, async (jobs) => {
    await Promise.all(jobs.map((job) => boss.complete("bench.bare", job.id, null)));
  });

  let spread = true;
  const submitOne = (i: number) => asService(db, async (tx) => {
    const o = spread ? i % ORGS : 0;
    const who = { orgId: orgId(o), userId: userId(o), apiKeyId: null };
    return (await admitJob(tx, sender, who, { modality: "text", model: "local-text", source: "bench", input: { prompt: `Write a tagline number ${i}`, max_tokens: 32 } })).job.id;
  });
  // Pipeline round: N jobs admitted by CONCURRENCY clients, until all have finished.
  const pipelineRound = (n: number) => timedJobs(n, CONCURRENCY, submitOne, tallyBy(c, `select count(*) filter (where status in ('succeeded', 'failed', 'canceled')) as finished,
    count(*) filter (where status = 'succeeded') as ok from ai.jobs where id = any($1::uuid[])`));
  // Baseline round: the same number of bare jobs, each sent in its own transaction, fetched and completed.
  const baselineRound = (n: number) => timedJobs(n, CONCURRENCY, (i) => asService(db, async () => (await boss.send("bench.bare", { i }))!),
    tallyBy(c, `select count(*) filter (where state in ('completed', 'failed', 'cancelled')) as finished,
      count(*) filter (where state = 'completed') as ok from pgboss.job where name = 'bench.bare' and id = any($1::uuid[])`));

  const jobs = (round: Round) => (round.warmUp ? WARM_UP.jobs : JOBS);
  const throughput = await alternatingRounds({
    rounds: ROUNDS,
    pipeline: (round) => pipelineRound(jobs(round)),
    baseline: (round) => baselineRound(jobs(round)),
    expect: (round) => ({ jobs: jobs(round), succeeded: jobs(round) }),
    compare: (p, b) => ({ ratio: p.rate / b.rate }),
  });
  const failures = [...throughput.unequal];
  spread = false;
  const hotOrg = await pipelineRound(JOBS);
  spread = true;
  if (hotOrg.work.succeeded !== JOBS) failures.push(`hot org: ${hotOrg.work.succeeded} of ${JOBS} jobs succeeded`);

  // Latency: one job at a time; added = (finished_at - created_at) - the provider call.
  const latencies: number[] = [];
  for (let i = 0; i < LATENCY_SAMPLES; i++) {
    const id = await submitOne(i);
    await waitUntil(async () => ["succeeded", "failed", "canceled"].includes((await c.query(`select status from ai.jobs where id = $1`, [id])).rows[0].status), 10_000);
    const { rows } = await c.query(
      `select j.status, extract(epoch from (j.finished_at - j.created_at)) * 1000 as total_ms,
              (select coalesce(sum(a.latency_ms), 0) from ai.attempts a where a.job_id = j.id) as provider_ms
       from ai.jobs j where j.id = $1`, [id]);
    if (rows[0].status !== "succeeded") failures.push(`latency sample ${i}: the job ${rows[0].status}`);
    latencies.push(Number(rows[0].total_ms) - Number(rows[0].provider_ms));
  }
  const latency = summarize(latencies);

  // Chat: the SDK against the endpoint (HTTP) and against the fake directly.
  const api = createApiApp(createApiDeps({
    SUPABASE_DB_URL: url, SUPABASE_URL: "http://127.0.0.1:1", PLINTH_JWT_SECRET: SECRET, PLINTH_DB_POOL_SIZE: "8", ...env,
  }));
  const server = serve({ fetch: api.fetch, port: 0, hostname: "127.0.0.1" });
  await new Promise((r) => server.once("listening", r));
  const apiUrl = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  const token = await userToken(SECRET, { id: USER, email: "bench@ai.test" }, { expiresIn: "1h" });
  const viaPlinth = new OpenAI({ baseURL: `${apiUrl}/api/ai/v1`, apiKey: token, maxRetries: 0, defaultHeaders: { "x-plinth-org": ORG } });
  const direct = new OpenAI({ baseURL: `${fake.url}/openai/v1`, apiKey: "bench", maxRetries: 0 });
  const ask = (client: OpenAI) => client.chat.completions.create({ model: "bench-chat", messages: [{ role: "user", content: "hi" }], max_tokens: 16 });
  /** n chat requests from one client, one at a time: their latencies, and how many were answered. */
  const chat = (client: OpenAI) => async (round: Round) => {
    const n = round.warmUp ? WARM_UP.chat : CHAT_SAMPLES;
    const ms: number[] = [];
    let answered = 0;
    for (let i = 0; i < n; i++) {
      const t0 = performance.now();
      const res = await ask(client);
      ms.push(performance.now() - t0);
      if (res.choices?.[0]?.message?.content) answered++;
    }
    return { ...summarize(ms), work: { requests: n, answered } };
  };
  const chatRounds = await alternatingRounds({
    rounds: ROUNDS,
    pipeline: chat(viaPlinth),
    baseline: chat(direct),
    expect: (round) => ({ requests: round.warmUp ? WARM_UP.chat : CHAT_SAMPLES, answered: round.warmUp ? WARM_UP.chat : CHAT_SAMPLES }),
    compare: (p, b) => ({ "added p50 ms": p.p50 - b.p50, "added p95 ms": p.p95 - b.p95 }),
  });
  failures.push(...chatRounds.unequal.map((u) => `chat ${u}`));
  const chatAddedP95 = chatRounds.medians["added p95 ms"];

  server.close();
  await boss.stop({ graceful: false });
  await dbPool.end();
  await c.end();
  await fake.close();

  console.log(`\nAI gateway: ${JOBS} text jobs a side per round, ${ROUNDS} alternating rounds, concurrency ${CONCURRENCY}, zero-latency providers`);
  for (const l of roundLines(throughput, (x) => `gateway ${x.pipeline.rate.toFixed(0)} jobs/s, raw pg-boss ${x.baseline.rate.toFixed(0)} jobs/s`)) console.log(l);
  console.log(`  one hot org: gateway ${hotOrg.rate.toFixed(0)} jobs/s (its admissions and settles take turns on its credit account)`);
  console.log(`  added latency submit -> done: p50 ${latency.p50.toFixed(1)} ms, p95 ${latency.p95.toFixed(1)} ms`);
  console.log(`  chat via Plinth against the SDK calling the fake directly, ${CHAT_SAMPLES} requests a side per round:`);
  for (const l of roundLines(chatRounds, (x) => `via Plinth p50 ${x.pipeline.p50.toFixed(1)} ms, p95 ${x.pipeline.p95.toFixed(1)} ms; direct p50 ${x.baseline.p50.toFixed(1)} ms, p95 ${x.baseline.p95.toFixed(1)} ms`)) console.log(l);
  return {
    name: "ai",
    scale: Object.values(SCALE),
    gates: [
      { label: "throughput median ratio", value: throughput.medians.ratio, op: ">=", target: TARGETS.throughput },
      { label: "added latency p95 ms", value: latency.p95, op: "<", target: TARGETS.latencyP95Ms },
      { label: "chat added p95 ms (median)", value: chatAddedP95, op: "<", target: TARGETS.chatAddedP95Ms },
    ],
    failures,
  };
}
