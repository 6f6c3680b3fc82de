// Long-lived worker: `npm run worker` (or `deno run -A functions/worker/main.ts`).
import { createWorker } from "../_shared/jobs/worker-deps.ts";
import { startWorkers } from "../_shared/jobs/runner.ts";
import { startOutboxPump } from "../_shared/events/pump.ts";
import { startContentPump } from "../_shared/content/pump.ts";

const worker = createWorker(Deno.env.toObject());
await startWorkers(worker.boss, worker.handlers, { cron: worker.cfg.PLINTH_WORKER_CRON });
const pump = startOutboxPump({ connectionString: worker.cfg.SUPABASE_DB_URL, db: worker.db, boss: worker.boss });
await pump.start();
const contentPump = startContentPump({ connectionString: worker.cfg.SUPABASE_DB_URL, jobs: { ready: async () => worker.boss } });
await contentPump.start();
console.log(JSON.stringify({ msg: "worker started" }));

let stopping = false;
for (const signal of ["SIGINT", "SIGTERM"] as const) {
  Deno.addSignalListener(signal, async () => {
    if (stopping) return;
    stopping = true;
    // Ctrl-C reaches the local Postgres too; connections it cuts while we stop are expected.
    worker.boss.removeAllListeners("error");
    worker.boss.on("error", () => {});
    await pump.stop();
    await contentPump.stop();
    await worker.close().catch(() => {});
    Deno.exit(0);
  });
}
