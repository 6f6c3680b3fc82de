// Dispatches the outbox: each pending event goes to every consumer that has not handled it
// yet. A consumer's effects and its receipt commit together (one savepoint per consumer and
// batch, or per event and consumer), so a consumer never acts twice on an event, and a failing
// consumer only holds back its own work: the event is retried later, with backoff, for the
// consumers still missing.
//
// Parallel by org, in order within an org: orgs fall into OUTBOX_PARTITIONS fixed partitions
// (private.outbox_partition, a hash of org_id). One dispatcher at a time holds a partition (a
// transaction-level advisory lock) and takes its events in seq order, so every consumer sees an
// org's events in the order they were written, while the partitions run side by side.
// Transactions: one per partition batch; a dispatcher killed mid-batch rolls back everything
// it did for that batch (effects and receipts alike) and the next pass does it again.
import { sql } from "kysely";
import type { Db, Tx } from "../db/client.ts";
import { asService } from "../db/client.ts";
import type { OutboxEvent } from "./catalog.ts";

export interface EventConsumer {
  /** Stable name, recorded in notify.consumer_receipts. */
  name: string;
  handle(tx: Tx, event: OutboxEvent): Promise<void>;
  /**
   * Optional: the same for several events at once (in seq order), with the same effects as
   * handle() on each. If it throws, the dispatcher falls back to handle() event by event, so one
   * bad event still holds back only itself.
   */
  handleBatch?(tx: Tx, events: OutboxEvent[]): Promise<void>;
}

export interface DispatchResult {
  events: number;
  handled: number;
  failed: number;
}

/** Must match private.outbox_partition() (20261201000300_webhooks_batched.sql). */
export const OUTBOX_PARTITIONS = 8;

const MAX_BACKOFF_SECONDS = 3600;

/** Events per partition batch (one transaction): few commits per event, yet a short redo after a crash. */
export const DISPATCH_BATCH = 250;
const BATCH = DISPATCH_BATCH;

export interface DispatchOptions {
  limit?: number;
  /** The dispatcher's clock (tests pass a later time to reach events held back from the worker). */
  now?: Date;
  /** Only this org's events (a targeted redrive; tests keep to their own org this way). */
  orgId?: string;
  /** Only these orgs' events (tests dispatching many orgs of their own). */
  orgIds?: string[];
  /** Only this partition; without it (and without orgId) every partition, one after another. */
  partition?: number;
}

const empty = (): DispatchResult => ({ events: 0, handled: 0, failed: 0 });

function add(total: DispatchResult, r: DispatchResult) {
  total.events += r.events;
  total.handled += r.handled;
  total.failed += r.failed;
}

/** One batch: up to `limit` ready events of one partition (or of each partition in turn). */
export async function dispatchBatch(db: Db, consumers: EventConsumer[], opts: DispatchOptions = {}): Promise<DispatchResult> {
  if (opts.partition === undefined && !opts.orgId) {
    const total = empty();
    for (let p = 0; p < OUTBOX_PARTITIONS; p++) add(total, await dispatchBatch(db, consumers, { ...opts, partition: p }));
    return total;
  }
  return await dispatchPartition(db, consumers, opts);
}

async function dispatchPartition(db: Db, consumers: EventConsumer[], opts: DispatchOptions): Promise<DispatchResult> {
  const limit = opts.limit ?? BATCH;
  const now = opts.now ?? new Date();
  const orgIds = opts.orgId ? [opts.orgId] : opts.orgIds ?? null;
  return await asService(db, async (tx) => {
    // A redrive of given orgs waits for the partition; the worker's loops skip a busy one (its
    // holder is dispatching it already).
    const { rows: [lock] } = orgIds
      ? await sql<{ partition: number; locked: boolean }>`
          select p as partition, true as locked
          from (select coalesce(${opts.partition ?? null}::int, private.outbox_partition(${opts.orgId ?? null}::uuid)) as p) x,
               lateral (select pg_advisory_xact_lock(hashtext('notify.events'), x.p)) l`.execute(tx)
      : await sql<{ partition: number; locked: boolean }>`
          select ${opts.partition!}::int as partition, pg_try_advisory_xact_lock(hashtext('notify.events'), ${opts.partition!}::int) as locked`
        .execute(tx);
    if (!lock.locked) return empty();
    const { rows: events } = await sql<OutboxEvent>`
      select id, seq, org_id, type, schema_version, subject_kind, subject_id, actor_user_id, actor_api_key_id,
             payload, occurred_at
      from notify.events
      where private.outbox_partition(org_id) = ${lock.partition}::int
        and dispatched_at is null and next_dispatch_at <= ${now.toISOString()}::timestamptz
        and (${orgIds}::uuid[] is null or org_id = any (${orgIds}::uuid[]))
      order by seq
      limit ${limit}
      for update`.execute(tx);
    const result: DispatchResult = { events: events.length, handled: 0, failed: 0 };
    if (events.length === 0) return result;

    const { rows: done } = await sql<{ event_id: string; consumer: string }>`
      select event_id, consumer from notify.consumer_receipts where event_id = any (${events.map((e) => e.id)}::uuid[])`
      .execute(tx);
    const handled = new Set(done.map((r) => `${r.event_id}/${r.consumer}`));
    const errors = new Map<string, string[]>();

    for (const consumer of consumers) {
      const pending = events.filter((e) => !handled.has(`${e.id}/${consumer.name}`));
      if (pending.length === 0) continue;
      if (consumer.handleBatch && pending.length > 1) {
        await sql`savepoint consumer`.execute(tx);
        try {
          await consumer.handleBatch(tx, pending);
          await sql`insert into notify.consumer_receipts (consumer, event_id)
                    select ${consumer.name}, unnest(${pending.map((e) => e.id)}::uuid[])`.execute(tx);
          await sql`release savepoint consumer`.execute(tx);
          result.handled += pending.length;
          continue;
        } catch {
          // One event may be at fault: go event by event, so only it waits.
          await sql`rollback to savepoint consumer`.execute(tx);
        }
      }
      for (const event of pending) {
        await sql`savepoint consumer`.execute(tx);
        try {
          await consumer.handle(tx, event);
          await sql`insert into notify.consumer_receipts (consumer, event_id) values (${consumer.name}, ${event.id})`.execute(tx);
          await sql`release savepoint consumer`.execute(tx);
          result.handled++;
        } catch (err) {
          await sql`rollback to savepoint consumer`.execute(tx);
          errors.set(event.id, [...(errors.get(event.id) ?? []), `${consumer.name}: ${(err as Error).message}`]);
          result.failed++;
        }
      }
    }

    const ok = events.filter((e) => !errors.has(e.id)).map((e) => e.id);
    if (ok.length) {
      await sql`update notify.events set dispatched_at = now(), last_error = null where id = any (${ok}::uuid[])`.execute(tx);
    }
    if (errors.size) {
      const ids = [...errors.keys()];
      const messages = ids.map((id) => errors.get(id)!.join("; ").slice(0, 2000));
      await sql`
        update notify.events e
        set dispatch_attempts = e.dispatch_attempts + 1,
            last_error = f.error,
            -- Capped before any cast: 2^31 would overflow int and fail the whole batch.
            next_dispatch_at = ${now.toISOString()}::timestamptz
              + make_interval(secs => least(${MAX_BACKOFF_SECONDS}, power(2, least(e.dispatch_attempts + 1, 12))))
        from unnest(${ids}::uuid[], ${messages}::text[]) as f(id, error)
        where e.id = f.id`.execute(tx);
    }
    return result;
  });
}

export interface DispatchPendingOptions {
  /** Stop starting new batches after this long (default 30 s). */
  budgetMs?: number;
  now?: Date;
  /** Only these orgs' events. */
  orgIds?: string[];
}

/**
 * Dispatches until nothing is ready or the budget is spent: one loop per partition, all at once
 * (each takes a pool connection while it works a batch).
 */
export async function dispatchPending(db: Db, consumers: EventConsumer[], opts: DispatchPendingOptions = {}): Promise<DispatchResult> {
  const total = empty();
  const deadline = Date.now() + (opts.budgetMs ?? 30_000);
  await Promise.all(Array.from({ length: OUTBOX_PARTITIONS }, async (_, partition) => {
    while (Date.now() < deadline) {
      const r = await dispatchPartition(db, consumers, { partition, now: opts.now, orgIds: opts.orgIds });
      add(total, r);
      // A short batch means nothing else is ready here (failed events wait for their backoff),
      // or another dispatcher holds this partition.
      if (r.events < BATCH) break;
    }
  }));
  return total;
}
