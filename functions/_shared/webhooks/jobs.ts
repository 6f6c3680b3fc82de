// The webhook job handlers (webhook.deliver, webhook.sweep), registered in jobs/handlers.ts.
import type { Db } from "../db/client.ts";
import { JOBS } from "../jobs/catalog.ts";
import type { JobHandler } from "../jobs/handlers.ts";
import type { ScheduleDelivery } from "./consumer.ts";
import { deliverMessage } from "./delivery.ts";
import type { TargetPolicy } from "./ssrf.ts";
import { sweepOverdue } from "./sweep.ts";

export interface WebhookJobDeps {
  db: Db;
  policy: TargetPolicy;
  schedule: ScheduleDelivery;
}

export function webhookHandlers(deps: WebhookJobDeps): Record<"webhook.deliver" | "webhook.sweep", JobHandler> {
  return {
    "webhook.deliver": async (data) => {
      const { message_id } = JOBS["webhook.deliver"].payload.parse(data);
      // Failed HTTP attempts are results, not job failures: the retry is its own job at its own
      // time. A throw (database trouble, a concurrent attempt) lets pg-boss retry the job.
      return await deliverMessage(deps, message_id);
    },
    "webhook.sweep": async (data) => {
      JOBS["webhook.sweep"].payload.parse(data);
      return await sweepOverdue(deps.db, deps.schedule);
    },
  };
}
