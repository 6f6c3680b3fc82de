// The AI worker's code run in the test process, against the stack's database, Storage and fake
// providers: to admit a job without queuing its run, to leave exactly the state a worker killed
// at a given point leaves (a query that fails where the process would have died), and to hand
// the job to the stack's real worker afterwards, as pg-boss does when it retries.
import { asService, createDb } from "../../functions/_shared/db/client.ts";
import { createAdapterRegistry } from "../../functions/_shared/ai/adapters.ts";
import type { AiWorkerDeps } from "../../functions/_shared/ai/failure.ts";
import type { AiJob } from "../../functions/_shared/ai/job-store.ts";
import { admitJob, type JobRequest } from "../../functions/_shared/ai/submit.ts";
import { Producer } from "../../functions/_shared/jobs/queue.ts";
import { admin, stack } from "./db.ts";

/** The env the stack gives its worker for the fakes (keys are any string there). */
export function fakeProviderEnv(): Record<string, string> {
  const env: Record<string, string> = {};
  for (const [id, key, prefix] of [
    ["openai", "OPENAI_API_KEY", "/openai/v1"],
    ["anthropic", "ANTHROPIC_API_KEY", "/anthropic"],
    ["stability", "STABILITY_API_KEY", "/stability"],
    ["replicate", "REPLICATE_API_TOKEN", "/replicate/v1"],
    ["runway", "RUNWAY_API_KEY", "/runway"],
    ["did", "DID_API_KEY", "/did"],
  ]) {
    env[key] = `fake-${id}-key`;
    env[`PLINTH_AI_${id.toUpperCase()}_BASE_URL`] = `${stack.fakeAiUrl}${prefix}`;
  }
  return env;
}

export interface InProcessWorker {
  deps: AiWorkerDeps;
  /** What the code asked pg-boss to run later. */
  scheduled: { name: string; jobId: string; delayMs: number }[];
  close(): Promise<void>;
}

/**
 * Worker deps in this process. With `dieAt`, the first query whose SQL matches fails as if the
 * process had been killed just before it (its transaction never commits).
 */
export function inProcessWorker(opts: { dieAt?: RegExp } = {}): InProcessWorker {
  const { db, pool } = createDb(stack.dbUrl, 4);
  let dieAt = opts.dieAt;
  pool.on("connect", (client) => {
    const query = client.query.bind(client) as (...args: unknown[]) => unknown;
    (client as unknown as { query: (...args: unknown[]) => unknown }).query = (text: unknown, ...rest: unknown[]) => {
      if (dieAt && typeof text === "string" && dieAt.test(text)) {
        dieAt = undefined;
        return Promise.reject(new Error("the worker was killed"));
      }
      return query(text, ...rest);
    };
  });
  const scheduled: InProcessWorker["scheduled"] = [];
  const deps: AiWorkerDeps = {
    db,
    adapters: createAdapterRegistry(db, fakeProviderEnv()),
    storage: { url: stack.supabaseUrl, serviceRoleKey: stack.serviceRoleKey },
    schedule: async (name, jobId, delayMs) => {
      scheduled.push({ name, jobId, delayMs });
    },
    pollMs: 50,
  };
  return { deps, scheduled, close: () => pool.end() };
}

/** Admits a job as the member, through the real admission code, without queuing its run. */
export async function admitOnly(w: InProcessWorker, who: { orgId: string; userId: string }, req: Omit<JobRequest, "source">): Promise<AiJob> {
  const { job } = await asService(w.deps.db, (tx) => admitJob(tx, null, { orgId: who.orgId, userId: who.userId, apiKeyId: null }, { ...req, source: "api" }));
  return job;
}

/** Queues a job's run (or poll) for the stack's worker, as pg-boss's retry of a dead run would. */
export async function handToWorker(name: "ai.run" | "ai.poll", jobId: string): Promise<void> {
  const producer = new Producer(stack.dbUrl);
  try {
    const boss = await producer.ready();
    const id = await boss.send(name, { job_id: jobId }, { singletonKey: jobId });
    if (!id) throw new Error(`${name} for ${jobId} was not queued`);
  } finally {
    await producer.stop();
  }
}

/** The job's status as the row says. */
export async function statusOf(jobId: string): Promise<string> {
  return (await admin.query(`select status from ai.jobs where id = $1`, [jobId])).rows[0].status;
}
