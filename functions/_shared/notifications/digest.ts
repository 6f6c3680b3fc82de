// The hourly `notifications.digest` job: users whose local time is 08:xx get one email listing
// their undigested notifications. Claiming (digested_at) and queueing the email share one
// transaction per batch, so a rerun in the same hour, or a retried job, sends nothing twice.
import { sql } from "kysely";
import { z } from "zod";
import { asService, type Db } from "../db/client.ts";
import { appLink, enqueueNotificationEmail, type NotificationMailDeps } from "./mail.ts";
import { renderDigestEmail } from "./templates.ts";

const BATCH = 200;

const DigestItems = z.array(z.object({
  title: z.string(),
  body: z.string(),
  link: z.string().nullable(),
  org_name: z.string(),
}));

interface Claimed {
  user_id: string;
  email: string | null;
  display_name: string | null;
  items: unknown;
}

export async function sendDigests(db: Db, deps: NotificationMailDeps, opts: { now?: string } = {}): Promise<{ sent: number }> {
  const now = opts.now ?? new Date().toISOString();
  let sent = 0;
  for (;;) {
    const claimed = await asService(db, async (tx) => {
      const { rows } = await sql<Claimed>`
        select * from private.claim_notification_digests(${now}::timestamptz, ${BATCH})`.execute(tx);
      for (const r of rows) {
        const items = DigestItems.parse(r.items).map((i) => ({ title: i.title, body: i.body, orgName: i.org_name, link: appLink(deps.cfg, i.link) }));
        await enqueueNotificationEmail(deps, tx, {
          to: r.email,
          target: { userId: r.user_id, type: null, channel: "email_digest" },
          render: (unsubscribeUrl) => renderDigestEmail({ name: r.display_name, items, unsubscribeUrl }),
        });
      }
      return rows.length;
    });
    sent += claimed;
    // Until nothing is left: a short batch can just mean some rows were locked (skipped) for now.
    if (claimed === 0) return { sent };
  }
}
