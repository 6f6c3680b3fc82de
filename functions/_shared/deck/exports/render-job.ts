// deck.export: renders one export and stores it. Transactions: (1) claim the row (queued →
// rendering, one more render) and read its snapshot, theme and picture rows; then, with no
// transaction open, read the pictures, render and upload the file; (2) record it as stored,
// only if the row is still this render's. The old file of a re-render is removed after.
// A deck that can't be rendered (no Chromium, a body that is not a deck) fails at once with its
// code; anything else (Storage down) is recorded as failed and thrown, so pg-boss retries it.
import { sql } from "kysely";
import { putObject, removeObjects } from "../../content/storage.ts";
import { sha256Hex } from "../../content/sniff.ts";
import { asService } from "../../db/client.ts";
import { DeckBody } from "../kind.ts";
import type { ExportJobDeps } from "./job.ts";
import { type ExportInput, loadTheme, pictureRows, readPictures } from "./model.ts";
import { ExportError, renderPdf } from "./pdf.ts";
import { renderPptx } from "./pptx.ts";
import { renderHtml } from "./render-html.ts";
import { EXPORT_BUCKET, type ExportFormat } from "./request.ts";

/** How long a stored file is kept (Gamma's export links last about a week). */
export const EXPORT_DAYS = 7;

export const CONTENT_TYPES: Record<ExportFormat, string> = {
  pptx: "application/vnd.openxmlformats-officedocument.presentationml.presentation",
  pdf: "application/pdf",
  html: "text/html; charset=utf-8",
};

interface Claimed {
  org_id: string;
  document_id: string;
  revision: number;
  format: ExportFormat;
  title: string;
  body: unknown;
  renders: number;
  storage_path: string | null;
}

/** The file's bytes for one format. */
export async function renderFile(format: ExportFormat, input: ExportInput, opts: { chromiumPath?: string } = {}): Promise<Uint8Array> {
  if (format === "pptx") return await renderPptx(input);
  if (format === "pdf") return await renderPdf(input, opts);
  return new TextEncoder().encode(renderHtml(input));
}

async function fail(deps: ExportJobDeps, exportId: string, renders: number, code: string, message: string, keepBody: boolean) {
  await asService(deps.db, async (tx) => {
    await sql`update deck.exports set status = 'failed', error_code = ${code}, error = ${message.slice(0, 1000)}, finished_at = now(),
                                      body = case when ${keepBody} then body end
              where id = ${exportId}::uuid and renders = ${renders} and status = 'rendering'`.execute(tx);
  });
}

export async function renderExport(deps: ExportJobDeps, exportId: string): Promise<Record<string, unknown>> {
  const claimed = await asService(deps.db, async (tx) => {
    const { rows: [row] } = await sql<Claimed>`
      update deck.exports set status = 'rendering', renders = renders + 1, error_code = null, error = null
      where id = ${exportId}::uuid and status in ('queued', 'rendering', 'failed') and body is not null
      returning org_id, document_id, revision, format, title, body, renders, storage_path`.execute(tx);
    if (!row) return null;
    const parsed = DeckBody.safeParse(row.body);
    if (!parsed.success) return { row, ok: false as const, error: parsed.error.issues.map((i) => `${i.path.join(".")}: ${i.message}`).slice(0, 5).join("; ") };
    const theme = await loadTheme(tx, row.org_id, parsed.data.theme_id);
    const pictures = await pictureRows(tx, row.document_id, parsed.data.cards);
    return { row, ok: true as const, body: parsed.data, theme, pictures };
  });
  if (!claimed) return { skipped: "the export is not waiting to be rendered" };
  const { row } = claimed;
  if (!claimed.ok) {
    await fail(deps, exportId, row.renders, "invalid_deck", `the deck's body is not a valid deck: ${claimed.error}`, false);
    return { status: "failed", error_code: "invalid_deck" };
  }

  const path = `${row.org_id}/${row.document_id}/${row.revision}/${exportId}-${row.renders}.${row.format}`;
  let bytes: Uint8Array;
  try {
    const pictures = await readPictures(deps.storage, claimed.pictures);
    bytes = await renderFile(row.format, { title: row.title, body: claimed.body, theme: claimed.theme, pictures }, { chromiumPath: deps.chromiumPath });
  } catch (err) {
    if (err instanceof ExportError) {
      await fail(deps, exportId, row.renders, err.code, err.message, false);
      return { status: "failed", error_code: err.code };
    }
    // The cause goes to the worker's log (the job's error); the row, which clients read, says what happened.
    await fail(deps, exportId, row.renders, "render_failed", "rendering the file failed; it is tried again", true);
    throw err;
  }
  try {
    await putObject(deps.storage, EXPORT_BUCKET, path, bytes, CONTENT_TYPES[row.format]);
  } catch (err) {
    await fail(deps, exportId, row.renders, "storage_failed", "storing the file failed; it is tried again", true);
    throw err;
  }
  const sha256 = await sha256Hex(bytes);
  const stored = await asService(deps.db, async (tx) => {
    const { rows } = await sql<{ id: string }>`
      update deck.exports set status = 'stored', storage_path = ${path}, bytes = ${bytes.length}::bigint, sha256 = ${sha256},
                              pages = ${claimed.body.cards.length}, expires_at = now() + make_interval(days => ${EXPORT_DAYS}),
                              finished_at = now(), body = null, error_code = null, error = null
      where id = ${exportId}::uuid and renders = ${row.renders} and status = 'rendering'
      returning id`.execute(tx);
    return rows.length > 0;
  });
  // The previous render's file is replaced; if a newer render took the row over meanwhile, this
  // one's is nobody's. Either way the leftover goes now (the retention job no longer sees it).
  const leftover = !stored ? path : row.storage_path !== path ? row.storage_path : null;
  if (leftover) {
    await removeObjects(deps.storage, EXPORT_BUCKET, [leftover]).catch((err) =>
      console.error(JSON.stringify({ msg: "deck export: removing a replaced file failed", path: leftover, error: (err as Error).message })));
  }
  return stored ? { status: "stored", bytes: bytes.length, pages: claimed.body.cards.length } : { skipped: "a newer render took over" };
}
