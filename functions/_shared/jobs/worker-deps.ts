// Builds what the worker needs from its environment; shared by both worker entrypoints.
import { loadConfig } from "../config.ts";
import { createDb } from "../db/client.ts";
import { createEmailTransport } from "../email/transport.ts";
import { realtimeConsumer } from "../events/realtime-consumer.ts";
import { createHandlers } from "./handlers.ts";
import { createBoss } from "./queue.ts";

export function createWorker(env: Record<string, string | undefined>) {
  const cfg = loadConfig(env);
  const { db, pool } = createDb(cfg.SUPABASE_DB_URL, cfg.PLINTH_DB_POOL_SIZE);
  const email = createEmailTransport(cfg);
  const boss = createBoss(cfg.SUPABASE_DB_URL, { role: "worker" });
  const handlers = createHandlers({ db, email, appUrl: cfg.PLINTH_APP_URL, consumers: [realtimeConsumer] });
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
