// Attempt rows: written before a provider call and closed after it, each in its own short
// transaction, so no lock is held while the provider thinks and a crash leaves a visible
// "pending" row behind (which the next run marks abandoned).
import { sql } from "kysely";
import { asService, type Db, type Tx } from "../db/client.ts";
import { type Outcome, recordOutcomeIn } from "./health.ts";
import type { Units } from "./pricing.ts";
import type { AttemptRecord } from "./router.ts";
import type { Candidate } from "./route.ts";
import type { ErrorClass, ProviderError } from "./types.ts";

export type Purpose = "main" | "moderation" | "enhance";

export interface AttemptRow extends AttemptRecord {
  id: string;
  job_id: string;
  attempt_no: number;
  purpose: Purpose;
  kind: "initial" | "retry" | "fallback";
  provider_id: string;
  provider_model: string;
  provider_request_id: string | null;
  started_at: string;
  /** A succeeded call's result, until the job ends. */
  result: unknown;
}

/** A job's attempts (of one purpose), oldest first; with a Db, in a transaction of its own. */
export async function loadAttempts(dbOrTx: Db | Tx, jobId: string, purpose?: Purpose): Promise<AttemptRow[]> {
  const read = async (tx: Tx) =>
    (await sql<AttemptRow>`
      select id, job_id, attempt_no, purpose, kind, deployment_id, provider_id, provider_model, status, error_class,
             provider_request_id, started_at, result
      from ai.attempts where job_id = ${jobId} and (${purpose ?? null}::text is null or purpose = ${purpose ?? null})
      order by attempt_no`.execute(tx)).rows;
  return "isTransaction" in dbOrTx && dbOrTx.isTransaction ? await read(dbOrTx as Tx) : await asService(dbOrTx as Db, read);
}

/** A call that a dead worker left in flight: its outcome is lost, and it counts as a try. */
export async function abandonPending(db: Db, jobId: string): Promise<number> {
  return await asService(db, async (tx) => {
    const r = await sql`update ai.attempts set status = 'abandoned', finished_at = now(), error_message = 'the worker stopped during the call'
                        where job_id = ${jobId} and status = 'pending'`.execute(tx);
    return Number(r.numAffectedRows ?? 0);
  });
}

export async function openAttempt(
  db: Db,
  job: { id: string; org_id: string },
  purpose: Purpose,
  kind: AttemptRow["kind"],
  c: Candidate,
): Promise<AttemptRow> {
  // The job's progress moves with its calls (one statement: a round trip per call matters).
  const [progress, message] = PROGRESS[purpose];
  return await asService(db, async (tx) => {
    const { rows } = await sql<AttemptRow>`
      with job as (
        update ai.jobs set status = 'running', started_at = coalesce(started_at, now()),
                           progress = greatest(progress, ${progress}), progress_message = ${message}
        where id = ${job.id} and status in ('queued', 'running')
      )
      insert into ai.attempts (job_id, org_id, attempt_no, purpose, kind, deployment_id, provider_id, provider_model)
      values (${job.id}, ${job.org_id},
              (select coalesce(max(attempt_no), 0) + 1 from ai.attempts where job_id = ${job.id}),
              ${purpose}, ${kind}, ${c.deployment_id}, ${c.provider_id}, ${c.provider_model})
      returning id, job_id, attempt_no, purpose, kind, deployment_id, provider_id, provider_model, status, error_class,
                provider_request_id, started_at, result`.execute(tx);
    return rows[0];
  });
}

/** Progress (percent) and message a job shows while a call of each purpose is in flight. */
const PROGRESS: Record<Purpose, [number, string]> = {
  moderation: [10, "checking the input"],
  enhance: [15, "improving the prompt"],
  main: [20, "generating"],
};

export interface AttemptSuccess {
  status: "succeeded" | "submitted";
  units?: Units;
  credits?: number;
  costMicros?: number;
  providerRequestId?: string;
  /** What the call returned, kept so that a run resumed after a crash need not call again. */
  result?: unknown;
  latencyMs: number;
}

/**
 * Closes a call that worked and feeds the success to the deployment's health, in one
 * transaction committed asynchronously: every call of a busy deployment updates the same health
 * row, and holding its lock through an fsync would serialize them all. Nothing is at risk: the
 * job's next durable commit (its finish) flushes this one too, and if Postgres itself crashed
 * first, the resumed run simply calls again (the org is still charged once, at the finish).
 */
export async function closeSucceeded(db: Db, attemptId: string, s: AttemptSuccess, health?: string): Promise<void> {
  await asService(db, async (tx) => {
    await closeSucceededIn(tx, attemptId, s);
    if (health) await recordOutcomeIn(tx, health, { ok: true });
  }, { asyncCommit: true });
}

async function closeSucceededIn(tx: Tx, attemptId: string, s: AttemptSuccess): Promise<void> {
  await sql`update ai.attempts
            set status = ${s.status}, units = ${JSON.stringify(s.units ?? {})}::jsonb, credits = ${s.credits ?? 0},
                provider_cost_micros = ${s.costMicros ?? 0}, billed = ${s.status === "succeeded"},
                provider_request_id = coalesce(${s.providerRequestId ?? null}, provider_request_id),
                result = ${s.result === undefined ? null : JSON.stringify(s.result)}::jsonb,
                latency_ms = ${s.latencyMs}, http_status = 200,
                finished_at = case when ${s.status} = 'succeeded' then now() end
            where id = ${attemptId}`.execute(tx);
}

/** Closes a failed call; what the provider billed regardless (a failed stream's input) is kept. */
export async function closeFailed(
  db: Db,
  attemptId: string,
  f: {
    status: "failed" | "refused" | "unknown" | "canceled";
    error?: ProviderError | { errorClass: ErrorClass; message: string; details?: ProviderError["details"] };
    billedUnits?: Units;
    costMicros?: number;
    /** Credits charged for partial work the client received (a stream cut after its first bytes). */
    credits?: number;
    latencyMs: number;
  },
  /** The deployment and outcome to feed to the cooldowns in the same transaction. */
  health?: { deploymentId: string; outcome: Outcome },
): Promise<void> {
  const e = f.error;
  await asService(db, async (tx) => {
    if (health) await recordOutcomeIn(tx, health.deploymentId, health.outcome);
    await sql`update ai.attempts
              set status = ${f.status}, error_class = ${e?.errorClass ?? null}, error_code = ${e?.details?.code ?? null},
                  error_message = ${e ? e.message.slice(0, 1000) : null}, http_status = ${e?.details?.status ?? null},
                  provider_request_id = coalesce(${e?.details?.providerRequestId ?? null}, provider_request_id),
                  units = ${JSON.stringify(f.billedUnits ?? {})}::jsonb, provider_cost_micros = ${f.costMicros ?? 0},
                  billed = ${!!f.billedUnits}, latency_ms = ${f.latencyMs}, credits = ${f.credits ?? 0},
                  finished_at = case when ${f.status} = 'unknown' then null else now() end
              where id = ${attemptId}`.execute(tx);
  });
}

/** An outcome-unknown submit that the provider confirms it received: now an open task. */
export async function markSubmitted(db: Db, attemptId: string, providerTaskId: string): Promise<void> {
  await asService(db, async (tx) => {
    await sql`update ai.attempts set status = 'submitted', provider_request_id = ${providerTaskId},
                                    error_class = null, error_message = null
              where id = ${attemptId} and status = 'unknown'`.execute(tx);
  });
}

export async function setAttemptProgress(db: Db, attemptId: string, progress: number): Promise<void> {
  await asService(db, async (tx) => {
    await sql`update ai.attempts set progress = ${Math.max(0, Math.min(1, progress))} where id = ${attemptId}`.execute(tx);
  });
}
