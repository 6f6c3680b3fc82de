// video.validate_upload: what an upload really is, before anything is paid for. The bytes are
// read once (bounded), typed by their magic bytes and measured from their headers
// (content/sniff.ts), and held to the rules (photo-rules.ts); a photo that passes them gets the
// face check (face-check.ts), run here at once. Transactions: one to read the row, one to record
// the verdict or admit the face check, one to apply the check's outcome; none spans the Storage
// read or the provider call. A run retried after a crash picks up a face check in flight.
import { sql } from "kysely";
import type { AiWorkerDeps } from "../ai/failure.ts";
import { runJob } from "../ai/run-job.ts";
import { readObject, type StorageAccess } from "../content/storage.ts";
import { sha256Hex, sniff } from "../content/sniff.ts";
import { asService, type Db } from "../db/client.ts";
import type { JobSender } from "../jobs/queue.ts";
import { applyFaceCheck, startFaceCheck } from "./face-check.ts";
import { AUDIO_RULES, checkUpload, mp3DurationMs, PHOTO_RULES } from "./photo-rules.ts";
import { PHOTO_BUCKET, rejectUpload, type UploadRow } from "./uploads.ts";

export interface ValidateDeps {
  db: Db;
  storage: StorageAccess;
  jobs: JobSender;
  /** The gateway's worker side: the face check runs in this job. */
  ai: Omit<AiWorkerDeps, "db">;
}

export async function validateUpload(deps: ValidateDeps, uploadId: string): Promise<Record<string, unknown>> {
  const row = await asService(deps.db, async (tx) =>
    (await sql<UploadRow>`select id, org_id, user_id, path, status, face_checks, face_job_id, deleted_at from video.uploads where id = ${uploadId}`.execute(tx)).rows[0]);
  if (!row || row.deleted_at) return { skipped: row ? "upload is deleted" : "no such upload" };
  if (row.status === "checking_face" && row.face_job_id) return await finishFaceCheck(deps, row.face_job_id);
  if (row.status !== "validating") return { skipped: `upload is ${row.status}` };

  const bytes = await readObject(deps.storage, PHOTO_BUCKET, row.path, Math.max(PHOTO_RULES.maxBytes, AUDIO_RULES.maxBytes) + 1)
    .catch((err: Error) => (/larger than/.test(err.message) ? "too big" as const : Promise.reject(err)));
  if (bytes === null || bytes === "too big") {
    await asService(deps.db, (tx) =>
      bytes === null
        ? rejectUpload(tx, row.id, "missing", "the file is not in Storage any more; upload it again")
        : rejectUpload(tx, row.id, "size", "the file is larger than 20 MB; photos may be at most 10 MB"));
    return { status: "rejected" };
  }
  const found = await sniff(bytes, null);
  const mime = found.mime;
  const facts = {
    mime,
    bytes: bytes.length,
    width: found.ok ? found.width : null,
    height: found.ok ? found.height : null,
    durationMs: found.ok ? (found.durationMs ?? (mime === "audio/mpeg" ? mp3DurationMs(bytes) : null)) : null,
  };
  const verdict = checkUpload(facts);
  // A rejected file is deleted: hash only what is kept.
  const sha = verdict.ok ? await sha256Hex(bytes) : null;
  const faceJob = await asService(deps.db, async (tx) => {
    await sql`update video.uploads
              set mime_type = ${mime}, bytes = ${facts.bytes}, width = ${facts.width}, height = ${facts.height},
                  duration_ms = ${facts.durationMs}, sha256 = ${sha}, kind = ${verdict.ok ? verdict.kind : null}
              where id = ${row.id}`.execute(tx);
    if (!verdict.ok) {
      await rejectUpload(tx, row.id, verdict.code, verdict.reason);
      return null;
    }
    if (verdict.kind === "audio") {
      await sql`update video.uploads set status = 'passed', validated_at = now() where id = ${row.id}`.execute(tx);
      return null;
    }
    return await startFaceCheck(tx, row);
  });
  if (!faceJob) return { status: verdict.ok ? "passed" : "rejected", ...(verdict.ok ? { kind: verdict.kind } : { code: verdict.code }) };
  return await finishFaceCheck(deps, faceJob);
}

/** Runs the face check (a no-op when it already ended) and gives its verdict. */
async function finishFaceCheck(deps: ValidateDeps, faceJob: string): Promise<Record<string, unknown>> {
  const run = await runJob({ db: deps.db, ...deps.ai }, faceJob);
  const status = await asService(deps.db, (tx) => applyFaceCheck(tx, deps.jobs, faceJob));
  return { face_job_id: faceJob, run, status: status ?? "already applied" };
}
