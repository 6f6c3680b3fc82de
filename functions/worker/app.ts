// The worker as an edge function: cron POSTs here with the service-role key and the
// function drains ready jobs for up to ~50 s, inside the edge runtime's wall-clock limit.
import { Hono } from "hono";
import { timingSafeEqual } from "../_shared/auth/timing-safe.ts";
import { errorBody } from "../_shared/http/errors.ts";
import { drainQueues } from "../_shared/jobs/runner.ts";
import { createWorker } from "../_shared/jobs/worker-deps.ts";
import { ensureQueues } from "../_shared/jobs/queue.ts";
import { hasReadyEvents, requestDispatch } from "../_shared/events/pump.ts";

export function createWorkerApp(env: Record<string, string | undefined>) {
  const worker = createWorker(env);
  let started: Promise<unknown> | undefined;
  const app = new Hono().basePath("/worker");

  app.post("/drain", async (c) => {
    const key = worker.cfg.SUPABASE_SERVICE_ROLE_KEY;
    const given = /^Bearer\s+(\S+)$/i.exec(c.req.header("authorization") ?? "")?.[1] ?? "";
    if (!key || !timingSafeEqual(given, key)) {
      return c.json(errorBody("unauthorized", "the worker is called with the service-role key only"), 401);
    }
    // A failed start (a database blip) must not poison the isolate: forget it and retry next call.
    started ??= worker.boss.start().then(() => ensureQueues(worker.boss, { cron: worker.cfg.PLINTH_WORKER_CRON })).catch((err) => {
      started = undefined;
      throw err;
    });
    await started;
    // No long-lived listener here: turn pending outbox events into a dispatch job first.
    if (await hasReadyEvents(worker.db)) await requestDispatch(worker.boss);
    const budget = Math.min(Number(c.req.query("budget_ms") ?? 50_000) || 50_000, 50_000);
    return c.json(await drainQueues(worker.boss, worker.handlers, budget));
  });
  app.notFound((c) => c.json(errorBody("not_found", "no such route"), 404));
  return app;
}
