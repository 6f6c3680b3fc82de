// Consumer: every non-sensitive event goes out as a Broadcast on its org's private channel (org:<id>).
// realtime.messages' RLS decides who receives it (members who meet the org's MFA rule).
import { sql } from "kysely";
import { type OutboxEvent, envelope } from "./catalog.ts";
import type { EventConsumer } from "./dispatcher.ts";

export const realtimeConsumer: EventConsumer = {
  name: "realtime",
  async handle(tx, event: OutboxEvent) {
    // Sensitive types (invitee emails, key metadata) stay off the org channel, which every
    // member may join; the activity feed shows them to member managers only.
    await sql`select realtime.send(${JSON.stringify(envelope(event))}::jsonb, ${event.type}, ${"org:" + event.org_id}, true)
              where not (select t.sensitive from notify.event_types t where t.type = ${event.type})`
      .execute(tx);
  },
};
