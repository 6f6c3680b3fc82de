// Dispatches the outbox: each pending event goes to every consumer that has not handled it
// yet. A consumer's effects and its receipt commit together (one savepoint per event and
// consumer), so a consumer never acts twice on an event, and a failing consumer only holds
// back its own work: the event is retried later, with backoff, for the consumers still missing.
import { sql } from "kysely";
import type { Db, Tx } from "../db/client.ts";
import { asService } from "../db/client.ts";
import type { OutboxEvent } from "./catalog.ts";

export interface EventConsumer {
  /** Stable name, recorded in notify.consumer_receipts. */
  name: string;
  handle(tx: Tx, event: OutboxEvent): Promise<void>;
}

export interface DispatchResult {
  events: number;
  handled: number;
  failed: number;
}

const MAX_BACKOFF_SECONDS = 3600;

const BATCH = 100;

export interface DispatchOptions {
  limit?: number;
  /** The dispatcher's clock (tests pass a later time to reach events held back from the worker). */
  now?: Date;
  /** Only this org's events (a targeted redrive; tests keep to their own org this way). */
  orgId?: string;
}

export async function dispatchBatch(db: Db, consumers: EventConsumer[], opts: DispatchOptions = {}): Promise<DispatchResult> {
  const limit = opts.limit ?? BATCH;
  const now = opts.now ?? new Date();
  return await asService(db, async (tx) => {
    const { rows: events } = await sql<OutboxEvent>`
      select id, seq, org_id, type, schema_version, subject_kind, subject_id, actor_user_id, actor_api_key_id,
             payload, occurred_at
      from notify.events
      where dispatched_at is null and next_dispatch_at <= ${now.toISOString()}::timestamptz
        and (${opts.orgId ?? null}::uuid is null or org_id = ${opts.orgId ?? null}::uuid)
      order by seq
      limit ${limit}
      for update skip locked`.execute(tx);
    const result: DispatchResult = { events: events.length, handled: 0, failed: 0 };
    for (const event of events) {
      const { rows: done } = await sql<{ consumer: string }>`
        select consumer from notify.consumer_receipts where event_id = ${event.id}`.execute(tx);
      const handled = new Set(done.map((r) => r.consumer));
      const errors: string[] = [];
      for (const consumer of consumers) {
        if (handled.has(consumer.name)) continue;
        await sql`savepoint consumer`.execute(tx);
        try {
          await consumer.handle(tx, event);
          await sql`insert into notify.consumer_receipts (consumer, event_id) values (${consumer.name}, ${event.id})`.execute(tx);
          await sql`release savepoint consumer`.execute(tx);
          result.handled++;
        } catch (err) {
          await sql`rollback to savepoint consumer`.execute(tx);
          errors.push(`${consumer.name}: ${(err as Error).message}`);
          result.failed++;
        }
      }
      if (errors.length === 0) {
        await sql`update notify.events set dispatched_at = now(), last_error = null where id = ${event.id}`.execute(tx);
      } else {
        await sql`
          update notify.events
          set dispatch_attempts = dispatch_attempts + 1,
              last_error = ${errors.join("; ").slice(0, 2000)},
              -- Capped before any cast: 2^31 would overflow int and fail the whole batch.
              next_dispatch_at = ${now.toISOString()}::timestamptz
                + make_interval(secs => least(${MAX_BACKOFF_SECONDS}, power(2, least(dispatch_attempts + 1, 12))))
          where id = ${event.id}`.execute(tx);
      }
    }
    return result;
  });
}

/** Dispatches until nothing is ready or the budget is spent. */
export async function dispatchPending(db: Db, consumers: EventConsumer[], budgetMs = 30_000, now?: Date): Promise<DispatchResult> {
  const total: DispatchResult = { events: 0, handled: 0, failed: 0 };
  const deadline = Date.now() + budgetMs;
  while (Date.now() < deadline) {
    const r = await dispatchBatch(db, consumers, { now });
    total.events += r.events;
    total.handled += r.handled;
    total.failed += r.failed;
    // A short batch means nothing else is ready (failed events wait for their backoff).
    if (r.events < BATCH) break;
  }
  return total;
}
