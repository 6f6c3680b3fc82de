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
  return {
    name: "webhooks",
    async handle(tx, event: OutboxEvent) {
      const target = event.type === "webhook.test" ? String(event.payload.endpoint_id ?? "") : null;
      const { rows } = await sql<{ id: string }>`
        insert into notify.webhook_messages (org_id, endpoint_id, event_id)
        select e.org_id, e.id, ${event.id}::uuid
        from notify.webhook_endpoints e
        where e.org_id = ${event.org_id}::uuid
          and e.status = 'active'
          and e.created_at <= ${event.occurred_at}::timestamptz
          and case when ${target}::text is not null then e.id::text = ${target}::text
                   -- An empty filter means every non-sensitive type; sensitive ones must be named.
                   else ${event.type}::text = any (e.event_types)
                        or (cardinality(e.event_types) = 0
                            and not (select t.sensitive from notify.event_types t where t.type = ${event.type}::text)) end
        on conflict (endpoint_id, event_id) do nothing
        returning id`.execute(tx);
      for (const { id } of rows) await schedule(tx, id);
    },
  };
}
