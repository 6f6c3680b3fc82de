// Admitting AI jobs, for the api's routes and for product modules (inside their own
// transaction): validate the input, apply its preset, resolve the route with the prices in
// force now, size the worst case, and let private.ai_admit_job check, rate-limit, reserve and
// record it; then enqueue the run in the same transaction. Bad input is refused here, before
// anything is reserved.
import { sql } from "kysely";
import { z } from "zod";
import type { Tx } from "../db/client.ts";
import { ApiError } from "../http/errors.ts";
import { enqueue, type JobSender } from "../jobs/queue.ts";
import { demandOf, estimatedTokens, INPUTS, inputTexts, type AnyInput, type InputOf } from "./inputs.ts";
import type { AiJob } from "./job-store.ts";
import { applyPreset } from "./presets.ts";
import { worstCase } from "./pricing.ts";
import { type Candidate, type JobRoute, loadRoute, loadRouteOf, type PriceUnit, type Tier } from "./route.ts";
import type { Modality } from "./types.ts";

/** Who a job is for: a member (userId) or an org API key (apiKeyId), in one org. */
export interface Submitter {
  orgId: string;
  userId: string | null;
  apiKeyId: string | null;
}

export interface JobRequest {
  modality: Modality;
  tier?: Tier;
  model?: string;
  input: unknown;
  /** api, openai, or the submitting module's name. */
  source: string;
  idempotencyKey?: string;
  batchId?: string;
  /**
   * A product module's own route and price, from its own tables (trusted server code only: never
   * taken from a client's body). `tier` still names the gateway tier the job counts as for the
   * org's policy and plan.
   */
  route?: ModuleRoute;
}

export interface ModuleRoute {
  /**
   * The module's provider chain: deployments in order (those not enabled or not priced are
   * skipped). Without it, the org's route for `tier` (or `model`) as for any job.
   */
  deployments?: string[];
  /**
   * The module's price: replaces the credits of every deployment's rows for this unit, so the job
   * is reserved and settled at it whichever deployment answers; provider cost stays the deployment's.
   */
  price?: { unit: PriceUnit; per_units: number; credits: number };
  /**
   * The module bills this job itself, from its own price table (decks charge per card and per
   * image): every price row's credits are 0 on each of the job's routes, so the gateway reserves
   * and settles nothing for it, while provider cost, usage, attempts and routing are recorded as
   * for any job. Trusted server code only: no route's body schema has a field that sets it.
   */
  billedByModule?: boolean;
}

/** The candidates with the module's price in place of their own credits for its unit. */
function withModulePrice(route: Candidate[], price: NonNullable<ModuleRoute["price"]>): Candidate[] {
  return route.map((c) => ({
    ...c,
    prices: c.prices.map((p) =>
      p.unit !== price.unit
        ? p
        : { ...p, per_units: price.per_units, credits: price.credits, provider_cost_micros: (p.provider_cost_micros * price.per_units) / p.per_units }),
  }));
}

/** The candidates with every price row's credits at 0 (provider cost kept): a job its module bills. */
function unbilled(route: Candidate[]): Candidate[] {
  return route.map((c) => ({ ...c, prices: c.prices.map((p) => ({ ...p, credits: 0 })) }));
}

const ENHANCE_MAX_TOKENS = 300;

/** Parses a modality's input, turning zod's complaints into the standard 400. */
export function parseInput<M extends Modality>(modality: M, input: unknown): InputOf<M> {
  const r = (INPUTS[modality] as z.ZodType).safeParse(input);
  if (!r.success) {
    const details = r.error.issues.map((i) => ({ path: ["input", ...i.path].join("."), message: i.message }));
    throw new ApiError(400, "invalid_request", "the job input failed validation", details);
  }
  return r.data as InputOf<M>;
}

/** The main route, refusing what cannot be served (unknown model, nothing priced, too large). */
async function mainRoute(tx: Tx, who: Submitter, req: JobRequest, input: AnyInput): Promise<Candidate[]> {
  if (!req.tier === !req.model) throw new ApiError(400, "invalid_request", "give either a tier or a model");
  let route = req.route?.deployments
    ? await loadRouteOf(tx, req.route.deployments, req.modality)
    : await loadRoute(tx, { orgId: who.orgId, modality: req.modality, tier: req.tier, model: req.model });
  if (req.route?.price) route = withModulePrice(route, req.route.price);
  if (req.route?.billedByModule) route = unbilled(route);
  if (route.length === 0) {
    if (req.model) {
      const { rows } = await sql<{ n: number }>`select count(*)::int as n from ai.models where id = ${req.model} and enabled`.execute(tx);
      if (!rows[0].n) throw new ApiError(404, "model_not_found", `no model "${req.model}"`);
    }
    // Fail closed: a deployment without a price for what this needs is never called.
    throw new ApiError(400, "no_route", `no priced, enabled deployment serves this ${req.modality} request`);
  }
  if (req.modality === "text") {
    const t = input as InputOf<"text">;
    const need = estimatedTokens("text", t) + t.max_tokens;
    route = route.filter((c) => c.context_window === null || c.context_window >= need);
    if (route.length === 0) throw new ApiError(400, "context_length_exceeded", "the input and max_tokens do not fit any model this request can use");
  }
  return route;
}

async function moderationRoute(tx: Tx, who: Submitter, modality: Modality): Promise<Candidate[] | undefined> {
  if (modality === "moderation" || modality === "embedding" || modality === "vision") return undefined;
  const { rows } = await sql<{ moderate_input: boolean }>`select moderate_input from ai.org_policies where org_id = ${who.orgId}`.execute(tx);
  if (!rows[0]?.moderate_input) return undefined;
  const route = await loadRoute(tx, { orgId: who.orgId, modality: "moderation", tier: "economy" });
  // The org asked for moderation: without a moderation route, run nothing rather than run unchecked.
  if (route.length === 0) throw new ApiError(503, "moderation_unavailable", "this org requires input moderation, and no moderation model is available");
  return route;
}

/**
 * Admits one job in the caller's transaction and queues its run; with `jobs: null` the caller
 * runs it inline (the OpenAI-compatible endpoint answers in the same request). Returns the row.
 */
export async function admitJob(tx: Tx, jobs: JobSender | null, who: Submitter, req: JobRequest): Promise<{ job: AiJob; created: boolean }> {
  if (req.idempotencyKey) {
    // Requests with the same key queue here until the first commits, so the later ones find its
    // job (200) rather than race it: a loser of that race would be told 202 for the first's job,
    // or fail on the unique index.
    await sql`select pg_advisory_xact_lock(hashtextextended(${`ai.job:${who.orgId}:${req.idempotencyKey}`}, 0))`.execute(tx);
    // Only the submitter's own job answers a repeat; a key someone else used is a 409 (in SQL).
    const { rows } = await sql<AiJob>`
      select * from ai.jobs
      where org_id = ${who.orgId} and idempotency_key = ${req.idempotencyKey}
        and user_id is not distinct from ${who.userId}::uuid and api_key_id is not distinct from ${who.apiKeyId}::uuid`.execute(tx);
    if (rows[0]) return { job: rows[0], created: false };
  }
  const parsed = parseInput(req.modality, req.input);
  const input = await applyPreset(tx, who.orgId, req.modality, parsed);
  if ("image_path" in input || "audio_path" in input) await assertReadable(tx, input as InputOf<"video">);
  const route: JobRoute = { main: await mainRoute(tx, who, req, input) };
  const moderation = await moderationRoute(tx, who, req.modality);
  if (moderation) route.moderation = req.route?.billedByModule ? unbilled(moderation) : moderation;
  const wantsEnhance = (input as { enhance?: boolean }).enhance === true;
  if (wantsEnhance) {
    route.enhance = await loadRoute(tx, { orgId: who.orgId, modality: "text", tier: "economy" });
    if (route.enhance.length === 0) throw new ApiError(400, "no_route", "no text model is available to enhance the prompt");
    if (req.route?.billedByModule) route.enhance = unbilled(route.enhance);
  }
  const texts = inputTexts(req.modality, input);
  const bytes = texts.reduce((n, s) => n + new TextEncoder().encode(s).length, 0);
  // A free route (every deployment priced at 0) holds nothing.
  const worst = Math.max(0, Math.ceil(
    worstCase(route.main, demandOf(req.modality, input)) +
      (route.moderation ? worstCase(route.moderation, { modality: "moderation" }) : 0) +
      (route.enhance ? worstCase(route.enhance, { modality: "text", inputBytes: bytes + 512, maxOutputTokens: ENHANCE_MAX_TOKENS }) : 0) -
      1e-9,
  ));
  const { rows } = await sql<AiJob>`
    select * from private.ai_admit_job(
      ${who.orgId}, ${who.userId}, ${who.apiKeyId}, ${req.source}, ${req.modality}, ${req.tier ?? null}, ${req.model ?? null},
      ${JSON.stringify(input)}::jsonb, ${JSON.stringify(route)}::jsonb, ${worst}, ${req.idempotencyKey ?? null}, ${req.batchId ?? null},
      ${req.modality === "video" ? "23 hours" : "6 hours"}::interval)`.execute(tx);
  const job = rows[0];
  if (jobs) await enqueue(jobs, tx, "ai.run", { job_id: job.id }, { singletonKey: job.id });
  return { job, created: true };
}

/** Admits a batch: every job or none (a batch the credits cannot cover is refused whole). */
export async function admitBatch(
  tx: Tx,
  jobs: JobSender,
  who: Submitter,
  req: Omit<JobRequest, "input" | "batchId" | "idempotencyKey"> & { inputs: unknown[]; label?: string },
): Promise<{ batchId: string; jobs: AiJob[] }> {
  const { rows } = await sql<{ id: string }>`
    select id from private.ai_open_batch(${who.orgId}, ${who.userId}, ${who.apiKeyId}, ${req.label ?? null}, ${req.inputs.length})`.execute(tx);
  const batchId = rows[0].id;
  const admitted: AiJob[] = [];
  for (const [i, input] of req.inputs.entries()) {
    try {
      admitted.push((await admitJob(tx, jobs, who, { ...req, input, batchId })).job);
    } catch (err) {
      if (err instanceof ApiError && Array.isArray(err.details)) {
        throw new ApiError(err.status, err.code, `input ${i}: ${err.message}`, (err.details as { path: string }[]).map((d) => ({ ...d, path: `inputs.${i}.${d.path.replace(/^input\.?/, "")}` })));
      }
      throw err;
    }
  }
  return { batchId, jobs: admitted };
}

/** A job may only point the provider at files its submitter can read (RLS on storage.objects). */
async function assertReadable(tx: Tx, input: { image_path?: string; audio_path?: string }): Promise<void> {
  for (const path of [input.image_path, input.audio_path]) {
    if (!path) continue;
    const slash = path.indexOf("/");
    const { rows } = await sql<{ ok: boolean }>`
      select exists (select 1 from storage.objects where bucket_id = ${path.slice(0, slash)} and name = ${path.slice(slash + 1)}) as ok`.execute(tx);
    if (!rows[0].ok) throw new ApiError(400, "invalid_request", `no readable file at ${path}`);
  }
}
