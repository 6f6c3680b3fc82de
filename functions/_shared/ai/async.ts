// Media jobs (images and video) on providers that work asynchronously (Replicate, Runway,
// D-ID): submit, then learn the outcome by polling or by the provider's webhook (which only triggers a poll: the provider's own state is what counts, so a
// late or repeated webhook changes nothing). A submit that timed out is "unknown" and is
// resolved by reading the provider with our key (the attempt id), never by submitting again.
// A provider's refusal ends the job; any other failure falls back along the route. An image
// route may mix kinds: a deployment whose adapter answers synchronously is simply called.
import { closeFailed, closeSucceeded, loadAttempts, markSubmitted, setAttemptProgress, type AttemptRow } from "./attempts.ts";
import { imageCall } from "./calls.ts";
import { type CallOutcome, executeSync, type ExecuteDeps, OutputStoreError } from "./execute.ts";
import type { InputOf } from "./inputs.ts";
import { ENDED, finishJob, loadJob, setProgress, type AiJob } from "./job-store.ts";
import { signedUrlFor, storeOutputs } from "./outputs.ts";
import { charge, type Units } from "./pricing.ts";
import { type AiWorkerDeps, onFailure, type RunResult } from "./failure.ts";
import { type AsyncTask, type ProviderAdapter, ProviderError } from "./types.ts";

/** An open task older than this is given up on (reservations live at most a day). */
const MAX_TASK_AGE_MS = 20 * 60 * 60_000;
const CONFIRM_DELAY_MS = 1000;

export async function runMediaJob(deps: AiWorkerDeps, exec: ExecuteDeps, job: AiJob): Promise<RunResult> {
  const open = await openAttempt(deps, job.id);
  if (open) return await pollAttempt(deps, exec, job, open);
  return await submitNext(deps, exec, job);
}

async function openAttempt(deps: AiWorkerDeps, jobId: string): Promise<AttemptRow | undefined> {
  return (await loadAttempts(deps.db, jobId, "main")).filter((a) => a.status === "submitted" || a.status === "unknown").at(-1);
}

/** Whether a deployment's adapter runs this job as a task (submit, then poll). */
function runsAsTask(adapter: ProviderAdapter, job: AiJob): boolean {
  return !!adapter.submit && (job.modality === "video" || !adapter.image);
}

/** What a finished task is priced by: images made, or seconds of video the provider reports. */
function taskUnits(job: AiJob, task: AsyncTask): { units: Units; variant: string } {
  if (job.modality === "image") {
    const i = job.input as InputOf<"image">;
    return { units: { image: task.outputs?.length ?? i.n }, variant: i.quality ? `${i.size}/${i.quality}` : i.size };
  }
  const v = job.input as InputOf<"video">;
  return { units: { video_second: task.durationSeconds ?? v.duration_seconds }, variant: v.resolution };
}

/** The normalized task input: Storage paths become short-lived signed URLs the provider fetches. */
async function taskInput(deps: AiWorkerDeps, job: AiJob): Promise<Record<string, unknown>> {
  if (job.modality === "image") {
    const i = job.input as InputOf<"image"> & { enhanced_prompt?: string };
    const [w, h] = i.size.split("x").map(Number);
    const ratio = w === h ? "1:1" : w > h ? "16:9" : "9:16";
    return { prompt: i.enhanced_prompt ?? i.prompt, num_outputs: i.n, ratio, negative_prompt: i.negative_prompt };
  }
  const v = job.input as InputOf<"video"> & { enhanced_prompt?: string };
  return {
    prompt: v.enhanced_prompt ?? v.prompt,
    image_url: v.image_path ? await signedUrlFor(deps.storage, v.image_path, 24 * 3600) : undefined,
    audio_url: v.audio_path ? await signedUrlFor(deps.storage, v.audio_path, 24 * 3600) : undefined,
    script: v.script,
    duration_seconds: v.duration_seconds,
    resolution: v.resolution,
    ratio: v.ratio,
  };
}

/**
 * A submit that was in flight when its worker died may have reached the provider: like one that
 * timed out, its outcome is unknown, and the poll looks it up by our key instead of sending it again.
 */
export async function unknownPendingSubmits(deps: AiWorkerDeps, job: AiJob): Promise<void> {
  for (const a of await loadAttempts(deps.db, job.id, "main")) {
    if (a.status !== "pending") continue;
    const adapter = await deps.adapters.get(a.provider_id).catch(() => undefined);
    if (!adapter || !runsAsTask(adapter, job) || !adapter.findByIdempotencyKey) continue;
    await closeFailed(deps.db, a.id, { status: "unknown", error: { errorClass: "timeout", message: "the worker stopped during the submit" }, latencyMs: Date.now() - Date.parse(a.started_at) });
  }
}

async function submitNext(deps: AiWorkerDeps, exec: ExecuteDeps, job: AiJob): Promise<RunResult> {
  await setProgress(deps.db, job.id, 10, "submitting");
  const input = await taskInput(deps, job);
  const store = { cfg: deps.storage, orgId: job.org_id, jobId: job.id };
  const r = await executeSync<unknown>(exec, job, "main", job.route.main, async (adapter, c, attempt): Promise<CallOutcome<unknown>> => {
    if (!runsAsTask(adapter, job)) {
      if (job.modality === "image") return await imageCall(adapter, c, job.input as InputOf<"image">, store);
      throw new ProviderError("bad_request", `deployment ${c.deployment_id} cannot run ${job.modality} tasks`);
    }
    const task = await adapter.submit!({ model: c.provider_model, input, idempotencyKey: attempt.id, webhookUrl: deps.webhookUrl?.({ id: c.provider_id, kind: c.provider_kind }) });
    return { value: task, units: {}, providerRequestId: task.providerTaskId, submitted: true };
  }, { unknownOnTimeout: (adapter) => runsAsTask(adapter, job) });
  // Done: a synchronous image call, or a task whose run died after it was stored.
  if (r.resumed || (!r.unknown && !runsAsTask(await deps.adapters.get(r.candidate.provider_id), job))) {
    const ended = await finishJob(deps.db, job.id, "succeeded", { output: r.value });
    return { status: ended.status };
  }
  await setProgress(deps.db, job.id, 15, r.unknown ? "waiting for the provider to confirm" : "queued at the provider");
  await deps.schedule("ai.poll", job.id, r.unknown ? CONFIRM_DELAY_MS : deps.pollMs ?? 5000);
  return { status: "running" };
}

/** ai.poll: reads the job's open task at its provider and moves the job on. */
export async function pollJob(deps: AiWorkerDeps, jobId: string): Promise<RunResult> {
  const job = await loadJob(deps.db, jobId);
  if (!job) return { skipped: "no such job" };
  const open = await openAttempt(deps, job.id);
  if (ENDED.has(job.status)) {
    if (open) await cancelAtProvider(deps, open);
    return { skipped: `already ${job.status}` };
  }
  if (!open) {
    // Running with no open task: a worker died before its submit was written, or after the
    // output was stored. The run picks up either.
    await deps.schedule("ai.run", job.id, 0);
    return { skipped: "no open task" };
  }
  const exec: ExecuteDeps = { db: deps.db, adapters: deps.adapters, limits: deps.limits, retryBudgetMs: deps.retryBudgetMs, sleep: deps.sleep };
  try {
    return await pollAttempt(deps, exec, job, open);
  } catch (err) {
    return await onFailure(deps, job, err);
  }
}

async function cancelAtProvider(deps: AiWorkerDeps, open: AttemptRow): Promise<void> {
  const adapter = await deps.adapters.get(open.provider_id);
  if (open.provider_request_id && adapter.cancel) await adapter.cancel(open.provider_request_id).catch(() => {});
  await closeFailed(deps.db, open.id, { status: "canceled", error: { errorClass: "bad_request", message: "the job was canceled" }, latencyMs: 0 });
}

async function pollAttempt(deps: AiWorkerDeps, exec: ExecuteDeps, job: AiJob, open: AttemptRow): Promise<RunResult> {
  const adapter = await deps.adapters.get(open.provider_id);
  const c = job.route.main.find((x) => x.deployment_id === open.deployment_id)!;
  const age = Date.now() - Date.parse(open.started_at);
  let task: AsyncTask | null;
  try {
    if (open.status === "unknown") {
      task = await adapter.findByIdempotencyKey!(open.id);
      if (!task) {
        // The provider confirms it never got the submit: a plain failure, safe to retry or fall back.
        await closeFailed(deps.db, open.id, { status: "failed", error: { errorClass: "timeout", message: "the submit timed out and never reached the provider" }, latencyMs: age });
        return await submitNext(deps, exec, job);
      }
      await markSubmitted(deps.db, open.id, task.providerTaskId);
    } else {
      task = await adapter.get!(open.provider_request_id!);
    }
  } catch (err) {
    // Reading the provider failed: that says nothing about the task. Look again later.
    if (age > MAX_TASK_AGE_MS) throw err;
    await deps.schedule("ai.poll", job.id, (deps.pollMs ?? 5000) * 2);
    return { status: "running" };
  }
  switch (task.status) {
    case "queued":
    case "running": {
      if (age > MAX_TASK_AGE_MS) {
        await cancelAtProvider(deps, open);
        const ended = await finishJob(deps.db, job.id, "failed", { error: { code: "timeout", message: "the provider did not finish in time" } });
        return { status: ended.status, error: "timeout" };
      }
      if (task.progress !== undefined) await setAttemptProgress(deps.db, open.id, task.progress);
      await setProgress(deps.db, job.id, 15 + 75 * (task.progress ?? 0), task.status === "queued" ? "queued at the provider" : "rendering");
      await deps.schedule("ai.poll", job.id, deps.pollMs ?? 5000);
      return { status: "running" };
    }
    case "succeeded": {
      await setProgress(deps.db, job.id, 92, "storing the output");
      const { units, variant } = taskUnits(job, task);
      let files;
      try {
        files = await storeOutputs(deps.storage, job.org_id, job.id, task.outputs ?? []);
      } catch (err) {
        throw new OutputStoreError((err as Error).message, units);
      }
      const { credits, costMicros } = charge(units, c.prices, variant);
      const output = job.modality === "video" ? { files, duration_seconds: units.video_second, model: c.model_id } : { files, model: c.model_id };
      await closeSucceeded(deps.db, open.id, { status: "succeeded", units, credits, costMicros, providerRequestId: task.providerTaskId, result: output, latencyMs: age }, c.deployment_id);
      const ended = await finishJob(deps.db, job.id, "succeeded", { output });
      return { status: ended.status };
    }
    case "refused": {
      const e = task.error ?? { code: "refused", message: "the provider refused the input", errorClass: "content_policy" as const };
      await closeFailed(deps.db, open.id, { status: "refused", error: { errorClass: "content_policy", message: e.message, details: { code: e.code } }, latencyMs: age });
      const ended = await finishJob(deps.db, job.id, "failed", {
        error: { code: "refused", class: "content_policy", message: `${e.message} (nothing was charged; no other provider was asked)` },
      });
      return { status: ended.status, error: "refused" };
    }
    case "failed":
    case "canceled": {
      const e = task.error ?? { code: task.status, message: `the provider reports the task ${task.status}`, errorClass: "server" as const };
      await closeFailed(deps.db, open.id, { status: "failed", error: { errorClass: e.errorClass, message: e.message, details: { code: e.code } }, latencyMs: age },
        { deploymentId: c.deployment_id, outcome: { ok: false, errorClass: e.errorClass, sole: job.route.main.length === 1 } });
      return await submitNext(deps, exec, job);
    }
  }
}
