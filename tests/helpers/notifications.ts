// Helpers for the notification tests: polling the database, and reading notification rows.
import { expect } from "vitest";
import { admin } from "./db.ts";
import { sleep } from "./http.ts";
import { WAIT_MS, waitFor } from "./wait.ts";

export { WAIT_MS, waitFor, waitForReceipt } from "./wait.ts";

/**
 * Polls fn until it returns a truthy value or the timeout passes; returns the last value, which
 * the caller must assert. Prefer `waitFor`, which fails the test itself when the wait runs out.
 */
export async function eventually<T>(fn: () => Promise<T>, timeoutMs = WAIT_MS): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const v = await fn();
    if (v || Date.now() > deadline) return v;
    await sleep(200);
  }
}

export interface NotificationRow {
  id: string;
  org_id: string;
  user_id: string;
  event_id: string | null;
  type: string;
  title: string;
  body: string;
  link: string | null;
  read_at: string | null;
  archived_at: string | null;
  emailed_at: string | null;
  digested_at: string | null;
}

export async function notificationsFor(userId: string, type?: string): Promise<NotificationRow[]> {
  const { rows } = await admin.query<NotificationRow>(
    `select * from notify.notifications where user_id = $1 and ($2::text is null or type = $2) order by created_at`,
    [userId, type ?? null],
  );
  return rows;
}

/** Inserts a notification directly (as the database owner), as the consumer would. */
export async function insertNotification(orgId: string, userId: string, opts: { type?: string; title?: string; createdAt?: Date } = {}) {
  const { rows } = await admin.query<{ id: string }>(
    `insert into notify.notifications (org_id, user_id, type, title, body, created_at)
     values ($1, $2, $3, $4, 'body text', coalesce($5, now())) returning id`,
    [orgId, userId, opts.type ?? "member.joined", opts.title ?? "A notification", opts.createdAt ?? null],
  );
  return rows[0].id;
}

export interface BossJob {
  id: string;
  name: string;
  state: string;
  data: Record<string, unknown>;
  output: unknown;
  retry_count: number;
}

/** pg-boss jobs of one queue whose data contains `match` (jsonb @>), oldest first. */
export async function bossJobs(name: string, match: Record<string, unknown> = {}): Promise<BossJob[]> {
  const { rows } = await admin.query<BossJob>(
    `select id, name, state, data, output, retry_count from pgboss.job where name = $1 and data @> $2::jsonb order by created_on, id`,
    [name, JSON.stringify(match)],
  );
  return rows;
}

/** Waits until the pg-boss job `id` has completed, and fails the test if it failed or never finishes. */
export async function waitForJobCompleted(id: string, timeoutMs = WAIT_MS): Promise<BossJob> {
  const job = await waitFor(`job ${id} to finish`, async () => {
    const { rows } = await admin.query<BossJob>(
      `select id, name, state, data, output, retry_count from pgboss.job where id = $1`, [id]);
    return rows[0] && ["completed", "failed", "cancelled"].includes(rows[0].state) ? rows[0] : undefined;
  }, timeoutMs);
  expect(job.state, `job ${job.name} ${id}: ${JSON.stringify(job.output)}`).toBe("completed");
  return job;
}

/**
 * Waits until every pg-boss job of `name` whose data contains `match` has completed, and
 * returns them (possibly none). Fails the test if one failed or never finishes.
 */
export async function waitForJobsCompleted(name: string, match: Record<string, unknown>, timeoutMs = WAIT_MS): Promise<BossJob[]> {
  const jobs = await bossJobs(name, match);
  for (const j of jobs) await waitForJobCompleted(j.id, timeoutMs);
  return await bossJobs(name, match);
}

/** The latest outbox event of a type in an org (optionally whose payload contains `match`); fails the test if there is none. */
export async function latestEvent(orgId: string, type: string, match: Record<string, unknown> = {}): Promise<string> {
  const { rows } = await admin.query<{ id: string }>(
    `select id from notify.events where org_id = $1 and type = $2 and payload @> $3::jsonb order by seq desc limit 1`,
    [orgId, type, JSON.stringify(match)],
  );
  expect(rows, `no ${type} event in org ${orgId}`).toHaveLength(1);
  return rows[0].id;
}
