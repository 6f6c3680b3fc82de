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

/** Jobs fetched per worker slot: a full fetch means a backlog, and pg-boss then fetches again at once. */
const BATCH = 2;

/** How a queue with `workers` slots polls and fetches in a long-lived worker. */
export function workOptions(workers: number, everySeconds: number, batch?: number) {
  // Single-job fetches would wait a polling interval after every job, capping a backlog at
  // `workers` jobs per second; with batches and burstWhenBatchFull a backlog drains at once.
  // Batches only for queues with several workers: a one-worker queue keeps its one-at-a-time order.
  // A queue whose handler takes whole batches says how many it fetches at once.
  const batchSize = batch ?? (workers > 1 ? BATCH : 1);
  return {
    // NOTIFY wakes a worker when a job is inserted, not when a delayed one (startAfter: an AI
    // job's next poll, a reschedule after a cooldown) comes due; pg-boss would otherwise relax
    // polling to every 30 s on notify queues and start those jobs up to 30 s late.
    pollingIntervalSeconds: everySeconds,
    notifyPollingIntervalSeconds: everySeconds,
    batchSize,
    burstWhenBatchFull: batchSize > 1,
    // A batch queue's `workers` counts batches in flight; the others', jobs in flight.
    localConcurrency: batch ? workers : Math.max(1, Math.ceil(workers / batchSize)),
  };
}

export async function startWorkers(boss: PgBoss, handlers: Handlers, opts: { pollingIntervalSeconds?: number; cron?: boolean } = {}) {
  await boss.start();
  await ensureQueues(boss, { cron: opts.cron });
  for (const name of JOB_NAMES) {
    const def = JOBS[name] as { workers?: number; batch?: number };
    const batch = handlers[name].batch;
    await boss.work(name, workOptions(def.workers ?? 1, opts.pollingIntervalSeconds ?? 1, batch && def.batch), async (jobs) => {
      if (batch) {
        // One call for the whole batch; each job still completes or fails on its own.
        const results = await batch(jobs.map((j) => ({ id: j.id, data: j.data }))).catch((err: Error) => jobs.map(() => ({ error: err })));
        const done = jobs.filter((_, i) => "output" in results[i]).map((j) => j.id);
        if (done.length) await boss.complete(name, done);
        for (const [i, job] of jobs.entries()) {
          const r = results[i];
          if ("error" in r) {
            log({ msg: "job failed", job: name, id: job.id, error: r.error.message });
            await boss.fail(name, job.id, { message: r.error.message });
          }
        }
        log({ msg: "jobs done", job: name, count: done.length });
        return;
      }
      // Each job of a batch succeeds or fails on its own; pg-boss then completes none twice.
      await Promise.all(jobs.map(async (job) => {
        try {
          const result = await handlers[name](job.data, job.id);
          await boss.complete(name, job.id, (result ?? null) as object | null);
          log({ msg: "job done", job: name, id: job.id });
        } catch (err) {
          log({ msg: "job failed", job: name, id: job.id, error: (err as Error).message });
          await boss.fail(name, job.id, { message: (err as Error).message });
        }
      }));
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
