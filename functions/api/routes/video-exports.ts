// Export workflows: the platforms' specs in force (versioned, with sources) and templates
// (caption rules, safe zones, checklist, step-by-step instructions); a check of a finished video
// against a platform, from the file's real metadata (MP4 boxes read by byte ranges, so it costs
// a few small reads whatever the size); the member's history of checks; and an "optimize"
// suggestion written by the AI gateway.
import { createRoute, type OpenAPIHono, z } from "@hono/zod-openapi";
import { sql } from "kysely";
import { admitJob } from "../../_shared/ai/submit.ts";
import { asService, asUser } from "../../_shared/db/client.ts";
import { ApiError } from "../../_shared/http/errors.ts";
import { NotMp4Error, probeMp4 } from "../../_shared/video/mp4.ts";
import { checkAgainstSpec, type PlatformSpec } from "../../_shared/video/platform-check.ts";
import { rangeReader } from "../../_shared/video/storage.ts";
import type { ApiEnv } from "../context.ts";
import { requestMeta, requireAuth, requireUser, userIdOf } from "../middleware.ts";
import { commonErrors, UuidParam } from "../schemas.ts";
import { body, Cursor, json, Json, Limit, limitErrors, storageOf } from "./video-common.ts";

const Platform = z.enum(["tiktok", "instagram_reels", "youtube_shorts", "linkedin", "whatsapp_status"]);
const Spec = z.record(z.string(), z.unknown()).openapi("VideoPlatformSpec");
const Template = z.record(z.string(), z.unknown()).openapi("VideoExportTemplate");
const ExportView = z.object({
  id: z.string().uuid(),
  org_id: z.string().uuid(),
  job_id: z.string().uuid(),
  platform: Platform,
  spec_id: z.string().uuid(),
  spec_version: z.number().int(),
  valid: z.boolean(),
  violations: z.array(z.object({ rule: z.string(), message: z.string(), expected: z.unknown(), actual: z.unknown() })),
  metadata: Json,
  optimize_job_id: z.string().uuid().nullable(),
  created_at: z.string(),
}).openapi("VideoExport");
type Export = z.infer<typeof ExportView>;

const EXPORT_COLUMNS = sql`e.id, e.org_id, e.job_id, e.platform, e.spec_id, s.version as spec_version, e.valid, e.violations, e.metadata,
  e.optimize_job_id, e.created_at`;
const SPEC_NUMBERS = sql`min_seconds::float8 as min_seconds, max_seconds::float8 as max_seconds, min_aspect::float8 as min_aspect,
  max_aspect::float8 as max_aspect, min_fps::float8 as min_fps, max_fps::float8 as max_fps`;


const routes = {
  platforms: createRoute({
    method: "get", path: "/video/platforms", security: [{ bearer: [] }], middleware: [requireAuth] as const,
    summary: "Every platform's spec in force and its export template.",
    responses: { 200: json(z.object({ platforms: z.array(z.object({ spec: Spec, template: Template.nullable() })) }).openapi("VideoPlatforms"), "Platforms"), ...commonErrors },
  }),
  platform: createRoute({
    method: "get", path: "/video/platforms/{platform}", security: [{ bearer: [] }], middleware: [requireAuth] as const,
    summary: "A platform's spec in force, every version it had (with sources), and its template with the step-by-step instructions.",
    request: { params: z.object({ platform: Platform }) },
    responses: { 200: json(z.object({ spec: Spec, versions: z.array(Spec), template: Template.nullable() }).openapi("VideoPlatform"), "The platform"), ...commonErrors },
  }),
  check: createRoute({
    method: "post", path: "/video/jobs/{job_id}/exports", security: [{ bearer: [] }], middleware: [requireAuth, requireUser] as const,
    summary: "Check a finished video against a platform's spec in force: every violation, from the file's real metadata. Kept in your history.",
    request: { params: z.object({ job_id: UuidParam }), body: body(z.object({ platform: Platform }).strict().openapi("VideoExportRequest")) },
    responses: { 201: json(ExportView, "The check"), ...commonErrors },
  }),
  history: createRoute({
    method: "get", path: "/video/exports", security: [{ bearer: [] }], middleware: [requireAuth] as const,
    summary: "Your export checks, newest first.",
    request: { query: z.object({ job_id: z.string().uuid().optional(), platform: Platform.optional(), before: Cursor, limit: Limit }) },
    responses: { 200: json(z.object({ exports: z.array(ExportView) }).openapi("VideoExportList"), "A page of checks"), ...commonErrors },
  }),
  optimize: createRoute({
    method: "post", path: "/video/exports/{export_id}/optimize", security: [{ bearer: [] }], middleware: [requireAuth, requireUser] as const,
    summary: "Ask the AI gateway (text, economy tier) how to fix a check's violations for its platform; follow the AI job (ai.job on user:<id>) and read its output.",
    request: { params: z.object({ export_id: UuidParam }) },
    responses: { 202: json(z.object({ export_id: z.string().uuid(), ai_job_id: z.string().uuid() }).openapi("VideoOptimize"), "The suggestion is being written"), ...commonErrors, ...limitErrors },
  }),
};

export function registerVideoExports(app: OpenAPIHono<ApiEnv>) {
  app.openapi(routes.platforms, async (c) => {
    const platforms = await asUser(c.get("deps").db, c.get("principal").claims, async (tx) =>
      (await sql<{ spec: Record<string, unknown>; template: Record<string, unknown> | null }>`
        select to_jsonb(s) as spec, to_jsonb(t) as template
        from video.current_platform_specs s left join video.export_templates t on t.platform = s.platform
        order by s.platform`.execute(tx)).rows);
    return c.json({ platforms }, 200);
  });

  app.openapi(routes.platform, async (c) => {
    const { platform } = c.req.valid("param");
    const r = await asUser(c.get("deps").db, c.get("principal").claims, async (tx) => {
      const versions = (await sql<{ spec: Record<string, unknown> }>`
        select to_jsonb(s) as spec from video.platform_specs s where s.platform = ${platform} order by s.valid_from desc`.execute(tx)).rows.map((r) => r.spec);
      const current = (await sql<{ id: string }>`select id from video.current_platform_specs where platform = ${platform}`.execute(tx)).rows[0];
      const template = (await sql<{ t: Record<string, unknown> }>`select to_jsonb(t) as t from video.export_templates t where platform = ${platform}`.execute(tx)).rows[0]?.t ?? null;
      return { spec: versions.find((v) => v.id === current?.id), versions, template };
    });
    if (!r.spec) throw new ApiError(404, "not_found", `no spec in force for ${platform}`);
    return c.json({ spec: r.spec, versions: r.versions, template: r.template }, 200);
  });

  app.openapi(routes.check, async (c) => {
    const { job_id } = c.req.valid("param");
    const { platform } = c.req.valid("json");
    const { db } = c.get("deps");
    const principal = c.get("principal");
    const found = await asUser(db, principal.claims, async (tx) => {
      const job = (await sql<{ org_id: string; status: string; output: { bucket: string; path: string } | null }>`
        select org_id, status, output from video.jobs where id = ${job_id}`.execute(tx)).rows[0];
      const spec = (await sql<PlatformSpec>`select *, ${SPEC_NUMBERS} from video.current_platform_specs where platform = ${platform}`.execute(tx)).rows[0];
      return { job, spec };
    });
    if (!found.job) throw new ApiError(404, "not_found", "video job not found");
    if (found.job.status !== "completed" || !found.job.output) throw new ApiError(409, "not_ready", `the video is ${found.job.status}; only a finished video can be checked`);
    if (!found.spec) throw new ApiError(404, "not_found", `no spec in force for ${platform}`);
    const reader = await rangeReader(storageOf(c), found.job.output.bucket, found.job.output.path);
    if (!reader) throw new ApiError(409, "not_ready", "the video file is not in Storage");
    const metadata = await probeMp4(reader.size, reader.read).catch((err) => {
      if (err instanceof NotMp4Error) throw new ApiError(422, "unreadable_video", err.message);
      throw err;
    });
    const violations = checkAgainstSpec(metadata, found.spec);
    // Written by the service role: a client could otherwise record a check it never ran.
    const row = await asService(db, async (tx) => {
      const { rows: [e] } = await sql<{ id: string }>`
        insert into video.exports (org_id, user_id, job_id, platform, spec_id, valid, violations, metadata)
        values (${found.job.org_id}, ${userIdOf(c)}, ${job_id}, ${platform}, ${found.spec.id},
                ${violations.length === 0}, ${JSON.stringify(violations)}::jsonb, ${JSON.stringify(metadata)}::jsonb)
        returning id`.execute(tx);
      return (await sql<Export>`select ${EXPORT_COLUMNS} from video.exports e join video.platform_specs s on s.id = e.spec_id where e.id = ${e.id}`.execute(tx)).rows[0];
    });
    return c.json(row, 201);
  });

  app.openapi(routes.history, async (c) => {
    const q = c.req.valid("query");
    const rows = await asUser(c.get("deps").db, c.get("principal").claims, async (tx) =>
      (await sql<Export>`
        select ${EXPORT_COLUMNS} from video.exports e join video.platform_specs s on s.id = e.spec_id
        where (${q.job_id ?? null}::uuid is null or e.job_id = ${q.job_id ?? null})
          and (${q.platform ?? null}::text is null or e.platform = ${q.platform ?? null})
          and (${q.before ?? null}::timestamptz is null or e.created_at < ${q.before ?? null})
        order by e.created_at desc limit ${q.limit}`.execute(tx)).rows);
    return c.json({ exports: rows }, 200);
  });

  app.openapi(routes.optimize, async (c) => {
    const { export_id } = c.req.valid("param");
    const { db, jobs } = c.get("deps");
    const principal = c.get("principal");
    const aiJobId = await asUser(db, principal.claims, async (tx) => {
      const e = (await sql<Export & { template: { checklist: string[]; caption_rules: unknown; safe_zones: unknown } | null }>`
        select ${EXPORT_COLUMNS}, to_jsonb(t) as template
        from video.exports e join video.platform_specs s on s.id = e.spec_id left join video.export_templates t on t.platform = e.platform
        where e.id = ${export_id}`.execute(tx)).rows[0];
      if (!e) throw new ApiError(404, "not_found", "export check not found");
      if (e.optimize_job_id) return e.optimize_job_id;
      const prompt = [
        `A talking-head video is to be posted on ${e.platform}. Its file: ${JSON.stringify(e.metadata)}.`,
        e.valid ? "It meets the platform's spec." : `It breaks the spec: ${e.violations.map((v) => v.message).join("; ")}.`,
        `The platform's checklist: ${(e.template?.checklist ?? []).join("; ")}. Caption rules: ${JSON.stringify(e.template?.caption_rules ?? {})}.`,
        "Give at most five concrete steps to optimize it for this platform (re-encoding settings where needed, framing, caption). Be brief.",
      ].join("\n");
      const { job } = await admitJob(tx, jobs, { orgId: e.org_id, userId: userIdOf(c), apiKeyId: null }, {
        modality: "text", tier: "economy", source: "video", input: { prompt, max_tokens: 400 }, idempotencyKey: `video-optimize:${e.id}`,
      });
      return job.id;
    }, requestMeta(c));
    // The AI job is keyed by the check, so linking it afterwards (the member cannot write exports) is safe to repeat.
    await asService(db, async (tx) => {
      await sql`update video.exports set optimize_job_id = ${aiJobId} where id = ${export_id} and optimize_job_id is null`.execute(tx);
    });
    return c.json({ export_id, ai_job_id: aiJobId }, 202);
  });
}
