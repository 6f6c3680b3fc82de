// A member's talking-video data in one archive (video.privacy, kind export): their profile,
// uploads (rows and files), videos (rows, provider calls, files) and export checks, from every
// org, zipped with fflate into the privacy-exports bucket, which only the service role reaches;
// the member downloads it through a signed URL from the api. Runs again from the start if the
// worker dies (the archive is rewritten at the same path).
import { type Zippable, zipSync } from "fflate";
import { sql } from "kysely";
import { putObject, readObject, type StorageAccess } from "../content/storage.ts";
import { asService, type Db } from "../db/client.ts";
import { PHOTO_BUCKET } from "./uploads.ts";

export const PRIVACY_BUCKET = "privacy-exports";
/** Past this, the archive is refused rather than built in memory. */
const MAX_ARCHIVE_BYTES = 1024 * 1024 * 1024;

export interface PrivacyDeps {
  db: Db;
  storage: StorageAccess;
}

const json = (v: unknown) => new TextEncoder().encode(JSON.stringify(v, null, 2));

export async function exportUserData(deps: PrivacyDeps, request: { id: string; user_id: string }): Promise<Record<string, unknown>> {
  const data = await asService(deps.db, async (tx) => {
    const q = async (query: ReturnType<typeof sql>) => (await query.execute(tx)).rows as Record<string, unknown>[];
    const profile = (await q(sql`select * from public.profiles where id = ${request.user_id}`))[0] ?? null;
    const uploads = await q(sql`select id, org_id, path, filename, kind, status, mime_type, bytes, width, height, duration_ms, sha256, face,
                                       reject_code, reject_reason, created_at, validated_at, deleted_at
                                from video.uploads where user_id = ${request.user_id} order by created_at`);
    const jobs = await q(sql`select j.*, (select coalesce(jsonb_agg(a), '[]') from video.job_attempts(j.id) a) as attempts
                             from video.jobs j where j.user_id = ${request.user_id} order by j.created_at`);
    const exports = await q(sql`select id, org_id, job_id, platform, spec_id, valid, violations, metadata, created_at
                                from video.exports where user_id = ${request.user_id} order by created_at`);
    return { profile, uploads, jobs, exports };
  });
  const files: Zippable = {
    "README.txt": new TextEncoder().encode(
      "Your talking-video data: profile.json, uploads.json (with the files in uploads/), videos.json (with the files in videos/) and exports.json.\n"),
    "profile.json": json(data.profile),
    "uploads.json": json(data.uploads),
    "videos.json": json(data.jobs),
    "exports.json": json(data.exports),
  };
  let total = 0;
  const add = async (name: string, bucket: string, path: string) => {
    const bytes = await readObject(deps.storage, bucket, path, MAX_ARCHIVE_BYTES - total);
    if (!bytes) return false;
    total += bytes.length;
    // Photos and videos are compressed already: stored as they are.
    files[name] = [bytes, { level: 0 }];
    return true;
  };
  let uploads = 0;
  let videos = 0;
  for (const u of data.uploads) {
    if (await add(`uploads/${u.id}-${String(u.filename).replace(/[^A-Za-z0-9._-]+/g, "-")}`, PHOTO_BUCKET, String(u.path))) uploads++;
  }
  for (const j of data.jobs) {
    const out = j.output as { bucket: string; path: string } | null;
    if (out && (await add(`videos/${j.id}.mp4`, out.bucket, out.path))) videos++;
  }
  const archive = zipSync(files);
  const path = `${request.user_id}/${request.id}.zip`;
  await putObject(deps.storage, PRIVACY_BUCKET, path, archive, "application/zip");
  const summary = { uploads: data.uploads.length, upload_files: uploads, videos: data.jobs.length, video_files: videos, exports: data.exports.length };
  await asService(deps.db, async (tx) => {
    await sql`update video.privacy_requests set status = 'done', archive_path = ${path}, archive_bytes = ${archive.length},
                                               summary = ${JSON.stringify(summary)}::jsonb, error = null, finished_at = now()
              where id = ${request.id}`.execute(tx);
  });
  return { status: "done", ...summary };
}
