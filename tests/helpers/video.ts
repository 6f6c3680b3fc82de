// Talking-video test helpers: photos made in memory (PNG with an optional marker for the local
// face check, a JPEG header, a GIF), uploads as a member would make them (TUS with tus-js-client,
// or the api's signed upload URL with supabase-js), a tier of the test's own (its own chain and
// price, so no file shares a route), waits, and MP4 files crafted box by box.
import { randomUUID } from "node:crypto";
import * as tus from "tus-js-client";
import { expect } from "vitest";
import { crc32, encodePng } from "../../functions/_shared/ai/providers/local-media.ts";
import { admin, stack } from "./db.ts";
import { call } from "./http.ts";
import { client } from "./supabase.ts";

// ---------------------------------------------------------------------------- images

/** A real PNG; with a marker, a tEXt chunk carrying it (NOFACE, FLAGME) for the local face check. */
export function png(width: number, height: number, marker?: string): Uint8Array {
  const img = encodePng(width, height, [200, 150, 120], [50, 60, 80]);
  if (!marker) return img;
  const data = new TextEncoder().encode(`Comment\0${marker}`);
  const chunk = new Uint8Array(12 + data.length);
  const v = new DataView(chunk.buffer);
  v.setUint32(0, data.length);
  chunk.set(new TextEncoder().encode("tEXt"), 4);
  chunk.set(data, 8);
  v.setUint32(8 + data.length, crc32(chunk.subarray(4, 8 + data.length)));
  const iend = img.length - 12;
  return new Uint8Array([...img.subarray(0, iend), ...chunk, ...img.subarray(iend)]);
}

/** A JPEG's headers (SOI, JFIF, a baseline frame of this size, EOI): enough for magic bytes and dimensions. */
export function jpeg(width: number, height: number): Uint8Array {
  return new Uint8Array([
    0xff, 0xd8, 0xff, 0xe0, 0x00, 0x10, 0x4a, 0x46, 0x49, 0x46, 0x00, 0x01, 0x01, 0x00, 0x00, 0x01, 0x00, 0x01, 0x00, 0x00,
    0xff, 0xc0, 0x00, 0x11, 0x08, height >> 8, height & 0xff, width >> 8, width & 0xff, 0x03, 0x01, 0x22, 0x00, 0x02, 0x11, 0x01, 0x03, 0x11, 0x01,
    0xff, 0xd9,
  ]);
}

export const gif = (w: number, h: number) => new Uint8Array([...new TextEncoder().encode("GIF89a"), w & 0xff, w >> 8, h & 0xff, h >> 8, 0, 0, 0, 0x3b]);

// ---------------------------------------------------------------------------- uploads

/** A TUS upload (6 MB chunks, as Supabase's docs configure tus-js-client) into the photos bucket. */
export function tusUpload(token: string, objectName: string, bytes: Uint8Array, contentType = "application/octet-stream"): Promise<void> {
  return new Promise((resolve, reject) => {
    const upload = new tus.Upload(Buffer.from(bytes), {
      endpoint: `${stack.supabaseUrl}/storage/v1/upload/resumable`,
      chunkSize: 6 * 1024 * 1024,
      uploadDataDuringCreation: true,
      retryDelays: null,
      headers: { authorization: `Bearer ${token}`, apikey: stack.anonKey, "x-upsert": "false" },
      metadata: { bucketName: "photos", objectName, contentType },
      onError: reject,
      onSuccess: () => resolve(),
    });
    upload.start();
  });
}

/** Reserves a path through the api and uploads to its signed URL with supabase-js; returns the upload id. */
export async function signedUpload(token: string, orgId: string, bytes: Uint8Array, filename = "face.png", contentType = "image/png"): Promise<string> {
  const res = await call("/api/video/uploads", { token, json: { org_id: orgId, filename } });
  expect(res.status, res.raw).toBe(201);
  const { error } = await client({ token }).storage.from("photos").uploadToSignedUrl(res.body.path, res.body.token, new Blob([bytes as BlobPart], { type: contentType }));
  expect(error).toBeNull();
  return res.body.upload.id;
}

export interface UploadState {
  id: string;
  status: string;
  kind: string | null;
  reject_code: string | null;
  reject_reason: string | null;
  width: number | null;
  height: number | null;
  duration_ms: number | null;
  face: { x: number; y: number; width: number; height: number } | null;
  face_job_id: string | null;
  sha256: string | null;
}

/** Waits until an upload (by id, or by its path) is passed or rejected. */
export async function settledUpload(by: { id?: string; path?: string }, timeoutMs = 20_000): Promise<UploadState> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const { rows } = await admin.query<UploadState>(
      `select id, status, kind, reject_code, reject_reason, width, height, duration_ms, face, face_job_id, sha256
       from video.uploads where ${by.id ? "id = $1" : "path = $1"}`, [by.id ?? by.path]);
    if (rows[0] && (rows[0].status === "passed" || rows[0].status === "rejected")) return rows[0];
    if (Date.now() > deadline) throw new Error(`upload ${by.id ?? by.path} is ${rows[0]?.status ?? "missing"}`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

/** A photo in the org's folder that passed (TUS as the member); returns its upload id. */
export async function passedPhoto(token: string, orgId: string, userId: string): Promise<string> {
  const path = `${orgId}/${userId}/${randomUUID()}.png`;
  await tusUpload(token, path, png(480, 600), "image/png");
  const u = await settledUpload({ path });
  expect(u.status, u.reject_reason ?? "").toBe("passed");
  return u.id;
}

// ---------------------------------------------------------------------------- tiers and jobs

/** A tier of the test's own: this chain, credits per per_units seconds (INR and USD alike), a max length. */
export async function ownTier(deployments: string[], price: { credits: number; per_units?: number; inr?: number; usd?: number }, maxSeconds = 120): Promise<string> {
  const key = `t-${randomUUID().slice(0, 8)}`;
  await admin.query(`insert into video.tiers (key, name, ai_tier, max_seconds) values ($1, $1, 'balanced', $2)`, [key, maxSeconds]);
  for (const [i, d] of deployments.entries()) {
    await admin.query(`insert into video.tier_deployments (tier_key, position, deployment_id) values ($1, $2, $3)`, [key, i, d]);
  }
  await admin.query(
    `insert into video.tier_prices (tier_key, per_units, inr_minor, usd_cents, credits, effective_from) values ($1, $2, $3, $4, $5, now() - interval '1 day')`,
    [key, price.per_units ?? 1, price.inr ?? price.credits * 85, price.usd ?? price.credits, price.credits],
  );
  return key;
}

export interface VideoJobRow {
  id: string;
  status: string;
  attempt: number;
  run: number;
  ai_job_id: string | null;
  est_seconds: number;
  quoted_credits: number;
  output: { bucket: string; path: string; bytes: number; sha256: string } | null;
  output_seconds: number | null;
  charged_credits: number | null;
  charged_inr_minor: number | null;
  error: { code: string; message: string } | null;
}

export async function videoJob(id: string): Promise<VideoJobRow> {
  const { rows } = await admin.query<VideoJobRow>(
    `select id, status, attempt, run, ai_job_id, est_seconds::float8 as est_seconds, quoted_credits::int, output,
            output_seconds::float8 as output_seconds, charged_credits::int, charged_inr_minor::int, error
     from video.jobs where id = $1`, [id]);
  return rows[0];
}

export async function waitVideo(id: string, statuses = ["completed", "failed", "rejected", "canceled"], timeoutMs = 30_000): Promise<VideoJobRow> {
  const deadline = Date.now() + timeoutMs;
  let row = await videoJob(id);
  while (!statuses.includes(row.status) && Date.now() < deadline) {
    await new Promise((r) => setTimeout(r, 50));
    row = await videoJob(id);
  }
  expect(statuses, `video job ${id} is ${row.status}: ${JSON.stringify(row.error)}`).toContain(row.status);
  return row;
}

/** Makes a video through the api as the member; expects 202 and returns the job's id. */
export async function makeVideo(token: string, body: Record<string, unknown>, headers: Record<string, string> = {}): Promise<string> {
  const res = await call("/api/video/jobs", { token, json: body, headers });
  expect(res.status, res.raw).toBe(202);
  return res.body.id as string;
}

export { craftMp4, type Mp4Spec } from "./mp4.ts";
