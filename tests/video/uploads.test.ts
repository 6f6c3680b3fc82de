// Photo uploads: resumable (TUS) and signed-URL uploads into the org's photos folder are
// validated by the worker (magic bytes, size, pixels, aspect ratio, a face check through the AI
// gateway); every rule rejects with its reason before any credit is held (the org here has
// none); voice tracks pass with their length; uploads are listed with filters and pages, and
// deleted softly, then purged by the retention job.
import { randomUUID } from "node:crypto";
import { beforeAll, describe, expect, it } from "vitest";
import { encodeWav } from "../../functions/_shared/ai/providers/local-media.ts";
import { purge } from "../../functions/_shared/video/jobs.ts";
import { admin, createTeam } from "../helpers/db.ts";
import { call, expectError } from "../helpers/http.ts";
import { sha256, objectRow } from "../helpers/storage.ts";
import { tokenFor } from "../helpers/supabase.ts";
import { inProcessWorker } from "../helpers/ai-worker.ts";
import { gif, jpeg, png, settledUpload, signedUpload, tusUpload } from "../helpers/video.ts";

let team: Awaited<ReturnType<typeof createTeam>>;
let token: string;

beforeAll(async () => {
  team = await createTeam("Uploads");
  token = await tokenFor(team.member);
});

async function reservations(orgId: string): Promise<number> {
  const { rows } = await admin.query(`select count(*)::int as n from billing.credit_reservations where org_id = $1`, [orgId]);
  return rows[0].n;
}

async function upload(bytes: Uint8Array, type = "image/png", ext = "png") {
  const path = `${team.orgId}/${team.member.id}/${randomUUID()}.${ext}`;
  await tusUpload(token, path, bytes, type);
  return await settledUpload({ path });
}

describe("valid uploads", () => {
  it("a TUS upload passes: its real size, its sha256, and the face box in pixels; the free face check held nothing", async () => {
    const bytes = png(480, 600);
    const u = await upload(bytes);
    expect(u).toMatchObject({ status: "passed", kind: "photo", width: 480, height: 600, reject_code: null, sha256: await sha256(bytes) });
    expect(u.face).toMatchObject({ x: 144, y: 120, width: 192, height: 270 });
    const { rows: [check] } = await admin.query(`select modality, source, status, reserved_credits::int, reservation_id from ai.jobs where id = $1`, [u.face_job_id]);
    expect(check).toEqual({ modality: "vision", source: "video", status: "succeeded", reserved_credits: 0, reservation_id: null });
    expect(await reservations(team.orgId)).toBe(0);
    const { rows } = await admin.query(`select count(*)::int as n from notify.events where type = 'video.upload_validated' and subject_id = $1`, [u.id]);
    expect(rows[0].n).toBe(1);
  });

  it("a signed upload URL from the api (supabase-js uploadToSignedUrl) passes, typed by its bytes", async () => {
    const id = await signedUpload(token, team.orgId, jpeg(800, 1000), "portrait.jpg", "image/jpeg");
    expect(await settledUpload({ id })).toMatchObject({ status: "passed", kind: "photo", width: 800, height: 1000 });
    const res = await call(`/api/video/uploads/${id}`, { token });
    expect(res.body).toMatchObject({ id, filename: "portrait.jpg", mime_type: "image/jpeg", status: "passed", user_id: team.member.id });
  });

  it("a voice track passes with its length", async () => {
    const u = await upload(encodeWav(3, 440), "audio/wav", "wav");
    expect(u).toMatchObject({ status: "passed", kind: "audio", duration_ms: 3000 });
  });
});

describe("each rule rejects, free and with its reason", () => {
  const cases: [string, () => Uint8Array, string, RegExp][] = [
    ["format: a GIF", () => gif(600, 600), "format", /image\/gif.*JPEG, PNG or WebP/],
    ["format: not an image at all", () => new TextEncoder().encode("just some text, not a photo"), "format", /no type we recognize/],
    ["size: 11 MB", () => png(480, 600, "x".repeat(11 * 1024 * 1024)), "size", /at most 10 MB/],
    ["too small: 300 px short side", () => png(300, 500), "too_small", /at least 400 px/],
    ["too large: 5000 px long side", () => jpeg(5000, 3000), "too_large", /at most 4096 px/],
    ["aspect ratio: 400x900", () => png(400, 900), "aspect_ratio", /at most 2 times/],
    ["no face", () => png(480, 600, "NOFACE"), "no_face", /no face was found/],
    ["the face check refuses", () => png(480, 600, "FLAGME"), "face_refused", /refused the photo/],
  ];
  it.each(cases)("%s", async (_name, make, code, reason) => {
    const u = await upload(make());
    expect(u.status).toBe("rejected");
    expect(u.reject_code).toBe(code);
    expect(u.reject_reason).toMatch(reason);
    expect(await reservations(team.orgId)).toBe(0);
  });

  it("a rejected photo cannot make a video (409), and nothing is created", async () => {
    const u = await upload(png(300, 300));
    const before = (await admin.query(`select count(*)::int as n from video.jobs where org_id = $1`, [team.orgId])).rows[0].n;
    const res = await call("/api/video/jobs", { token, json: { org_id: team.orgId, tier: "balanced", photo_id: u.id, script: { text: "Hi", voice: "v" } } });
    expectError(res, 409, "conflict");
    expect(res.body.error.message).toMatch(/not passed validation/);
    expect((await admin.query(`select count(*)::int as n from video.jobs where org_id = $1`, [team.orgId])).rows[0].n).toBe(before);
  });
});

describe("listing and deleting", () => {
  it("filters by status and kind, pages by created_at, and keeps to the caller's orgs", async () => {
    const rejected = await call(`/api/video/uploads?org_id=${team.orgId}&status=rejected&limit=3`, { token });
    expect(rejected.status).toBe(200);
    expect(rejected.body.uploads).toHaveLength(3);
    expect(rejected.body.uploads.every((u: { status: string }) => u.status === "rejected")).toBe(true);
    const next = await call(`/api/video/uploads?org_id=${team.orgId}&status=rejected&limit=3&before=${encodeURIComponent(rejected.body.uploads[2].created_at)}`, { token });
    expect(next.body.uploads.map((u: { id: string }) => u.id)).not.toContain(rejected.body.uploads[0].id);
    const audio = await call(`/api/video/uploads?org_id=${team.orgId}&kind=audio`, { token });
    expect(audio.body.uploads.map((u: { kind: string }) => u.kind)).toEqual(["audio"]);
    const stranger = await createTeam("Stranger");
    const theirs = await call(`/api/video/uploads?org_id=${team.orgId}`, { token: await tokenFor(stranger.member) });
    expect(theirs.body.uploads).toEqual([]);
  });

  it("deletion is soft: hidden and unusable, listed on request; then purged by the retention job", async () => {
    const u = await upload(png(480, 600));
    const other = await createTeam("Other");
    expectError(await call(`/api/video/uploads/${u.id}`, { token: await tokenFor(other.owner), method: "DELETE" }), 404, "not_found");
    const del = await call(`/api/video/uploads/${u.id}`, { token, method: "DELETE" });
    expect(del.status, del.raw).toBe(200);
    expect(del.body.deleted_at).not.toBeNull();
    const listed = await call(`/api/video/uploads?org_id=${team.orgId}`, { token });
    expect(listed.body.uploads.map((x: { id: string }) => x.id)).not.toContain(u.id);
    const all = await call(`/api/video/uploads?org_id=${team.orgId}&include_deleted=true`, { token });
    expect(all.body.uploads.map((x: { id: string }) => x.id)).toContain(u.id);
    const res = await call("/api/video/jobs", { token, json: { org_id: team.orgId, tier: "balanced", photo_id: u.id, script: { text: "Hi", voice: "v" } } });
    expectError(res, 400, "invalid_request");

    const { rows: [row] } = await admin.query(`update video.uploads set deleted_at = now() - interval '31 days' where id = $1 returning path`, [u.id]);
    expect(await objectRow("photos", row.path)).toBeDefined();
    const w = inProcessWorker();
    try {
      const { db, ...ai } = w.deps;
      const r = await purge({ db, storage: w.deps.storage, ai, jobs: { ready: () => Promise.reject(new Error("unused")) } });
      expect(r.purged).toBeGreaterThanOrEqual(1);
    } finally {
      await w.close();
    }
    expect(await objectRow("photos", row.path)).toBeUndefined();
    expect((await admin.query(`select 1 from video.uploads where id = $1`, [u.id])).rowCount).toBe(0);
  });
});
