// pg-boss set-up shared by producers (api) and the worker.
import { sql } from "kysely";
import { fromKysely, PgBoss } from "pg-boss";
import type { Tx } from "../db/client.ts";
import { JOB_NAMES, JOBS, type JobName, type JobPayload } from "./catalog.ts";

export const BOSS_SCHEMA = "pgboss";

/**
 * A "worker" instance installs and maintains the pg-boss schema and runs schedules; a
 * "producer" (the api) only inserts jobs and leaves all of that to the worker.
 */
export function createBoss(connectionString: string, opts: { role: "worker" | "producer"; max?: number; cron?: boolean }): PgBoss {
  const producer = opts.role === "producer";
  const boss = new PgBoss({
    connectionString,
    schema: BOSS_SCHEMA,
    max: opts.max ?? (producer ? 1 : 3),
    // A worker listens for NOTIFY, so jobs on notify queues (ai.run, ai.poll) start at once.
    ...(producer
      ? { supervise: false, schedule: false, migrate: false, createSchema: false }
      : { useListenNotify: true, schedule: opts.cron ?? true }),
  });
  // pg-boss reports background errors as events; without a listener they would crash the process.
  boss.on("error", (err: Error) => console.error(JSON.stringify({ msg: "pg-boss error", error: err.message })));
  return boss;
}

/**
 * pg-boss creates its SQL functions without a pinned search_path, which Supabase's advisors
 * flag (lint 0011). Pin it after every start, since pg-boss upgrades may recreate them.
 */
export async function hardenBossSchema(boss: PgBoss): Promise<void> {
  await boss.getDb().executeSql(`
    do $$
    declare f regprocedure;
    begin
      for f in
        select p.oid::regprocedure from pg_proc p join pg_namespace n on n.oid = p.pronamespace
        where n.nspname = '${BOSS_SCHEMA}'
          and not exists (select 1 from unnest(coalesce(p.proconfig, '{}')) c where c like 'search_path=%')
      loop
        execute format('alter function %s set search_path = ${BOSS_SCHEMA}, pg_catalog', f);
      end loop;
    end $$`);
}

/**
 * Creates every queue (idempotent) and the cron schedules. Run by the worker at start. With
 * `cron: false` the schedules are removed instead, so switching them off takes effect even on
 * a database where an earlier worker created them.
 */
export async function ensureQueues(boss: PgBoss, opts: { cron?: boolean } = {}): Promise<void> {
  await hardenBossSchema(boss);
  for (const name of JOB_NAMES) {
    const def = JOBS[name];
    if (!(await boss.getQueue(name))) {
      await boss.createQueue(name, def.queue);
    } else {
      // A queue's policy is fixed at creation; the rest follows the catalog.
      const { policy: _policy, ...rest } = def.queue as typeof def.queue & { policy?: string };
      await boss.updateQueue(name, rest);
    }
    if (!("cron" in def)) continue;
    if (opts.cron ?? true) await boss.schedule(name, def.cron, {}, { tz: "UTC" });
    else await boss.unschedule(name);
  }
}

/**
 * Enqueues a job inside the caller's transaction, so it exists exactly when the change that
 * caused it commits. The payload is validated here, at the producer.
 */
export async function enqueue<N extends JobName>(
  boss: JobSender,
  tx: Tx,
  name: N,
  data: JobPayload<N>,
  opts: { singletonKey?: string; startAfter?: Date } = {},
): Promise<string | null> {
  const payload = JOBS[name].payload.parse(data);
  // The queue belongs to the connection's own role, not to the client role that asUser() set;
  // step out of it for the insert and back in, still inside the same transaction.
  const { rows } = await sql<{ role: string }>`select current_setting('role') as role, set_config('role', 'none', true)`.execute(tx);
  // No finally: if the insert fails the transaction is aborted anyway, and a restore attempt
  // would only replace the real error with "current transaction is aborted".
  const id = await (await boss.ready()).send(name, payload, { ...opts, db: fromKysely(tx) });
  await sql`select set_config('role', ${rows[0].role}, true)`.execute(tx);
  return id;
}

/** Anything that yields a started pg-boss: the api's Producer, or the worker's own instance. */
export type JobSender = Pick<Producer, "ready">;

/** A producer-mode pg-boss, started on first use (an edge isolate may never enqueue). */
export class Producer {
  #boss: PgBoss;
  #started?: Promise<PgBoss>;
  constructor(connectionString: string) {
    this.#boss = createBoss(connectionString, { role: "producer" });
  }
  ready(): Promise<PgBoss> {
    this.#started ??= this.#boss.start().catch((err) => {
      this.#started = undefined;
      throw err;
    });
    return this.#started;
  }
  async stop(): Promise<void> {
    if (this.#started) await this.#boss.stop({ graceful: false });
  }
}
