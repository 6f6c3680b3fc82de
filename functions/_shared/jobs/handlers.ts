// What each job type does. Handlers throw to fail an attempt; pg-boss retries per the
// queue policy in catalog.ts.
import { sql } from "kysely";
import type { Db } from "../db/client.ts";
import { asService } from "../db/client.ts";
import type { EmailTransport } from "../email/transport.ts";
import { dispatchPending, type EventConsumer } from "../events/dispatcher.ts";
import { JOBS, type JobName } from "./catalog.ts";

export interface JobDeps {
  db: Db;
  email: EmailTransport;
  /** Outbox consumers, in the order they see each event. */
  consumers: EventConsumer[];
}

export type JobHandler = (data: unknown, jobId: string) => Promise<unknown>;

export function createHandlers(deps: JobDeps): Record<JobName, JobHandler> {
  return {
    "email.send": async (data, jobId) => {
      const msg = JOBS["email.send"].payload.parse(data);
      // The job id is stable across retries, so it doubles as the provider idempotency key.
      const { providerId } = await deps.email.send({ ...msg, idempotencyKey: jobId });
      return { providerId };
    },
    "events.dispatch": async (data) => {
      JOBS["events.dispatch"].payload.parse(data);
      return await dispatchPending(deps.db, deps.consumers);
    },
    "invitations.purge": async (data) => {
      JOBS["invitations.purge"].payload.parse(data);
      const purged = await asService(deps.db, async (tx) => {
        const { rows } = await sql<{ n: number }>`select private.purge_dead_invitations() as n`.execute(tx);
        return rows[0].n;
      });
      return { purged };
    },
  };
}
