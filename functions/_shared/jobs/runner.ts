// Runs jobs two ways with the same handlers: long-lived (pg-boss workers polling) or
// one bounded drain, which is what the worker edge function does when cron calls it.
import type { PgBoss } from "pg-boss";
import { JOB_NAMES, JOBS, type JobName } from "./catalog.ts";
import type { JobHandler } from "./handlers.ts";
import { ensureQueues } from "./queue.ts";

type Handlers = Record<JobName, JobHandler>;

function log(fields: Record<string, unknown>) {
  console.log(JSON.stringify({ at: new Date().toISOString(), ...fields }));
}

export async function startWorkers(boss: PgBoss, handlers: Handlers, opts: { pollingIntervalSeconds?: number } = {}) {
  await boss.start();
  await ensureQueues(boss);
  for (const name of JOB_NAMES) {
    const def = JOBS[name] as { workers?: number };
    const every = opts.pollingIntervalSeconds ?? 1;
    // NOTIFY wakes a worker when a job is inserted, not when a delayed one (startAfter: an AI
    // job's next poll, a reschedule after a cooldown) comes due; pg-boss would otherwise relax
    // polling to every 30 s on notify queues and start those jobs up to 30 s late.
    const options = { pollingIntervalSeconds: every, notifyPollingIntervalSeconds: every, batchSize: 1, localConcurrency: def.workers ?? 1 };
    await boss.work(name, options, async ([job]) => {
      try {
        const result = await handlers[name](job.data, job.id);
        log({ msg: "job done", job: name, id: job.id });
        return result;
      } catch (err) {
        log({ msg: "job failed", job: name, id: job.id, error: (err as Error).message });
        throw err;
      }
    });
  }
}

export interface DrainResult {
  completed: number;
  failed: number;
}

/** Fetches and runs ready jobs until none are left or the time budget is spent. */
export async function drainQueues(boss: PgBoss, handlers: Handlers, budgetMs: number): Promise<DrainResult> {
  const deadline = Date.now() + budgetMs;
  const result: DrainResult = { completed: 0, failed: 0 };
  let progressed = true;
  while (progressed && Date.now() < deadline) {
    progressed = false;
    for (const name of JOB_NAMES) {
      if (Date.now() >= deadline) break;
      // One job at a time, so the budget is checked before each: an edge isolate killed mid-batch
      // would leave fetched jobs active until they expire.
      const jobs = await boss.fetch(name, { batchSize: 1 });
      for (const job of jobs) {
        progressed = true;
        try {
          const output = await handlers[name](job.data, job.id);
          await boss.complete(name, job.id, (output ?? null) as object | null);
          result.completed++;
        } catch (err) {
          await boss.fail(name, job.id, { message: (err as Error).message });
          result.failed++;
        }
      }
    }
  }
  return result;
}
