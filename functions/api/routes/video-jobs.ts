// Talking videos: make one (checked and queued in one transaction with its start), follow it
// (GET, or Realtime event video.job on user:<id>), download it by signed URL, cancel it, retry
// it after a failure; tiers and the cost calculator (video.quote).
import { createRoute, type OpenAPIHono, z } from "@hono/zod-openapi";
import { sql } from "kysely";
import { signDownload } from "../../_shared/content/storage.ts";
import { asUser } from "../../_shared/db/client.ts";
import { ApiError } from "../../_shared/http/errors.ts";
import { enqueue } from "../../_shared/jobs/queue.ts";
import type { ApiEnv } from "../context.ts";
import { requestMeta, requireAuth, requireUser } from "../middleware.ts";
import { commonErrors, UuidParam } from "../schemas.ts";
import { body, Cursor, json, Json, Limit, limitErrors, storageOf } from "./video-common.ts";

const Status = z.enum(["queued", "validating", "rejected", "reserved", "submitting", "processing", "unknown", "storing", "completed",
  "failed_attempt", "failed", "canceled"]);
const TierKey = z.string().regex(/^[a-z][a-z0-9_-]{1,31}$/);
const IdempotencyKey = z.string().min(1).max(200).regex(/^[\x21-\x7e]+$/);
const Text = (max: number) => z.string().min(1).max(max).refine((s) => !s.includes("\u0000"), "must not contain NUL characters");

const JobBody = z.object({
  org_id: z.string().uuid(),
  tier: TierKey,
  photo_id: z.string().uuid(),
  script: z.object({ text: Text(5000), voice: Text(100), language: z.string().regex(/^[a-z]{2}(-[A-Z]{2})?$/).optional() }).strict().optional(),
  audio_id: z.string().uuid().optional(),
  title: Text(100).optional(),
  ratio: z.enum(["16:9", "9:16", "1:1", "4:5"]).default("9:16"),
  resolution: z.enum(["480p", "720p", "1080p"]).default("720p"),
}).strict().refine((b) => !b.script !== !b.audio_id, "give a script or an audio_id (a voice track), not both").openapi("VideoJobRequest");

const JobView = z.object({
  id: z.string().uuid(),
  org_id: z.string().uuid(),
  user_id: z.string().uuid().nullable(),
  tier: z.string(),
  photo_id: z.string().uuid().nullable(),
  audio_id: z.string().uuid().nullable(),
  title: z.string().nullable(),
  script: Json,
  ratio: z.string(),
  resolution: z.string(),
  status: Status,
  attempt: z.number().int(),
  run: z.number().int(),
  progress: z.number().int(),
  progress_message: z.string().nullable(),
  est_seconds: z.number(),
  quote: z.object({ credits: z.number().int(), inr_minor: z.number().int(), usd_cents: z.number().int() }),
  charged: z.object({ credits: z.number().int(), inr_minor: z.number().int(), usd_cents: z.number().int() }).nullable(),
  output_seconds: z.number().nullable(),
  output: Json,
  error: Json,
  ai_job_id: z.string().uuid().nullable(),
  created_at: z.string(),
  started_at: z.string().nullable(),
  finished_at: z.string().nullable(),
}).openapi("VideoJob");
type Job = z.infer<typeof JobView>;

const COLUMNS = sql`id, org_id, user_id, tier, photo_id, audio_id, title, script, ratio, resolution, status, attempt, run, progress,
  progress_message, est_seconds::float8 as est_seconds, output_seconds::float8 as output_seconds, output, error, ai_job_id,
  created_at, started_at, finished_at,
  jsonb_build_object('credits', quoted_credits, 'inr_minor', quoted_inr_minor, 'usd_cents', quoted_usd_cents) as quote,
  case when charged_credits is null then null
       else jsonb_build_object('credits', charged_credits, 'inr_minor', charged_inr_minor, 'usd_cents', charged_usd_cents) end as charged`;

const Attempt = z.object({
  attempt: z.number().int(), run: z.number().int(), kind: z.string(), deployment_id: z.string(), provider_id: z.string(), status: z.string(),
  error_class: z.string().nullable(), error_code: z.string().nullable(), started_at: z.string(), finished_at: z.string().nullable(),
});

const Quote = z.object({
  tier: z.string(), unit: z.string(), seconds: z.number(), inr_minor: z.number().int(), usd_cents: z.number().int(), credits: z.number().int(),
  price_id: z.string().uuid(), max_seconds: z.number().int(),
}).openapi("VideoQuote");

const byId = { params: z.object({ job_id: UuidParam }) };

const routes = {
  create: createRoute({
    method: "post", path: "/video/jobs", security: [{ bearer: [] }], middleware: [requireAuth, requireUser] as const,
    summary: "Make a talking video from a photo that passed validation and a script (or voice track). Checked now (tier, length, plan limits, the hourly bucket, credits); the worker validates it and holds the quote's credits; follow it on user:<id>, event video.job.",
    request: { headers: z.object({ "idempotency-key": IdempotencyKey.optional() }), body: body(JobBody) },
    responses: { 202: json(JobView, "Queued"), 200: json(JobView, "The same Idempotency-Key again: the first job"), ...commonErrors, ...limitErrors },
  }),
  list: createRoute({
    method: "get", path: "/video/jobs", security: [{ bearer: [] }], middleware: [requireAuth] as const,
    summary: "Your talking videos (all of an org's with billing.manage), newest first.",
    request: { query: z.object({ org_id: z.string().uuid().optional(), status: Status.optional(), tier: TierKey.optional(), before: Cursor, limit: Limit }) },
    responses: { 200: json(z.object({ jobs: z.array(JobView) }).openapi("VideoJobList"), "A page of jobs"), ...commonErrors },
  }),
  get: createRoute({
    method: "get", path: "/video/jobs/{job_id}", security: [{ bearer: [] }], middleware: [requireAuth] as const,
    summary: "A talking video's status, progress, quote and charge, and its provider calls.",
    request: byId,
    responses: { 200: json(JobView.extend({ attempts: z.array(Attempt) }).openapi("VideoJobDetails"), "The job"), ...commonErrors },
  }),
  download: createRoute({
    method: "get", path: "/video/jobs/{job_id}/download", security: [{ bearer: [] }], middleware: [requireAuth] as const,
    summary: "A signed URL of the finished video (valid one hour).",
    request: byId,
    responses: { 200: json(z.object({ url: z.string(), expires_in: z.number().int(), bytes: z.number().int(), sha256: z.string() }).openapi("VideoDownload"), "The URL"), ...commonErrors },
  }),
  cancel: createRoute({
    method: "post", path: "/video/jobs/{job_id}/cancel", security: [{ bearer: [] }], middleware: [requireAuth] as const,
    summary: "Cancel a talking video that has not ended: its credits are released and the provider is asked to stop.",
    request: byId,
    responses: { 200: json(JobView, "The job, canceled (or as it ended)"), ...commonErrors },
  }),
  retry: createRoute({
    method: "post", path: "/video/jobs/{job_id}/retry", security: [{ bearer: [] }], middleware: [requireAuth] as const,
    summary: "Retry a failed talking video: a new attempt on the same job, never a second charge (a provider's refusal cannot be retried).",
    request: byId,
    responses: { 202: json(JobView, "Queued again"), ...commonErrors, ...limitErrors },
  }),
  tiers: createRoute({
    method: "get", path: "/video/tiers", security: [{ bearer: [] }], middleware: [requireAuth] as const,
    summary: "The quality tiers, each with its provider chain, maximum length and the price of one second (or image).",
    responses: { 200: json(z.object({ tiers: z.array(z.object({ key: z.string(), name: z.string(), description: z.string(), unit: z.string(), max_seconds: z.number().int(), providers: z.array(z.string()), per_second: Quote })) }).openapi("VideoTiers"), "Tiers"), ...commonErrors },
  }),
  calculator: createRoute({
    method: "post", path: "/video/cost-calculator", security: [{ bearer: [] }], middleware: [requireAuth] as const,
    summary: "What N seconds cost in each tier (or one), in INR, USD and credits: video.quote.",
    request: { body: body(z.object({ seconds: z.number().positive().max(300), tier: TierKey.optional() }).strict().openapi("VideoCostRequest")) },
    responses: { 200: json(z.object({ quotes: z.array(Quote) }).openapi("VideoCosts"), "The quotes"), ...commonErrors },
  }),
};

type Tx = Parameters<Parameters<typeof asUser>[2]>[0];
const one = async (tx: Tx, id: string) => (await sql<Job>`select ${COLUMNS} from video.jobs where id = ${id}`.execute(tx)).rows[0];

export function registerVideoJobs(app: OpenAPIHono<ApiEnv>) {
  app.openapi(routes.create, async (c) => {
    const b = c.req.valid("json");
    const key = c.req.valid("header")["idempotency-key"];
    const { db, jobs } = c.get("deps");
    // The job and its start commit together, or neither does.
    const r = await asUser(db, c.get("principal").claims, async (tx) => {
      const { rows: [made] } = await sql<{ job_id: string; created: boolean }>`
        select * from video.create_job(${b.org_id}, ${b.tier}, ${b.photo_id}, ${b.script ? JSON.stringify(b.script) : null}::jsonb,
                                       ${b.audio_id ?? null}::uuid, ${b.title ?? null}, ${b.ratio}, ${b.resolution}, ${key ?? null})`.execute(tx);
      if (made.created) await enqueue(jobs, tx, "video.start", { job_id: made.job_id }, { singletonKey: made.job_id });
      return { job: await one(tx, made.job_id), created: made.created };
    }, requestMeta(c));
    return c.json(r.job, r.created ? 202 : 200);
  });

  app.openapi(routes.list, async (c) => {
    const q = c.req.valid("query");
    const rows = await asUser(c.get("deps").db, c.get("principal").claims, async (tx) =>
      (await sql<Job>`
        select ${COLUMNS} from video.jobs
        where (${q.org_id ?? null}::uuid is null or org_id = ${q.org_id ?? null})
          and (${q.status ?? null}::text is null or status = ${q.status ?? null})
          and (${q.tier ?? null}::text is null or tier = ${q.tier ?? null})
          and (${q.before ?? null}::timestamptz is null or created_at < ${q.before ?? null})
        order by created_at desc limit ${q.limit}`.execute(tx)).rows);
    return c.json({ jobs: rows }, 200);
  });

  app.openapi(routes.get, async (c) => {
    const { job_id } = c.req.valid("param");
    const r = await asUser(c.get("deps").db, c.get("principal").claims, async (tx) => {
      const job = await one(tx, job_id);
      const attempts = job ? (await sql<z.infer<typeof Attempt>>`select * from video.job_attempts(${job_id})`.execute(tx)).rows : [];
      return job && { ...job, attempts };
    });
    if (!r) throw new ApiError(404, "not_found", "video job not found");
    return c.json(r, 200);
  });

  app.openapi(routes.download, async (c) => {
    const { job_id } = c.req.valid("param");
    const job = await asUser(c.get("deps").db, c.get("principal").claims, (tx) => one(tx, job_id));
    if (!job) throw new ApiError(404, "not_found", "video job not found");
    const out = job.output as { bucket: string; path: string; bytes: number; sha256: string } | null;
    if (job.status !== "completed" || !out) throw new ApiError(409, "not_ready", `the video is ${job.status}; it can be downloaded once completed`);
    const name = `${(job.title ?? "talking-video").replace(/[^A-Za-z0-9._ -]+/g, "-")}.mp4`;
    const url = await signDownload(storageOf(c), out.bucket, out.path, 3600, name);
    return c.json({ url, expires_in: 3600, bytes: out.bytes, sha256: out.sha256 }, 200);
  });

  app.openapi(routes.cancel, async (c) => {
    const { job_id } = c.req.valid("param");
    const job = await asUser(c.get("deps").db, c.get("principal").claims, async (tx) => {
      await sql`select video.cancel_job(${job_id})`.execute(tx);
      return await one(tx, job_id);
    }, requestMeta(c));
    return c.json(job, 200);
  });

  app.openapi(routes.retry, async (c) => {
    const { job_id } = c.req.valid("param");
    const { db, jobs } = c.get("deps");
    const job = await asUser(db, c.get("principal").claims, async (tx) => {
      await sql`select video.retry_job(${job_id})`.execute(tx);
      await enqueue(jobs, tx, "video.start", { job_id }, { singletonKey: job_id });
      return await one(tx, job_id);
    }, requestMeta(c));
    return c.json(job, 202);
  });

  app.openapi(routes.tiers, async (c) => {
    const tiers = await asUser(c.get("deps").db, c.get("principal").claims, async (tx) =>
      (await sql<{ key: string; name: string; description: string; unit: string; max_seconds: number; providers: string[]; per_second: z.infer<typeof Quote> }>`
        select t.key, t.name, t.description, t.unit, t.max_seconds,
               array(select d.deployment_id from video.tier_deployments d where d.tier_key = t.key order by d.position) as providers,
               (select to_jsonb(q) || jsonb_build_object('seconds', 1) from video.quote(t.key, 1) q) as per_second
        from video.tiers t
        where exists (select 1 from video.tier_prices p where p.tier_key = t.key and p.effective_from <= now())
        order by t.position, t.key`.execute(tx)).rows);
    return c.json({ tiers }, 200);
  });

  app.openapi(routes.calculator, async (c) => {
    const b = c.req.valid("json");
    const quotes = await asUser(c.get("deps").db, c.get("principal").claims, async (tx) =>
      (await sql<z.infer<typeof Quote>>`
        select q.tier, q.unit, q.seconds::float8 as seconds, q.inr_minor, q.usd_cents, q.credits, q.price_id, q.max_seconds
        from video.tiers t, video.quote(t.key, least(${b.seconds}::numeric, t.max_seconds)) q
        where (${b.tier ?? null}::text is null and ${b.seconds} <= t.max_seconds
               and exists (select 1 from video.tier_prices p where p.tier_key = t.key and p.effective_from <= now()))
           or t.key = ${b.tier ?? null}
        order by t.position, t.key`.execute(tx)).rows);
    if (b.tier && quotes.length === 0) throw new ApiError(400, "invalid_request", `no tier "${b.tier}"`);
    if (b.tier && b.seconds > quotes[0].max_seconds) throw new ApiError(400, "invalid_request", `the ${b.tier} tier makes videos of up to ${quotes[0].max_seconds} seconds`);
    return c.json({ quotes }, 200);
  });
}
