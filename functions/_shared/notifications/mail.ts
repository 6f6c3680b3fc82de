// Queues a notification email (single or digest) with its one-click unsubscribe link and the
// RFC 8058 headers, inside the caller's transaction. Shared by the fan-out consumer and the digest.
// The queued job carries a placeholder where the link goes, never the link: pg-boss job data is
// readable by whoever reads the queue's tables, and the link's token changes a user's settings.
// The email.send job signs the token and puts the link in just before it sends.
import type { Config } from "../config.ts";
import type { Tx } from "../db/client.ts";
import { escapeHtml, type RenderedEmail } from "../email/templates.ts";
import { EmailSendPayload } from "../jobs/catalog.ts";
import type { z } from "zod";
import { enqueue, type JobSender } from "../jobs/queue.ts";
import { signUnsubscribeToken, type UnsubscribeTarget } from "./token.ts";

export interface NotificationMailDeps {
  cfg: Pick<Config, "SUPABASE_URL" | "PLINTH_APP_URL" | "PLINTH_UNSUBSCRIBE_SECRET">;
  jobs: JobSender;
}

/** Throws while the secret is unset: the event is retried later rather than mailed without a working link. */
export function unsubscribeSecret(cfg: NotificationMailDeps["cfg"]): string {
  if (!cfg.PLINTH_UNSUBSCRIBE_SECRET) throw new Error("PLINTH_UNSUBSCRIBE_SECRET is not set; notification emails wait for it");
  return cfg.PLINTH_UNSUBSCRIBE_SECRET;
}

/** The api function's unsubscribe route, where hosted projects serve edge functions. */
export function unsubscribeUrl(cfg: NotificationMailDeps["cfg"], token: string): string {
  const url = new URL("/functions/v1/api/unsubscribe", cfg.SUPABASE_URL);
  url.searchParams.set("token", token);
  return url.toString();
}

/** An app-relative notification link made absolute for email; undefined when there is none. */
export function appLink(cfg: NotificationMailDeps["cfg"], path: string | null | undefined): string | undefined {
  return path ? new URL(path, cfg.PLINTH_APP_URL).toString() : undefined;
}

/**
 * Returns false, queueing nothing, for a recipient without a usable address (a phone-only or
 * anonymous user): one such recipient must not hold back everyone else's notifications.
 */
export async function enqueueNotificationEmail(
  deps: NotificationMailDeps,
  tx: Tx,
  msg: { to: string | null; target: UnsubscribeTarget; render: (unsubscribeUrl: string) => RenderedEmail },
): Promise<boolean> {
  if (!msg.to || !EmailSendPayload.shape.to.safeParse(msg.to).success) return false;
  unsubscribeSecret(deps.cfg); // checked now, so the event waits rather than an email failing later
  // Unguessable per email, so no text a sender controls (a title, an org name) can stand for it.
  const placeholder = `{{unsubscribe:${crypto.randomUUID()}}}`;
  await enqueue(deps.jobs, tx, "email.send", {
    to: msg.to,
    ...msg.render(placeholder),
    headers: { "List-Unsubscribe": `<${placeholder}>`, "List-Unsubscribe-Post": "List-Unsubscribe=One-Click" },
    unsubscribe: { user_id: msg.target.userId, type: msg.target.type, channel: msg.target.channel, placeholder },
  });
  return true;
}

type EmailJob = z.infer<typeof EmailSendPayload>;

/** At send time: the email with its signed unsubscribe link in place of the placeholder. */
export async function withUnsubscribeLink(cfg: NotificationMailDeps["cfg"], msg: EmailJob): Promise<Omit<EmailJob, "unsubscribe">> {
  const { unsubscribe, ...email } = msg;
  if (!unsubscribe) return email;
  const url = unsubscribeUrl(cfg, await signUnsubscribeToken(unsubscribeSecret(cfg), {
    userId: unsubscribe.user_id,
    type: unsubscribe.type,
    channel: unsubscribe.channel,
  }));
  const put = (s: string, value: string) => s.split(unsubscribe.placeholder).join(value);
  return {
    ...email,
    html: put(email.html, escapeHtml(url)),
    text: put(email.text, url),
    headers: email.headers && Object.fromEntries(Object.entries(email.headers).map(([k, v]) => [k, put(v, url)])),
  };
}
