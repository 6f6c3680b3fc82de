// Turns outbox activity into `events.dispatch` jobs. emit_event() sends NOTIFY plinth_outbox on
// commit; a poll catches anything missed (a dropped connection, events waiting out a backoff).
// The queue is `stately`, so a burst of notifications still yields one queued job.
import pg from "pg";
import { sql } from "kysely";
import type { PgBoss } from "pg-boss";
import type { Db } from "../db/client.ts";

export async function hasReadyEvents(db: Db): Promise<boolean> {
  const { rows } = await sql<{ ready: boolean }>`
    select exists (select 1 from notify.events where dispatched_at is null and next_dispatch_at <= now()) as ready`
    .execute(db);
  return rows[0].ready;
}

export async function requestDispatch(boss: PgBoss): Promise<void> {
  await boss.send("events.dispatch", {});
}

export function startOutboxPump(opts: { connectionString: string; db: Db; boss: PgBoss; pollMs?: number }) {
  let listener: pg.Client | undefined;
  let stopped = false;
  const kick = () => requestDispatch(opts.boss).catch(() => {});

  const listen = async () => {
    if (stopped) return;
    const client = new pg.Client({ connectionString: opts.connectionString });
    client.on("error", () => {}); // reconnects on the next poll tick
    client.on("end", () => {
      if (listener === client) listener = undefined;
    });
    client.on("notification", kick);
    try {
      await client.connect();
      await client.query("listen plinth_outbox");
    } catch (err) {
      await client.end().catch(() => {}); // no leaked connection while the database flaps
      throw err;
    }
    listener = client;
  };

  const timer = setInterval(async () => {
    try {
      if (!listener) await listen();
      if (await hasReadyEvents(opts.db)) await kick();
    } catch {
      // The database may be restarting; the next tick tries again.
    }
  }, opts.pollMs ?? 2_000);

  return {
    start: async () => {
      await listen();
      await kick();
    },
    stop: async () => {
      stopped = true;
      clearInterval(timer);
      await listener?.end().catch(() => {});
    },
  };
}
