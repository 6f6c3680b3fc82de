// A member's privacy requests about their talking-video data (every org): an export archive
// (served by a signed URL) or an erasure (with a deletion receipt per provider copy). Each is
// queued with its job in one transaction; asking again while one is open returns it.
import { createRoute, type OpenAPIHono, z } from "@hono/zod-openapi";
import { sql } from "kysely";
import { signDownload } from "../../_shared/content/storage.ts";
import { asUser } from "../../_shared/db/client.ts";
import { ApiError } from "../../_shared/http/errors.ts";
import { enqueue } from "../../_shared/jobs/queue.ts";
import { PRIVACY_BUCKET } from "../../_shared/video/privacy-export.ts";
import type { ApiEnv } from "../context.ts";
import { requestMeta, requireAuth, requireUser } from "../middleware.ts";
import { commonErrors, UuidParam } from "../schemas.ts";
import { json, Json, storageOf } from "./video-common.ts";

const Request = z.object({
  id: z.string().uuid(),
  kind: z.enum(["export", "erasure"]),
  status: z.enum(["queued", "running", "done", "failed"]),
  archive_bytes: z.number().int().nullable(),
  summary: Json,
  error: z.string().nullable(),
  created_at: z.string(),
  finished_at: z.string().nullable(),
}).openapi("VideoPrivacyRequest");
type Req = z.infer<typeof Request> & { archive_path: string | null; user_id: string };

const Receipt = z.object({ provider_id: z.string(), provider_task_id: z.string(), status: z.string(), detail: z.string().nullable(), attempts: z.number().int(), updated_at: z.string() });

const open = (kind: "export" | "erasure") =>
  createRoute({
    method: "post", path: `/video/privacy/${kind}`, security: [{ bearer: [] }], middleware: [requireAuth, requireUser] as const,
    summary: kind === "export"
      ? "Export your talking-video data (profile, uploads, videos, checks) from every org as one archive; GET the request for its signed URL when done."
      : "Erase your talking-video data in every org: files deleted, every provider asked to delete its copy (a receipt each), inputs forgotten. Safe to run again.",
    responses: { 202: json(Request, "Queued (or the open request of this kind)"), ...commonErrors },
  });

const getRoute = createRoute({
  method: "get", path: "/video/privacy/requests/{request_id}", security: [{ bearer: [] }], middleware: [requireAuth, requireUser] as const,
  summary: "A privacy request: its status, the export's download URL (valid one hour), the erasure's receipts.",
  request: { params: z.object({ request_id: UuidParam }) },
  responses: {
    200: json(Request.extend({ download_url: z.string().nullable(), receipts: z.array(Receipt) }).openapi("VideoPrivacyRequestDetails"), "The request"),
    ...commonErrors,
  },
});

export function registerVideoPrivacy(app: OpenAPIHono<ApiEnv>) {
  for (const kind of ["export", "erasure"] as const) {
    app.openapi(open(kind), async (c) => {
      const { db, jobs } = c.get("deps");
      const r = await asUser(db, c.get("principal").claims, async (tx) => {
        const req = (await sql<Req>`select * from video.request_privacy(${kind})`.execute(tx)).rows[0];
        if (req.status === "queued") await enqueue(jobs, tx, "video.privacy", { request_id: req.id }, { singletonKey: req.id });
        return req;
      }, requestMeta(c));
      const { archive_path: _, user_id: __, ...view } = r;
      return c.json(view, 202);
    });
  }

  app.openapi(getRoute, async (c) => {
    const { request_id } = c.req.valid("param");
    const r = await asUser(c.get("deps").db, c.get("principal").claims, async (tx) => {
      const req = (await sql<Req>`select * from video.privacy_requests where id = ${request_id}`.execute(tx)).rows[0];
      const receipts = req
        ? (await sql<z.infer<typeof Receipt>>`
            select provider_id, provider_task_id, status, detail, attempts, updated_at from video.deletion_receipts
            where user_id = ${req.user_id} order by provider_id, provider_task_id`.execute(tx)).rows
        : [];
      return req && { req, receipts };
    });
    if (!r) throw new ApiError(404, "not_found", "privacy request not found");
    const { archive_path, user_id: _, ...view } = r.req;
    const download_url = archive_path && r.req.status === "done" ? await signDownload(storageOf(c), PRIVACY_BUCKET, archive_path, 3600, "talking-video-data.zip") : null;
    return c.json({ ...view, download_url, receipts: r.req.kind === "erasure" ? r.receipts : [] }, 200);
  });
}
