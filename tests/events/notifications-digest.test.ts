// The hourly notifications.digest job, run by the real worker with an injected `now`: a user
// whose local time is 08:xx gets one email listing their undigested notifications from the
// last 7 days; at another hour nothing; a rerun sends nothing twice; the claim goes on in
// batches until nobody is left.
//
// Only this file's users can be digested: each test injects a `now` weeks in the past (its
// own, ten days apart from the others'), and only this file writes notifications dated then.
// Everyone else's are newer than that `now`, so outside the digest's window. A negative check
// comes after the digest job has completed: the digest queues its email.send jobs in the
// transaction that claims the notifications, so by then every email it would send is queued.
import { randomUUID } from "node:crypto";
import { afterAll, describe, expect, inject, it } from "vitest";
import { createDb } from "../../functions/_shared/db/client.ts";
import { enqueue, Producer } from "../../functions/_shared/jobs/queue.ts";
import { admin, createTeam, createUser, rpc, type TestUser } from "../helpers/db.ts";
import { mailTo, waitForMail } from "../helpers/http.ts";
import {
  bossJobs,
  insertNotification,
  notificationsFor,
  waitForJobCompleted,
  waitForJobsCompleted,
  WAIT_MS,
} from "../helpers/notifications.ts";

const stack = inject("stack");
const jobs = new Producer(stack.dbUrl);
const { db, pool } = createDb(stack.dbUrl, 2);
afterAll(async () => {
  await jobs.stop();
  await pool.end();
});

const HOUR = 3600_000;
const DAY = 24 * HOUR;

/** The whole-hour zone in which `at` is `hour`:xx local. */
function zoneWhere(at: Date, hour: number): string {
  let offset = hour - at.getUTCHours();
  if (offset > 14) offset -= 24;
  if (offset < -12) offset += 24;
  return offset > 0 ? `Etc/GMT-${offset}` : offset < 0 ? `Etc/GMT+${-offset}` : "Etc/GMT";
}

const localHour = async (at: Date, userId: string) =>
  (await admin.query(`select extract(hour from $1::timestamptz at time zone timezone)::int as h from public.profiles where id = $2`, [at, userId]))
    .rows[0].h;

/**
 * Test number k's injected time: 20 + 10k days ago, at 10 past the hour. Ten days apart and the
 * window is 7 days, so no test's digest run reaches another test's notifications.
 */
async function digestTime(k: number): Promise<{ at: Date; tz: string; user: TestUser; orgId: string }> {
  const at = new Date(Date.now() - (20 + 10 * k) * DAY);
  at.setUTCMinutes(10, 0, 0);
  const tz = zoneWhere(at, 8);
  const user = await createUser({ meta: { timezone: tz, full_name: "Dana Digest" } });
  expect(await localHour(at, user.id)).toBe(8);
  const orgId = (await createTeam("Digest")).orgId;
  return { at, tz, user, orgId };
}

/** Runs the digest job as of `now` on the real worker; fails the test unless it completed. Returns its output. */
async function runDigest(now: Date): Promise<{ sent: number }> {
  const id = await (await jobs.ready()).send("notifications.digest", { now: now.toISOString() });
  expect(id).toBeTruthy();
  return (await waitForJobCompleted(id!)).output as { sent: number };
}

const digestJobs = (to: string) => bossJobs("email.send", { to });

describe("notifications.digest", () => {
  it("at another local hour, sends nothing and claims nothing", async () => {
    const { at, user, orgId } = await digestTime(1);
    await insertNotification(orgId, user.id, { type: "member.joined", title: "Zed joined", createdAt: new Date(at.getTime() - HOUR) });
    // The same run at 08:xx would have sent it (see the next test); an hour later it is 09:xx there.
    expect(await runDigest(new Date(at.getTime() + HOUR))).toEqual({ sent: 0 });
    expect(await digestJobs(user.email)).toEqual([]);
    expect(await mailTo(user.email)).toEqual([]);
    expect((await notificationsFor(user.id)).every((n) => n.digested_at === null)).toBe(true);
  });

  it("at 08:xx local, sends one digest listing the undigested notifications whose type has the digest on, and nothing to users at another hour", async () => {
    const { at, user, orgId } = await digestTime(2);
    const included = [
      await insertNotification(orgId, user.id, { type: "member.joined", title: "Zed joined", createdAt: new Date(at.getTime() - HOUR) }),
      await insertNotification(orgId, user.id, { type: "api_key.created", title: "Key made", createdAt: new Date(at.getTime() - 2 * HOUR) }),
    ];
    // api_key.created has no digest by default: the user turns it on; member.removed stays off.
    await rpc(user, "set_notification_preference", { p_type: "api_key.created", p_channel: "email_digest", p_enabled: true });
    const alreadyMailed = await insertNotification(orgId, user.id, { type: "member.joined", title: "Mailed already", createdAt: new Date(at.getTime() - HOUR) });
    await admin.query("update notify.notifications set emailed_at = now() where id = $1", [alreadyMailed]);
    const excluded = [
      alreadyMailed,
      await insertNotification(orgId, user.id, { type: "member.removed", title: "Not in digests", createdAt: new Date(at.getTime() - HOUR) }),
    ];
    // Someone with the same kind of notification, where it is 11:xx.
    const elsewhere = await createUser({ meta: { timezone: zoneWhere(at, 11), full_name: "Eli Elsewhere" } });
    expect(await localHour(at, elsewhere.id)).toBe(11);
    const elsewhereNote = await insertNotification(orgId, elsewhere.id, { type: "member.joined", title: "Not yet", createdAt: new Date(at.getTime() - HOUR) });

    expect(await runDigest(at)).toEqual({ sent: 1 });
    const queued = await waitForJobsCompleted("email.send", { to: user.email });
    expect(queued).toHaveLength(1);
    const mails = await waitForMail(user.email, { timeoutMs: WAIT_MS });
    expect(mails).toHaveLength(1);
    expect(mails[0].subject).toBe("Your daily digest: 2 notifications");
    expect(mails[0].text).toContain("Zed joined");
    expect(mails[0].text).toContain("Key made");
    expect(mails[0].text).not.toContain("Mailed already");
    expect(mails[0].text).not.toContain("Not in digests");
    expect(mails[0].text).toMatch(/Good morning, Dana Digest/);
    expect(mails[0].headers["list-unsubscribe"]).toMatch(/\/functions\/v1\/api\/unsubscribe\?token=/);
    expect(mails[0].headers["list-unsubscribe-post"]).toBe("List-Unsubscribe=One-Click");
    const rows = await notificationsFor(user.id);
    for (const n of rows) expect(n.digested_at === null, n.title).toBe(!included.includes(n.id));
    expect(excluded.every((id) => rows.find((r) => r.id === id)!.digested_at === null)).toBe(true);

    expect(await digestJobs(elsewhere.email)).toEqual([]);
    expect(await mailTo(elsewhere.email)).toEqual([]);
    expect((await notificationsFor(elsewhere.id)).find((n) => n.id === elsewhereNote)!.digested_at).toBeNull();
  });

  it("a rerun in the same hour sends nothing twice", async () => {
    const { at, user, orgId } = await digestTime(3);
    await insertNotification(orgId, user.id, { type: "member.joined", title: "Zed joined", createdAt: new Date(at.getTime() - HOUR) });
    expect(await runDigest(at)).toEqual({ sent: 1 });
    const before = (await notificationsFor(user.id)).map((n) => n.digested_at);
    expect(before.every((d) => d !== null)).toBe(true);
    expect(await runDigest(new Date(at.getTime() + 60_000))).toEqual({ sent: 0 });
    expect(await waitForJobsCompleted("email.send", { to: user.email })).toHaveLength(1);
    expect(await waitForMail(user.email, { timeoutMs: WAIT_MS })).toHaveLength(1);
    expect((await notificationsFor(user.id)).map((n) => n.digested_at)).toEqual(before);
  });

  it("takes only the last 7 days up to the run's time: older ones and later ones stay undigested", async () => {
    const { at, user, orgId } = await digestTime(4);
    const inside = [
      await insertNotification(orgId, user.id, { title: "Six days 23 hours ago", createdAt: new Date(at.getTime() - 7 * DAY + HOUR) }),
      await insertNotification(orgId, user.id, { title: "Right at the run", createdAt: at }),
    ];
    const outside = [
      await insertNotification(orgId, user.id, { title: "Seven days 1 hour ago", createdAt: new Date(at.getTime() - 7 * DAY - HOUR) }),
      await insertNotification(orgId, user.id, { title: "After the run", createdAt: new Date(at.getTime() + HOUR) }),
    ];
    expect(await runDigest(at)).toEqual({ sent: 1 });
    await waitForJobsCompleted("email.send", { to: user.email });
    const [mail] = await waitForMail(user.email, { timeoutMs: WAIT_MS });
    expect(mail.subject).toBe("Your daily digest: 2 notifications");
    for (const title of ["Six days 23 hours ago", "Right at the run"]) expect(mail.text).toContain(title);
    for (const title of ["Seven days 1 hour ago", "After the run"]) expect(mail.text).not.toContain(title);
    const rows = await notificationsFor(user.id);
    for (const id of inside) expect(rows.find((r) => r.id === id)!.digested_at).not.toBeNull();
    for (const id of outside) expect(rows.find((r) => r.id === id)!.digested_at).toBeNull();
  });

  it("claims in batches until nobody due is left (more users than one batch)", async () => {
    const { at, tz, orgId } = await digestTime(5);
    const n = 230; // the digest claims 200 users per transaction
    const tag = randomUUID().slice(0, 8);
    const { rows: users } = await admin.query<{ id: string; email: string }>(
      `insert into auth.users (instance_id, id, aud, role, email, encrypted_password, email_confirmed_at,
                               raw_app_meta_data, raw_user_meta_data, created_at, updated_at, is_anonymous)
       select '00000000-0000-0000-0000-000000000000', gen_random_uuid(), 'authenticated', 'authenticated',
              'batch-' || $1 || '-' || i || '@test.local', '', now(),
              '{"provider": "email", "providers": ["email"]}', jsonb_build_object('timezone', $2::text), now(), now(), false
       from generate_series(1, $3::int) i
       returning id, email`,
      [tag, tz, n],
    );
    await admin.query(
      `insert into notify.notifications (org_id, user_id, type, title, body, created_at)
       select $1, u, 'member.joined', 'Batch note', 'body text', $3::timestamptz - interval '1 hour' from unnest($2::uuid[]) u`,
      [orgId, users.map((u) => u.id), at],
    );
    expect(await runDigest(at)).toEqual({ sent: n });
    const { rows: [left] } = await admin.query(
      `select count(*) filter (where digested_at is null)::int as undigested, count(*)::int as total
       from notify.notifications where user_id = any ($1::uuid[])`,
      [users.map((u) => u.id)],
    );
    expect(left).toEqual({ undigested: 0, total: n });
    // One email each, queued with the claims.
    const { rows: [q] } = await admin.query(
      `select count(*)::int as jobs, count(distinct data ->> 'to')::int as recipients from pgboss.job
       where name = 'email.send' and data ->> 'to' like $1`,
      [`batch-${tag}-%`],
    );
    expect(q).toEqual({ jobs: n, recipients: n });
  });

  it("refuses a malformed now at the producer: nothing is queued", async () => {
    const marker = `tomorrow at eight ${randomUUID()}`;
    await expect(db.transaction().execute((tx) => enqueue(jobs, tx, "notifications.digest", { now: marker }))).rejects.toThrow(/datetime|Invalid/i);
    expect(await bossJobs("notifications.digest", { now: marker })).toEqual([]);
    // The same producer queues a well-formed one.
    const good = new Date(Date.now() - 400 * DAY).toISOString();
    const id = await db.transaction().execute((tx) => enqueue(jobs, tx, "notifications.digest", { now: good }));
    expect(id).toBeTruthy();
    expect((await waitForJobCompleted(id!)).output).toEqual({ sent: 0 });
  });
});
