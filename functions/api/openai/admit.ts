// Admitting a request of the OpenAI-compatible endpoint as an AI job that runs inline: the
// same admission, reservation and settle as a queued job, so credits, caps, rate limits and
// usage are one system. Model "plinth/<tier>" routes by tier; any other name is a model.
import type { Context } from "hono";
import type { ExecuteDeps } from "../../_shared/ai/execute.ts";
import type { AiJob } from "../../_shared/ai/job-store.ts";
import type { Tier } from "../../_shared/ai/route.ts";
import { admitJob } from "../../_shared/ai/submit.ts";
import type { Modality } from "../../_shared/ai/types.ts";
import { asUser } from "../../_shared/db/client.ts";
import { submitterFor } from "../ai-caller.ts";
import type { ApiEnv } from "../context.ts";
import { requestMeta } from "../middleware.ts";

const TIER_MODEL = /^plinth\/(economy|balanced|premium)$/;

export function routeOf(model: string): { tier?: Tier; model?: string } {
  const m = TIER_MODEL.exec(model);
  return m ? { tier: m[1] as Tier } : { model };
}

export async function admitInline(c: Context<ApiEnv>, modality: Modality, model: string, input: unknown): Promise<AiJob> {
  const { db } = c.get("deps");
  const { job } = await asUser(db, c.get("principal").claims, async (tx) => {
    const who = await submitterFor(c, tx);
    return await admitJob(tx, null, who, { modality, ...routeOf(model), input, source: "openai" });
  }, requestMeta(c));
  return job;
}

export function executeDeps(c: Context<ApiEnv>): ExecuteDeps {
  const { db, ai } = c.get("deps");
  // Inline calls keep the caller waiting: a short retry budget, then fall back or answer.
  return { db, adapters: ai, retryBudgetMs: 10_000 };
}

/** OpenAI-style ids carry our job id, so a support question can be traced. */
export const completionId = (job: AiJob) => `chatcmpl-${job.id.replaceAll("-", "")}`;
