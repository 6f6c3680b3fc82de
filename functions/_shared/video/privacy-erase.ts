// Erasing a member's talking-video data (video.privacy, kind erasure), in every org: running
// videos are canceled; each provider holding a copy (a task of one of their videos) is asked to
// delete it through its adapter, with one receipt per copy (deleted, not_supported when the
// provider has no delete, failed: asked again next time); their photos, voice tracks, videos and
// export archives are removed from Storage; their rows go and the AI jobs' inputs are forgotten
// (the gateway keeps what ran and what it cost). Idempotent: a second run finds nothing left but
// the failed receipts, which it retries.
import { sql } from "kysely";
import type { AdapterRegistry } from "../ai/adapters.ts";
import { removeObjects, type StorageAccess } from "../content/storage.ts";
import { asService, type Db } from "../db/client.ts";
import { PRIVACY_BUCKET } from "./privacy-export.ts";
import { PHOTO_BUCKET } from "./uploads.ts";

export interface EraseDeps {
  db: Db;
  storage: StorageAccess;
  adapters: AdapterRegistry;
}

interface Copy {
  provider_id: string;
  provider_task_id: string;
}

export async function eraseUserData(deps: EraseDeps, request: { id: string; user_id: string }): Promise<Record<string, unknown>> {
  const user = request.user_id;
  const found = await asService(deps.db, async (tx) => {
    // Nothing new may be made: cancel what still runs (the gateway's poll stops the provider).
    const { rows: running } = await sql<{ id: string }>`
      select id from video.jobs where user_id = ${user} and status not in ('completed', 'failed', 'rejected', 'canceled')`.execute(tx);
    for (const r of running) await sql`select video.cancel_job(${r.id})`.execute(tx);
    const { rows: copies } = await sql<Copy>`
      select distinct a.provider_id, a.provider_request_id as provider_task_id
      from video.jobs j join video.job_runs r on r.job_id = j.id join ai.attempts a on a.job_id = r.ai_job_id
      where j.user_id = ${user} and a.purpose = 'main' and a.provider_request_id is not null
      union
      select provider_id, provider_task_id from video.deletion_receipts where user_id = ${user} and status = 'failed'`.execute(tx);
    const { rows: files } = await sql<{ bucket: string; path: string }>`
      select ${PHOTO_BUCKET} as bucket, path from video.uploads where user_id = ${user}
      union
      select f ->> 'bucket', f ->> 'path'
      from video.jobs j join video.job_runs r on r.job_id = j.id join ai.jobs aj on aj.id = r.ai_job_id,
           jsonb_array_elements(coalesce(aj.output -> 'files', '[]')) f
      where j.user_id = ${user}
      union
      select ${PRIVACY_BUCKET}, archive_path from video.privacy_requests where user_id = ${user} and archive_path is not null`.execute(tx);
    const { rows: done } = await sql<Copy>`
      select provider_id, provider_task_id from video.deletion_receipts where user_id = ${user} and status <> 'failed'`.execute(tx);
    const settled = new Set(done.map((d) => `${d.provider_id}\u0000${d.provider_task_id}`));
    return { copies: copies.filter((c) => !settled.has(`${c.provider_id}\u0000${c.provider_task_id}`)), files };
  });

  const receipts = { deleted: 0, not_supported: 0, failed: 0 };
  for (const c of found.copies) {
    const { status, detail } = await deleteCopy(deps.adapters, c);
    receipts[status]++;
    await asService(deps.db, async (tx) => {
      await sql`insert into video.deletion_receipts (request_id, user_id, provider_id, provider_task_id, status, detail)
                values (${request.id}, ${user}, ${c.provider_id}, ${c.provider_task_id}, ${status}, ${detail})
                on conflict (provider_id, provider_task_id)
                do update set status = excluded.status, detail = excluded.detail, attempts = video.deletion_receipts.attempts + 1`.execute(tx);
    });
  }

  const byBucket = new Map<string, string[]>();
  for (const f of found.files) byBucket.set(f.bucket, [...(byBucket.get(f.bucket) ?? []), f.path]);
  for (const [bucket, paths] of byBucket) {
    for (let i = 0; i < paths.length; i += 100) await removeObjects(deps.storage, bucket, paths.slice(i, i + 100));
  }

  return await asService(deps.db, async (tx) => {
    const { rows: [n] } = await sql<{ inputs: number; jobs: number; uploads: number }>`
      with forgotten as (
        select private.ai_erase_job_inputs(array(select id from ai.jobs where user_id = ${user} and source = 'video')) as inputs
      ), jobs as (delete from video.jobs where user_id = ${user} returning 1),
      uploads as (delete from video.uploads where user_id = ${user} returning 1)
      select (select inputs from forgotten) as inputs, (select count(*)::int from jobs) as jobs, (select count(*)::int from uploads) as uploads`.execute(tx);
    await sql`delete from video.exports where user_id = ${user}`.execute(tx);
    await sql`update video.privacy_requests set archive_path = null, archive_bytes = null where user_id = ${user} and kind = 'export'`.execute(tx);
    const summary = { files_deleted: found.files.length, videos: n.jobs, uploads: n.uploads, inputs_forgotten: n.inputs, provider_copies: receipts };
    const failed = receipts.failed > 0;
    await sql`update video.privacy_requests
              set status = ${failed ? "failed" : "done"}, summary = ${JSON.stringify(summary)}::jsonb, finished_at = now(),
                  error = ${failed ? `${receipts.failed} provider deletions failed; ask for the erasure again to retry them` : null}
              where id = ${request.id}`.execute(tx);
    return { status: failed ? "failed" : "done", ...summary };
  });
}

/** Asks the provider to delete one task's copy; a provider without delete gets a receipt saying so. */
async function deleteCopy(adapters: AdapterRegistry, c: Copy): Promise<{ status: "deleted" | "not_supported" | "failed"; detail: string }> {
  try {
    const adapter = await adapters.get(c.provider_id);
    if (!adapter.delete) {
      return { status: "not_supported", detail: `${adapter.kind} has no delete API; its own retention applies (Replicate removes API predictions' files after an hour)` };
    }
    await adapter.delete(c.provider_task_id);
    return { status: "deleted", detail: "the provider confirmed the deletion (or the copy was already gone)" };
  } catch (err) {
    return { status: "failed", detail: (err as Error).message.slice(0, 500) };
  }
}
