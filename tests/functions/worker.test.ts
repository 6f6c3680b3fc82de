// The worker edge function: only the service-role key may make it drain the queues.
import { describe, expect, inject, it } from "vitest";
import { JOB_NAMES, JOBS } from "../../functions/_shared/jobs/catalog.ts";
import { createBoss, ensureQueues } from "../../functions/_shared/jobs/queue.ts";
import { signJwt } from "../../scripts/lib/keys.ts";
import { admin } from "../helpers/db.ts";
import { call, expectError } from "../helpers/http.ts";

const stack = inject("stack");
const drain = (headers: Record<string, string> = {}) => call("/worker/drain?budget_ms=2000", { method: "POST", headers });

describe("POST /worker/drain", () => {
  it("refuses a call without credentials", async () => {
    expectError(await drain(), 401, "unauthorized");
  });

  it("refuses the anon key", async () => {
    expectError(await drain({ authorization: `Bearer ${stack.anonKey}` }), 401, "unauthorized");
  });

  it("refuses a different token that claims service_role", async () => {
    const forged = await signJwt(stack.jwtSecret, { iss: "supabase-demo", role: "service_role" });
    expectError(await drain({ authorization: `Bearer ${forged}` }), 401, "unauthorized");
  });

  it("refuses the service-role key in the wrong header", async () => {
    expectError(await drain({ "x-api-key": stack.serviceRoleKey }), 401, "unauthorized");
    expectError(await drain({ authorization: stack.serviceRoleKey }), 401, "unauthorized");
  });

  it("drains with the service-role key and reports counts", async () => {
    const res = await drain({ authorization: `Bearer ${stack.serviceRoleKey}` });
    expect(res.status, res.raw).toBe(200);
    expect(res.body).toEqual({ completed: expect.any(Number), failed: expect.any(Number) });
    expect(res.body.completed).toBeGreaterThanOrEqual(0);
    expect(res.body.failed).toBeGreaterThanOrEqual(0);
  });

  it("answers unknown worker routes with 404 JSON", async () => {
    expectError(await call("/worker/nope", { method: "POST" }), 404, "not_found");
  });
});

describe("cron schedules", () => {
  const scheduled = async () =>
    (await admin.query<{ name: string }>("select name from pgboss.schedule order by name")).rows.map((r) => r.name);
  const cronJobs = JOB_NAMES.filter((n) => "cron" in JOBS[n]).sort();

  it("the test stack's worker runs none, so no scheduled job runs in the middle of a test", async () => {
    expect(cronJobs.length).toBeGreaterThan(0);
    expect(await scheduled()).toEqual([]);
  });

  it("a worker with cron on schedules every cron job of the catalog, and cron off removes them again", async () => {
    // Timekeeping stays off in this instance, so the schedules exist but never fire.
    const boss = createBoss(stack.dbUrl, { role: "worker", cron: false, max: 1 });
    await boss.start();
    try {
      await ensureQueues(boss, { cron: true });
      expect(await scheduled()).toEqual(cronJobs);
      await ensureQueues(boss, { cron: false });
      expect(await scheduled()).toEqual([]);
    } finally {
      await ensureQueues(boss, { cron: false });
      await boss.stop({ graceful: false });
    }
  });
});
