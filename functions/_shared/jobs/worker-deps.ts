// Builds what the worker needs from its environment; shared by both worker entrypoints.
import { createAdapterRegistry } from "../ai/adapters.ts";
import type { AiWorkerDeps } from "../ai/failure.ts";
import { loadConfig } from "../config.ts";
import { createContentAssetsConsumer } from "../content/consumer.ts";
import { createDb } from "../db/client.ts";
import { createEmailTransport } from "../email/transport.ts";
import { realtimeConsumer } from "../events/realtime-consumer.ts";
import { createNotificationsConsumer } from "../notifications/consumer.ts";
import { createVideoConsumer } from "../video/consumer.ts";
import { createWebhooksConsumer } from "../webhooks/consumer.ts";
import { deliveryScheduler } from "../webhooks/queue.ts";
import { createHandlers } from "./handlers.ts";
import { createBoss } from "./queue.ts";

export function createWorker(env: Record<string, string | undefined>) {
  const cfg = loadConfig(env);
  const { db, pool } = createDb(cfg.SUPABASE_DB_URL, cfg.PLINTH_DB_POOL_SIZE);
  const email = createEmailTransport(cfg);
  const boss = createBoss(cfg.SUPABASE_DB_URL, { role: "worker", cron: cfg.PLINTH_WORKER_CRON });
  const webhooks = {
    policy: { allowLoopback: cfg.PLINTH_WEBHOOKS_ALLOW_LOOPBACK },
    schedule: deliveryScheduler({ ready: async () => boss }),
  };
  // The worker's own pg-boss (started by the runner) queues notification emails.
  const notifications = { cfg, jobs: { ready: async () => boss } };
  const ai: Omit<AiWorkerDeps, "db"> = {
    adapters: createAdapterRegistry(db, env),
    storage: { url: cfg.SUPABASE_URL, serviceRoleKey: cfg.SUPABASE_SERVICE_ROLE_KEY ?? "" },
    schedule: async (name, jobId, delayMs) => {
      await boss.send(name, { job_id: jobId }, { singletonKey: jobId, startAfter: new Date(Date.now() + delayMs) });
    },
    // Replicate needs a webhook (its only idempotency handle); the others are polled.
    webhookUrl: (p) => p.kind === "replicate" ? `${cfg.SUPABASE_URL}/functions/v1/webhooks/ai/${p.id}` : undefined,
    pollMs: cfg.PLINTH_AI_POLL_MS,
  };
  const content = { storage: ai.storage, jobs: { ready: async () => boss } };
  const video = { storage: ai.storage, jobs: { ready: async () => boss }, ai };
  const deck = { storage: ai.storage, jobs: { ready: async () => boss }, ai, chromiumPath: cfg.PLINTH_CHROMIUM_PATH };
  const handlers = createHandlers({
    db, email, appUrl: cfg.PLINTH_APP_URL, webhooks, notifications, ai, content, video, deck,
    consumers: [
      realtimeConsumer,
      createWebhooksConsumer(webhooks.schedule),
      createNotificationsConsumer(notifications),
      createContentAssetsConsumer(content.jobs),
      createVideoConsumer(video.jobs),
    ],
  });
  return {
    cfg,
    db,
    boss,
    handlers,
    async close() {
      await boss.stop({ graceful: true, timeout: 10_000 });
      email.close();
      await pool.end();
    },
  };
}
