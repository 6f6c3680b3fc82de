// The worker app's drain route on its own (no Deno, no database): what budget it hands the
// drain. The README says cron-invoked drains run "for up to 50 s", inside the edge runtime's
// wall-clock limit, whatever budget_ms a caller asks for. The drain itself is tested over HTTP
// in worker.test.ts; here it is replaced, so the budget can be read without waiting 50 s.
import { beforeEach, describe, expect, it, vi } from "vitest";

const SERVICE_KEY = "service-role-key-for-this-test";

const fakes = vi.hoisted(() => ({
  drainQueues: vi.fn(async (_boss: unknown, _handlers: unknown, _budgetMs: number) => ({ completed: 3, failed: 1 })),
  ensureQueues: vi.fn(async () => {}),
  start: vi.fn(async () => {}),
}));

vi.mock("../../functions/_shared/jobs/runner.ts", () => ({ drainQueues: fakes.drainQueues }));
vi.mock("../../functions/_shared/jobs/queue.ts", () => ({ ensureQueues: fakes.ensureQueues }));
vi.mock("../../functions/_shared/events/pump.ts", () => ({ hasReadyEvents: async () => false, requestDispatch: async () => {} }));
vi.mock("../../functions/_shared/jobs/worker-deps.ts", () => ({
  createWorker: () => ({
    cfg: { SUPABASE_SERVICE_ROLE_KEY: SERVICE_KEY, PLINTH_WORKER_CRON: false },
    db: {},
    boss: { start: fakes.start },
    handlers: {},
  }),
}));

const { createWorkerApp } = await import("../../functions/worker/app.ts");

async function drain(query: string, key = SERVICE_KEY) {
  const app = createWorkerApp({});
  const res = await app.request(`/worker/drain${query}`, { method: "POST", headers: { authorization: `Bearer ${key}` } });
  return { status: res.status, body: await res.json() };
}

/** The budget (ms) the route handed to drainQueues on its last call. */
const lastBudget = () => fakes.drainQueues.mock.lastCall?.[2];

describe("POST /worker/drain: the time budget", () => {
  beforeEach(() => fakes.drainQueues.mockClear());

  it("caps a larger budget_ms at 50 s", async () => {
    for (const asked of ["999999", "50001", "1e9"]) {
      const res = await drain(`?budget_ms=${asked}`);
      expect(res).toEqual({ status: 200, body: { completed: 3, failed: 1 } });
      expect(lastBudget(), `budget_ms=${asked}`).toBe(50_000);
    }
  });

  it("uses 50 s when none or nonsense is given, and a smaller budget as given", async () => {
    await drain("");
    expect(lastBudget()).toBe(50_000);
    await drain("?budget_ms=abc");
    expect(lastBudget()).toBe(50_000);
    await drain("?budget_ms=2000");
    expect(lastBudget()).toBe(2000);
    await drain("?budget_ms=50000");
    expect(lastBudget()).toBe(50_000);
  });

  it("drains nothing for a caller without the service-role key", async () => {
    const res = await drain("?budget_ms=999999", "not-the-key");
    expect(res.status).toBe(401);
    expect(res.body.error.code).toBe("unauthorized");
    expect(fakes.drainQueues).not.toHaveBeenCalled();
  });
});
