// Helpers for the notification tests: polling the database, and reading notification rows.
import { admin } from "./db.ts";
import { sleep } from "./http.ts";

/** Polls fn until it returns a truthy value or the timeout passes; returns the last value. */
export async function eventually<T>(fn: () => Promise<T>, timeoutMs = 15_000): Promise<T> {
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
