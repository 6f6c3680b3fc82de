// Outbox consumer "notifications": one event → notification rows for its rule's recipients
// (SQL does recipients, preferences, idempotent insert and the user:<id> broadcast), then one
// email.send job per recipient with email on. All inside the dispatcher's savepoint, with the
// consumer receipt: a re-dispatched event writes no second row and queues no second email.
import { sql } from "kysely";
import type { EventConsumer } from "../events/dispatcher.ts";
import { appLink, enqueueNotificationEmail, type NotificationMailDeps } from "./mail.ts";
import { renderNotificationEmail } from "./templates.ts";

interface FannedOut {
  notification_id: string;
  user_id: string;
  email: string | null;
  type: string;
  title: string;
  body: string;
  link: string | null;
  org_name: string;
  send_email: boolean;
}

export function createNotificationsConsumer(deps: NotificationMailDeps): EventConsumer {
  return {
    name: "notifications",
    async handle(tx, event) {
      // Rows come back only when this call inserted them, so a repeat queues nothing.
      const { rows } = await sql<FannedOut>`select * from private.fan_out_notifications(${event.id})`.execute(tx);
      for (const n of rows) {
        if (!n.send_email) continue;
        await enqueueNotificationEmail(deps, tx, {
          to: n.email,
          target: { userId: n.user_id, type: n.type, channel: "email" },
          render: (unsubscribeUrl) =>
            renderNotificationEmail({
              type: n.type,
              title: n.title,
              body: n.body,
              orgName: n.org_name,
              link: appLink(deps.cfg, n.link),
              unsubscribeUrl,
            }),
        });
      }
    },
  };
}
