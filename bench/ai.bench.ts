// Benchmark: the AI gateway's own cost, with providers that answer at once.
//
// 1. Throughput: text jobs end to end (admission with reservation and enqueue in one
//    transaction, a pg-boss worker running the router, attempt rows, settle, events) per second,
//    from members of 50 orgs, against raw pg-boss (send in a transaction, fetch, complete) at the
//    same concurrency, in alternating rounds after a warm-up; the median ratio is reported.
//    Target >= 0.3. One hot org is printed too: its credits and rate limits are exact, so its
//    admissions take turns on the org's ledger row.
// 2. Latency: submit to completion of single jobs in long-lived worker mode (NOTIFY wakes the
//    worker), minus the provider call itself, from the job's own timestamps. Target p95 < 50 ms.
// 3. Chat: the OpenAI-compatible endpoint (served over HTTP) against the same SDK calling the
//    fake provider directly. Target: added p95 < 20 ms.
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
import { pool, waitUntil } from "./lib/concurrency.ts";
import { summarize } from "./lib/stats.ts";

const JOBS = Number(process.env.BENCH_AI_JOBS ?? 400);
const ROUNDS = Number(process.env.BENCH_AI_ROUNDS ?? 3);
const LATENCY_SAMPLES = Number(process.env.BENCH_AI_LATENCY_SAMPLES ?? 200);
const CHAT_SAMPLES = Number(process.env.BENCH_AI_CHAT_SAMPLES ?? 300);
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

export async function run(url: string) {
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
  const count = async (sql: string) => Number((await c.query(sql)).rows[0].n);

  // Pipeline round: N jobs admitted by CONCURRENCY clients, until all have succeeded.
  async function pipelineRound(n: number): Promise<number> {
    const before = await count(`select count(*) as n from ai.jobs where status = 'succeeded'`);
    const t0 = performance.now();
    await pool(n, CONCURRENCY, submitOne);
    await waitUntil(async () => (await count(`select count(*) as n from ai.jobs where status = 'succeeded'`)) >= before + n);
    const s = (performance.now() - t0) / 1000;
    const failed = await count(`select count(*) as n from ai.jobs where status <> 'succeeded'`);
    if (failed) throw new Error(`${failed} AI jobs did not succeed`);
    return n / s;
  }
  // Baseline round: the same number of bare jobs, each sent in its own transaction, fetched and completed.
  async function baselineRound(n: number): Promise<number> {
    const before = await count(`select count(*) as n from pgboss.job where name = 'bench.bare' and state = 'completed'`);
    const t0 = performance.now();
    await pool(n, CONCURRENCY, (i) => asService(db, async () => boss.send("bench.bare", { i })));
    await waitUntil(async () => (await count(`select count(*) as n from pgboss.job where name = 'bench.bare' and state = 'completed'`)) >= before + n);
    return n / ((performance.now() - t0) / 1000);
  }

  await pipelineRound(50);
  await baselineRound(50);
  const ratios: number[] = [];
  const rates: { pipeline: number; baseline: number }[] = [];
  for (let r = 0; r < ROUNDS; r++) {
    // Alternate which side goes first, so neither always runs on a warmer machine.
    const [first, second] = r % 2 === 0 ? [baselineRound, pipelineRound] : [pipelineRound, baselineRound];
    const a = await first(JOBS);
    const b = await second(JOBS);
    const round = first === baselineRound ? { baseline: a, pipeline: b } : { pipeline: a, baseline: b };
    rates.push(round);
    ratios.push(round.pipeline / round.baseline);
  }
  const ratio = [...ratios].sort((x, y) => x - y)[Math.floor(ratios.length / 2)];
  spread = false;
  const hotOrg = await pipelineRound(JOBS);
  spread = true;

  // Latency: one job at a time; added = (finished_at - created_at) - the provider call.
  const latencies: number[] = [];
  for (let i = 0; i < LATENCY_SAMPLES; i++) {
    const id = await submitOne(i);
    await waitUntil(async () => (await c.query(`select status from ai.jobs where id = $1`, [id])).rows[0].status === "succeeded", 10_000);
    const { rows } = await c.query(
      `select extract(epoch from (j.finished_at - j.created_at)) * 1000 as total_ms,
              (select coalesce(sum(a.latency_ms), 0) from ai.attempts a where a.job_id = j.id) as provider_ms
       from ai.jobs j where j.id = $1`, [id]);
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
  for (let i = 0; i < 20; i++) {
    await ask(viaPlinth);
    await ask(direct);
  }
  const plinthMs: number[] = [];
  const directMs: number[] = [];
  for (let i = 0; i < CHAT_SAMPLES; i++) {
    for (const [client, out] of [[viaPlinth, plinthMs], [direct, directMs]] as const) {
      const t0 = performance.now();
      await ask(client);
      out.push(performance.now() - t0);
    }
  }
  const chatPlinth = summarize(plinthMs);
  const chatDirect = summarize(directMs);
  const chatAddedP95 = chatPlinth.p95 - chatDirect.p95;

  server.close();
  await boss.stop({ graceful: false });
  await dbPool.end();
  await c.end();
  await fake.close();

  const verdict = (ok: boolean) => (ok ? "met" : "MISSED");
  const met = ratio >= TARGETS.throughput && latency.p95 < TARGETS.latencyP95Ms && chatAddedP95 < TARGETS.chatAddedP95Ms;
  console.log(`\nAI gateway: ${JOBS} text jobs per round, ${ROUNDS} rounds, concurrency ${CONCURRENCY}, zero-latency providers`);
  for (const [i, r] of rates.entries()) console.log(`  round ${i + 1}: gateway ${r.pipeline.toFixed(0)} jobs/s, raw pg-boss ${r.baseline.toFixed(0)} jobs/s, ratio ${(r.pipeline / r.baseline).toFixed(3)}`);
  console.log(`  throughput ratio (median) ${ratio.toFixed(3)}  (target >= ${TARGETS.throughput})  ${verdict(ratio >= TARGETS.throughput)}`);
  console.log(`  one hot org: gateway ${hotOrg.toFixed(0)} jobs/s (its admissions and settles take turns on its credit account)`);
  console.log(`  added latency submit -> done: p50 ${latency.p50.toFixed(1)} ms, p95 ${latency.p95.toFixed(1)} ms  (target p95 < ${TARGETS.latencyP95Ms} ms)  ${verdict(latency.p95 < TARGETS.latencyP95Ms)}`);
  console.log(`  chat via Plinth: p50 ${chatPlinth.p50.toFixed(1)} ms, p95 ${chatPlinth.p95.toFixed(1)} ms; direct p50 ${chatDirect.p50.toFixed(1)} ms, p95 ${chatDirect.p95.toFixed(1)} ms`);
  console.log(`  chat added p95 ${chatAddedP95.toFixed(1)} ms  (target < ${TARGETS.chatAddedP95Ms} ms)  ${verdict(chatAddedP95 < TARGETS.chatAddedP95Ms)}`);
  return { name: "ai", ratio, target: TARGETS.throughput, met, higherIsBetter: true };
}
