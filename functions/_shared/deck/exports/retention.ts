// deck.exports_retention (hourly): stored files past their expiry are marked expired, then the
// files of expired and failed rows are removed from Storage and their paths cleared. Two
// passes, so no row lock is held across Storage calls and a crash between them loses nothing:
// the next run finds the paths still set. Asking for an expired export renders it anew. Last,
// files no export names any more (their deck or org was deleted, the rows with it) are removed.
import { sql } from "kysely";
import { removeObjects } from "../../content/storage.ts";
import { asService } from "../../db/client.ts";
import type { ExportJobDeps } from "./job.ts";
import { EXPORT_BUCKET } from "./request.ts";

const BATCH = 500;

/** A render writes its file before its row names it: a file is an orphan only past this age. */
const ORPHAN_AGE = "1 hour";

export async function purgeExpiredExports(deps: ExportJobDeps): Promise<Record<string, unknown>> {
  const expired = await asService(deps.db, async (tx) => {
    const { rows } = await sql<{ n: number }>`
      with due as (
        select id from deck.exports where status = 'stored' and expires_at <= now()
        order by expires_at limit ${BATCH * 10} for update skip locked
      )
      update deck.exports e set status = 'expired', finished_at = now() from due where e.id = due.id
      returning 1 as n`.execute(tx);
    return rows.length;
  });
  let removed = 0;
  for (;;) {
    const rows = await asService(deps.db, async (tx) =>
      (await sql<{ id: string; storage_path: string }>`
        select id, storage_path from deck.exports
        where status in ('expired', 'failed') and storage_path is not null
        order by updated_at limit ${BATCH}`.execute(tx)).rows);
    if (rows.length === 0) break;
    await removeObjects(deps.storage, EXPORT_BUCKET, rows.map((r) => r.storage_path));
    // Only rows still as they were: one asked for again meanwhile keeps its (new) path.
    await asService(deps.db, async (tx) => {
      await sql`update deck.exports set storage_path = null
                where id = any(${rows.map((r) => r.id)}::uuid[]) and status in ('expired', 'failed')
                  and storage_path = any(${rows.map((r) => r.storage_path)}::text[])`.execute(tx);
    });
    removed += rows.length;
    if (rows.length < BATCH) break;
  }
  const orphans = await asService(deps.db, async (tx) =>
    (await sql<{ name: string }>`select name from private.deck_orphan_export_files(${ORPHAN_AGE}::interval, ${BATCH}) name`
      .execute(tx)).rows.map((r) => r.name));
  for (let i = 0; i < orphans.length; i += 100) await removeObjects(deps.storage, EXPORT_BUCKET, orphans.slice(i, i + 100));
  return { expired, removed, orphans_removed: orphans.length };
}
