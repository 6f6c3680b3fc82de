// Deliveries connect to the address the SSRF check approved, not to whatever DNS answers
// next: a rebinding server cannot swap in an internal address between check and connect.
import http from "node:http";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { OutboxEvent } from "../../functions/_shared/events/catalog.ts";
import { type Claim, sendMessage } from "../../functions/_shared/webhooks/delivery.ts";

let server: http.Server;
let port = 0;
const seen: { host?: string; body: string }[] = [];
let reply: { status: number; body: string; headers?: Record<string, string> } = { status: 200, body: "ok" };

beforeAll(async () => {
  server = http.createServer((req, res) => {
    let body = "";
    req.on("data", (c) => (body += c));
    req.on("end", () => {
      seen.push({ host: req.headers.host, body });
      res.writeHead(reply.status, reply.headers).end(reply.body);
    });
  });
  await new Promise<void>((r) => server.listen(0, "127.0.0.1", () => r()));
  port = (server.address() as { port: number }).port;
});
afterAll(() => new Promise<void>((r) => server.close(() => r())));

const event: OutboxEvent = {
  id: crypto.randomUUID(), seq: 1, org_id: crypto.randomUUID(), type: "webhook.test", schema_version: 1,
  subject_kind: "webhook_endpoint", subject_id: "x", actor_user_id: null, actor_api_key_id: null,
  payload: { endpoint_id: crypto.randomUUID(), message: "hi" }, occurred_at: new Date().toISOString(),
};
const claim = (url: string): Claim => ({
  messageId: crypto.randomUUID(), leaseId: crypto.randomUUID(), orgId: event.org_id, endpointId: crypto.randomUUID(), url, attempt: 1,
  secrets: ["whsec_" + btoa("0123456789abcdef0123456789abcdef")], event,
});
// The policy's resolver says "loopback"; real DNS has never heard of the name.
const policy = { allowLoopback: true, lookup: async () => ["127.0.0.1"] };
const deps = { db: undefined as never, schedule: undefined as never, policy };

describe("pinned delivery", () => {
  it("connects to the address the check approved, keeping the hostname for Host", async () => {
    reply = { status: 200, body: "ok" };
    const result = await sendMessage(deps, claim(`http://hooks.rebind.invalid:${port}/in`));
    expect(result).toMatchObject({ statusCode: 200, snippet: "ok" });
    expect(seen.at(-1)!.host).toBe(`hooks.rebind.invalid:${port}`);
    expect(JSON.parse(seen.at(-1)!.body)).toMatchObject({ type: "webhook.test", data: { message: "hi" } });
  });

  it("does not follow redirects and keeps only the first 500 characters of a reply", async () => {
    reply = { status: 302, body: "x".repeat(5_000), headers: { location: "http://169.254.169.254/" } };
    const result = await sendMessage(deps, claim(`http://hooks.rebind.invalid:${port}/in`));
    expect(result.statusCode).toBe(302);
    expect(result.error).toMatch(/redirect 302 not followed/);
    expect(result.snippet).toHaveLength(500);
  });

  it("refuses before connecting when the approved answer is not allowed", async () => {
    const before = seen.length;
    const result = await sendMessage({ ...deps, policy: { allowLoopback: false, lookup: async () => ["127.0.0.1"] } },
      claim(`http://hooks.rebind.invalid:${port}/in`));
    expect(result.statusCode).toBeUndefined();
    expect(result.error).toMatch(/loopback/);
    expect(seen.length).toBe(before);
  });
});
