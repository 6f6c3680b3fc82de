// Replay for private channels (config.broadcast.replay = {since, limit}): the latest `limit`
// Broadcast rows of the topic written since `since` (unix ms), oldest first, as the real server
// reads them right after the join. It reads as the server itself: the join already required
// broadcast read on the topic.
import type pg from "pg";

export interface ReplayedMessage {
  id: string;
  event: string;
  payload: unknown;
}

export async function replayMessages(pool: pg.Pool, topic: string, since: number, limit: number): Promise<ReplayedMessage[]> {
  const { rows } = await pool.query<ReplayedMessage>(
    `select id, coalesce(event, '') as event, payload from (
       select id, event, payload, inserted_at from realtime.messages
       where topic = $1 and private is true and extension = 'broadcast'
         -- inserted_at is a timestamp without time zone, written as now() in the session's zone
         and inserted_at >= to_timestamp($2 / 1000.0)::timestamp
       order by inserted_at desc, id desc
       limit $3) latest
     order by inserted_at, id`,
    [topic, since, limit],
  );
  return rows;
}
