// Asking for an export, inside the caller's transaction (a user's asUser, or the service role
// for server code such as a generation that ends in an export). An export is keyed by
// (deck, revision, format): the same request again returns the same row and, once stored, the
// same file; a failed or expired one is reset and rendered again. The deck's body at that
// revision is copied into the row when a render is queued, so the worker renders exactly what
// was asked for even if live edits move the deck on meanwhile.
//
// Access (checked in SQL, private.deck_request_export): the caller must be able to view the
// deck and to download it (members; share grantees only with allow_download; not a public
// reader). The row, the snapshot and the job commit together with the caller's transaction.
import { sql } from "kysely";
import type { StorageAccess } from "../../content/storage.ts";
import { signDownload } from "../../content/storage.ts";
import { readCurrent } from "../../content/documents.ts";
import type { Tx } from "../../db/client.ts";
import { ApiError } from "../../http/errors.ts";
import { enqueue, type JobSender } from "../../jobs/queue.ts";

export const EXPORT_BUCKET = "deck-exports";
export const EXPORT_FORMATS = ["pptx", "pdf", "html"] as const;
export type ExportFormat = (typeof EXPORT_FORMATS)[number];
/** How long a signed download URL lasts (never past the file's own expiry). */
export const URL_SECONDS = 3600;

export interface ExportRequest {
  orgId: string;
  documentId: string;
  /** Default: the deck's current revision. A past one needs a kept version of it (or an export already made). */
  revision?: number;
  format: ExportFormat;
  /** The member asking (null for server code with no user); they get the deck.export broadcasts. */
  userId: string | null;
  apiKeyId?: string | null;
}

export interface ExportRow {
  id: string;
  org_id: string;
  document_id: string;
  revision: number;
  format: ExportFormat;
  status: "queued" | "rendering" | "stored" | "failed" | "expired";
  storage_path: string | null;
  bytes: number | null;
  sha256: string | null;
  pages: number | null;
  expires_at: string | null;
  error: string | null;
  requested_by: string | null;
  created_at: string;
  updated_at: string;
  finished_at: string | null;
}

export const EXPORT_COLUMNS = sql.raw(`id, org_id, document_id, revision, format, status, storage_path, bytes, sha256, pages,
  expires_at, error, requested_by, created_at, updated_at, finished_at`);

/**
 * Creates or reuses the export of (document, revision, format) and, when a render is needed,
 * snapshots the body and queues deck.export, all in `tx`. Not found (or not the org's deck)
 * is a 404, no download right a 403.
 */
export async function requestExport(
  tx: Tx,
  jobs: JobSender,
  req: { orgId: string; documentId: string; revision?: number; format: "pptx" | "pdf" | "html"; userId: string | null; apiKeyId?: string | null },
): Promise<{ exportId: string; status: string; reused: boolean }> {
  if (!(EXPORT_FORMATS as readonly string[]).includes(req.format)) {
    throw new ApiError(400, "invalid_request", `format is one of ${EXPORT_FORMATS.join(", ")}`);
  }
  if (req.revision !== undefined && (!Number.isInteger(req.revision) || req.revision < 1)) {
    throw new ApiError(400, "invalid_request", "revision is a positive integer");
  }
  const cur = await readCurrent(tx, req.documentId);
  if (cur.row.org_id !== req.orgId || cur.row.kind !== "deck") throw new ApiError(404, "not_found", "deck not found");
  const revision = req.revision ?? cur.revision;
  const { rows: [r] } = await sql<{ result: { export_id: string; status: string; reused: boolean; render: boolean } }>`
    select private.deck_request_export(${req.documentId}::uuid, ${revision}::int, ${req.format}, ${req.userId}::uuid,
                                       ${req.apiKeyId ?? null}::uuid) as result`.execute(tx);
  const result = r.result;
  if (result.render) {
    // The body at that revision: the live one, or a kept version's (the SQL made sure one exists).
    let body: unknown = revision === cur.revision ? cur.body : null;
    let title = cur.row.title;
    if (body === null) {
      const { rows: [v] } = await sql<{ body: unknown; title: string }>`
        select body, title from content.versions where document_id = ${req.documentId}::uuid and revision = ${revision}
        order by number desc limit 1`.execute(tx);
      if (!v) throw new ApiError(404, "not_found", `no copy of revision ${revision} of this deck is kept; export the current one`);
      body = v.body;
      title = v.title;
    }
    await sql`select private.deck_export_snapshot(${result.export_id}::uuid, ${JSON.stringify(body)}::jsonb, ${title})`.execute(tx);
    await enqueue(jobs, tx, "deck.export", { export_id: result.export_id }, { singletonKey: result.export_id });
  }
  return { exportId: result.export_id, status: result.status, reused: result.reused };
}

/** The download's file name: the deck's title (when given) in safe characters, and the format's extension. */
export function downloadName(path: string, title?: string | null): string {
  const ext = path.split(".").pop() ?? "bin";
  const base = (title ?? "").normalize("NFKD").replace(/[^A-Za-z0-9 ._-]+/g, "").trim().replace(/\s+/g, "-").slice(0, 80);
  return `${base || "deck"}.${ext}`;
}

/**
 * A signed download URL while the file is stored and not expired (valid an hour, never past the
 * file's expiry); null otherwise. With the row's title, the download is named after the deck.
 */
export async function exportUrl(
  storage: StorageAccess,
  row: { storage_path: string | null; status: string; expires_at: string | null; title?: string | null },
  now: Date = new Date(),
): Promise<string | null> {
  if (row.status !== "stored" || !row.storage_path || !row.expires_at) return null;
  const left = Math.floor((new Date(row.expires_at).getTime() - now.getTime()) / 1000);
  if (left <= 0) return null;
  return await signDownload(storage, EXPORT_BUCKET, row.storage_path, Math.min(URL_SECONDS, left), downloadName(row.storage_path, row.title));
}
