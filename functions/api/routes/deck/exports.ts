// Deck exports (PPTX, PDF, HTML): ask for one, then read it for its signed URL. An export is
// keyed by (deck, revision, format): the same request again returns the same export (200 with
// its URL once stored); a new revision renders anew. Needs view access to the deck and the right
// to download it (members of its org; share grantees only when their share allows downloads).
// Progress goes to the requester on user:<id>, event deck.export. See functions/_shared/deck/exports/.
import { createRoute, type OpenAPIHono, z } from "@hono/zod-openapi";
import { sql } from "kysely";
import { asUser } from "../../../_shared/db/client.ts";
import { EXPORT_FORMATS, exportUrl, requestExport } from "../../../_shared/deck/exports/request.ts";
import { ApiError } from "../../../_shared/http/errors.ts";
import type { ApiEnv } from "../../context.ts";
import { storageOf } from "../../storage.ts";
import { requestMeta, requireAuth } from "../../middleware.ts";
import { commonErrors, json, jsonBody, UuidParam } from "../../schemas.ts";


const ExportBody = z.object({
  format: z.enum(EXPORT_FORMATS),
  /** Default: the deck's current revision. A past one needs a kept version of it. */
  revision: z.number().int().positive().max(2_147_483_647).optional(),
}).strict().openapi("DeckExportRequest");

const ExportView = z.object({
  id: z.string().uuid(),
  org_id: z.string().uuid(),
  document_id: z.string().uuid(),
  revision: z.number().int(),
  format: z.enum(EXPORT_FORMATS),
  status: z.enum(["queued", "rendering", "stored", "failed", "expired"]),
  title: z.string(),
  pages: z.number().int().nullable(),
  bytes: z.number().int().nullable(),
  sha256: z.string().nullable(),
  expires_at: z.string().nullable(),
  error_code: z.string().nullable(),
  error: z.string().nullable(),
  requested_by: z.string().uuid().nullable(),
  created_at: z.string(),
  updated_at: z.string(),
  finished_at: z.string().nullable(),
}).openapi("DeckExport");
const ExportAnswer = z.object({
  export: ExportView,
  /** A signed download URL (one hour, never past expires_at) while the file is stored; null otherwise. */
  url: z.string().nullable(),
}).openapi("DeckExportAnswer");

const VIEW_COLUMNS = sql.raw(`id, org_id, document_id, revision, format, status, title, pages, bytes, sha256, expires_at, error_code, error,
  requested_by, created_at, updated_at, finished_at, storage_path`);
type View = z.infer<typeof ExportView> & { storage_path: string | null };

const requestRoute = createRoute({
  method: "post", path: "/deck/decks/{document_id}/exports", security: [{ bearer: [] }], middleware: [requireAuth] as const,
  summary: "Export a deck as PPTX, PDF or HTML (one file per deck, revision and format; asking again reuses it).",
  request: { params: z.object({ document_id: UuidParam }), body: jsonBody(ExportBody) },
  responses: {
    200: json(ExportAnswer, "Already stored: the same file, with its URL"),
    202: json(ExportAnswer, "Queued or rendering: follow it on user:<id> (deck.export) or GET /deck/exports/{id}"),
    ...commonErrors,
  },
});

const getRoute = createRoute({
  method: "get", path: "/deck/exports/{export_id}", security: [{ bearer: [] }], middleware: [requireAuth] as const,
  summary: "An export: its status, a signed download URL while stored (one hour), when the file expires, why it failed.",
  request: { params: z.object({ export_id: UuidParam }) },
  responses: { 200: json(ExportAnswer, "The export"), ...commonErrors },
});


export function registerDeckExports(app: OpenAPIHono<ApiEnv>) {
  app.openapi(requestRoute, async (c) => {
    const { document_id } = c.req.valid("param");
    const { format, revision } = c.req.valid("json");
    const principal = c.get("principal");
    const { db, jobs } = c.get("deps");
    const { row, reused } = await asUser(db, principal.claims, async (tx) => {
      // Visible through RLS, or a 404 like any document the caller can't see.
      const { rows: [doc] } = await sql<{ org_id: string }>`select org_id from content.documents where id = ${document_id}::uuid`.execute(tx);
      if (!doc) throw new ApiError(404, "not_found", "deck not found");
      const r = await requestExport(tx, jobs, {
        orgId: doc.org_id, documentId: document_id, revision, format,
        userId: principal.kind === "user" ? principal.userId : null,
        apiKeyId: principal.kind === "api_key" ? principal.keyId : null,
      });
      const { rows: [view] } = await sql<View>`select ${VIEW_COLUMNS} from deck.exports where id = ${r.exportId}::uuid`.execute(tx);
      return { row: view, reused: r.reused };
    }, requestMeta(c));
    const stored = reused && row.status === "stored";
    const url = stored ? await exportUrl(storageOf(c), row) : null;
    const { storage_path: _, ...view } = row;
    return c.json({ export: view, url }, stored ? 200 : 202);
  });

  app.openapi(getRoute, async (c) => {
    const { export_id } = c.req.valid("param");
    const row = await asUser(c.get("deps").db, c.get("principal").claims, async (tx) =>
      (await sql<View>`select ${VIEW_COLUMNS} from deck.exports where id = ${export_id}::uuid`.execute(tx)).rows[0]);
    if (!row) throw new ApiError(404, "not_found", "export not found");
    const url = row.status === "stored" ? await exportUrl(storageOf(c), row) : null;
    const { storage_path: _, ...view } = row;
    return c.json({ export: view, url }, 200);
  });
}
