// The worker's ai.run: one job from admitted to finished. Each stage writes its attempts as it
// goes, so a run that dies is resumed by the next (pg-boss retries the job): pending calls are
// marked abandoned (an async submit's outcome unknown: it is looked up, never sent again), a
// call that succeeded is not made or paid for again (its result is kept on the attempt), and the
// one settle happens in ai_finish_job, which is idempotent.
import { abandonPending } from "./attempts.ts";
import { runMediaJob, unknownPendingSubmits } from "./async.ts";
import { embedCall, moderationCall, speechCall, textCall, visionCall } from "./calls.ts";
import { executeSync, type ExecuteDeps, type RouteWalk } from "./execute.ts";
import { type AiWorkerDeps, onFailure, type RunResult } from "./failure.ts";
import { estimatedTokens, type InputOf, inputTexts } from "./inputs.ts";
import { finishJob, loadJob, setProgress, startRun, updateInput, type AiJob } from "./job-store.ts";

export async function runJob(deps: AiWorkerDeps, jobId: string): Promise<RunResult> {
  const started = await startRun(deps.db, jobId);
  if (!started) {
    const ended = await loadJob(deps.db, jobId);
    return { skipped: ended ? `already ${ended.status}` : "no such job" };
  }
  const { job, walk } = started;
  if (job.modality === "video" || job.modality === "image") {
    await unknownPendingSubmits(deps, job);
    await abandonPending(deps.db, job.id);
  }
  const exec: ExecuteDeps = { db: deps.db, adapters: deps.adapters, limits: deps.limits, retryBudgetMs: deps.retryBudgetMs, sleep: deps.sleep };
  try {
    if (job.route.moderation?.length) {
      const flagged = await moderate(exec, job);
      if (flagged) return flagged;
    }
    if (job.route.enhance?.length && !job.input.enhanced_prompt) await enhance(exec, job);
    if (job.modality === "video" || job.modality === "image") return await runMediaJob(deps, exec, job);
    const output = await mainCall(deps, exec, job, walk);
    const ended = await finishJob(deps.db, job.id, "succeeded", { output });
    return { status: ended.status };
  } catch (err) {
    return await onFailure(deps, job, err);
  }
}

/**
 * Runs the moderation stage once per job (a resumed run reads the verdict it already has);
 * flagged input ends the job (voided) and is returned.
 */
export async function moderate(exec: ExecuteDeps, job: AiJob): Promise<RunResult | undefined> {
  const texts = inputTexts(job.modality, job.input as never);
  const { value } = await executeSync(exec, job, "moderation", job.route.moderation!, (a, c) => moderationCall(a, c, texts));
  if (!value?.flagged) return undefined;
  const categories = value.results.flatMap((r) => Object.entries(r.categories).filter(([, v]) => v).map(([k]) => k));
  const ended = await finishJob(exec.db, job.id, "failed", {
    error: { code: "input_flagged", class: "content_policy", message: "the input was refused by moderation; nothing was charged", details: { categories } },
  });
  return { status: ended.status, error: "input_flagged" };
}

/** Rewrites an image or video prompt with the enhancement text route, once per job. */
async function enhance(exec: ExecuteDeps, job: AiJob): Promise<void> {
  const prompt = String(job.input.prompt ?? "");
  const input: InputOf<"text"> = {
    system: "You rewrite prompts for image and video generation: concrete subject, setting, light and style. Answer with the prompt only.",
    prompt,
    max_tokens: 300,
    response_format: "text",
  };
  const { value } = await executeSync(exec, job, "enhance", job.route.enhance!, (a, c) => textCall(a, c, input, () => {}));
  const enhanced = value!.text.trim() || prompt;
  job.input.enhanced_prompt = enhanced;
  await updateInput(exec.db, job.id, { enhanced_prompt: enhanced });
}

async function mainCall(deps: AiWorkerDeps, exec: ExecuteDeps, job: AiJob, walk?: RouteWalk): Promise<unknown> {
  const route = job.route.main;
  const store = { cfg: deps.storage, orgId: job.org_id, jobId: job.id };
  let lastReport = Date.now();
  const progress = (fraction: number) => {
    // At most twice a second, the first after half a second (the call's start already showed 20%):
    // each report is a row update and a Realtime message.
    if (Date.now() - lastReport < 500) return;
    lastReport = Date.now();
    void setProgress(deps.db, job.id, 20 + 70 * fraction, "generating");
  };
  switch (job.modality) {
    case "text": {
      const input = job.input as InputOf<"text">;
      const minContext = estimatedTokens("text", input) + input.max_tokens;
      return (await executeSync(exec, job, "main", route, (a, c) => textCall(a, c, input, progress), { minContext, walk })).value;
    }
    case "audio":
      return (await executeSync(exec, job, "main", route, (a, c) => speechCall(a, c, job.input as InputOf<"audio">, store), { walk })).value;
    case "embedding":
      return (await executeSync(exec, job, "main", route, (a, c) => embedCall(a, c, job.input as InputOf<"embedding">), { walk })).value;
    case "moderation": {
      const texts = inputTexts("moderation", job.input as InputOf<"moderation">);
      return (await executeSync(exec, job, "main", route, (a, c) => moderationCall(a, c, texts), { walk })).value;
    }
    case "vision":
      return (await executeSync(exec, job, "main", route, (a, c) => visionCall(a, c, job.input as InputOf<"vision">, deps.storage), { walk })).value;
    default:
      throw new Error(`no synchronous path for ${job.modality}`);
  }
}
