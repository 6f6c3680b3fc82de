// AI jobs and batches: submit (202, then follow on Realtime or by GET), read, list, cancel.
// Submission admits the job in one transaction with its run (see _shared/ai/submit.ts).
import { createRoute, type OpenAPIHono, z } from "@hono/zod-openapi";
import { sql } from "kysely";
import { admitBatch, admitJob } from "../../_shared/ai/submit.ts";
import type { AiJob } from "../../_shared/ai/job-store.ts";
import { asUser } from "../../_shared/db/client.ts";
import { ApiError } from "../../_shared/http/errors.ts";
import { submitterFor } from "../ai-caller.ts";
import type { ApiEnv } from "../context.ts";
import { requestMeta, requireAuth } from "../middleware.ts";
import { commonErrors, json, UuidParam } from "../schemas.ts";

const Modality = z.enum(["text", "image", "video", "audio", "embedding", "moderation", "vision"]);
const Tier = z.enum(["economy", "balanced", "premium"]);
const ModelName = z.string().min(1).max(100).regex(/^[a-z0-9][a-z0-9._:/-]*$/);
const IdempotencyKey = z.string().min(1).max(200).regex(/^[\x21-\x7e]+$/);

const errors402 = {
  402: { description: "Not enough credits, or a plan or spend limit", content: { "application/json": { schema: z.object({ error: z.object({ code: z.string(), message: z.string() }) }) } } },
  429: { description: "Rate limited; see Retry-After", content: { "application/json": { schema: z.object({ error: z.object({ code: z.string(), message: z.string() }) }) } } },
};

const JobBody = z.object({
  org_id: z.string().uuid().optional(),
  modality: Modality,
  tier: Tier.optional(),
  model: ModelName.optional(),
  input: z.record(z.string(), z.unknown()).openapi({ description: "Per modality: see docs/ai.md" }),
}).strict().openapi("AiJobRequest");

const JobView = z.object({
  id: z.string().uuid(),
  org_id: z.string().uuid(),
  batch_id: z.string().uuid().nullable(),
  source: z.string(),
  modality: Modality,
  tier: Tier.nullable(),
  model_id: z.string().nullable(),
  status: z.enum(["queued", "running", "succeeded", "failed", "canceled"]),
  progress: z.number().int(),
  progress_message: z.string().nullable(),
  output: z.unknown().nullable(),
  error: z.unknown().nullable(),
  reserved_credits: z.number().int(),
  settled_credits: z.number().int().nullable(),
  created_at: z.string(),
  finished_at: z.string().nullable(),
}).openapi("AiJob");

function view(j: AiJob & { progress_message?: string | null; finished_at?: string | null }): z.infer<typeof JobView> {
  return {
    id: j.id, org_id: j.org_id, batch_id: j.batch_id, source: j.source, modality: j.modality, tier: j.tier, model_id: j.model_id,
    status: j.status, progress: j.progress, progress_message: j.progress_message ?? null, output: j.output, error: j.error,
    reserved_credits: j.reserved_credits, settled_credits: j.settled_credits, created_at: j.created_at, finished_at: j.finished_at ?? null,
  };
}

const submitRoute = createRoute({
  method: "post",
  path: "/ai/jobs",
  summary: "Submit an AI job: credits for its worst case are reserved now, the job runs in the worker, and its status goes live on Realtime (user:<id>, event ai.job).",
  security: [{ bearer: [] }],
  middleware: [requireAuth] as const,
  request: {
    headers: z.object({ "idempotency-key": IdempotencyKey.optional() }),
    body: { required: true, content: { "application/json": { schema: JobBody } } },
  },
  responses: { 202: json(JobView, "Admitted; the job is queued"), 200: json(JobView, "The same Idempotency-Key again: the first job"), ...commonErrors, ...errors402 },
});

const getRoute = createRoute({
  method: "get",
  path: "/ai/jobs/{job_id}",
  summary: "A job's status, progress and output (files in the ai-outputs bucket, with a signed URL valid one hour).",
  security: [{ bearer: [] }],
  middleware: [requireAuth] as const,
  request: { params: z.object({ job_id: UuidParam }) },
  responses: { 200: json(JobView, "The job"), ...commonErrors },
});

const listRoute = createRoute({
  method: "get",
  path: "/ai/jobs",
  summary: "Jobs you may see (your own; all of an org's with billing.manage), newest first.",
  security: [{ bearer: [] }],
  middleware: [requireAuth] as const,
  request: {
    query: z.object({
      org_id: z.string().uuid().optional(),
      status: z.enum(["queued", "running", "succeeded", "failed", "canceled"]).optional(),
      batch_id: z.string().uuid().optional(),
      before: z.string().datetime({ offset: true }).optional().openapi({ description: "Cursor: created_at of the last job of the previous page" }),
      limit: z.coerce.number().int().min(1).max(100).default(20),
    }),
  },
  responses: { 200: json(z.object({ jobs: z.array(JobView) }).openapi("AiJobList"), "A page of jobs"), ...commonErrors },
});

const cancelRoute = createRoute({
  method: "post",
  path: "/ai/jobs/{job_id}/cancel",
  summary: "Cancel a job that has not ended; its credits are released at once.",
  security: [{ bearer: [] }],
  middleware: [requireAuth] as const,
  request: { params: z.object({ job_id: UuidParam }) },
  responses: { 200: json(JobView, "The job, canceled (or as it ended)"), ...commonErrors },
});

const BatchBody = z.object({
  org_id: z.string().uuid().optional(),
  modality: Modality,
  tier: Tier.optional(),
  model: ModelName.optional(),
  label: z.string().min(1).max(200).optional(),
  inputs: z.array(z.record(z.string(), z.unknown())).min(1).max(100),
}).strict().openapi("AiBatchRequest");

const BatchView = z.object({
  batch_id: z.string().uuid(),
  org_id: z.string().uuid(),
  label: z.string().nullable(),
  total: z.number().int(),
  succeeded: z.number().int(),
  failed: z.number().int(),
  canceled: z.number().int(),
  pending: z.number().int(),
  progress: z.number().int(),
  held_credits: z.number().int(),
  spent_credits: z.number().int(),
  canceled_at: z.string().nullable(),
}).openapi("AiBatch");

const batchRoute = createRoute({
  method: "post",
  path: "/ai/batches",
  summary: "Submit N inputs as one batch: all are admitted (and reserved) or none is.",
  security: [{ bearer: [] }],
  middleware: [requireAuth] as const,
  request: { body: { required: true, content: { "application/json": { schema: BatchBody } } } },
  responses: { 202: json(z.object({ batch_id: z.string().uuid(), job_ids: z.array(z.string().uuid()) }).openapi("AiBatchAdmitted"), "Admitted"), ...commonErrors, ...errors402 },
});

const batchGetRoute = createRoute({
  method: "get",
  path: "/ai/batches/{batch_id}",
  summary: "A batch's progress: the sum of its jobs'.",
  security: [{ bearer: [] }],
  middleware: [requireAuth] as const,
  request: { params: z.object({ batch_id: UuidParam }) },
  responses: { 200: json(BatchView, "The batch"), ...commonErrors },
});

const batchCancelRoute = createRoute({
  method: "post",
  path: "/ai/batches/{batch_id}/cancel",
  summary: "Cancel every job of a batch that has not ended.",
  security: [{ bearer: [] }],
  middleware: [requireAuth] as const,
  request: { params: z.object({ batch_id: UuidParam }) },
  responses: { 200: json(z.object({ canceled: z.number().int() }).openapi("AiBatchCanceled"), "How many jobs were canceled"), ...commonErrors },
});

/** Adds a signed URL (one hour) to each stored file of a job the caller can see. */
async function withSignedUrls(c: { get: (k: "deps") => ApiEnv["Variables"]["deps"] }, job: AiJob): Promise<AiJob> {
  const files = (job.output as { files?: { bucket: string; path: string }[] } | null)?.files;
  const { cfg } = c.get("deps");
  if (!files?.length || !cfg.SUPABASE_SERVICE_ROLE_KEY) return job;
  const signed = await Promise.all(files.map(async (f) => {
    const res = await fetch(`${cfg.SUPABASE_URL}/storage/v1/object/sign/${f.bucket}/${f.path}`, {
      method: "POST",
      headers: { authorization: `Bearer ${cfg.SUPABASE_SERVICE_ROLE_KEY}`, apikey: cfg.SUPABASE_SERVICE_ROLE_KEY!, "content-type": "application/json" },
      body: JSON.stringify({ expiresIn: 3600 }),
    }).catch(() => undefined);
    const body = res?.ok ? ((await res.json()) as { signedURL?: string }) : undefined;
    return { ...f, signed_url: body?.signedURL ? `${cfg.SUPABASE_URL}/storage/v1${body.signedURL}` : null };
  }));
  return { ...job, output: { ...job.output, files: signed } };
}

export function registerAi(app: OpenAPIHono<ApiEnv>) {
  app.openapi(submitRoute, async (c) => {
    const body = c.req.valid("json");
    const { db, jobs } = c.get("deps");
    const key = c.req.valid("header")["idempotency-key"];
    const { job, created } = await asUser(db, c.get("principal").claims, async (tx) => {
      const who = await submitterFor(c, tx, body.org_id);
      return await admitJob(tx, jobs, who, { modality: body.modality, tier: body.tier, model: body.model, input: body.input, source: "api", idempotencyKey: key });
    }, requestMeta(c));
    return c.json(view(job), created ? 202 : 200);
  });

  app.openapi(getRoute, async (c) => {
    const { job_id } = c.req.valid("param");
    const { db } = c.get("deps");
    const job = await asUser(db, c.get("principal").claims, async (tx) =>
      (await sql<AiJob>`select * from ai.jobs where id = ${job_id}`.execute(tx)).rows[0]);
    if (!job) throw new ApiError(404, "not_found", "AI job not found");
    return c.json(view(await withSignedUrls(c, job)), 200);
  });

  app.openapi(listRoute, async (c) => {
    const q = c.req.valid("query");
    const { db } = c.get("deps");
    const rows = await asUser(db, c.get("principal").claims, async (tx) =>
      (await sql<AiJob>`
        select * from ai.jobs
        where (${q.org_id ?? null}::uuid is null or org_id = ${q.org_id ?? null})
          and (${q.status ?? null}::text is null or status = ${q.status ?? null})
          and (${q.batch_id ?? null}::uuid is null or batch_id = ${q.batch_id ?? null})
          and (${q.before ?? null}::timestamptz is null or created_at < ${q.before ?? null})
        order by created_at desc limit ${q.limit}`.execute(tx)).rows);
    return c.json({ jobs: rows.map(view) }, 200);
  });

  app.openapi(cancelRoute, async (c) => {
    const { job_id } = c.req.valid("param");
    const { db } = c.get("deps");
    const job = await asUser(db, c.get("principal").claims, async (tx) =>
      (await sql<AiJob>`select * from ai.cancel_job(${job_id})`.execute(tx)).rows[0], requestMeta(c));
    return c.json(view(job), 200);
  });

  app.openapi(batchRoute, async (c) => {
    const body = c.req.valid("json");
    const { db, jobs } = c.get("deps");
    const r = await asUser(db, c.get("principal").claims, async (tx) => {
      const who = await submitterFor(c, tx, body.org_id);
      return await admitBatch(tx, jobs, who, { modality: body.modality, tier: body.tier, model: body.model, inputs: body.inputs, label: body.label, source: "api" });
    }, requestMeta(c));
    return c.json({ batch_id: r.batchId, job_ids: r.jobs.map((j) => j.id) }, 202);
  });

  app.openapi(batchGetRoute, async (c) => {
    const { batch_id } = c.req.valid("param");
    const { db } = c.get("deps");
    const b = await asUser(db, c.get("principal").claims, async (tx) =>
      (await sql<z.infer<typeof BatchView>>`
        select batch_id, org_id, label, total, succeeded, failed, canceled, pending, progress, held_credits, spent_credits, canceled_at
        from ai.batch_progress where batch_id = ${batch_id}`.execute(tx)).rows[0]);
    if (!b) throw new ApiError(404, "not_found", "AI batch not found");
    return c.json(b, 200);
  });

  app.openapi(batchCancelRoute, async (c) => {
    const { batch_id } = c.req.valid("param");
    const { db } = c.get("deps");
    const n = await asUser(db, c.get("principal").claims, async (tx) =>
      (await sql<{ n: number }>`select ai.cancel_batch(${batch_id}) as n`.execute(tx)).rows[0].n, requestMeta(c));
    return c.json({ canceled: n }, 200);
  });
}
