// Export workflows: the validator finds each violation in MP4s crafted box by box (wrong aspect,
// too long, wrong fps, slow start, MOV where only MP4 goes) from the file's real metadata, read by
// byte ranges from Storage; platform specs are versioned rows that are never edited; templates
// carry the instructions; the optimize suggestion comes from the AI gateway; checks are kept per
// member.
import { randomUUID } from "node:crypto";
import { beforeAll, describe, expect, it } from "vitest";
import { probeMp4 } from "../../functions/_shared/video/mp4.ts";
import { checkAgainstSpec, type PlatformSpec } from "../../functions/_shared/video/platform-check.ts";
import { localMp4 } from "../../functions/_shared/ai/providers/local-media.ts";
import { admin, expectSqlError } from "../helpers/db.ts";
import { call, expectError } from "../helpers/http.ts";
import { tokenFor } from "../helpers/supabase.ts";
import { teamWithCredits } from "../helpers/ai-jobs.ts";
import { waitForJob } from "../helpers/ai.ts";
import { craftMp4, type Mp4Spec, makeVideo, ownTier, passedPhoto, waitVideo } from "../helpers/video.ts";

const inMemory = (bytes: Uint8Array) => (start: number, end: number) => Promise.resolve(bytes.subarray(start, end));
const probe = (s: Mp4Spec) => {
  const bytes = craftMp4(s);
  return probeMp4(bytes.length, inMemory(bytes));
};

async function spec(platform: string): Promise<PlatformSpec> {
  const { rows } = await admin.query(
    `select *, min_seconds::float8 as min_seconds, max_seconds::float8 as max_seconds, min_aspect::float8 as min_aspect,
            max_aspect::float8 as max_aspect, min_fps::float8 as min_fps, max_fps::float8 as max_fps, max_bytes::float8 as max_bytes
     from video.current_platform_specs where platform = $1`, [platform]);
  return rows[0];
}

describe("reading an MP4's real metadata", () => {
  it("reads size, length, frame rate, codec and layout from crafted boxes", async () => {
    expect(await probe({ width: 1080, height: 1920, seconds: 12, fps: 30 })).toMatchObject({
      container: "mp4", video_codec: "h264", audio_codec: null, seconds: 12, width: 1080, height: 1920, fps: 30, faststart: true,
    });
    expect(await probe({ width: 640, height: 480, seconds: 2, fps: 25, brand: "qt  ", moovFirst: false })).toMatchObject({ container: "mov", faststart: false, fps: 25 });
  });

  it("reads the local provider's MP4 (made by ffmpeg)", async () => {
    const bytes = localMp4();
    expect(await probeMp4(bytes.length, inMemory(bytes))).toMatchObject({ container: "mp4", video_codec: "h264", seconds: 1, width: 96, height: 64, fps: 8, faststart: true });
  });

  it("refuses what is not an MP4", async () => {
    const text = new TextEncoder().encode("this is not a video at all, just some text");
    await expect(probeMp4(text.length, inMemory(text))).rejects.toThrow(/not an MP4/);
  });
});

describe("the validator finds each violation", () => {
  it("a valid TikTok video has none", async () => {
    expect(checkAgainstSpec(await probe({ width: 1080, height: 1920, seconds: 20, fps: 30 }), await spec("tiktok"))).toEqual([]);
  });

  it("wrong aspect ratio (16:9 for Reels)", async () => {
    const v = checkAgainstSpec(await probe({ width: 1920, height: 1080, seconds: 20, fps: 30 }), await spec("instagram_reels"));
    expect(v).toEqual([expect.objectContaining({ rule: "aspect_ratio", expected: ["9:16"], actual: "1920:1080" })]);
  });

  it("too long (200 s for YouTube Shorts, whose limit is 3 minutes since 15 October 2024)", async () => {
    const v = checkAgainstSpec(await probe({ width: 1080, height: 1920, seconds: 200, fps: 30 }), await spec("youtube_shorts"));
    expect(v).toEqual([expect.objectContaining({ rule: "duration", expected: { min: null, max: 180 }, actual: 200 })]);
  });

  it("wrong frame rate (15 fps for TikTok)", async () => {
    const v = checkAgainstSpec(await probe({ width: 1080, height: 1920, seconds: 10, fps: 15 }), await spec("tiktok"));
    expect(v).toEqual([expect.objectContaining({ rule: "fps", expected: { min: 23, max: 60 }, actual: 15 })]);
  });

  it("no fast start and the wrong container, too big, all at once", async () => {
    const v = checkAgainstSpec(await probe({ width: 1080, height: 1920, seconds: 10, fps: 30, brand: "qt  ", moovFirst: false, mdatBytes: 17 * 1024 * 1024 }), await spec("whatsapp_status"));
    expect(v.map((x) => x.rule).sort()).toEqual(["container", "size"]);
    const reels = checkAgainstSpec(await probe({ width: 1080, height: 1920, seconds: 10, fps: 30, moovFirst: false }), await spec("instagram_reels"));
    expect(reels.map((x) => x.rule)).toEqual(["faststart"]);
  });

  it("a ratio range (LinkedIn: 1:2.4 to 2.4:1)", async () => {
    const wide = checkAgainstSpec(await probe({ width: 3000, height: 1000, seconds: 10, fps: 30 }), await spec("linkedin"));
    expect(wide.map((x) => x.rule)).toEqual(["aspect_ratio"]);
    expect(checkAgainstSpec(await probe({ width: 1080, height: 1350, seconds: 10, fps: 30 }), await spec("linkedin"))).toEqual([]);
  });
});

describe("platform specs are versioned data", () => {
  it("are never edited in place: a change is a new version", async () => {
    await expectSqlError(admin.query(`update video.platform_specs set max_seconds = 999 where platform = 'tiktok'`), "55000", /versioned/);
    const { rows } = await admin.query(`select version, max_seconds::int from video.platform_specs where platform = 'youtube_shorts' order by version`);
    expect(rows).toEqual([{ version: 1, max_seconds: 60 }, { version: 2, max_seconds: 180 }]);
    expect((await spec("youtube_shorts")).version).toBe(2);
  });

  it("every row cites its source", async () => {
    const { rows } = await admin.query(`select count(*)::int as n from video.platform_specs where source_url !~ '^https://' or source_title = ''`);
    expect(rows[0].n).toBe(0);
  });
});

describe("over the api", () => {
  let team: Awaited<ReturnType<typeof teamWithCredits>>;
  let jobId: string;
  beforeAll(async () => {
    team = await teamWithCredits(100);
    const tier = await ownTier(["local/video"], { credits: 1 });
    const photo = await passedPhoto(team.token, team.orgId, team.member.id);
    jobId = await makeVideo(team.token, { org_id: team.orgId, tier, photo_id: photo, script: { text: "Hello there, this is a check.", voice: "en-US-JennyNeural" } });
    expect((await waitVideo(jobId)).status).toBe("completed");
  });

  it("checks a finished video against a platform: every violation, kept in the member's history", async () => {
    const res = await call(`/api/video/jobs/${jobId}/exports`, { token: team.token, json: { platform: "tiktok" } });
    expect(res.status, res.raw).toBe(201);
    // The local provider's clip: 96x64, 1 s, 8 fps.
    expect(res.body).toMatchObject({ platform: "tiktok", spec_version: 1, valid: false, metadata: { width: 96, height: 64, fps: 8, seconds: 1 } });
    expect(res.body.violations.map((v: { rule: string }) => v.rule)).toEqual(["duration", "width", "height", "aspect_ratio", "fps"]);
    const history = await call(`/api/video/exports?job_id=${jobId}`, { token: team.token });
    expect(history.body.exports.map((e: { id: string }) => e.id)).toContain(res.body.id);
    // Another member's history does not show it.
    const admins = await call(`/api/video/exports?job_id=${jobId}`, { token: await tokenFor(team.admin) });
    expect(admins.body.exports).toEqual([]);
  });

  it("the optimize suggestion is written by the AI gateway", async () => {
    const check = await call(`/api/video/jobs/${jobId}/exports`, { token: team.token, json: { platform: "youtube_shorts" } });
    const res = await call(`/api/video/exports/${check.body.id}/optimize`, { token: team.token, method: "POST" });
    expect(res.status, res.raw).toBe(202);
    const job = await waitForJob(res.body.ai_job_id);
    expect(job.status).toBe("succeeded");
    expect(typeof job.output.text).toBe("string");
    // Asking again returns the same suggestion job.
    expect((await call(`/api/video/exports/${check.body.id}/optimize`, { token: team.token, method: "POST" })).body.ai_job_id).toBe(res.body.ai_job_id);
  });

  it("platforms, their versions and templates with step-by-step instructions", async () => {
    const all = await call("/api/video/platforms", { token: team.token });
    expect(all.body.platforms.map((p: { spec: { platform: string } }) => p.spec.platform)).toEqual(["instagram_reels", "linkedin", "tiktok", "whatsapp_status", "youtube_shorts"]);
    const yt = await call("/api/video/platforms/youtube_shorts", { token: team.token });
    expect(yt.body.spec).toMatchObject({ version: 2, max_seconds: 180 });
    expect(yt.body.versions).toHaveLength(2);
    expect(yt.body.template.instructions.length).toBeGreaterThan(2);
  });

  it("refuses a video that has not finished, and an unknown platform", async () => {
    expectError(await call(`/api/video/jobs/${jobId}/exports`, { token: team.token, json: { platform: "myspace" } }), 400, "invalid_request");
    expectError(await call(`/api/video/jobs/${randomUUID()}/exports`, { token: team.token, json: { platform: "tiktok" } }), 404, "not_found");
  });
});
