// Binary outputs: a job's files land in the ai-outputs bucket at <org_id>/<job_id>/<n>.<ext>
// before the job counts as succeeded; members of the org read them with supabase-js (Storage
// RLS), members of another org cannot, nobody but the worker writes there; the api hands out
// signed URLs. A file that cannot be stored keeps the job from succeeding.
import { createHash } from "node:crypto";
import { describe, expect, it } from "vitest";
import { admin, createTeam } from "../helpers/db.ts";
import { account } from "../helpers/credits.ts";
import { scriptFake } from "../helpers/fake-ai.ts";
import { createModel, stack, waitForJob } from "../helpers/ai.ts";
import { call } from "../helpers/http.ts";
import { eventually, submitJob, teamWithCredits } from "../helpers/ai-jobs.ts";
import { tokenFor, userClient } from "../helpers/supabase.ts";

const sha256 = (b: Uint8Array) => createHash("sha256").update(b).digest("hex");

async function objectRow(path: string) {
  const { rows } = await admin.query(`select name, created_at, metadata from storage.objects where bucket_id = 'ai-outputs' and name = $1`, [path]);
  return rows[0] as { name: string; created_at: Date; metadata: Record<string, unknown> } | undefined;
}

describe("image outputs in Storage", () => {
  it("stores each image at <org>/<job>/<n>.png before the job succeeds, readable by the org's members only", async () => {
    const team = await teamWithCredits(100);
    const { model } = await createModel({ modality: "image", deployments: [{ provider: "openai" }] });
    const id = await submitJob(team, { modality: "image", model, input: { prompt: "Two red kites", n: 2, size: "512x512" } });
    const job = await waitForJob(id);
    expect(job.status, JSON.stringify(job.error)).toBe("succeeded");
    const files = job.output.files as { bucket: string; path: string; mime_type: string; bytes: number; sha256: string }[];
    expect(files.map((f) => [f.bucket, f.path, f.mime_type])).toEqual([
      ["ai-outputs", `${team.orgId}/${id}/0.png`, "image/png"],
      ["ai-outputs", `${team.orgId}/${id}/1.png`, "image/png"],
    ]);
    // 2 images x 5 credits.
    expect(job.settled_credits).toBe(10);
    expect(await account(team.orgId)).toMatchObject({ balance: 90, reserved: 0 });

    // In Storage before the job was marked succeeded.
    const { rows: [{ finished_at: finishedAt }] } = await admin.query(`select finished_at from ai.jobs where id = $1`, [id]);
    for (const f of files) {
      const row = await objectRow(f.path);
      expect(row, f.path).toBeDefined();
      expect(row!.created_at.getTime()).toBeLessThanOrEqual(finishedAt.getTime());
    }

    // Members of the org read them (a viewer too: reading needs content.read).
    for (const user of [team.member, team.viewer]) {
      const { data, error } = await (await userClient(user)).storage.from("ai-outputs").download(files[0].path);
      expect(error, user.email).toBeNull();
      const bytes = new Uint8Array(await data!.arrayBuffer());
      expect(bytes.length).toBe(files[0].bytes);
      expect(sha256(bytes)).toBe(files[0].sha256);
    }
    const listed = await (await userClient(team.member)).storage.from("ai-outputs").list(`${team.orgId}/${id}`);
    expect(listed.data?.map((o) => o.name).sort()).toEqual(["0.png", "1.png"]);

    // A member of another org cannot read, list or sign them.
    const other = await createTeam();
    const outsider = await userClient(other.member);
    const { data: stolen, error: denied } = await outsider.storage.from("ai-outputs").download(files[0].path);
    expect(stolen).toBeNull();
    expect(denied).not.toBeNull();
    const { data: peek } = await outsider.storage.from("ai-outputs").list(`${team.orgId}/${id}`);
    expect(peek ?? []).toEqual([]);
    const { data: signed, error: signError } = await outsider.storage.from("ai-outputs").createSignedUrl(files[0].path, 60);
    expect(signed).toBeNull();
    expect(signError).not.toBeNull();
    // Nor can the org's own members write there: only the worker does.
    const { error: writeError } = await (await userClient(team.owner)).storage.from("ai-outputs").upload(`${team.orgId}/${id}/0.png`, new Uint8Array([1, 2, 3]), { upsert: true, contentType: "image/png" });
    expect(writeError).not.toBeNull();
    expect((await objectRow(files[0].path))!.metadata).toMatchObject({ size: files[0].bytes });

    // The api signs them for the submitter; another org's member does not even see the job.
    const view = await call(`/api/ai/jobs/${id}`, { token: team.token });
    expect(view.status).toBe(200);
    const url = view.body.output.files[0].signed_url as string;
    expect(url).toMatch(/\/storage\/v1\/object\/sign\/ai-outputs\//);
    const fetched = await fetch(url);
    expect(fetched.status).toBe(200);
    expect(sha256(new Uint8Array(await fetched.arrayBuffer()))).toBe(files[0].sha256);
    const foreign = await call(`/api/ai/jobs/${id}`, { token: await tokenFor(other.member) });
    expect(foreign.status).toBe(404);
  });

  it("an async provider's output is fetched from its URL and stored the same way", async () => {
    const team = await teamWithCredits(100);
    const { model, deployments: [d] } = await createModel({ modality: "image", deployments: [{ provider: "replicate" }] });
    await scriptFake(stack.fakeAiUrl, d.key, { mode: "ok", outputCount: 1 });
    const id = await submitJob(team, { modality: "image", model, input: { prompt: "A paper boat" } });
    const job = await waitForJob(id);
    expect(job.status, JSON.stringify(job.error)).toBe("succeeded");
    expect(job.output.files).toMatchObject([{ bucket: "ai-outputs", path: `${team.orgId}/${id}/0.png`, mime_type: "image/png" }]);
    const { data, error } = await (await userClient(team.member)).storage.from("ai-outputs").download(`${team.orgId}/${id}/0.png`);
    expect(error).toBeNull();
    expect(sha256(new Uint8Array(await data!.arrayBuffer()))).toBe(job.output.files[0].sha256);
  });

  it("speech lands in the same place as an MP3, priced per character", async () => {
    const team = await teamWithCredits(100);
    const { model } = await createModel({ modality: "audio", deployments: [{ provider: "openai" }] });
    const text = "Welcome to the talking photo studio. ".repeat(60); // 2,220 characters
    const id = await submitJob(team, { modality: "audio", model, input: { text, voice: "alloy" } });
    const job = await waitForJob(id);
    expect(job.status, JSON.stringify(job.error)).toBe("succeeded");
    expect(job.output.files).toMatchObject([{ bucket: "ai-outputs", path: `${team.orgId}/${id}/0.mp3`, mime_type: "audio/mpeg" }]);
    const { data, error } = await (await userClient(team.member)).storage.from("ai-outputs").download(`${team.orgId}/${id}/0.mp3`);
    expect(error).toBeNull();
    const bytes = new Uint8Array(await data!.arrayBuffer());
    expect([...bytes.subarray(0, 3)]).toEqual([0x49, 0x44, 0x33]); // ID3
    // 2,220 characters at 1 credit per 1,000, rounded up.
    expect(job.settled_credits).toBe(3);
  });

  it("a job whose file cannot be fetched and stored does not succeed", async () => {
    const team = await teamWithCredits(100);
    const { model, deployments: [d] } = await createModel({ modality: "image", deployments: [{ provider: "replicate" }] });
    // The provider says succeeded, but its output URL leads nowhere (expired, say).
    await scriptFake(stack.fakeAiUrl, d.key, { mode: "ok", output: ["http://127.0.0.1:9/expired.png"] });
    const id = await submitJob(team, { modality: "image", model, input: { prompt: "Gone" } });
    // The poll that found the task done fails (pg-boss will retry it): the job is not ended.
    await eventually(async () => {
      const { rows } = await admin.query(`select 1 from pgboss.job where name = 'ai.poll' and singleton_key = $1 and (state in ('retry', 'failed') or retry_count > 0)`, [id]);
      return rows.length > 0;
    }, "the storing poll to fail");
    const { rows: [row] } = await admin.query(`select status, progress_message, settled_credits from ai.jobs where id = $1`, [id]);
    expect(row).toEqual({ status: "running", progress_message: "storing the output", settled_credits: null });
    expect(await objectRow(`${team.orgId}/${id}/0.png`)).toBeUndefined();
    expect(await account(team.orgId)).toMatchObject({ balance: 100, reserved: 5 });
    // The submitter gives up on it: the reservation is released.
    const canceled = await call(`/api/ai/jobs/${id}/cancel`, { token: team.token, method: "POST" });
    expect(canceled.body).toMatchObject({ status: "canceled", settled_credits: 0 });
    expect(await account(team.orgId)).toMatchObject({ balance: 100, reserved: 0 });
  });
});
