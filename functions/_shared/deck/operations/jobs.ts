// The operations' worker jobs. deck.card_op runs an operation's AI job here (no queue hop) and
// settles it; if the gateway defers the run (every provider cooling), the follow-up comes back
// as this job, so exactly one runner ever holds the AI job. deck.operations_sweep (every minute)
// re-queues operations whose job was lost.
import { sql } from "kysely";
import { runJob } from "../../ai/run-job.ts";
import { asService } from "../../db/client.ts";
import { JOBS } from "../../jobs/catalog.ts";
import type { DeckJobDeps } from "../jobs.ts";
import { settleOperation } from "./apply.ts";
import { loadOperation, OPEN_STATES } from "./store.ts";

/** Open this long without a change, an operation has lost its job. */
const STALE_AFTER = "2 minutes";

async function requeue(deps: DeckJobDeps, operationId: string, delayMs: number) {
  await (await deps.jobs.ready()).send("deck.card_op", { operation_id: operationId }, {
    singletonKey: operationId,
    startAfter: new Date(Date.now() + delayMs),
  });
}

export async function runOperation(deps: DeckJobDeps, operationId: string): Promise<Record<string, unknown>> {
  const op = await asService(deps.db, async (tx) => {
    const o = await loadOperation(tx, operationId);
    if (o?.state === "queued") await sql`update deck.operations set state = 'running' where id = ${operationId}::uuid and state = 'queued'`.execute(tx);
    return o;
  });
  if (!op || !OPEN_STATES.has(op.state)) return { skipped: op ? `operation is ${op.state}` : "no such operation" };
  let run: unknown = null;
  if (op.ai_job_id) {
    run = await runJob({
      db: deps.db,
      ...deps.ai,
      // A deferred run comes back as this job (which runs it and then settles), never as a bare ai.run.
      schedule: async (name, jobId, delayMs) => (name === "ai.run" && jobId === op.ai_job_id ? requeue(deps, operationId, delayMs) : deps.ai.schedule(name, jobId, delayMs)),
    }, op.ai_job_id);
  }
  const state = await asService(deps.db, (tx) => settleOperation(tx, operationId));
  return { operation_id: operationId, run, state };
}

export async function sweepOperations(deps: DeckJobDeps): Promise<{ requeued: number }> {
  const ids = await asService(deps.db, async (tx) =>
    (await sql<{ id: string }>`
      select id from deck.operations
      where state in ('queued', 'running') and updated_at < now() - ${STALE_AFTER}::interval
      order by updated_at limit 200`.execute(tx)).rows.map((r) => r.id));
  for (const id of ids) await requeue(deps, id, 0);
  return { requeued: ids.length };
}

export function operationHandlers(deps: DeckJobDeps) {
  return {
    "deck.card_op": async (data: unknown) => await runOperation(deps, JOBS["deck.card_op"].payload.parse(data).operation_id),
    "deck.operations_sweep": async (data: unknown) => {
      JOBS["deck.operations_sweep"].payload.parse(data);
      return await sweepOperations(deps);
    },
  };
}
