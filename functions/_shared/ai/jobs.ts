// The AI gateway's job handlers: ai.run (a job from admitted to finished), ai.poll (an async
// task's next look at its provider), and ai.sweep (every minute: picks up jobs whose run or
// poll was lost, and ends jobs stuck past their reservation's life).
import { sql } from "kysely";
import { asService } from "../db/client.ts";
import { JOBS } from "../jobs/catalog.ts";
import { pollJob } from "./async.ts";
import type { AiWorkerDeps } from "./failure.ts";
import { finishJob } from "./job-store.ts";
import { runJob } from "./run-job.ts";

/** Untouched this long, a queued or running job has lost its run or poll. */
const STALE_AFTER = "10 minutes";
/** Older than this, a job cannot settle any more (its reservation lives at most a day). */
const GIVE_UP_AFTER = "23 hours";

export function aiHandlers(deps: AiWorkerDeps) {
  return {
    "ai.run": async (data: unknown) => await runJob(deps, JOBS["ai.run"].payload.parse(data).job_id),
    "ai.poll": async (data: unknown) => await pollJob(deps, JOBS["ai.poll"].payload.parse(data).job_id),
    "ai.sweep": async (data: unknown) => {
      JOBS["ai.sweep"].payload.parse(data);
      return await sweep(deps);
    },
  };
}

export async function sweep(deps: AiWorkerDeps): Promise<{ resumed: number; expired: number }> {
  const rows = await asService(deps.db, async (tx) =>
    (await sql<{ id: string; modality: string; open_task: boolean; expired: boolean }>`
      select j.id, j.modality,
             exists (select 1 from ai.attempts a where a.job_id = j.id and a.status in ('submitted', 'unknown')) as open_task,
             j.created_at < now() - ${GIVE_UP_AFTER}::interval as expired
      from ai.jobs j
      where j.status in ('queued', 'running') and j.updated_at < now() - ${STALE_AFTER}::interval
      order by j.updated_at
      limit 500`.execute(tx)).rows);
  let resumed = 0;
  let expired = 0;
  for (const r of rows) {
    if (r.expired) {
      await finishJob(deps.db, r.id, "failed", { error: { code: "stalled", message: "the job did not finish within a day; nothing was charged" } });
      expired++;
    } else {
      await deps.schedule(r.open_task ? "ai.poll" : "ai.run", r.id, 0);
      resumed++;
    }
  }
  return { resumed, expired };
}
