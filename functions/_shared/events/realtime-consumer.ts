// Consumer: every non-sensitive event goes out as a Broadcast on its org's private channel (org:<id>).
// realtime.messages' RLS decides who receives it (members who meet the org's MFA rule).
import { sql } from "kysely";
import type { Tx } from "../db/client.ts";
import { type OutboxEvent, envelope } from "./catalog.ts";
import type { EventConsumer } from "./dispatcher.ts";

// Sensitive types (invitee emails, key metadata) stay off the org channel, which every
// member may join; the activity feed shows them to member managers only. One statement for
// any number of events, sent in the order given.
async function broadcast(tx: Tx, events: OutboxEvent[]) {
  const rows = events.map((e) => ({ payload: envelope(e), event: e.type, topic: `org:${e.org_id}` }));
  await sql`
    select realtime.send(x.payload, x.event, x.topic, true)
    from jsonb_to_recordset(${JSON.stringify(rows)}::jsonb) as x(payload jsonb, event text, topic text)
    where not (select t.sensitive from notify.event_types t where t.type = x.event)`.execute(tx);
}

export const realtimeConsumer: EventConsumer = {
  name: "realtime",
  handle: (tx, event) => broadcast(tx, [event]),
  handleBatch: broadcast,
};
