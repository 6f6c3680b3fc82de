// Email bodies, each rendered to HTML and plain text from the same data.

export interface RenderedEmail {
  subject: string;
  html: string;
  text: string;
}

const ESCAPES: Record<string, string> = { "&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;", "'": "&#39;" };
export const escapeHtml = (s: string) => s.replace(/[&<>"']/g, (c) => ESCAPES[c]);

/** The HTML shell every email shares; bodyHtml must already be escaped. */
export function layout(title: string, bodyHtml: string): string {
  return `<!doctype html><html><head><meta charset="utf-8"><title>${escapeHtml(title)}</title></head>` +
    `<body style="font-family:system-ui,sans-serif;max-width:560px;margin:0 auto;padding:24px;color:#1f2328">` +
    `${bodyHtml}</body></html>`;
}

export interface InvitationEmailData {
  orgName: string;
  inviterName: string;
  role: string;
  acceptUrl: string;
  expiresAt: string;
}

export function renderInvitationEmail(d: InvitationEmailData): RenderedEmail {
  const expires = new Date(d.expiresAt).toUTCString();
  const subject = `${d.inviterName} invited you to ${d.orgName}`;
  const html = layout(subject, [
    `<h1 style="font-size:20px">Join ${escapeHtml(d.orgName)}</h1>`,
    `<p>${escapeHtml(d.inviterName)} invited you to join <strong>${escapeHtml(d.orgName)}</strong> as ${escapeHtml(d.role)}.</p>`,
    `<p><a href="${escapeHtml(d.acceptUrl)}" style="display:inline-block;padding:10px 16px;background:#1f6feb;color:#fff;border-radius:6px;text-decoration:none">Accept the invitation</a></p>`,
    `<p style="color:#59636e;font-size:13px">The link works once and expires ${escapeHtml(expires)}. If you did not expect it, ignore this email.</p>`,
  ].join(""));
  const text = [
    `${d.inviterName} invited you to join ${d.orgName} as ${d.role}.`,
    "",
    `Accept the invitation: ${d.acceptUrl}`,
    "",
    `The link works once and expires ${expires}. If you did not expect it, ignore this email.`,
  ].join("\n");
  return { subject, html, text };
}
