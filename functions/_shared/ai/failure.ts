// How a job run ends when the route could not finish it: a spent route fails the job (voided,
// nothing charged); a route where everything is cooling comes back when the first cooldown
// ends; anything else (database, Storage) is thrown for pg-boss to retry.
import type { Db } from "../db/client.ts";
import type { AdapterRegistry } from "./adapters.ts";
import { AllCoolingError, RouteFailedError } from "./execute.ts";
import { finishJob, setProgress, type AiJob } from "./job-store.ts";
import type { StorageConfig } from "./outputs.ts";
import type { RouterLimits } from "./router.ts";

export interface AiWorkerDeps {
  db: Db;
  adapters: AdapterRegistry;
  storage: StorageConfig;
  /** Queues a follow-up run or poll of a job after a delay (pg-boss, singleton per job). */
  schedule: (name: "ai.run" | "ai.poll", jobId: string, delayMs: number) => Promise<void>;
  /** Where a provider that calls back (Replicate) sends its webhooks; undefined = poll only. */
  webhookUrl?: (provider: { id: string; kind: string }) => string | undefined;
  pollMs?: number;
  limits?: RouterLimits;
  retryBudgetMs?: number;
  sleep?: (ms: number) => Promise<void>;
}

/** Jobs that cannot start because every deployment is cooling give up after this long. */
const MAX_WAIT_FOR_COOLDOWN_MS = 30 * 60_000;

export type RunResult = { skipped: string } | { status: string; error?: string } | { rescheduled: number };

/** A spent route ends the job (voided); a cooling route comes back later; anything else is retried by pg-boss. */
export async function onFailure(deps: AiWorkerDeps, job: AiJob, err: unknown): Promise<RunResult> {
  if (err instanceof RouteFailedError) {
    const ended = await finishJob(deps.db, job.id, "failed", {
      error: { code: err.code, class: err.last?.errorClass, message: err.message },
    });
    return { status: ended.status, error: err.code };
  }
  if (err instanceof AllCoolingError) {
    if (Date.now() - Date.parse(job.created_at) > MAX_WAIT_FOR_COOLDOWN_MS) {
      const ended = await finishJob(deps.db, job.id, "failed", { error: { code: "unavailable", message: err.message } });
      return { status: ended.status, error: "unavailable" };
    }
    await setProgress(deps.db, job.id, 5, "waiting for a provider");
    await deps.schedule("ai.run", job.id, err.retryAfterMs + 100);
    return { rescheduled: err.retryAfterMs };
  }
  throw err;
}
