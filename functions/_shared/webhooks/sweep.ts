// Safety net, run by cron every minute: queues a delivery for every message that is overdue
// and has no job coming. That covers RPC-only replays and recovers (SQL cannot queue pg-boss
// jobs), lost jobs, and attempts whose worker died and whose job will not come back. A
// duplicate job is harmless: claimMessage() lets only one attempt through.
import { sql } from "kysely";
import type { Db } from "../db/client.ts";
import { asService } from "../db/client.ts";
import type { ScheduleDelivery } from "./consumer.ts";

const GRACE = "1 minute";

export async function sweepOverdue(db: Db, schedule: ScheduleDelivery, limit = 500): Promise<{ queued: number }> {
  return await asService(db, async (tx) => {
    const { rows } = await sql<{ id: string }>`
      select m.id from notify.webhook_messages m
      where (m.status = 'pending' and m.next_attempt_at < now() - ${GRACE}::interval)
         or (m.status = 'delivering' and m.locked_until < now() - ${GRACE}::interval)
      order by m.next_attempt_at
      limit ${limit}`.execute(tx);
    for (const { id } of rows) await schedule(tx, id);
    return { queued: rows.length };
  });
}
