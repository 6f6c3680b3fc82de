// Webhook deliveries as pg-boss jobs, inserted in the caller's transaction (the api's
// Producer or the worker's own PgBoss).
import { enqueue, type JobSender } from "../jobs/queue.ts";
import type { ScheduleDelivery } from "./consumer.ts";

export function deliveryScheduler(jobs: JobSender): ScheduleDelivery {
  return async (tx, messageId, at) => {
    await enqueue(jobs, tx, "webhook.deliver", { message_id: messageId }, at ? { startAfter: at } : {});
  };
}
