// Privacy: a member's export bundles their profile, uploads, videos and checks (files included)
// into one archive behind a signed URL; erasure removes every file, asks each provider to delete
// its copy with a receipt each (Runway and local delete; Replicate has no delete), forgets the
// AI jobs' inputs, and a second run changes nothing.
import { unzipSync } from "fflate";
import { describe, expect, it } from "vitest";
import { admin } from "../helpers/db.ts";
import { fakeCalls, scriptFake } from "../helpers/fake-ai.ts";
import { call } from "../helpers/http.ts";
import { stack } from "../helpers/ai.ts";
import { eventually, ownModel, ownProvider, teamWithCredits } from "../helpers/ai-jobs.ts";
import { objectRow } from "../helpers/storage.ts";
import { tokenFor } from "../helpers/supabase.ts";
import { makeVideo, ownTier, passedPhoto, waitVideo } from "../helpers/video.ts";

const SCRIPT = { text: "Hello from my privacy test.", voice: "en-US-JennyNeural" };

async function done(id: string) {
  return await eventually(async () => {
    const { rows } = await admin.query(`select status, summary, error from video.privacy_requests where id = $1`, [id]);
    return rows[0]?.status === "done" || rows[0]?.status === "failed" ? rows[0] : undefined;
  }, `privacy request ${id}`, 30_000);
}

describe("a member's export and erasure", () => {
  it("exports everything into one archive, then erases it all, idempotently", async () => {
    const team = await teamWithCredits(500);
    const photo = await passedPhoto(team.token, team.orgId, team.member.id);
    const runway = await ownModel({ modality: "video", deployments: [{ provider: await ownProvider("runway") }] });
    const replicate = await ownModel({ modality: "video", deployments: [{ provider: "replicate" }] });
    await scriptFake(stack.fakeAiUrl, runway.deployments[0].key, { mode: "ok", pollsUntilDone: 1 });
    await scriptFake(stack.fakeAiUrl, replicate.deployments[0].key, { mode: "ok", outputType: "mp4" });
    const jobs = [];
    for (const chain of [["local/video"], [runway.deployments[0].id], [replicate.deployments[0].id]]) {
      const id = await makeVideo(team.token, { org_id: team.orgId, tier: await ownTier(chain, { credits: 1 }), photo_id: photo, script: SCRIPT });
      const job = await waitVideo(id);
      expect(job.status, JSON.stringify(job.error)).toBe("completed");
      jobs.push(job);
    }

    const exp = await call("/api/video/privacy/export", { token: team.token, method: "POST" });
    expect(exp.status, exp.raw).toBe(202);
    expect((await done(exp.body.id)).status).toBe("done");
    const got = await call(`/api/video/privacy/requests/${exp.body.id}`, { token: team.token });
    expect(got.body).toMatchObject({ kind: "export", status: "done", summary: { uploads: 1, upload_files: 1, videos: 3, video_files: 3 } });
    const zip = unzipSync(new Uint8Array(await (await fetch(got.body.download_url)).arrayBuffer()));
    expect(Object.keys(zip)).toEqual(expect.arrayContaining(["profile.json", "uploads.json", "videos.json", "exports.json", ...jobs.map((j) => `videos/${j.id}.mp4`)]));
    expect(Object.keys(zip).some((n) => n.startsWith(`uploads/${photo}-`))).toBe(true);
    expect(JSON.parse(new TextDecoder().decode(zip["profile.json"])).id).toBe(team.member.id);
    const videos = JSON.parse(new TextDecoder().decode(zip["videos.json"]));
    expect(videos.map((v: { id: string }) => v.id).sort()).toEqual(jobs.map((j) => j.id).sort());
    // Another member cannot read the request.
    expect((await call(`/api/video/privacy/requests/${exp.body.id}`, { token: await tokenFor(team.admin) })).status).toBe(404);

    const { rows: [photoRow] } = await admin.query(`select path from video.uploads where id = $1`, [photo]);
    const { rows: [archive] } = await admin.query(`select archive_path from video.privacy_requests where id = $1`, [exp.body.id]);
    const files = [["photos", photoRow.path], ["privacy-exports", archive.archive_path], ...jobs.map((j) => [j.output!.bucket, j.output!.path])];
    for (const [b, p] of files) expect(await objectRow(b, p), `${b}/${p}`).toBeDefined();

    const erase = await call("/api/video/privacy/erasure", { token: team.token, method: "POST" });
    expect(erase.status).toBe(202);
    expect(await done(erase.body.id)).toMatchObject({ status: "done", summary: { videos: 3, uploads: 1, provider_copies: { deleted: 2, not_supported: 1, failed: 0 } } });
    for (const [b, p] of files) expect(await objectRow(b, p), `${b}/${p} is gone`).toBeUndefined();
    const receipts = (await call(`/api/video/privacy/requests/${erase.body.id}`, { token: team.token })).body.receipts;
    expect(receipts.map((r: { provider_id: string; status: string }) => [r.provider_id.replace(/-[0-9a-f]{8}$/, ""), r.status]).sort()).toEqual([
      ["local", "deleted"], ["replicate", "not_supported"], ["runway", "deleted"],
    ]);
    const runwayDeletes = async () => (await fakeCalls(stack.fakeAiUrl, `${runway.deployments[0].key}:task`)).filter((c) => c.method === "DELETE").length;
    expect(await runwayDeletes()).toBe(1);
    const { rows: left } = await admin.query(
      `select (select count(*)::int from video.jobs where user_id = $1) as jobs, (select count(*)::int from video.uploads where user_id = $1) as uploads,
              (select count(*)::int from ai.jobs where user_id = $1 and source = 'video' and input <> '{"erased": true}') as inputs`, [team.member.id]);
    expect(left[0]).toEqual({ jobs: 0, uploads: 0, inputs: 0 });

    // Again: nothing is left to delete, no provider is asked twice, the receipts stand.
    const again = await call("/api/video/privacy/erasure", { token: team.token, method: "POST" });
    expect(await done(again.body.id)).toMatchObject({ status: "done", summary: { videos: 0, uploads: 0, files_deleted: 0, provider_copies: { deleted: 0, not_supported: 0, failed: 0 } } });
    expect(await runwayDeletes()).toBe(1);
    expect((await call(`/api/video/privacy/requests/${again.body.id}`, { token: team.token })).body.receipts).toHaveLength(3);
  });
});
