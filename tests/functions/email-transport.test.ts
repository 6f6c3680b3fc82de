// The email transports and config, unit-level in Node: Resend against a local fake that speaks
// its wire format, SMTP against a private mail sink, plus the config rules and the template.
import http from "node:http";
import type { AddressInfo } from "node:net";
import { afterAll, afterEach, beforeAll, describe, expect, it } from "vitest";
import { loadConfig } from "../../functions/_shared/config.ts";
import { renderInvitationEmail } from "../../functions/_shared/email/templates.ts";
import { createEmailTransport, type OutgoingEmail } from "../../functions/_shared/email/transport.ts";
import { startMailSink } from "../../scripts/lib/mail-sink.ts";
import { freePort } from "../setup/free-port.ts";

const baseEnv = {
  SUPABASE_DB_URL: "postgresql://postgres:pw@127.0.0.1:5432/postgres",
  SUPABASE_URL: "http://127.0.0.1:54321",
};

const email: OutgoingEmail = {
  to: "someone@example.com",
  subject: "Hello there",
  html: "<p>Hello <b>there</b></p>",
  text: "Hello there",
  idempotencyKey: "9f1c7d3e-0000-4000-8000-000000000001",
};

interface Captured {
  method: string;
  url: string;
  headers: http.IncomingHttpHeaders;
  body: string;
}

describe("Resend transport", () => {
  let server: http.Server;
  let url: string;
  const requests: Captured[] = [];
  let reply: { status: number; body: unknown } = { status: 200, body: { id: "re_123" } };

  beforeAll(async () => {
    server = http.createServer((req, res) => {
      const chunks: Buffer[] = [];
      req.on("data", (c) => chunks.push(c));
      req.on("end", () => {
        requests.push({ method: req.method ?? "", url: req.url ?? "", headers: req.headers, body: Buffer.concat(chunks).toString("utf8") });
        res.writeHead(reply.status, { "content-type": "application/json" }).end(JSON.stringify(reply.body));
      });
    });
    await new Promise<void>((r) => server.listen(0, "127.0.0.1", () => r()));
    url = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  });
  afterEach(() => {
    requests.length = 0;
    reply = { status: 200, body: { id: "re_123" } };
  });
  afterAll(() => new Promise<void>((r) => server.close(() => r())));

  const transport = () =>
    createEmailTransport(loadConfig({
      ...baseEnv,
      EMAIL_TRANSPORT: "resend",
      RESEND_API_KEY: "re_test_secret_key",
      RESEND_API_URL: url,
      EMAIL_FROM: "Plinth <no-reply@plinth.test>",
    }));

  it("POSTs /emails in Resend's format with the key and an idempotency key", async () => {
    const t = transport();
    const result = await t.send(email);
    t.close();
    expect(result).toEqual({ providerId: "re_123" });
    expect(requests).toHaveLength(1);
    const [req] = requests;
    expect(req.method).toBe("POST");
    expect(req.url).toBe("/emails");
    expect(req.headers.authorization).toBe("Bearer re_test_secret_key");
    expect(req.headers["content-type"]).toMatch(/^application\/json/);
    expect(req.headers["idempotency-key"]).toBe(email.idempotencyKey);
    expect(JSON.parse(req.body)).toEqual({
      from: "Plinth <no-reply@plinth.test>",
      to: ["someone@example.com"],
      subject: "Hello there",
      html: "<p>Hello <b>there</b></p>",
      text: "Hello there",
    });
  });

  it("rejects when the API answers 500, without leaking the API key", async () => {
    reply = { status: 500, body: { message: "internal server error" } };
    const t = transport();
    const err = await t.send(email).then(() => undefined, (e: Error) => e);
    expect(err, "send() resolved on a 500").toBeInstanceOf(Error);
    expect(err!.message).toMatch(/500/);
    expect(err!.message).not.toContain("re_test_secret_key");
    expect(requests).toHaveLength(1);
  });

  it("rejects on a 4xx with a non-JSON body", async () => {
    reply = { status: 422, body: "not json" };
    const t = transport();
    await expect(t.send(email)).rejects.toThrow(/422/);
  });
});

describe("SMTP transport", () => {
  it("delivers to an SMTP server with the idempotency key as the Message-ID", async () => {
    const smtpPort = await freePort();
    const sink = await startMailSink({ smtpPort, httpPort: await freePort() });
    try {
      const t = createEmailTransport(loadConfig({ ...baseEnv, SMTP_URL: `smtp://127.0.0.1:${smtpPort}`, EMAIL_FROM: "Plinth <no-reply@plinth.test>" }));
      const result = await t.send(email);
      t.close();
      expect(result.providerId).toBe(`<${email.idempotencyKey}@plinth>`);
      expect(sink.messages).toHaveLength(1);
      const [m] = sink.messages;
      expect(m.to).toEqual(["someone@example.com"]);
      expect(m.from).toContain("no-reply@plinth.test");
      expect(m.subject).toBe("Hello there");
      expect(m.text.trim()).toBe("Hello there");
      expect(m.html).toContain("<b>there</b>");
      expect(m.messageId).toBe(`<${email.idempotencyKey}@plinth>`);
    } finally {
      await sink.close();
    }
  });

  it("rejects when no SMTP server listens", async () => {
    const t = createEmailTransport(loadConfig({ ...baseEnv, SMTP_URL: `smtp://127.0.0.1:${await freePort()}` }));
    await expect(t.send(email)).rejects.toThrow();
    t.close();
  });
});

describe("loadConfig", () => {
  it("applies defaults to a minimal environment", () => {
    const cfg = loadConfig(baseEnv);
    expect(cfg.EMAIL_TRANSPORT).toBe("smtp");
    expect(cfg.PLINTH_MAX_BODY_BYTES).toBe(1024 * 1024);
    expect(cfg.PLINTH_DB_POOL_SIZE).toBe(5);
    expect(cfg.PLINTH_JWKS_URL).toBeUndefined();
  });

  it("coerces numeric settings", () => {
    expect(loadConfig({ ...baseEnv, PLINTH_MAX_BODY_BYTES: "65536" }).PLINTH_MAX_BODY_BYTES).toBe(65536);
  });

  it("EMAIL_TRANSPORT=resend without RESEND_API_KEY throws", () => {
    expect(() => loadConfig({ ...baseEnv, EMAIL_TRANSPORT: "resend" })).toThrow(/RESEND_API_KEY/);
    expect(() => loadConfig({ ...baseEnv, EMAIL_TRANSPORT: "resend", RESEND_API_KEY: "re_x" })).not.toThrow();
  });

  it("an unknown EMAIL_TRANSPORT throws, naming it", () => {
    expect(() => loadConfig({ ...baseEnv, EMAIL_TRANSPORT: "carrier-pigeon" })).toThrow(/EMAIL_TRANSPORT/);
  });

  it("a missing SUPABASE_DB_URL throws naming the variable but no value", () => {
    const secrets = {
      SUPABASE_URL: "http://127.0.0.1:54321",
      SUPABASE_SERVICE_ROLE_KEY: "service-role-secret-value-123",
      RESEND_API_KEY: "re_secret_value_456",
      SMTP_URL: "smtp://user:smtp-password-789@mail.example.com:587",
    };
    let message = "";
    try {
      loadConfig(secrets);
    } catch (e) {
      message = (e as Error).message;
    }
    expect(message, "loadConfig accepted an environment without SUPABASE_DB_URL").toMatch(/SUPABASE_DB_URL/);
    for (const value of Object.values(secrets)) expect(message).not.toContain(value);
  });

  it("an invalid value is named but not echoed", () => {
    const badSecret = "short-secret-abc";
    let message = "";
    try {
      loadConfig({ ...baseEnv, PLINTH_JWT_SECRET: badSecret });
    } catch (e) {
      message = (e as Error).message;
    }
    expect(message).toMatch(/PLINTH_JWT_SECRET/);
    expect(message).not.toContain(badSecret);
  });
});

describe("renderInvitationEmail", () => {
  const data = {
    orgName: `<script>alert("x")</script> & Co`,
    inviterName: "Eve <eve@evil.test>",
    role: "member",
    acceptUrl: "https://app.test/invitations/accept?token=abc_DEF-123&x=1",
    expiresAt: "2030-01-02T03:04:05.000Z",
  };

  it("escapes HTML in the html part and keeps text raw", () => {
    const mail = renderInvitationEmail(data);
    expect(mail.html).toContain("&lt;script&gt;alert(&quot;x&quot;)&lt;/script&gt; &amp; Co");
    expect(mail.html).not.toContain("<script>");
    expect(mail.html).toContain("Eve &lt;eve@evil.test&gt;");
    expect(mail.html).toContain(`href="https://app.test/invitations/accept?token=abc_DEF-123&amp;x=1"`);
    expect(mail.text).toContain(`<script>alert("x")</script> & Co`);
    expect(mail.text).toContain("Accept the invitation: https://app.test/invitations/accept?token=abc_DEF-123&x=1");
    expect(mail.subject).toBe(`Eve <eve@evil.test> invited you to <script>alert("x")</script> & Co`);
  });

  it("states the role and the expiry", () => {
    const mail = renderInvitationEmail(data);
    expect(mail.text).toContain("as member");
    expect(mail.text).toContain(new Date(data.expiresAt).toUTCString());
    expect(mail.html).toContain(new Date(data.expiresAt).toUTCString());
  });
});
