// One AI call of the pipeline, through the AI gateway: admitted as the generation's creator with
// the module billing it (the gateway reserves and settles nothing; the deck's own prices do),
// keyed so a resumed run finds the job it already made (and its result) instead of calling the
// provider again, then run inline with runJob. Transactions: admission is one short service
// transaction; the run holds none while the provider works.
//
// - A full token bucket (the org's or the member's AI rate limit: 429 with retry_after) waits and
//   tries again, up to `maxWaitMs`; it never fails the card.
// - An async provider (submit, then poll) leaves the job running after runJob: its end is awaited
//   by reading ai.jobs with backoff (the worker's ai.poll or the provider's webhook finish it).
// - A refusal at admission (policy, plan, no route) or a failed job is returned, not thrown: the
//   stage decides (fallback card, failed image, failed outline). Database and Storage errors are
//   thrown, so pg-boss retries the whole job, which resumes where it stopped.
import { asService } from "../../db/client.ts";
import type { AiWorkerDeps } from "../../ai/failure.ts";
import { type AiJob, ENDED, loadJob } from "../../ai/job-store.ts";
import { runJob } from "../../ai/run-job.ts";
import { admitJob, type JobRequest, type Submitter } from "../../ai/submit.ts";
import { ApiError, fromPostgresError, retryAfterOf } from "../../http/errors.ts";

export interface CallDeps {
  ai: AiWorkerDeps;
  sleep?: (ms: number) => Promise<void>;
  /** How long a call may wait for rate-limit tokens in all (default 30 minutes). */
  maxWaitMs?: number;
  /** How long an async job may take to end after its run (default 15 minutes). */
  maxPollMs?: number;
}

export type CallResult =
  | { ok: true; job: AiJob; output: Record<string, unknown> }
  | { ok: false; code: string; message: string; job?: AiJob };

const delay = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));

/** Admits (or finds) the keyed job, runs it if it has not ended, and returns how it ended. */
export async function aiCall(
  deps: CallDeps,
  who: Submitter,
  req: Omit<JobRequest, "source" | "route"> & { idempotencyKey: string },
): Promise<CallResult> {
  const sleep = deps.sleep ?? delay;
  const maxWait = deps.maxWaitMs ?? 30 * 60_000;
  let waited = 0;
  let job: AiJob;
  for (;;) {
    try {
      job = (await asService(deps.ai.db, (tx) => admitJob(tx, null, who, { ...req, source: "deck", route: { billedByModule: true } }))).job;
      break;
    } catch (err) {
      // The gateway's own refusals (ApiError: no route, moderation required but unavailable) and
      // the admission SQL's mapped ones are answers; a database fault is not.
      const own = err instanceof ApiError;
      const known = own ? err : fromPostgresError(err);
      if (!known) throw err;
      if (known.status === 429 && waited < maxWait) {
        // The bucket refills evenly: come back when a token is free (plus a little spread, so
        // parallel cards do not all return in the same millisecond).
        const ms = Math.min(maxWait - waited, (retryAfterOf(known) ?? 1) * 1000 + Math.floor(Math.random() * 250));
        waited += ms;
        await sleep(ms);
        continue;
      }
      if (known.status >= 500 && !own) throw err;
      return { ok: false, code: known.code, message: known.message };
    }
  }
  if (!ENDED.has(job.status)) {
    await runJob(deps.ai, job.id);
    job = (await loadJob(deps.ai.db, job.id)) ?? job;
  }
  const maxPoll = deps.maxPollMs ?? 15 * 60_000;
  let pause = 100;
  for (let spent = 0; !ENDED.has(job.status); spent += pause, pause = Math.min(pause * 2, 5_000)) {
    if (spent > maxPoll) return { ok: false, code: "timeout", message: `the AI job did not end within ${maxPoll / 1000} s`, job };
    await sleep(pause);
    job = (await loadJob(deps.ai.db, job.id)) ?? job;
  }
  if (job.status !== "succeeded") {
    const e = (job.error ?? {}) as { code?: string; message?: string };
    return { ok: false, code: e.code ?? job.status, message: e.message ?? `the AI job ${job.status}`, job };
  }
  return { ok: true, job, output: (job.output ?? {}) as Record<string, unknown> };
}
