// The local mail sink: an SMTP server that keeps every message in memory and shows them
// over HTTP (GET / for people, GET /messages for tools and tests). Local development only.
import http from "node:http";
import { simpleParser } from "mailparser";
import { SMTPServer } from "smtp-server";

export interface SunkMessage {
  id: number;
  messageId: string | undefined;
  from: string;
  to: string[];
  subject: string;
  text: string;
  html: string;
  /** Raw header values by lower-case name (unfolded), e.g. list-unsubscribe. */
  headers: Record<string, string>;
  receivedAt: string;
}

export interface MailSink {
  messages: SunkMessage[];
  close(): Promise<void>;
}

const esc = (s: string) => s.replace(/[&<>"]/g, (c) => ({ "&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;" })[c]!);

export async function startMailSink(opts: { smtpPort: number; httpPort: number }): Promise<MailSink> {
  const messages: SunkMessage[] = [];
  const smtp = new SMTPServer({
    authOptional: true,
    disabledCommands: ["STARTTLS"],
    logger: false,
    onData(stream, session, callback) {
      simpleParser(stream)
        .then((mail) => {
          messages.push({
            id: messages.length + 1,
            messageId: mail.messageId,
            from: mail.from?.text ?? "",
            to: session.envelope.rcptTo.map((r) => r.address),
            subject: mail.subject ?? "",
            text: mail.text ?? "",
            html: typeof mail.html === "string" ? mail.html : "",
            headers: Object.fromEntries(mail.headerLines.map((h) => [
              h.key,
              h.line.slice(h.line.indexOf(":") + 1).replace(/\r?\n[ \t]+/g, " ").trim(),
            ])),
            receivedAt: new Date().toISOString(),
          });
          callback();
        })
        .catch(callback);
    },
  });
  await new Promise<void>((resolve, reject) => {
    smtp.once("error", reject);
    smtp.listen(opts.smtpPort, "127.0.0.1", () => resolve());
  });

  const web = http.createServer((req, res) => {
    const url = new URL(req.url ?? "/", "http://localhost");
    if (req.method === "DELETE" && url.pathname === "/messages") {
      messages.length = 0;
      res.writeHead(204).end();
    } else if (url.pathname === "/messages") {
      const to = url.searchParams.get("to");
      const list = to ? messages.filter((m) => m.to.includes(to.toLowerCase())) : messages;
      res.writeHead(200, { "content-type": "application/json" }).end(JSON.stringify(list));
    } else if (url.pathname === "/") {
      const rows = messages.slice().reverse().map((m) =>
        `<details><summary>${esc(m.receivedAt)} — <b>${esc(m.to.join(", "))}</b>: ${esc(m.subject)}</summary>${m.html}<pre>${esc(m.text)}</pre></details>`
      ).join("");
      res.writeHead(200, { "content-type": "text/html; charset=utf-8" })
        .end(`<!doctype html><title>Plinth mail</title><h1>Local mail (${messages.length})</h1>${rows}`);
    } else {
      res.writeHead(404).end();
    }
  });
  await new Promise<void>((resolve, reject) => {
    web.once("error", reject);
    web.listen(opts.httpPort, "127.0.0.1", () => resolve());
  });

  return {
    messages,
    close: async () => {
      await new Promise<void>((r) => smtp.close(() => r()));
      await new Promise<void>((r) => web.close(() => r()));
    },
  };
}
