// Benchmark: deck generation against the same provider calls made one after another.
//
// 1. Generation: a 20-card deck with images (2 text calls for the outline and the structure, 20
//    for the cards, 19 images) against fakes that answer each call after 50 ms (the OpenAI fake,
//    the openai SDK inside the gateway's adapter). The pipeline side is what the api and the
//    worker run: the generation admitted as the member (the whole deck reserved), then the
//    deck.generate handler's code in this process (every call admitted and run through the AI
//    gateway, 8 at a time, each card stored and announced in order, each image copied into the
//    deck's assets and verified, the deck written, both stages settled). The baseline, in the same
//    run, is the same 41 provider calls made directly with the openai SDK, one after another.
//    Alternating rounds after a warm-up (bench/lib/rounds.ts); the ratio is pipeline seconds over
//    baseline seconds, the median of the rounds. Both sides must make exactly 22 text and 19
//    image calls per deck (counted by the fake), and every pipeline deck must complete with 20
//    cards, 19 images and the price table's credits. Target <= 1.0.
// 2. Exports, for the record (no target): seconds per 20-card deck per format, from lane B's
//    bench/deck-exports.ts (exportTimings).
// Runs in Node, in-process, on a throwaway database with the Storage stand-in.
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import OpenAI from "openai";
import pg from "pg";
import { createAdapterRegistry } from "../functions/_shared/ai/adapters.ts";
import { asUser, type Claims, createDb } from "../functions/_shared/db/client.ts";
import { admitGeneration } from "../functions/_shared/deck/generation/admission.ts";
import { contentCall, outlineCall, structureCall } from "../functions/_shared/deck/generation/prompts.ts";
import { runGeneration } from "../functions/_shared/deck/generation/stages.ts";
import { GenerationRequest } from "../functions/_shared/deck/params.ts";
import type { JobSender } from "../functions/_shared/jobs/queue.ts";
import { gotrueClaims, projectKeys } from "../scripts/lib/keys.ts";
import { startFakeAi } from "../scripts/fakes/ai.ts";
import { startGateway } from "../scripts/platform/gateway.ts";
import { freePort } from "../tests/setup/free-port.ts";
import { alternatingRounds, roundLines } from "./lib/rounds.ts";
import { type BenchResult, scaleParam } from "./lib/verdict.ts";
import { exportTimings, timingLines } from "./deck-exports.ts";

const SCALE = {
  cards: scaleParam("cards per deck", "BENCH_DECK_CARDS", 20),
  rounds: scaleParam("rounds", "BENCH_DECK_ROUNDS", 3),
};
const CARDS = SCALE.cards.value;
const ROUNDS = SCALE.rounds.value;
const LATENCY_MS = 50;
const TARGET = 1.0;
const SECRET = "bench-jwt-secret-bench-jwt-secret-0000000000";
const ORG = "0b100000-0000-4000-8000-0000000dec01";
const USER = { id: "0b100000-0000-4000-9000-0000000dec01", email: "bench@deck.test" };
const TEXT_KEY = "openai:bench-deck-text";
const IMAGE_KEY = "openai:bench-deck-image";
const PROMPT = "A quarterly business review for a chain of bakeries: sales, new shops, the sourdough line, hiring, and next quarter's plan.";
const REQUEST = GenerationRequest.parse({ inputText: PROMPT, numCards: CARDS, orgId: ORG, imageOptions: { source: "aiGenerated", tier: "basic" } });
const IMAGES = CARDS === 1 ? 1 : CARDS - 1;
const PRICE = CARDS * 3 + IMAGES * 2;

/** A JobSender that queues nothing: the bench runs deck.generate's code itself, and exportAs is not asked for. */
const noQueue: JobSender = { ready: async () => ({ send: async () => null }) as never };

async function seed(c: pg.Client, fakeUrl: string) {
  await c.query(`insert into billing.plans (key, name, is_default, sort) values ('bench', 'Bench', false, 9)`);
  await c.query(`insert into billing.entitlements (plan_key, key, enabled, limit_value) values
                 ('bench', 'ai_requests_per_minute', true, null), ('bench', 'ai_member_requests_per_minute', true, null),
                 ('bench', 'ai_premium_tier', true, null), ('bench', 'ai_monthly_credit_cap', true, null), ('bench', 'storage_gb', true, null)`);
  await c.query(`insert into auth.users (instance_id, id, aud, role, email, encrypted_password, raw_app_meta_data, raw_user_meta_data, created_at, updated_at)
                 values ('00000000-0000-0000-0000-000000000000', $1, 'authenticated', 'authenticated', $2, '', '{}', '{}', now(), now())`, [USER.id, USER.email]);
  await c.query(`insert into public.orgs (id, slug, name, kind, created_by) values ($1, 'bench-deck', 'Bench deck', 'team', $2)`, [ORG, USER.id]);
  await c.query(`insert into public.org_members (org_id, user_id, role) values ($1, $2, 'owner')`, [ORG, USER.id]);
  await c.query(`insert into billing.subscriptions (id, org_id, stripe_customer_id, status, plan_key, current_period_end)
                 values ('sub_deck_bench', $1, 'cus_deck_bench', 'active', 'bench', now() + interval '30 days')`, [ORG]);
  await c.query(`select billing.grant_credits($1, 'manual', 1000000000, 'bench')`, [ORG]);
  await c.query(`insert into ai.providers (id, kind, base_url, api_key_secret, timeout_ms) values ('bench-openai', 'openai', $1, 'BENCH_OPENAI_KEY', 10000)`, [`${fakeUrl}/openai/v1`]);
  await c.query(`insert into ai.models (id, modality, capabilities, context_window, max_output) values
                 ('bench-deck-text', 'text', '{json}', 128000, 16000), ('bench-deck-image', 'image', '{}', null, null)`);
  await c.query(`insert into ai.deployments (id, model_id, provider_id, provider_model) values
                 ('bench-openai/text', 'bench-deck-text', 'bench-openai', 'bench-deck-text'), ('bench-openai/image', 'bench-deck-image', 'bench-openai', 'bench-deck-image')`);
  await c.query(`insert into ai.prices (deployment_id, unit, per_units, provider_cost_micros, credits, effective_from) values
                 ('bench-openai/text', 'input_token', 1000000, 150000, 100, now() - interval '1 day'),
                 ('bench-openai/text', 'output_token', 1000000, 600000, 400, now() - interval '1 day'),
                 ('bench-openai/image', 'image', 1, 40000, 2, now() - interval '1 day')`);
  await c.query(`insert into ai.org_routes (org_id, modality, tier, position, deployment_id) values
                 ($1, 'text', 'balanced', 0, 'bench-openai/text'), ($1, 'image', 'economy', 0, 'bench-openai/image')`, [ORG]);
}

export async function run(url: string): Promise<BenchResult> {
  const fake = await startFakeAi();
  const dataDir = fs.mkdtempSync(path.join(os.tmpdir(), "plinth-deck-bench-"));
  const gateway = await startGateway({ port: await freePort(), dbUrl: url, jwtSecret: SECRET, dataDir, functionsUpstream: "http://127.0.0.1:1", log: () => {} });
  const { serviceRoleKey } = await projectKeys(SECRET);
  const storage = { url: gateway.url, serviceRoleKey };
  const c = new pg.Client({ connectionString: url });
  await c.connect();
  await seed(c, fake.url);
  const { db, pool } = createDb(url, 16);
  const deps = {
    db, storage, jobs: noQueue, concurrency: 8,
    ai: { adapters: createAdapterRegistry(db, { BENCH_OPENAI_KEY: "bench" }), storage, pollMs: 10, schedule: async () => {} },
  };
  const control = async (p: string, body?: unknown) => {
    const res = await fetch(`${fake.url}/__fake/${p}`, body === undefined ? {} : { method: "POST", headers: { "content-type": "application/json" }, body: JSON.stringify(body) });
    return await res.json();
  };
  // Every call of a side answers after 50 ms; the calls each side made are counted by the fake.
  const slow = async (key: string, n: number) => control("script", { key, steps: Array.from({ length: n }, () => ({ mode: "ok", delayMs: LATENCY_MS })) });
  const calls = async (key: string) => ((await (await fetch(`${fake.url}/__fake/calls?key=${encodeURIComponent(key)}`)).json()) as unknown[]).length;
  const prepare = async () => {
    await control("reset", {});
    await slow(TEXT_KEY, 2 + CARDS);
    await slow(IMAGE_KEY, IMAGES);
  };
  const failures: string[] = [];

  const pipeline = async () => {
    await prepare();
    const t0 = performance.now();
    const { generationId } = await asUser(db, gotrueClaims(USER) as Claims, (tx) =>
      admitGeneration(tx, noQueue, { orgId: ORG, userId: USER.id, apiKeyId: null }, REQUEST));
    await runGeneration(deps, generationId);
    const seconds = (performance.now() - t0) / 1000;
    const { rows: [g] } = await c.query(`select status, cards_done, images_done, credits_deducted::int as credits from deck.generations where id = $1`, [generationId]);
    if (g.status !== "completed" || g.cards_done !== CARDS || g.images_done !== IMAGES || g.credits !== PRICE) {
      const { rows: [why] } = await c.query(`select image_error from deck.generation_cards where generation_id = $1 and image_status = 'failed' limit 1`, [generationId]);
      failures.push(`a pipeline deck ended ${JSON.stringify(g)} (${why?.image_error ?? "no image error"}); expected completed, ${CARDS} cards, ${IMAGES} images, ${PRICE} credits`);
    }
    return { seconds, work: { text: await calls(TEXT_KEY), image: await calls(IMAGE_KEY) } };
  };

  // The baseline: the same calls (the pipeline's own prompts), straight to the provider, in order.
  const sdk = new OpenAI({ apiKey: "bench", baseURL: `${fake.url}/openai/v1`, maxRetries: 0 });
  const outline = { title: "Bench deck", cards: Array.from({ length: CARDS }, (_, i) => ({ title: `Card ${i + 1}`, points: ["A point", "Another point"] })) };
  const chat = (t: { system: string; prompt: string; max_tokens: number }) =>
    sdk.chat.completions.create({
      model: "bench-deck-text", max_tokens: t.max_tokens, response_format: { type: "json_object" },
      messages: [{ role: "system", content: t.system }, { role: "user", content: t.prompt }],
    });
  const baseline = async () => {
    await prepare();
    const t0 = performance.now();
    await chat(outlineCall(REQUEST, CARDS));
    await chat(structureCall(outline, undefined));
    for (let i = 0; i < CARDS; i++) {
      await chat(contentCall(REQUEST, { deckTitle: outline.title, position: i, total: CARDS, outline: outline.cards[i], layout: i === 0 ? "title" : "bullets" }));
    }
    for (let i = 0; i < IMAGES; i++) await sdk.images.generate({ model: "bench-deck-image", prompt: `Card ${i + 1}: a point, another point` });
    const seconds = (performance.now() - t0) / 1000;
    return { seconds, work: { text: await calls(TEXT_KEY), image: await calls(IMAGE_KEY) } };
  };

  try {
    const r = await alternatingRounds({
      rounds: ROUNDS,
      pipeline,
      baseline,
      expect: () => ({ text: 2 + CARDS, image: IMAGES }),
      compare: (p, b) => ({ ratio: p.seconds / b.seconds }),
    });
    console.log(`\ndeck generation: a ${CARDS}-card deck with ${IMAGES} images, every provider call answering after ${LATENCY_MS} ms`);
    console.log(`  pipeline: admitted as the member, deck.generate's code in process (8 calls at a time through the AI gateway)`);
    console.log(`  baseline: the same ${2 + CARDS} chat and ${IMAGES} image calls with the openai SDK, one after another`);
    for (const l of roundLines(r, (x) => `pipeline ${x.pipeline.seconds.toFixed(2)} s, baseline ${x.baseline.seconds.toFixed(2)} s`)) console.log(l);

    // Exports (lane B's measurement), for the record.
    try {
      const t = await exportTimings({ dbUrl: url, storage, runs: 3 });
      console.log("\ndeck exports: seconds per 20-card deck (every layout, 4 pictures), render + store, through the worker's step");
      for (const l of timingLines(t)) console.log(l);
    } catch (err) {
      console.log(`\ndeck exports: not measured (${(err as Error).message.split("\n")[0]})`);
    }
    return {
      name: "deck",
      scale: [SCALE.cards, SCALE.rounds],
      gates: [{ label: "generation pipeline/baseline seconds", value: r.medians.ratio, op: "<=", target: TARGET }],
      failures: [...r.unequal, ...failures],
    };
  } finally {
    await c.end();
    await pool.end();
    await fake.close();
    await gateway.close();
    fs.rmSync(dataDir, { recursive: true, force: true });
  }
}
