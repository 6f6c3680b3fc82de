// What each job type does. Handlers throw to fail an attempt; pg-boss retries per the
// queue policy in catalog.ts.
import { sql } from "kysely";
import { aiHandlers } from "../ai/jobs.ts";
import type { AiWorkerDeps } from "../ai/failure.ts";
import { contentHandlers, type ContentJobDeps } from "../content/jobs.ts";
import type { Db } from "../db/client.ts";
import { asService } from "../db/client.ts";
import type { EmailTransport } from "../email/transport.ts";
import { renderInvitationEmail } from "../email/templates.ts";
import { dispatchPending, type EventConsumer } from "../events/dispatcher.ts";
import { sendDigests } from "../notifications/digest.ts";
import { deckHandlers, type DeckJobDeps } from "../deck/jobs.ts";
import { videoHandlers, type VideoJobDeps } from "../video/jobs.ts";
import { type NotificationMailDeps, withUnsubscribeLink } from "../notifications/mail.ts";
import { webhookHandlers, type WebhookJobDeps } from "../webhooks/jobs.ts";
import { JOBS, type JobName } from "./catalog.ts";

export interface JobDeps {
  db: Db;
  email: EmailTransport;
  /** Where links in emails point (PLINTH_APP_URL). */
  appUrl: string;
  /** Outbox consumers, in the order they see each event. */
  consumers: EventConsumer[];
  /** Notification emails: link config, the unsubscribe secret, and the queue they go on. */
  notifications: NotificationMailDeps;
  /** Outbound webhook delivery: SSRF policy and how retries are queued. */
  webhooks: Omit<WebhookJobDeps, "db">;
  /** The AI gateway: provider adapters, where outputs are stored, how follow-ups are queued. */
  ai: Omit<AiWorkerDeps, "db">;
  /** The content engine: Storage (asset bytes) and how compactions are queued. */
  content: Omit<ContentJobDeps, "db">;
  /** Talking videos: Storage, the queue, and the AI gateway's worker side (face checks, erasure's provider deletes). */
  video: Omit<VideoJobDeps, "db">;
  /** Decks: Storage (exports, images), the queue, and the AI gateway's worker side (the generation pipeline). */
  deck: Omit<DeckJobDeps, "db">;
}

export type JobHandler = ((data: unknown, jobId: string) => Promise<unknown>) & {
  /** Runs a fetched batch of this queue's jobs together; one result per job, in order. */
  batch?: BatchJobHandler;
};

export type BatchJobHandler = (jobs: { id: string; data: unknown }[]) => Promise<({ output: unknown } | { error: Error })[]>;

export function createHandlers(deps: JobDeps): Record<JobName, JobHandler> {
  return {
    ...webhookHandlers({ db: deps.db, ...deps.webhooks }),
    ...aiHandlers({ db: deps.db, ...deps.ai }),
    ...contentHandlers({ db: deps.db, ...deps.content }),
    ...videoHandlers({ db: deps.db, ...deps.video }),
    ...deckHandlers({ db: deps.db, ...deps.deck }),
    "email.send": async (data, jobId) => {
      // A notification email's unsubscribe link is signed now, not stored in the queued job.
      const msg = await withUnsubscribeLink(deps.notifications.cfg, JOBS["email.send"].payload.parse(data));
      // The job id is stable across retries, so it doubles as the provider idempotency key.
      const { providerId } = await deps.email.send({ ...msg, idempotencyKey: jobId });
      return { providerId };
    },
    "events.dispatch": async (data) => {
      JOBS["events.dispatch"].payload.parse(data);
      return await dispatchPending(deps.db, deps.consumers);
    },
    "invitation.send": async (data, jobId) => {
      const { invitation_id } = JOBS["invitation.send"].payload.parse(data);
      // A fresh token per attempt, committed only if the email went out: an earlier attempt's
      // link stops working, and no token is ever stored in plain text.
      return await asService(deps.db, async (tx) => {
        const { rows } = await sql<{ token: string; email: string; role: string; expires_at: string; org_name: string; inviter_name: string | null }>`
          select * from private.reissue_invitation_token(${invitation_id})`.execute(tx);
        const inv = rows[0];
        if (!inv) return { skipped: "invitation is no longer pending" };
        const acceptUrl = new URL("/invitations/accept", deps.appUrl);
        acceptUrl.searchParams.set("token", inv.token);
        const mail = renderInvitationEmail({
          orgName: inv.org_name,
          inviterName: inv.inviter_name ?? "A teammate",
          role: inv.role,
          acceptUrl: acceptUrl.toString(),
          expiresAt: inv.expires_at,
        });
        const { providerId } = await deps.email.send({ to: inv.email, ...mail, idempotencyKey: jobId });
        return { providerId };
      });
    },
    "notifications.digest": async (data) => {
      const { now } = JOBS["notifications.digest"].payload.parse(data);
      return await sendDigests(deps.db, deps.notifications, { now });
    },
    "credits.expire": async (data) => {
      JOBS["credits.expire"].payload.parse(data);
      // One item that fails is rolled back alone and counted in failures (and logged as a
      // warning by the database); the rest of the run commits, and the next run retries it.
      return await asService(deps.db, async (tx) =>
        (await sql<{ reservations: number; grants: number; failures: number }>`select * from billing.expire_credits()`.execute(tx)).rows[0]);
    },
    "billing.subscription_months": async (data) => {
      const { now } = JOBS["billing.subscription_months"].payload.parse(data);
      return await asService(deps.db, async (tx) =>
        (await sql<{ subscriptions: number; granted: number; failed: number }>`
          select * from billing.grant_due_subscription_months(coalesce(${now ?? null}::timestamptz, now()))`.execute(tx)).rows[0]);
    },
    "invitations.purge": async (data) => {
      JOBS["invitations.purge"].payload.parse(data);
      const purged = await asService(deps.db, async (tx) => {
        const { rows } = await sql<{ n: number }>`select private.purge_dead_invitations() as n`.execute(tx);
        return rows[0].n;
      });
      return { purged };
    },
  };
}
