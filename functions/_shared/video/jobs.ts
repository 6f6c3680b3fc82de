// The video module's worker jobs: validate an upload, start a video (validate and admit it to
// the AI gateway), run a privacy request, and purge what the retention rules say has gone.
import { sql } from "kysely";
import type { AiWorkerDeps } from "../ai/failure.ts";
import { removeObjects, type StorageAccess } from "../content/storage.ts";
import { asService, type Db } from "../db/client.ts";
import { JOBS } from "../jobs/catalog.ts";
import type { JobSender } from "../jobs/queue.ts";
import { exportUserData } from "./privacy-export.ts";
import { eraseUserData } from "./privacy-erase.ts";
import { startVideoJob } from "./start.ts";
import { PHOTO_BUCKET } from "./uploads.ts";
import { validateUpload } from "./validate.ts";

export interface VideoJobDeps {
  db: Db;
  storage: StorageAccess;
  jobs: JobSender;
  /** The gateway's worker side: face checks run with it, and erasure asks its adapters to delete. */
  ai: Omit<AiWorkerDeps, "db">;
}

/** Soft-deleted uploads are purged this long after deletion; reserved paths never uploaded to, after a week. */
export const RETENTION = { deleted: "30 days", unused: "7 days" } as const;

export function videoHandlers(deps: VideoJobDeps) {
  return {
    "video.validate_upload": async (data: unknown) => await validateUpload(deps, JOBS["video.validate_upload"].payload.parse(data).upload_id),
    "video.start": async (data: unknown) => await startVideoJob(deps, JOBS["video.start"].payload.parse(data).job_id),
    "video.privacy": async (data: unknown) => await runPrivacyRequest(deps, JOBS["video.privacy"].payload.parse(data).request_id),
    "video.retention": async (data: unknown) => {
      JOBS["video.retention"].payload.parse(data);
      return await purge(deps);
    },
  };
}

/** Runs a request that is not done yet (a failed erasure runs again: it retries what failed). */
export async function runPrivacyRequest(deps: VideoJobDeps, requestId: string): Promise<Record<string, unknown>> {
  const request = await asService(deps.db, async (tx) =>
    (await sql<{ id: string; user_id: string; kind: "export" | "erasure" }>`
      update video.privacy_requests set status = 'running', error = null
      where id = ${requestId} and status in ('queued', 'running', 'failed') returning id, user_id, kind`.execute(tx)).rows[0]);
  if (!request) return { skipped: "no such request, or it is done" };
  try {
    return request.kind === "export" ? await exportUserData(deps, request) : await eraseUserData({ ...deps, adapters: deps.ai.adapters }, request);
  } catch (err) {
    await asService(deps.db, async (tx) => {
      await sql`update video.privacy_requests set status = 'failed', error = ${(err as Error).message.slice(0, 500)}, finished_at = now()
                where id = ${request.id}`.execute(tx);
    });
    throw err;
  }
}

/** Removes the files and rows of uploads deleted 30 days ago, and paths reserved a week ago but never used. */
export async function purge(deps: VideoJobDeps): Promise<{ purged: number }> {
  const due = await asService(deps.db, async (tx) =>
    (await sql<{ id: string; path: string; status: string }>`
      select id, path, status from video.uploads
      where deleted_at < now() - ${RETENTION.deleted}::interval
         or (status = 'pending' and created_at < now() - ${RETENTION.unused}::interval)
      order by created_at limit 500`.execute(tx)).rows);
  if (due.length === 0) return { purged: 0 };
  await removeObjects(deps.storage, PHOTO_BUCKET, due.filter((u) => u.status !== "pending").map((u) => u.path));
  await asService(deps.db, async (tx) => {
    await sql`delete from video.uploads where id = any(${due.map((u) => u.id)}::uuid[])`.execute(tx);
  });
  return { purged: due.length };
}
