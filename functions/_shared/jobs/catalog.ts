// Every job type: its name, its payload schema, and its queue policy. Producers and the
// worker both validate against these, so a bad payload fails at the producer, not later.
import { z } from "zod";
import type { Queue } from "pg-boss";
import { CHANNELS } from "../notifications/token.ts";

export const EmailSendPayload = z.object({
  to: z.string().email(),
  subject: z.string().min(1).max(300),
  html: z.string().min(1),
  text: z.string().min(1),
  /** Extra headers (List-Unsubscribe and friends); no CR/LF, so nothing can be injected. */
  headers: z.record(z.string().regex(/^[A-Za-z][A-Za-z0-9-]{0,63}$/), z.string().max(2000).regex(/^[^\r\n]*$/)).optional(),
  /**
   * A notification email's unsubscribe link, made when the email is sent: the queued html, text
   * and headers carry `placeholder` where the link goes, so no token sits in the queue's tables.
   */
  unsubscribe: z.object({
    user_id: z.string().uuid(),
    type: z.string().nullable(),
    channel: z.enum(CHANNELS),
    placeholder: z.string().regex(/^\{\{unsubscribe:[0-9a-f-]{36}\}\}$/),
  }).strict().optional(),
});

export const InvitationSendPayload = z.object({ invitation_id: z.string().uuid() }).strict();
export const InvitationsPurgePayload = z.object({}).strict();
export const EventsDispatchPayload = z.object({}).strict();
export const CreditsExpirePayload = z.object({}).strict();
/** `now` lets tests run the schedule as if at another time; cron sends {}. */
export const BillingSubscriptionMonthsPayload = z.object({ now: z.string().datetime({ offset: true }).optional() }).strict();
export const WebhookDeliverPayload = z.object({ message_id: z.string().uuid() }).strict();
export const WebhookSweepPayload = z.object({}).strict();
export const AiJobPayload = z.object({ job_id: z.string().uuid() }).strict();
export const AiSweepPayload = z.object({}).strict();
export const ContentCompactPayload = z.object({ document_id: z.string().uuid() }).strict();
export const ContentSweepPayload = z.object({}).strict();
export const ContentVerifyAssetPayload = z.object({ asset_id: z.string().uuid() }).strict();
export const ContentRetentionPayload = z.object({}).strict();
export const VideoUploadPayload = z.object({ upload_id: z.string().uuid() }).strict();
export const VideoJobPayload = z.object({ job_id: z.string().uuid() }).strict();
export const VideoPrivacyPayload = z.object({ request_id: z.string().uuid() }).strict();
export const VideoRetentionPayload = z.object({}).strict();
// deck (generation)
export const DeckGeneratePayload = z.object({ generation_id: z.string().uuid() }).strict();
// deck (exports)
export const DeckExportPayload = z.object({ export_id: z.string().uuid() }).strict();
export const DeckExportsRetentionPayload = z.object({}).strict();
// deck (operations)
export const DeckCardOpPayload = z.object({ operation_id: z.string().uuid() }).strict();
export const DeckOperationsSweepPayload = z.object({}).strict();
// deck (analytics)
/** One deck (on demand), or none: the decks seen since their last rollup (cron). */
export const DeckAnalyticsRollupPayload = z.object({ document_id: z.string().uuid().optional() }).strict();
/** `now` lets tests run the digest as if at another hour; cron sends {}. */
export const NotificationsDigestPayload = z.object({ now: z.string().datetime({ offset: true }).optional() }).strict();

export const JOBS = {
  "email.send": {
    payload: EmailSendPayload,
    // I/O-bound (SMTP, HTTP): several in flight per worker process.
    workers: 4,
    // ~9 attempts over about an hour: long enough to ride out a provider outage.
    queue: { retryLimit: 8, retryDelay: 15, retryBackoff: true, retryDelayMax: 900, expireInSeconds: 120 },
  },
  "events.dispatch": {
    payload: EventsDispatchPayload,
    // One queued and one running at most: a burst of events coalesces into one more pass.
    queue: { policy: "stately", retryLimit: 5, retryDelay: 5, expireInSeconds: 300 },
  },
  "invitation.send": {
    payload: InvitationSendPayload,
    // I/O-bound (SMTP, HTTP): several in flight per worker process.
    workers: 4,
    queue: { retryLimit: 8, retryDelay: 15, retryBackoff: true, retryDelayMax: 900, expireInSeconds: 120 },
  },
  "notifications.digest": {
    payload: NotificationsDigestPayload,
    // Hourly: each run mails the users whose local time is then 08:xx.
    queue: { retryLimit: 2, retryDelay: 60, expireInSeconds: 300 },
    cron: "5 * * * *",
  },
  "invitations.purge": {
    payload: InvitationsPurgePayload,
    queue: { retryLimit: 2, retryDelay: 60, expireInSeconds: 300 },
    cron: "17 * * * *",
  },
  "credits.expire": {
    payload: CreditsExpirePayload,
    // Every minute: stale reservations give their credits back, past-due grants expire. One run
    // at a time (stately), so two runs never contend for the same accounts.
    queue: { policy: "stately", retryLimit: 2, retryDelay: 30, expireInSeconds: 120 },
    cron: "* * * * *",
  },
  "billing.subscription_months": {
    payload: BillingSubscriptionMonthsPayload,
    // Annual (and other longer-than-a-month) plans get each period month's credits: every 10
    // minutes, so a new month's credits arrive soon after the last month's expire. Idempotent.
    queue: { policy: "stately", retryLimit: 2, retryDelay: 60, expireInSeconds: 300 },
    cron: "*/10 * * * *",
  },
  "webhook.deliver": {
    payload: WebhookDeliverPayload,
    // I/O-bound: two batches in flight per worker process, each fetched and delivered 25 at a
    // time (one claim, the POSTs side by side, one record), so one records while the other posts.
    workers: 2,
    batch: 25,
    // HTTP failures are scheduled by the handler itself (webhooks/schedule.ts); these retries only
    // cover job crashes. Expiry outlasts the 15 s request plus the message lease (45 s), so a
    // killed worker's job comes back once its message may be taken again.
    queue: { retryLimit: 5, retryDelay: 30, retryBackoff: true, retryDelayMax: 600, expireInSeconds: 60 },
  },
  "webhook.sweep": {
    payload: WebhookSweepPayload,
    queue: { retryLimit: 1, retryDelay: 30, expireInSeconds: 120 },
    cron: "* * * * *",
  },
  "ai.run": {
    payload: AiJobPayload,
    // I/O-bound: a run mostly waits on a provider.
    workers: 8,
    // Stately, keyed by the AI job: at most one run of a job queued and one active, so a
    // duplicate enqueue (sweep, reschedule) can never call a provider twice at once.
    // Retries cover crashes and infrastructure errors only: provider failures are the router's.
    // Expiry outlasts a long generation, so a live run is never taken over by a second one.
    // notify: a long-lived worker starts a submitted job at once instead of at its next poll.
    queue: { policy: "stately", notify: true, retryLimit: 5, retryDelay: 10, retryBackoff: true, retryDelayMax: 300, expireInSeconds: 900 },
  },
  "ai.poll": {
    payload: AiJobPayload,
    workers: 4,
    // Stately per AI job, like ai.run: a webhook and the poller never look at once.
    queue: { policy: "stately", notify: true, retryLimit: 5, retryDelay: 10, retryBackoff: true, retryDelayMax: 300, expireInSeconds: 300 },
  },
  "ai.sweep": {
    payload: AiSweepPayload,
    // The safety net: jobs whose run or poll was lost are picked up again.
    queue: { policy: "stately", retryLimit: 1, retryDelay: 30, expireInSeconds: 120 },
    cron: "* * * * *",
  },
  "content.compact": {
    payload: ContentCompactPayload,
    workers: 2,
    // Stately per document (singletonKey): one queued and one running at most, so a burst of
    // live edits coalesces into one more pass. notify: a long-lived worker starts it at once.
    queue: { policy: "stately", notify: true, retryLimit: 5, retryDelay: 2, retryBackoff: true, retryDelayMax: 60, expireInSeconds: 300 },
  },
  "content.sweep": {
    payload: ContentSweepPayload,
    // Every minute: logs the pump missed get compacted, quiet documents get automatic versions.
    queue: { policy: "stately", retryLimit: 1, retryDelay: 30, expireInSeconds: 120 },
    cron: "* * * * *",
  },
  "content.verify_asset": {
    payload: ContentVerifyAssetPayload,
    workers: 2,
    queue: { policy: "stately", notify: true, retryLimit: 5, retryDelay: 10, retryBackoff: true, retryDelayMax: 300, expireInSeconds: 300 },
  },
  "content.retention": {
    payload: ContentRetentionPayload,
    // Hourly: versions past the plan's retention, unreferenced asset bytes, unused reservations.
    queue: { policy: "stately", retryLimit: 2, retryDelay: 60, expireInSeconds: 600 },
    cron: "41 * * * *",
  },
  "video.validate_upload": {
    payload: VideoUploadPayload,
    // I/O-bound: a Storage read and the face check's provider call.
    workers: 4,
    // Stately per upload: a re-upload while one runs queues one more pass. Retries ride out a
    // face check's rate limit or a Storage hiccup.
    queue: { policy: "stately", notify: true, retryLimit: 5, retryDelay: 10, retryBackoff: true, retryDelayMax: 300, expireInSeconds: 300 },
  },
  "video.start": {
    payload: VideoJobPayload,
    workers: 4,
    queue: { policy: "stately", notify: true, retryLimit: 5, retryDelay: 10, retryBackoff: true, retryDelayMax: 300, expireInSeconds: 120 },
  },
  "video.privacy": {
    payload: VideoPrivacyPayload,
    // An erasure retries the provider deletions that failed; an export rebuilds its archive.
    queue: { retryLimit: 3, retryDelay: 60, retryBackoff: true, expireInSeconds: 1800 },
  },
  "video.retention": {
    payload: VideoRetentionPayload,
    // Hourly: soft-deleted uploads past 30 days, and reserved paths never uploaded to.
    queue: { policy: "stately", retryLimit: 2, retryDelay: 60, expireInSeconds: 600 },
    cron: "29 * * * *",
  },
  // deck (generation)
  "deck.generate": {
    payload: DeckGeneratePayload,
    // I/O-bound: a generation mostly waits on providers (its own calls run 8 at a time). Stately
    // per generation (singletonKey): a re-queue (approve, cancel) never runs one twice at once.
    // Retries cover crashes: a run resumes at the stage that failed. Expiry outlasts a large deck
    // under a small plan's rate limit, so a live run is never taken over by a second one.
    workers: 2,
    queue: { policy: "stately", notify: true, retryLimit: 5, retryDelay: 10, retryBackoff: true, retryDelayMax: 300, expireInSeconds: 3600 },
  },
  // deck (exports)
  "deck.export": {
    payload: DeckExportPayload,
    // One render at a time per worker process: a PDF launches a headless Chromium, and the
    // machine may have two cores. Stately per export: a repeated request never renders twice at once.
    workers: 1,
    queue: { policy: "stately", notify: true, retryLimit: 2, retryDelay: 15, retryBackoff: true, retryDelayMax: 120, expireInSeconds: 600 },
  },
  "deck.exports_retention": {
    payload: DeckExportsRetentionPayload,
    // Hourly: expired export files are removed and their rows marked expired.
    queue: { policy: "stately", retryLimit: 2, retryDelay: 60, expireInSeconds: 600 },
    cron: "47 * * * *",
  },
  // deck (operations)
  "deck.card_op": {
    payload: DeckCardOpPayload,
    // I/O-bound: one AI call, then a short write. Stately per operation (singletonKey): a
    // deferred run and the sweep never run one operation twice at once. Retries cover crashes
    // and database errors; the AI job's own failures end the operation as failed.
    workers: 4,
    queue: { policy: "stately", notify: true, retryLimit: 5, retryDelay: 5, retryBackoff: true, retryDelayMax: 120, expireInSeconds: 600 },
  },
  "deck.operations_sweep": {
    payload: DeckOperationsSweepPayload,
    // Every minute: operations whose job was lost are queued again.
    queue: { policy: "stately", retryLimit: 1, retryDelay: 30, expireInSeconds: 120 },
    cron: "* * * * *",
  },
  // deck (analytics)
  "deck.analytics_rollup": {
    payload: DeckAnalyticsRollupPayload,
    // Every 5 minutes: the decks seen since their last rollup, each recomputed whole (idempotent).
    // Stately per deck (singletonKey: the document id) for on-demand runs, so repeated requests
    // coalesce into one more pass; the scheduled run has no key and coalesces with itself.
    queue: { policy: "stately", retryLimit: 2, retryDelay: 30, expireInSeconds: 600 },
    cron: "*/5 * * * *",
  },
} as const satisfies Record<string, { payload: z.ZodType; queue: Omit<Queue, "name">; cron?: string; workers?: number; batch?: number }>;

export type JobName = keyof typeof JOBS;
export type JobPayload<N extends JobName> = z.infer<(typeof JOBS)[N]["payload"]>;
export const JOB_NAMES = Object.keys(JOBS) as JobName[];
