// Photo and voice-track uploads: reserve a path (with a signed upload URL; TUS works on the same
// path), list with filters and pages, read one, soft-delete. Validation starts when the file
// arrives in Storage (the worker's video.validate_upload).
import { createRoute, type OpenAPIHono, z } from "@hono/zod-openapi";
import { sql } from "kysely";
import { signUpload } from "../../_shared/content/storage.ts";
import { asUser } from "../../_shared/db/client.ts";
import { ApiError } from "../../_shared/http/errors.ts";
import { PHOTO_BUCKET } from "../../_shared/video/uploads.ts";
import type { ApiEnv } from "../context.ts";
import { requestMeta, requireAuth, requireUser } from "../middleware.ts";
import { commonErrors, UuidParam } from "../schemas.ts";
import { body, Cursor, json, Json, Limit, storageOf } from "./video-common.ts";

const UploadView = z.object({
  id: z.string().uuid(),
  org_id: z.string().uuid(),
  user_id: z.string().uuid().nullable(),
  bucket: z.string(),
  path: z.string(),
  filename: z.string(),
  kind: z.enum(["photo", "audio"]).nullable(),
  status: z.enum(["pending", "validating", "checking_face", "passed", "rejected"]),
  mime_type: z.string().nullable(),
  bytes: z.number().int().nullable(),
  width: z.number().int().nullable(),
  height: z.number().int().nullable(),
  duration_ms: z.number().int().nullable(),
  face: Json,
  reject_code: z.string().nullable(),
  reject_reason: z.string().nullable(),
  validated_at: z.string().nullable(),
  deleted_at: z.string().nullable(),
  created_at: z.string(),
}).openapi("VideoUpload");
type Upload = z.infer<typeof UploadView>;

const COLUMNS = sql`id, org_id, user_id, bucket, path, filename, kind, status, mime_type, bytes, width, height, duration_ms, face,
                    reject_code, reject_reason, validated_at, deleted_at, created_at`;

const view = (u: Upload): Upload => ({ ...u, bytes: u.bytes === null ? null : Number(u.bytes) });

const createRouteDef = createRoute({
  method: "post",
  path: "/video/uploads",
  summary: "Reserve a path for a photo or voice track in the org's photos folder (content.write), with a signed upload URL valid two hours; a TUS upload to the same path works too. Validation starts when the file arrives.",
  security: [{ bearer: [] }],
  middleware: [requireAuth, requireUser] as const,
  request: { body: body(z.object({ org_id: z.string().uuid(), filename: z.string().min(1).max(255) }).strict().openapi("VideoUploadRequest")) },
  responses: {
    201: json(z.object({ upload: UploadView, bucket: z.string(), path: z.string(), signed_url: z.string(), token: z.string(), tus_endpoint: z.string() }).openapi("VideoUploadReserved"), "Reserved: upload the file to signed_url (PUT) or by TUS"),
    ...commonErrors,
  },
});

const listRoute = createRoute({
  method: "get",
  path: "/video/uploads",
  summary: "Uploads of the orgs you read (content.read), newest first; deleted ones only when asked.",
  security: [{ bearer: [] }],
  middleware: [requireAuth] as const,
  request: {
    query: z.object({
      org_id: z.string().uuid().optional(),
      status: z.enum(["pending", "validating", "checking_face", "passed", "rejected"]).optional(),
      kind: z.enum(["photo", "audio"]).optional(),
      include_deleted: z.enum(["true", "false"]).default("false"),
      before: Cursor,
      limit: Limit,
    }),
  },
  responses: { 200: json(z.object({ uploads: z.array(UploadView) }).openapi("VideoUploadList"), "A page of uploads"), ...commonErrors },
});

const getRoute = createRoute({
  method: "get",
  path: "/video/uploads/{upload_id}",
  summary: "One upload: its validation status, what its bytes are, and why it was rejected.",
  security: [{ bearer: [] }],
  middleware: [requireAuth] as const,
  request: { params: z.object({ upload_id: UuidParam }) },
  responses: { 200: json(UploadView, "The upload"), ...commonErrors },
});

const deleteRoute = createRoute({
  method: "delete",
  path: "/video/uploads/{upload_id}",
  summary: "Soft-delete an upload (the uploader or content.write): hidden, unusable for new videos, purged after 30 days.",
  security: [{ bearer: [] }],
  middleware: [requireAuth] as const,
  request: { params: z.object({ upload_id: UuidParam }) },
  responses: { 200: json(UploadView, "The upload, deleted"), ...commonErrors },
});

export function registerVideoUploads(app: OpenAPIHono<ApiEnv>) {
  app.openapi(createRouteDef, async (c) => {
    const b = c.req.valid("json");
    const { db, cfg } = c.get("deps");
    const upload = await asUser(db, c.get("principal").claims, async (tx) =>
      (await sql<Upload>`select ${COLUMNS} from video.create_upload(${b.org_id}, ${b.filename})`.execute(tx)).rows[0], requestMeta(c));
    const signed = await signUpload(storageOf(c), PHOTO_BUCKET, upload.path);
    return c.json({
      upload: view(upload), bucket: PHOTO_BUCKET, path: upload.path, signed_url: signed.signed_url, token: signed.token,
      tus_endpoint: `${cfg.SUPABASE_URL}/storage/v1/upload/resumable`,
    }, 201);
  });

  app.openapi(listRoute, async (c) => {
    const q = c.req.valid("query");
    const { db } = c.get("deps");
    const rows = await asUser(db, c.get("principal").claims, async (tx) =>
      (await sql<Upload>`
        select ${COLUMNS} from video.uploads
        where (${q.org_id ?? null}::uuid is null or org_id = ${q.org_id ?? null})
          and (${q.status ?? null}::text is null or status = ${q.status ?? null})
          and (${q.kind ?? null}::text is null or kind = ${q.kind ?? null})
          and (${q.include_deleted === "true"} or deleted_at is null)
          and (${q.before ?? null}::timestamptz is null or created_at < ${q.before ?? null})
        order by created_at desc limit ${q.limit}`.execute(tx)).rows);
    return c.json({ uploads: rows.map(view) }, 200);
  });

  app.openapi(getRoute, async (c) => {
    const { upload_id } = c.req.valid("param");
    const { db } = c.get("deps");
    const row = await asUser(db, c.get("principal").claims, async (tx) =>
      (await sql<Upload>`select ${COLUMNS} from video.uploads where id = ${upload_id}`.execute(tx)).rows[0]);
    if (!row) throw new ApiError(404, "not_found", "upload not found");
    return c.json(view(row), 200);
  });

  app.openapi(deleteRoute, async (c) => {
    const { upload_id } = c.req.valid("param");
    const { db } = c.get("deps");
    const row = await asUser(db, c.get("principal").claims, async (tx) =>
      (await sql<Upload>`select ${COLUMNS} from video.delete_upload(${upload_id})`.execute(tx)).rows[0], requestMeta(c));
    return c.json(view(row), 200);
  });
}
