// Helpers for the notification tests: polling the database, and reading notification rows.
import { expect } from "vitest";
import { admin } from "./db.ts";
import { sleep } from "./http.ts";

/**
 * How long a test waits for the shared worker: generous (under vitest's 60 s test timeout, so
 * the failure names what never happened), because every file's jobs go through
 * one worker on a loaded machine. A wait is for an outcome, never a measure of speed.
 */
export const WORKER_WAIT_MS = 45_000;

/**
 * Polls fn until it returns a truthy value or the timeout passes; returns the last value, which
 * the caller must assert. Prefer `waitFor`, which fails the test itself when the wait runs out.
 */
export async function eventually<T>(fn: () => Promise<T>, timeoutMs = WORKER_WAIT_MS): Promise<T> {
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

/**
 * Polls fn until it returns a truthy value and returns it; fails the test, naming `what`, if
 * it never does within the budget. Unlike `eventually`, a wait that never ends cannot pass.
 */
export async function waitFor<T>(what: string, fn: () => Promise<T>, timeoutMs = WORKER_WAIT_MS): Promise<NonNullable<T>> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const v = await fn();
    if (v) return v as NonNullable<T>;
    if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
    await sleep(200);
  }
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
export async function waitForJobCompleted(id: string, timeoutMs = WORKER_WAIT_MS): Promise<BossJob> {
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
export async function waitForJobsCompleted(name: string, match: Record<string, unknown>, timeoutMs = WORKER_WAIT_MS): Promise<BossJob[]> {
  const jobs = await bossJobs(name, match);
  for (const j of jobs) await waitForJobCompleted(j.id, timeoutMs);
  return await bossJobs(name, match);
}

/** Waits for the outbox consumer's receipt of an event: after it, everything the consumer does for the event is committed. */
export async function waitForReceipt(eventId: string, consumer = "notifications", timeoutMs = WORKER_WAIT_MS): Promise<void> {
  await waitFor(`the ${consumer} consumer's receipt of event ${eventId}`, async () =>
    (await admin.query(`select 1 from notify.consumer_receipts where event_id = $1 and consumer = $2`, [eventId, consumer])).rowCount,
  timeoutMs);
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
