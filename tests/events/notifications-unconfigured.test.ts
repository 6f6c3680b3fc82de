// Without PLINTH_UNSUBSCRIBE_SECRET (docs/notifications.md): notification emails wait (the
// notifications consumer throws, so its event is retried rather than mailed without a working
// link; an email.send job that needs a link fails its attempt) and /unsubscribe answers 503.
// The api app and the consumer are built in-process with an env that lacks the secret; each
// case has a control with the secret set, so the difference is the secret alone.
import { afterAll, describe, expect, inject, it } from "vitest";
import { createApiApp, createApiDeps } from "../../functions/api/app.ts";
import { createDb } from "../../functions/_shared/db/client.ts";
import type { OutboxEvent } from "../../functions/_shared/events/catalog.ts";
import { Producer } from "../../functions/_shared/jobs/queue.ts";
import { createNotificationsConsumer } from "../../functions/_shared/notifications/consumer.ts";
import { withUnsubscribeLink } from "../../functions/_shared/notifications/mail.ts";
import { signUnsubscribeToken } from "../../functions/_shared/notifications/token.ts";
import { LOCAL_UNSUBSCRIBE_SECRET } from "../../scripts/lib/stack.ts";
import { admin, createTeam, createUser } from "../helpers/db.ts";
import { sql } from "kysely";

const stack = inject("stack");
const SECRET = LOCAL_UNSUBSCRIBE_SECRET;
const env = { SUPABASE_DB_URL: stack.dbUrl, SUPABASE_URL: stack.supabaseUrl, PLINTH_JWT_SECRET: stack.jwtSecret };

const jobs = new Producer(stack.dbUrl);
const { db, pool } = createDb(stack.dbUrl, 2);
const apps = {
  without: createApiDeps({ ...env }),
  with: createApiDeps({ ...env, PLINTH_UNSUBSCRIBE_SECRET: SECRET }),
};
afterAll(async () => {
  await jobs.stop();
  await pool.end();
  for (const d of Object.values(apps)) await d.db.destroy();
});

const prefs = async (userId: string) =>
  (await admin.query("select type, channel, enabled from notify.notification_preferences where user_id = $1", [userId])).rows;

describe("/unsubscribe without PLINTH_UNSUBSCRIBE_SECRET", () => {
  it("answers 503 not_configured to the page and to one-click, and changes nothing, where the same link works with the secret", async () => {
    expect(apps.without.cfg.PLINTH_UNSUBSCRIBE_SECRET).toBeUndefined();
    const user = await createUser();
    const token = await signUnsubscribeToken(SECRET, { userId: user.id, type: "member.role_changed", channel: "email" });
    const url = `http://localhost/api/unsubscribe?token=${encodeURIComponent(token)}`;
    const oneClick = { method: "POST", headers: { "content-type": "application/x-www-form-urlencoded" }, body: "List-Unsubscribe=One-Click" };

    const unconfigured = createApiApp(apps.without);
    for (const res of [await unconfigured.request(url), await unconfigured.request(url, oneClick)]) {
      expect(res.status).toBe(503);
      expect((await res.json()).error.code).toBe("not_configured");
    }
    expect(await prefs(user.id)).toEqual([]);

    const configured = createApiApp(apps.with);
    expect((await configured.request(url)).status).toBe(200);
    expect((await configured.request(url, oneClick)).status).toBe(200);
    expect(await prefs(user.id)).toEqual([{ type: "member.role_changed", channel: "email", enabled: false }]);
  });
});

describe("notification emails without PLINTH_UNSUBSCRIBE_SECRET", () => {
  /**
   * Emits a member.role_changed event for a member with email on, runs the consumer on it in the
   * same transaction, then rolls everything back (the worker never sees the event). Returns the
   * error the consumer threw, or the email.send jobs it queued.
   */
  async function consume(secret: string | undefined): Promise<{ error?: Error; queued: number }> {
    const team = await createTeam("Unconfigured");
    const consumer = createNotificationsConsumer({
      cfg: { SUPABASE_URL: stack.supabaseUrl, PLINTH_APP_URL: "http://127.0.0.1:3000", PLINTH_UNSUBSCRIBE_SECRET: secret },
      jobs,
    });
    const rollback = new Error("rollback");
    let outcome: { error?: Error; queued: number } = { queued: 0 };
    await db.transaction().execute(async (tx) => {
      const { rows: [{ id }] } = await sql<{ id: string }>`
        select private.emit_event(${team.orgId}::uuid, 'member.role_changed', 'member', ${team.member.id},
          jsonb_build_object('user_id', ${team.member.id}::uuid, 'old_role', 'member', 'new_role', 'viewer')) as id`.execute(tx);
      const { rows: [e] } = await sql<OutboxEvent>`select * from notify.events where id = ${id}`.execute(tx);
      try {
        await sql`savepoint consumer`.execute(tx);
        await consumer.handle(tx, e);
      } catch (err) {
        await sql`rollback to savepoint consumer`.execute(tx);
        outcome = { error: err as Error, queued: 0 };
        throw rollback;
      }
      const { rows } = await sql<{ n: number }>`
        select count(*)::int as n from pgboss.job where name = 'email.send' and data ->> 'to' = ${team.member.email}`.execute(tx);
      outcome = { queued: rows[0].n };
      throw rollback;
    }).catch((err) => {
      if (err !== rollback) throw err;
    });
    return outcome;
  }

  it("the notifications consumer refuses the event (so it is retried), where with the secret it queues the email", async () => {
    const without = await consume(undefined);
    expect(without.error?.message).toMatch(/PLINTH_UNSUBSCRIBE_SECRET is not set/);
    expect(await consume(SECRET)).toEqual({ queued: 1 });
  });

  it("email.send cannot sign a notification email's link, so that attempt fails and is retried; an email without a link (an invitation) is unaffected", async () => {
    const cfg = { SUPABASE_URL: stack.supabaseUrl, PLINTH_APP_URL: "http://127.0.0.1:3000", PLINTH_UNSUBSCRIBE_SECRET: undefined };
    const placeholder = `{{unsubscribe:${crypto.randomUUID()}}}`;
    const msg = {
      to: "someone@test.local",
      subject: "Hello",
      html: `<a href="${placeholder}">unsubscribe</a>`,
      text: `Unsubscribe: ${placeholder}`,
      headers: { "List-Unsubscribe": `<${placeholder}>` },
      unsubscribe: { user_id: crypto.randomUUID(), type: "member.role_changed", channel: "email" as const, placeholder },
    };
    await expect(withUnsubscribeLink(cfg, msg)).rejects.toThrow(/PLINTH_UNSUBSCRIBE_SECRET is not set/);
    const linked = await withUnsubscribeLink({ ...cfg, PLINTH_UNSUBSCRIBE_SECRET: SECRET }, msg);
    expect(linked.text).toMatch(/\/functions\/v1\/api\/unsubscribe\?token=/);
    const { unsubscribe: _none, ...plain } = msg;
    expect(await withUnsubscribeLink(cfg, { ...plain, html: "<p>hi</p>", text: "hi", headers: undefined }))
      .toEqual({ ...plain, html: "<p>hi</p>", text: "hi", headers: undefined });
  });
});
