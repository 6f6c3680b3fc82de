// Notification emails (one per notification, and the daily digest) and the unsubscribe page,
// each rendered to HTML and text from the same data, in the shared email layout.
import { escapeHtml, layout, type RenderedEmail } from "../email/templates.ts";

const muted = "color:#59636e;font-size:13px";

const channelLabel = (channel: string, type: string | null) =>
  channel === "email_digest" ? "the daily digest email" : `${type ?? "all"} ${channel === "email" ? "emails" : "in-app notifications"}`;

function footer(reason: string, unsubscribeUrl: string) {
  return {
    html: `<hr style="border:none;border-top:1px solid #d1d9e0;margin:24px 0"><p style="${muted}">${escapeHtml(reason)} ` +
      `<a href="${escapeHtml(unsubscribeUrl)}">Unsubscribe</a></p>`,
    text: `--\n${reason} Unsubscribe: ${unsubscribeUrl}`,
  };
}

export interface NotificationEmailData {
  type: string;
  title: string;
  body: string;
  orgName: string;
  /** Absolute URL to open, if the notification has one. */
  link?: string;
  unsubscribeUrl: string;
}

export function renderNotificationEmail(d: NotificationEmailData): RenderedEmail {
  const foot = footer(`You get this email because ${d.type} emails are on for your account.`, d.unsubscribeUrl);
  const html = layout(d.title, [
    `<p style="${muted}">${escapeHtml(d.orgName)}</p>`,
    `<h1 style="font-size:20px">${escapeHtml(d.title)}</h1>`,
    `<p>${escapeHtml(d.body)}</p>`,
    d.link ? `<p><a href="${escapeHtml(d.link)}">Open in the app</a></p>` : "",
    foot.html,
  ].join(""));
  const text = [d.orgName, "", d.title, "", d.body, ...(d.link ? ["", `Open in the app: ${d.link}`] : []), "", foot.text].join("\n");
  return { subject: d.title, html, text };
}

export interface DigestItem {
  title: string;
  body: string;
  orgName: string;
  link?: string;
}

export function renderDigestEmail(d: { name: string | null; items: DigestItem[]; unsubscribeUrl: string }): RenderedEmail {
  const n = d.items.length;
  const subject = `Your daily digest: ${n} notification${n === 1 ? "" : "s"}`;
  const foot = footer("You get this email because the daily digest is on for your account.", d.unsubscribeUrl);
  const greeting = `Good morning${d.name ? `, ${d.name}` : ""}. Here is what happened since your last digest.`;
  const html = layout(subject, [
    `<h1 style="font-size:20px">${escapeHtml(subject)}</h1>`,
    `<p>${escapeHtml(greeting)}</p>`,
    `<ul style="padding-left:20px">`,
    ...d.items.map((i) =>
      `<li style="margin-bottom:12px"><strong>${i.link ? `<a href="${escapeHtml(i.link)}">${escapeHtml(i.title)}</a>` : escapeHtml(i.title)}</strong>` +
      `<br><span style="${muted}">${escapeHtml(i.orgName)}</span><br>${escapeHtml(i.body)}</li>`
    ),
    `</ul>`,
    foot.html,
  ].join(""));
  const text = [
    greeting,
    "",
    ...d.items.map((i) => `- ${i.title} (${i.orgName})\n  ${i.body}${i.link ? `\n  ${i.link}` : ""}`),
    "",
    foot.text,
  ].join("\n");
  return { subject, html, text };
}

/** The page an unsubscribe link opens: GET never changes anything, the button POSTs. */
export function renderUnsubscribePage(d: { type: string | null; channel: string; actionUrl: string }): string {
  const what = channelLabel(d.channel, d.type);
  return layout("Unsubscribe", [
    `<h1 style="font-size:20px">Unsubscribe</h1>`,
    `<p>Stop sending you ${escapeHtml(what)}?</p>`,
    `<form method="post" action="${escapeHtml(d.actionUrl)}">`,
    `<input type="hidden" name="List-Unsubscribe" value="One-Click">`,
    `<button type="submit" style="padding:10px 16px;background:#1f6feb;color:#fff;border:none;border-radius:6px">Unsubscribe</button>`,
    `</form>`,
  ].join(""));
}

export function renderUnsubscribedPage(d: { type: string | null; channel: string }): string {
  return layout("Unsubscribed", `<h1 style="font-size:20px">Done</h1><p>You will no longer get ${escapeHtml(channelLabel(d.channel, d.type))}. ` +
    `You can turn them back on in your notification settings.</p>`);
}
