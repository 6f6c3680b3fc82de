// The webhook job handlers (webhook.deliver, webhook.sweep), registered in jobs/handlers.ts.
// webhook.deliver is one job per message (so pg-boss retries a crashed attempt per message), but
// a long-lived worker fetches them in batches and delivers a batch together: one claim, the
// POSTs side by side, one record (delivery.ts).
import type { Db } from "../db/client.ts";
import { JOBS } from "../jobs/catalog.ts";
import type { BatchJobHandler, JobHandler } from "../jobs/handlers.ts";
import type { ScheduleDelivery } from "./consumer.ts";
import { deliverMessage, deliverMessages } from "./delivery.ts";
import type { TargetPolicy } from "./ssrf.ts";
import { sweepOverdue } from "./sweep.ts";

export interface WebhookJobDeps {
  db: Db;
  policy: TargetPolicy;
  schedule: ScheduleDelivery;
}

const IN_FLIGHT = "another attempt of this message is in flight";

export function webhookHandlers(deps: WebhookJobDeps): Record<"webhook.deliver" | "webhook.sweep", JobHandler> {
  // Failed HTTP attempts are results, not job failures: the retry is its own job at its own
  // time. A throw (database trouble, a concurrent attempt) lets pg-boss retry the job.
  const deliverBatch: BatchJobHandler = async (jobs) => {
    const ids = jobs.map((j) => JOBS["webhook.deliver"].payload.safeParse(j.data));
    const valid = ids.flatMap((p) => (p.success ? [p.data.message_id] : []));
    const outcomes = await deliverMessages(deps, valid, { concurrency: valid.length });
    return jobs.map((_, i) => {
      const p = ids[i];
      if (!p.success) return { error: new Error(`invalid webhook.deliver payload: ${p.error.message}`) };
      const out = outcomes.get(p.data.message_id);
      if (!out || out.status === "busy") return { error: new Error(IN_FLIGHT) };
      return { output: out };
    });
  };
  const deliver: JobHandler = Object.assign(async (data: unknown) => {
    const { message_id } = JOBS["webhook.deliver"].payload.parse(data);
    return await deliverMessage(deps, message_id);
  }, { batch: deliverBatch });
  return {
    "webhook.deliver": deliver,
    "webhook.sweep": async (data) => {
      JOBS["webhook.sweep"].payload.parse(data);
      return await sweepOverdue(deps.db, deps.schedule);
    },
  };
}
