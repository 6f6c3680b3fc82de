// Consumer: every event goes out as a Broadcast on its org's private channel (org:<id>).
// realtime.messages' RLS decides who receives it (members who meet the org's MFA rule).
import { sql } from "kysely";
import { type OutboxEvent, envelope } from "./catalog.ts";
import type { EventConsumer } from "./dispatcher.ts";

export const realtimeConsumer: EventConsumer = {
  name: "realtime",
  async handle(tx, event: OutboxEvent) {
    await sql`select realtime.send(${JSON.stringify(envelope(event))}::jsonb, ${event.type}, ${"org:" + event.org_id}, true)`
      .execute(tx);
  },
};
