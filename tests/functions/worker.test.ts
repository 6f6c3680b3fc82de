// The worker edge function: only the service-role key may make it drain the queues, and a
// drain runs ready jobs. Also: the catalog's cron schedules, as the README and docs state them.
import fs from "node:fs";
import path from "node:path";
import { describe, expect, inject, it } from "vitest";
import { JOB_NAMES, JOBS, type JobName } from "../../functions/_shared/jobs/catalog.ts";
import { createBoss, ensureQueues } from "../../functions/_shared/jobs/queue.ts";
import { workOptions } from "../../functions/_shared/jobs/runner.ts";
import { signJwt } from "../../scripts/lib/keys.ts";
import { admin, createTeam, rpc } from "../helpers/db.ts";
import { call, expectError, mailTo } from "../helpers/http.ts";
import { waitFor } from "../helpers/wait.ts";

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

  it("answers unknown worker routes with 404 JSON", async () => {
    expectError(await call("/worker/nope", { method: "POST" }), 404, "not_found");
  });
});

/** Waits (generously: one worker serves every file) until pg-boss job `id` is in `state`. */
async function waitForJobState(id: string, state: string) {
  await waitFor(`job ${id} to be ${state}`, async () =>
    (await admin.query<{ state: string }>("select state from pgboss.job where id = $1", [id])).rows[0]?.state === state);
}

describe("a drain runs ready jobs", () => {
  it("runs this test's own invitation.send job (the email goes out) and counts it", async () => {
    // The stack's long-lived worker serves the same queues. To know that the drain, and only
    // the drain, runs the job, every invitation.send slot of that worker is first kept busy
    // with a job of this org that waits on a row lock this test holds.
    const team = await createTeam("Drain");
    const invite = async (tag: string) => {
      const email = `${tag}-${crypto.randomUUID().slice(0, 8)}@test.local`;
      const [inv] = await rpc<{ invitation_id: string }>(team.admin, "invite_member", { p_org_id: team.orgId, p_email: email });
      return { id: inv.invitation_id, email };
    };
    const tokenHash = async (id: string) =>
      (await admin.query<{ h: string }>("select encode(token_hash, 'hex') as h from public.invitations where id = $1", [id])).rows[0].h;
    const def = JOBS["invitation.send"];
    const slots = workOptions(def.workers, 1).localConcurrency;
    const boss = createBoss(stack.dbUrl, { role: "producer" });
    await boss.start();
    const locker = await admin.connect();
    const blockers: string[] = [];
    try {
      await locker.query("begin");
      for (let i = 0; i < slots; i++) {
        const inv = await invite(`blocker${i}`);
        await locker.query("select 1 from public.invitations where id = $1 for update", [inv.id]);
        const id = await boss.send("invitation.send", { invitation_id: inv.id });
        expect(id).toBeTruthy();
        blockers.push(id!);
        // Taken by the long-lived worker (nothing else fetches yet), whose slot now waits on our lock.
        await waitForJobState(id!, "active");
      }

      const target = await invite("drained");
      const before = await tokenHash(target.id);
      const jobId = await boss.send("invitation.send", { invitation_id: target.id });
      const res = await call("/worker/drain?budget_ms=20000", { method: "POST", headers: { authorization: `Bearer ${stack.serviceRoleKey}` } });
      expect(res.status, res.raw).toBe(200);
      expect(res.body).toEqual({ completed: expect.any(Number), failed: expect.any(Number) });
      // Done by the time the drain answered: the drain ran it, so its count includes it.
      const { rows } = await admin.query<{ state: string; output: { providerId?: string } }>("select state, output from pgboss.job where id = $1", [
        jobId,
      ]);
      expect(rows[0].state, JSON.stringify(rows[0].output)).toBe("completed");
      expect(rows[0].output.providerId).toBeTruthy();
      expect(res.body.completed).toBeGreaterThanOrEqual(1);
      // Its effect: a fresh token, and the email in the sink.
      expect(await tokenHash(target.id)).not.toBe(before);
      const mail = await mailTo(target.email);
      expect(mail).toHaveLength(1);
    } finally {
      await locker.query("rollback").catch(() => {});
      locker.release();
      // Let the blocked jobs finish, so the shared worker's slots are free again.
      for (const id of blockers) await waitForJobState(id, "completed");
      await boss.stop({ graceful: false });
    }
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

describe("the schedules the README and docs state", () => {
  const ROOT = path.resolve(import.meta.dirname, "../..");
  const cronOf = (name: JobName) => (JOBS[name] as { cron?: string }).cron;

  /** Reads "cron, every minute", "cron, hourly at :05", "cron, every 10 minutes" or "cron `expr`" as a cron expression. */
  function cronFromText(text: string): string {
    let m: RegExpExecArray | null;
    if ((m = /^cron `([^`]+)`$/.exec(text))) return m[1];
    if (/^cron, every minute$/.test(text)) return "* * * * *";
    if ((m = /^cron, every (\d+) minutes$/.exec(text))) return `*/${m[1]} * * * *`;
    if ((m = /^cron, hourly at :(\d\d)$/.exec(text))) return `${Number(m[1])} * * * *`;
    throw new Error(`a schedule this test cannot read: ${JSON.stringify(text)}`);
  }

  /** Every jobs-table row of the README and docs/*.md: job name, the file, and its cron cell (if any). */
  function documentedJobs() {
    const files = ["README.md", ...fs.readdirSync(path.join(ROOT, "docs")).filter((f) => f.endsWith(".md")).map((f) => `docs/${f}`)];
    const rows: { job: string; file: string; cron: string | null }[] = [];
    for (const file of files) {
      for (const line of fs.readFileSync(path.join(ROOT, file), "utf8").split("\n")) {
        const m = /^\| `([a-z_]+\.[a-z_]+)` \|(.*)\|\s*$/.exec(line);
        if (!m || !(JOB_NAMES as string[]).includes(m[1])) continue;
        const cells = m[2].split("|").map((c) => c.trim());
        const cron = cells.find((c) => c.startsWith("cron"));
        rows.push({ job: m[1], file, cron: cron ? cronFromText(cron) : null });
      }
    }
    return rows;
  }

  it("the catalog's crons are the schedules the README states: sweeps and expiry every minute, purge at :17, digest at :05", () => {
    const crons = Object.fromEntries(JOB_NAMES.filter((n) => cronOf(n)).map((n) => [n, cronOf(n)]));
    expect(crons).toEqual({
      "notifications.digest": "5 * * * *",
      "invitations.purge": "17 * * * *",
      "credits.expire": "* * * * *",
      "billing.subscription_months": "*/10 * * * *",
      "webhook.sweep": "* * * * *",
      "ai.sweep": "* * * * *",
      "content.sweep": "* * * * *",
      "content.retention": "41 * * * *",
      "video.retention": "29 * * * *",
      "deck.exports_retention": "47 * * * *",
      "deck.operations_sweep": "* * * * *",
      "deck.analytics_rollup": "*/5 * * * *",
    });
  });

  it("every job table row in README.md and docs/ matches the catalog: a cron where it says cron, none where it names a cause", () => {
    const rows = documentedJobs();
    // The README's own table lists the core's nine jobs.
    expect(rows.filter((r) => r.file === "README.md").map((r) => r.job).sort()).toEqual(
      ["billing.subscription_months", "credits.expire", "email.send", "events.dispatch", "invitation.send", "invitations.purge",
        "notifications.digest", "webhook.deliver", "webhook.sweep"],
    );
    for (const r of rows) expect(`${r.file}: ${r.job} ${r.cron ?? "(no cron)"}`).toBe(`${r.file}: ${r.job} ${cronOf(r.job as JobName) ?? "(no cron)"}`);
  });

  it("every job of the catalog is in a README or docs jobs table", () => {
    const documented = new Set(documentedJobs().map((r) => r.job));
    expect(JOB_NAMES.filter((n) => !documented.has(n))).toEqual([]);
  });
});
