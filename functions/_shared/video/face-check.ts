// The face check of a photo: an AI gateway job (modality vision) on a free route, so it holds no
// credits. The validation job admits it and runs it at once in the same worker (no queue hop);
// its outcome is applied by whichever comes first, that run or the outbox consumer hearing
// ai.job_succeeded / ai.job_failed (the path a run resumed by the gateway's sweep takes). Both
// lock the upload and act only while it is checking_face, so the verdict is given once.
import { sql } from "kysely";
import { admitJob } from "../ai/submit.ts";
import type { Tx } from "../db/client.ts";
import { ApiError, fromPostgresError } from "../http/errors.ts";
import { enqueue, type JobSender } from "../jobs/queue.ts";
import { PHOTO_BUCKET, rejectUpload, type UploadRow } from "./uploads.ts";

/** Face checks that could not answer (provider failures) before an upload is rejected as unavailable. */
export const MAX_FACE_CHECKS = 3;

/** Error codes of a face check that mean "this photo is refused", not "the check failed". */
const REFUSALS = new Set(["content_policy", "refused", "input_flagged"]);

interface Face {
  x: number;
  y: number;
  width: number;
  height: number;
  score: number;
}

/**
 * Admits the face check for the uploader, keyed by the upload and the check's number (a repeated
 * run finds the same AI job). Returns its id, or null when it cannot run at all (no face route,
 * the org's policy): then the upload is rejected, since nothing could ever pass. A rate limit or
 * an outage is thrown: the validation job is retried.
 */
export async function startFaceCheck(tx: Tx, row: UploadRow): Promise<string | null> {
  const n = row.face_checks + 1;
  await sql`savepoint face_check`.execute(tx);
  try {
    const { job } = await admitJob(tx, null, { orgId: row.org_id, userId: row.user_id, apiKeyId: null }, {
      modality: "vision", tier: "economy", source: "video", input: { image_path: `${PHOTO_BUCKET}/${row.path}`, task: "faces" },
      idempotencyKey: `video-face:${row.id}:${n}`,
    });
    await sql`update video.uploads set status = 'checking_face', face_checks = ${n}, face_job_id = ${job.id} where id = ${row.id}`.execute(tx);
    return job.id;
  } catch (err) {
    const known = err instanceof ApiError ? err : fromPostgresError(err);
    if (!known || known.status >= 500 || known.status === 429) throw err;
    await sql`rollback to savepoint face_check`.execute(tx);
    await rejectUpload(tx, row.id, "face_check_unavailable", `the face check cannot run: ${known.message}`);
    return null;
  }
}

/** Gives the verdict of an ended face check, once; a provider failure starts another validation. */
export async function applyFaceCheck(tx: Tx, jobs: JobSender, aiJobId: string): Promise<string | undefined> {
  const { rows } = await sql<{ id: string; width: number; height: number; face_checks: number; job_status: string; output: { faces?: Face[] } | null; error: { code?: string; message?: string } | null }>`
    select u.id, u.width, u.height, u.face_checks, j.status as job_status, j.output, j.error
    from video.uploads u join ai.jobs j on j.id = u.face_job_id
    where u.face_job_id = ${aiJobId} and u.status = 'checking_face' and u.deleted_at is null
      and j.status in ('succeeded', 'failed', 'canceled')
    for update of u`.execute(tx);
  const u = rows[0];
  if (!u) return undefined;
  if (u.job_status === "succeeded") {
    const face = [...(u.output?.faces ?? [])].sort((a, b) => b.width * b.height - a.width * a.height)[0];
    if (!face) {
      await rejectUpload(tx, u.id, "no_face", "no face was found in the photo; use a clear, front-facing portrait");
      return "rejected";
    }
    const px = { x: Math.round(face.x * u.width), y: Math.round(face.y * u.height), width: Math.round(face.width * u.width), height: Math.round(face.height * u.height), score: face.score, ai_job_id: aiJobId };
    await sql`update video.uploads set status = 'passed', face = ${JSON.stringify(px)}::jsonb, validated_at = now() where id = ${u.id}`.execute(tx);
    return "passed";
  }
  if (REFUSALS.has(u.error?.code ?? "")) {
    await rejectUpload(tx, u.id, "face_refused", `the face check refused the photo: ${u.error?.message ?? "no reason given"}`);
    return "rejected";
  }
  if (u.face_checks >= MAX_FACE_CHECKS) {
    await rejectUpload(tx, u.id, "face_check_unavailable", `the face check failed ${u.face_checks} times (${u.error?.code ?? "unknown"}); upload the photo again later`);
    return "rejected";
  }
  // The provider could not answer: validate again, which starts the next face check.
  await sql`update video.uploads set status = 'validating' where id = ${u.id}`.execute(tx);
  await enqueue(jobs, tx, "video.validate_upload", { upload_id: u.id }, { singletonKey: u.id });
  return "validating";
}
