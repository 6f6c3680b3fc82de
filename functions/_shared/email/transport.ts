// Sends one email through SMTP (nodemailer) or the Resend HTTP API, chosen by EMAIL_TRANSPORT.
// Locally SMTP points at the dev mail sink; in production at any SMTP relay.
import nodemailer from "nodemailer";
import type { Config } from "../config.ts";

export interface OutgoingEmail {
  to: string;
  subject: string;
  html: string;
  text: string;
  /** Stable per logical message, so a retried job does not send a second copy where the provider can tell. */
  idempotencyKey: string;
  /** Extra headers, such as List-Unsubscribe (validated by the email.send job schema). */
  headers?: Record<string, string>;
}

export interface EmailTransport {
  send(email: OutgoingEmail): Promise<{ providerId: string }>;
  close(): void;
}

export function createEmailTransport(cfg: Config): EmailTransport {
  return cfg.EMAIL_TRANSPORT === "resend" ? resendTransport(cfg) : smtpTransport(cfg);
}

function smtpTransport(cfg: Config): EmailTransport {
  // Bounded waits: nodemailer's defaults are minutes, longer than a job's expiry.
  const transporter = nodemailer.createTransport({
    url: cfg.SMTP_URL,
    connectionTimeout: 10_000,
    greetingTimeout: 10_000,
    socketTimeout: 20_000,
  });
  return {
    async send(email) {
      const info = await transporter.sendMail({
        from: cfg.EMAIL_FROM,
        to: email.to,
        subject: email.subject,
        html: email.html,
        text: email.text,
        messageId: `<${email.idempotencyKey}@plinth>`,
        headers: email.headers,
      });
      return { providerId: info.messageId };
    },
    close: () => transporter.close(),
  };
}

function resendTransport(cfg: Config): EmailTransport {
  return {
    async send(email) {
      const res = await fetch(new URL("/emails", cfg.RESEND_API_URL), {
        method: "POST",
        headers: {
          authorization: `Bearer ${cfg.RESEND_API_KEY}`,
          "content-type": "application/json",
          "idempotency-key": email.idempotencyKey,
        },
        body: JSON.stringify({
          from: cfg.EMAIL_FROM,
          to: [email.to],
          subject: email.subject,
          html: email.html,
          text: email.text,
          ...(email.headers ? { headers: email.headers } : {}),
        }),
        signal: AbortSignal.timeout(15_000),
      });
      const body = await res.json().catch(() => ({})) as { id?: string; message?: string };
      if (!res.ok) throw new Error(`email API answered ${res.status}: ${body.message ?? "no message"}`);
      return { providerId: body.id ?? "" };
    },
    close() {},
  };
}
