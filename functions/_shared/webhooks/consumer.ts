// Outbox consumer "webhooks": fans each event out to one message per matching active endpoint
// of its org, and queues a delivery for each, in the dispatcher's transaction, so messages,
// jobs and the consumer receipt commit together. Endpoints only see events that happened after
// they were created; webhook.test goes to its own endpoint only, whatever its filter. Sensitive
// types go only to endpoints that name them (which takes members.manage).
import { sql } from "kysely";
import type { Tx } from "../db/client.ts";
import type { OutboxEvent } from "../events/catalog.ts";
import type { EventConsumer } from "../events/dispatcher.ts";

/** Queues a webhook.deliver job for a message, in the caller's transaction (optionally later). */
export type ScheduleDelivery = (tx: Tx, messageId: string, at?: Date) => Promise<void>;

export function createWebhooksConsumer(schedule: ScheduleDelivery): EventConsumer {
  // One statement for any number of events: every event's matching endpoints, one message each.
  const fanOut = async (tx: Tx, events: OutboxEvent[]) => {
    const { rows } = await sql<{ id: string }>`
      insert into notify.webhook_messages (org_id, endpoint_id, event_id)
      select e.org_id, e.id, ev.id
      from unnest(${events.map((e) => e.id)}::uuid[]) with ordinality as x(event_id, n)
      join notify.events ev on ev.id = x.event_id
      join notify.event_types t on t.type = ev.type
      join notify.webhook_endpoints e on e.org_id = ev.org_id
      where e.status = 'active'
        and e.created_at <= ev.occurred_at
        and case when ev.type = 'webhook.test' then e.id::text = ev.payload ->> 'endpoint_id'
                 -- An empty filter means every non-sensitive type; sensitive ones must be named.
                 else ev.type = any (e.event_types) or (cardinality(e.event_types) = 0 and not t.sensitive) end
      order by x.n, e.id
      on conflict (endpoint_id, event_id) do nothing
      returning id`.execute(tx);
    for (const { id } of rows) await schedule(tx, id);
  };
  return {
    name: "webhooks",
    handle: (tx, event) => fanOut(tx, [event]),
    handleBatch: fanOut,
  };
}
