// The ai.jobs row as the worker reads and moves it: load, mark running, report progress, and
// finish (settle or void once, in SQL: private.ai_finish_job).
import { sql } from "kysely";
import { asService, type Db } from "../db/client.ts";
import { readWalk, type RouteWalk } from "./execute.ts";
import type { JobRoute, Tier } from "./route.ts";
import type { Modality } from "./types.ts";

export interface AiJob {
  id: string;
  org_id: string;
  user_id: string | null;
  api_key_id: string | null;
  batch_id: string | null;
  source: string;
  modality: Modality;
  tier: Tier | null;
  model_id: string | null;
  input: Record<string, unknown>;
  route: JobRoute;
  status: "queued" | "running" | "succeeded" | "failed" | "canceled";
  progress: number;
  output: Record<string, unknown> | null;
  error: { code: string; message: string; class?: string } | null;
  reserved_credits: number;
  settled_credits: number | null;
  created_at: string;
}

export const ENDED = new Set(["succeeded", "failed", "canceled"]);

export async function loadJob(db: Db, jobId: string): Promise<AiJob | undefined> {
  return await asService(db, async (tx) => (await sql<AiJob>`select * from ai.jobs where id = ${jobId}`.execute(tx)).rows[0]);
}

/**
 * Starts (or resumes) a run in one transaction: the job, if it has not ended, and for
 * synchronous modalities the calls a dead worker left in flight marked abandoned (they count as
 * tries). The job turns running with its first call (openAttempt). Media jobs look their
 * in-flight submits up first (async.ts). Undefined when the job has ended.
 */
export async function startRun(db: Db, jobId: string): Promise<{ job: AiJob; walk?: RouteWalk } | undefined> {
  return await asService(db, async (tx) => {
    const { rows } = await sql<AiJob>`select * from ai.jobs where id = ${jobId} and status in ('queued', 'running')`.execute(tx);
    const job = rows[0];
    if (!job || job.modality === "image" || job.modality === "video") return job && { job };
    await sql`update ai.attempts set status = 'abandoned', finished_at = now(), error_message = 'the worker stopped during the call'
              where job_id = ${jobId} and status = 'pending'`.execute(tx);
    // The main call's walk, read here rather than in a transaction of its own.
    return { job, walk: await readWalk(tx, jobId, "main", job.route.main) };
  });
}

/** Moves a queued job to running (once) and reports progress; returns false if it already ended. */
export async function setProgress(db: Db, jobId: string, progress: number, message: string): Promise<boolean> {
  return await asService(db, async (tx) => {
    const r = await sql`update ai.jobs
                        set status = 'running', started_at = coalesce(started_at, now()),
                            progress = greatest(progress, ${Math.max(0, Math.min(99, Math.round(progress)))}), progress_message = ${message}
                        where id = ${jobId} and status in ('queued', 'running')`.execute(tx);
    return Number(r.numAffectedRows ?? 0) > 0;
  });
}

export async function updateInput(db: Db, jobId: string, patch: Record<string, unknown>): Promise<void> {
  await asService(db, async (tx) => {
    await sql`update ai.jobs set input = input || ${JSON.stringify(patch)}::jsonb where id = ${jobId}`.execute(tx);
  });
}

export interface JobError {
  code: string;
  message: string;
  class?: string;
  details?: unknown;
}

export async function finishJob(
  db: Db,
  jobId: string,
  status: "succeeded" | "failed" | "canceled",
  result: { output?: unknown; error?: JobError; charge?: number },
): Promise<AiJob> {
  return await asService(db, async (tx) =>
    (await sql<AiJob>`select * from private.ai_finish_job(${jobId}, ${status},
                        ${result.output === undefined ? null : JSON.stringify(result.output)}::jsonb,
                        ${result.error ? JSON.stringify(result.error) : null}::jsonb,
                        ${result.charge ?? null}::bigint)`.execute(tx)).rows[0]);
}
