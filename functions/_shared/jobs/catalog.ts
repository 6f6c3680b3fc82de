// Every job type: its name, its payload schema, and its queue policy. Producers and the
// worker both validate against these, so a bad payload fails at the producer, not later.
import { z } from "zod";
import type { Queue } from "pg-boss";

export const EmailSendPayload = z.object({
  to: z.string().email(),
  subject: z.string().min(1).max(300),
  html: z.string().min(1),
  text: z.string().min(1),
});

export const InvitationSendPayload = z.object({ invitation_id: z.string().uuid() }).strict();
export const InvitationsPurgePayload = z.object({}).strict();
export const EventsDispatchPayload = z.object({}).strict();

export const JOBS = {
  "email.send": {
    payload: EmailSendPayload,
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
    queue: { retryLimit: 8, retryDelay: 15, retryBackoff: true, retryDelayMax: 900, expireInSeconds: 120 },
  },
  "invitations.purge": {
    payload: InvitationsPurgePayload,
    queue: { retryLimit: 2, retryDelay: 60, expireInSeconds: 300 },
    cron: "17 * * * *",
  },
} as const satisfies Record<string, { payload: z.ZodType; queue: Omit<Queue, "name">; cron?: string }>;

export type JobName = keyof typeof JOBS;
export type JobPayload<N extends JobName> = z.infer<(typeof JOBS)[N]["payload"]>;
export const JOB_NAMES = Object.keys(JOBS) as JobName[];
