// POST /functions/v1/webhooks/ai/replicate on the stack: a delivery signed the Standard Webhooks
// way with the account secret wakes the poll of the job its prediction belongs to; a forged or
// stale one is refused (401) and queues nothing; a replay of a webhook-id already taken is a
// duplicate and queues nothing; a prediction no job knows is ignored.
import { randomUUID } from "node:crypto";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { closeSucceeded, openAttempt } from "../../functions/_shared/ai/attempts.ts";
import { signOne } from "../../functions/_shared/webhooks/signature.ts";
import { admin, stack } from "../helpers/db.ts";
import { call } from "../helpers/http.ts";
import { createModel } from "../helpers/ai.ts";
import { eventually, teamWithCredits } from "../helpers/ai-jobs.ts";
import { admitOnly, inProcessWorker, type InProcessWorker } from "../helpers/ai-worker.ts";

let secret: string;
let w: InProcessWorker;
let jobId: string;
let taskId: string;

beforeAll(async () => {
  const res = await fetch(`${stack.fakeAiUrl}/replicate/v1/webhooks/default/secret`, { headers: { authorization: "Bearer r8_test" } });
  secret = ((await res.json()) as { key: string }).key;
  w = inProcessWorker();
  // A job whose Replicate task is open: admitted, and its attempt submitted as prediction `taskId`.
  const team = await teamWithCredits(100);
  const { model } = await createModel({ modality: "image", deployments: [{ provider: "replicate" }] });
  const job = await admitOnly(w, { orgId: team.orgId, userId: team.member.id }, { modality: "image", model, input: { prompt: "Waiting for a callback" } });
  jobId = job.id;
  taskId = `p${randomUUID().replace(/-/g, "").slice(0, 20)}`;
  const attempt = await openAttempt(w.deps.db, job, "main", "initial", job.route.main[0]);
  await closeSucceeded(w.deps.db, attempt.id, { status: "submitted", providerRequestId: taskId, latencyMs: 5 });
  // Canceled while its task is open (the prediction exists nowhere): a woken poll finds the job
  // ended, closes the task and stops, so the polls counted here are the webhooks' only.
  await admin.query(`select private.ai_finish_job($1, 'canceled')`, [jobId]);
});

afterAll(async () => {
  await w.close();
});

function prediction(id = taskId, status = "succeeded") {
  return JSON.stringify({ id, status, model: "plinth-test/x", version: "v1", input: { prompt: "x" }, output: ["https://example.test/out.png"], logs: "", metrics: { predict_time: 1.2 } });
}

async function deliver(body: string, opts: { id?: string; key?: string; at?: number; provider?: string; signature?: string } = {}) {
  const id = opts.id ?? `msg_${randomUUID()}`;
  const at = opts.at ?? Math.floor(Date.now() / 1000);
  const signature = opts.signature ?? (await signOne(opts.key ?? secret, id, at, body));
  const res = await call(`/webhooks/ai/${opts.provider ?? "replicate"}`, {
    body,
    headers: { "content-type": "application/json", "webhook-id": id, "webhook-timestamp": String(at), "webhook-signature": signature },
  });
  return { res, id };
}

async function polls(): Promise<number> {
  const { rows } = await admin.query(`select count(*)::int as n from pgboss.job where name = 'ai.poll' and singleton_key = $1`, [jobId]);
  return rows[0].n;
}

async function receipt(webhookId: string) {
  const { rows } = await admin.query(`select provider_id, provider_task_id from private.ai_webhook_receipts where webhook_id = $1`, [webhookId]);
  return rows[0];
}

describe("Replicate webhooks", () => {
  it("a validly signed delivery is recorded and wakes the job's poll", async () => {
    expect(await polls()).toBe(0);
    const { res, id } = await deliver(prediction());
    expect(res.status, res.raw).toBe(200);
    expect(res.body).toEqual({ received: true, status: "queued", job_id: jobId });
    expect(await receipt(id)).toEqual({ provider_id: "replicate", provider_task_id: taskId });
    expect(await polls()).toBe(1);
    // The worker ran that poll: it found the job canceled and closed its task.
    await eventually(async () => (await admin.query(`select status from ai.attempts where job_id = $1`, [jobId])).rows[0].status === "canceled", "the woken poll");
  });

  it("a replay of the same webhook-id is a duplicate and queues nothing", async () => {
    const body = prediction(taskId, "processing");
    const first = await deliver(body);
    expect(first.res.status).toBe(200);
    const before = await polls();
    const again = await deliver(body, { id: first.id });
    expect(again.res.status, again.res.raw).toBe(200);
    expect(again.res.body).toEqual({ received: true, status: "duplicate" });
    expect(await polls()).toBe(before);
  });

  it("a forged signature is refused with 401 and leaves no trace", async () => {
    const before = await polls();
    const other = `whsec_${Buffer.from(randomUUID()).toString("base64")}`;
    const forged = await deliver(prediction(), { key: other });
    expect(forged.res.status, forged.res.raw).toBe(401);
    expect(forged.res.body.error.code).toBe("invalid_signature");
    expect(await receipt(forged.id)).toBeUndefined();
    // A body changed after signing is as bad as a wrong key.
    const at = Math.floor(Date.now() / 1000);
    const signature = await signOne(secret, "msg_tampered", at, prediction(taskId, "failed"));
    const tampered = await deliver(prediction(), { id: "msg_tampered", at, signature });
    expect(tampered.res.status).toBe(401);
    expect(await receipt("msg_tampered")).toBeUndefined();
    expect(await polls()).toBe(before);
  });

  it("a stale timestamp or missing headers are refused", async () => {
    const stale = await deliver(prediction(), { at: Math.floor(Date.now() / 1000) - 600 });
    expect(stale.res.status).toBe(401);
    expect(await receipt(stale.id)).toBeUndefined();
    const bare = await call("/webhooks/ai/replicate", { body: prediction(), headers: { "content-type": "application/json" } });
    expect(bare.status).toBe(401);
  });

  it("a validly signed body that is not a prediction is a 400", async () => {
    const bad = await deliver(JSON.stringify({ hello: "world" }));
    expect(bad.res.status, bad.res.raw).toBe(400);
    expect(await receipt(bad.id)).toBeUndefined();
  });

  it("a prediction no job knows is ignored (and acknowledged, so Replicate stops sending it)", async () => {
    const { res, id } = await deliver(prediction("p_nobody_knows_this_one"));
    expect(res.status).toBe(200);
    expect(res.body).toMatchObject({ status: "ignored" });
    expect(await receipt(id)).toMatchObject({ provider_task_id: "p_nobody_knows_this_one" });
  });

  it("only providers that call back take webhooks", async () => {
    const openai = await deliver(prediction(), { provider: "openai" });
    expect(openai.res.status).toBe(404);
    const nobody = await deliver(prediction(), { provider: "no-such-provider" });
    expect(nobody.res.status).toBe(404);
  });
});
