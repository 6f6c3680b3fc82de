// The hourly notifications.digest job, run by the real worker with an injected `now`: a user
// whose local time is 08:xx gets one email listing their undigested notifications; at another
// hour nothing; a rerun sends nothing twice.
import { afterAll, beforeAll, describe, expect, inject, it } from "vitest";
import { Producer } from "../../functions/_shared/jobs/queue.ts";
import { admin, createTeam, createUser, rpc, type TestUser } from "../helpers/db.ts";
import { mailTo, sleep, waitForMail } from "../helpers/http.ts";
import { eventually, insertNotification, notificationsFor } from "../helpers/notifications.ts";

const stack = inject("stack");
const jobs = new Producer(stack.dbUrl);
afterAll(() => jobs.stop());

/** A whole-hour zone where `at` (2–3 h from now) is 08:xx local, while now is not. */
function zoneAtEight(now = new Date()): { tz: string; at: Date } {
  for (const hours of [2, 3]) {
    const at = new Date(now.getTime() + hours * 3600_000);
    // Skip UTC itself: other files' users default to it and would be digested too.
    if (at.getUTCHours() === 8) continue;
    let offset = 8 - at.getUTCHours();
    if (offset > 14) offset -= 24;
    if (offset < -12) offset += 24;
    return { tz: offset > 0 ? `Etc/GMT-${offset}` : `Etc/GMT+${-offset}`, at };
  }
  throw new Error("unreachable");
}

async function runDigest(now: Date) {
  const id = await (await jobs.ready()).send("notifications.digest", { now: now.toISOString() });
  await eventually(async () => {
    const { rows } = await admin.query(`select state from pgboss.job where id = $1`, [id]);
    return rows[0]?.state === "completed";
  });
}

const { tz, at } = zoneAtEight();
/** A whole-hour zone three hours ahead of `tz`: 11:xx there at `at`. */
const elsewhereTz = (() => {
  let offset = 8 + 3 - at.getUTCHours();
  if (offset > 14) offset -= 24;
  if (offset < -12) offset += 24;
  return offset > 0 ? `Etc/GMT-${offset}` : offset < 0 ? `Etc/GMT+${-offset}` : "Etc/GMT";
})();
let user: TestUser;
let elsewhere: TestUser;
let elsewhereNote: string;
let orgId: string;
let included: string[];
let excluded: string[];

beforeAll(async () => {
  user = await createUser({ meta: { timezone: tz, full_name: "Dana Digest" } });
  orgId = (await createTeam("Digest")).orgId;
  const hourAgo = new Date(Date.now() - 3600_000);
  included = [
    await insertNotification(orgId, user.id, { type: "member.joined", title: "Zed joined", createdAt: hourAgo }),
    await insertNotification(orgId, user.id, { type: "api_key.created", title: "Key made" }),
  ];
  // api_key.created has no digest by default: the user turns it on; member.removed stays off.
  await rpc(user, "set_notification_preference", { p_type: "api_key.created", p_channel: "email_digest", p_enabled: true });
  const alreadyMailed = await insertNotification(orgId, user.id, { type: "member.joined", title: "Mailed already" });
  await admin.query("update notify.notifications set emailed_at = now() where id = $1", [alreadyMailed]);
  excluded = [alreadyMailed, await insertNotification(orgId, user.id, { type: "member.removed", title: "Not in digests" })];
  // Someone with the same kind of notification, where it is not 08:xx.
  elsewhere = await createUser({ meta: { timezone: elsewhereTz, full_name: "Eli Elsewhere" } });
  elsewhereNote = await insertNotification(orgId, elsewhere.id, { type: "member.joined", title: "Not yet" });
});

describe("notifications.digest", () => {
  it("the user's zone really is at 08:xx at the injected time", async () => {
    const { rows } = await admin.query(`select extract(hour from $1::timestamptz at time zone timezone)::int as h from public.profiles where id = $2`, [at, user.id]);
    expect(rows[0].h).toBe(8);
  });

  it("at another local hour, sends nothing and claims nothing", async () => {
    await runDigest(new Date(at.getTime() + 3600_000));
    await sleep(1_000);
    expect(await mailTo(user.email)).toEqual([]);
    expect((await notificationsFor(user.id)).every((n) => n.digested_at === null)).toBe(true);
  });

  it("at 08:xx local, sends one digest listing the undigested notifications whose type has the digest on", async () => {
    await runDigest(at);
    // Generous: the suite's one worker drains every file's mail; alone this takes ~1 s.
    const mails = await waitForMail(user.email, { timeoutMs: 60_000 });
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
  });

  it("users whose local time is another hour get nothing in that run, however much is waiting", async () => {
    const { rows } = await admin.query(`select extract(hour from $1::timestamptz at time zone timezone)::int as h from public.profiles where id = $2`, [at, elsewhere.id]);
    expect(rows[0].h).toBe(11);
    expect(await mailTo(elsewhere.email)).toEqual([]);
    expect((await notificationsFor(elsewhere.id)).find((n) => n.id === elsewhereNote)!.digested_at).toBeNull();
  });

  it("a rerun in the same hour sends nothing twice", async () => {
    const before = (await notificationsFor(user.id)).map((n) => n.digested_at);
    await runDigest(new Date(at.getTime() + 60_000));
    await sleep(2_000);
    expect(await mailTo(user.email)).toHaveLength(1);
    expect((await notificationsFor(user.id)).map((n) => n.digested_at)).toEqual(before);
  });

  it("rejects a malformed now at the producer", async () => {
    await expect((async () => {
      const { JOBS } = await import("../../functions/_shared/jobs/catalog.ts");
      JOBS["notifications.digest"].payload.parse({ now: "tomorrow at eight" });
    })()).rejects.toThrow();
  });
});
