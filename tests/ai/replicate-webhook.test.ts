// Replicate webhooks end to end: the fake signs deliveries the Standard Webhooks way with the
// account secret (read through the real SDK), verifyReplicateWebhook accepts them on the raw bytes
// and refuses forged, stale and malformed ones; a redelivery keeps its webhook-id; webhook_twice
// and webhook_late are observable by a local receiver.
import http from "node:http";
import type { AddressInfo } from "node:net";
import Replicate, { validateWebhook } from "replicate";
import { afterAll, beforeAll, beforeEach, describe, expect, it } from "vitest";
import { attemptKeyFromWebhookUrl, createReplicateAdapter, replicatePredictionToTask } from "../../functions/_shared/ai/providers/replicate.ts";
import { ReplicateWebhookError, verifyReplicateWebhook } from "../../functions/_shared/ai/providers/replicate-webhook.ts";
import type { ProviderAdapter } from "../../functions/_shared/ai/types.ts";
import { signOne } from "../../functions/_shared/webhooks/signature.ts";
import { attemptKey as key, fakeConnection, pollTask } from "../helpers/adapter-cases.ts";
import { scriptFake, type Step, useFakeAi } from "../helpers/fake-ai.ts";

interface Received {
  url: URL;
  headers: Headers;
  raw: Buffer;
  at: number;
}

const fake = useFakeAi();
let receiver: http.Server;
let hookBase: string;
let received: Received[] = [];
let reply: (n: number, r: Received) => number = () => 200;
let secret: string;
let n = 0;

const model = () => `plinth-test/hook-${++n}-${Math.random().toString(36).slice(2, 8)}`;

function adapter(): ProviderAdapter {
  return createReplicateAdapter(fakeConnection(fake, "replicate", "/replicate/v1", "r8_test_token", { timeoutMs: 3_000 }));
}

/** Deliveries for one attempt key (the receiver sees every test's deliveries). */
const forKey = (k: string) => received.filter((r) => attemptKeyFromWebhookUrl(r.url.toString()) === k);
const statusOf = (r: Received) => (JSON.parse(r.raw.toString("utf8")) as { status: string }).status;

async function waitFor(pred: () => boolean, timeoutMs = 5_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!pred()) {
    if (Date.now() > deadline) throw new Error("timed out waiting for webhook deliveries");
    await new Promise((r) => setTimeout(r, 20));
  }
}

beforeAll(async () => {
  receiver = http.createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on("data", (c: Buffer) => chunks.push(c));
    req.on("end", () => {
      const headers = new Headers();
      for (const [k, v] of Object.entries(req.headers)) if (typeof v === "string") headers.set(k, v);
      const r: Received = { url: new URL(req.url ?? "/", hookBase), headers, raw: Buffer.concat(chunks), at: Date.now() };
      received.push(r);
      res.writeHead(reply(received.length, r));
      res.end();
    });
  });
  await new Promise<void>((resolve) => receiver.listen(0, "127.0.0.1", resolve));
  hookBase = `http://127.0.0.1:${(receiver.address() as AddressInfo).port}`;
  // The secret as a Replicate customer reads it: through the SDK.
  const sdk = new Replicate({ auth: "r8_test_token", baseUrl: `${fake.url}/replicate/v1` });
  secret = (await sdk.webhooks.default.secret.get()).key;
});

beforeEach(() => {
  received = [];
  reply = () => 200;
});

afterAll(async () => {
  receiver?.closeAllConnections();
  await new Promise<void>((r) => receiver?.close(() => r()));
});

async function submit(mode: Step = { mode: "ok" }, k = key()): Promise<{ id: string; k: string }> {
  const m = model();
  await scriptFake(fake.url, `replicate:${m}`, { stepMs: 40, ...mode });
  const t = await adapter().submit!({ model: m, input: { prompt: "hook" }, idempotencyKey: k, webhookUrl: `${hookBase}/functions/v1/webhooks/replicate` });
  return { id: t.providerTaskId, k };
}

async function expectRefused(p: Promise<unknown>, code: string): Promise<void> {
  const err = await p.then(
    () => null,
    (e: unknown) => e,
  );
  expect(err).toBeInstanceOf(ReplicateWebhookError);
  expect((err as ReplicateWebhookError).code).toBe(code);
}

describe("replicate webhooks: signing and verification", () => {
  it("the secret is a whsec_ key", () => {
    expect(secret).toMatch(/^whsec_[A-Za-z0-9+/]+=*$/);
  });

  it("delivers start, output and completed, each verifying on its raw bytes and carrying the attempt key", async () => {
    const { id, k } = await submit();
    await waitFor(() => forKey(k).length >= 3);
    const deliveries = forKey(k);
    expect(deliveries.map(statusOf)).toEqual(["starting", "succeeded", "succeeded"]);
    expect(deliveries.every((r) => r.url.pathname === "/functions/v1/webhooks/replicate")).toBe(true);

    const verified = [];
    for (const r of deliveries) {
      const v = await verifyReplicateWebhook(new Uint8Array(r.raw), r.headers, secret);
      expect(v.prediction.id).toBe(id);
      verified.push(v);
      // The SDK's own check agrees: the fake signs as Replicate does.
      expect(await validateWebhook({ id: r.headers.get("webhook-id")!, timestamp: r.headers.get("webhook-timestamp")!, signature: r.headers.get("webhook-signature")!, body: r.raw.toString("utf8"), secret })).toBe(true);
    }
    // Each event is its own message.
    expect(new Set(verified.map((v) => v.webhookId)).size).toBe(3);
    const task = replicatePredictionToTask(verified[2].prediction);
    expect(task).toMatchObject({ providerTaskId: id, status: "succeeded" });
    expect(task.outputs).toHaveLength(1);
  });

  it("refuses a changed body, another secret's signature, and a missing header", async () => {
    const { k } = await submit({ mode: "ok", clock: "time" });
    await waitFor(() => forKey(k).some((r) => statusOf(r) === "succeeded"));
    const r = forKey(k).find((d) => statusOf(d) === "succeeded")!;
    await expect(verifyReplicateWebhook(r.raw.toString("utf8"), r.headers, secret)).resolves.toMatchObject({ webhookId: r.headers.get("webhook-id") });

    const tampered = r.raw.toString("utf8").replace('"succeeded"', '"failed"');
    expect(tampered).not.toBe(r.raw.toString("utf8"));
    await expectRefused(verifyReplicateWebhook(tampered, r.headers, secret), "bad_signature");

    const other = `whsec_${Buffer.from("another account's signing key!!").toString("base64")}`;
    await expectRefused(verifyReplicateWebhook(r.raw, r.headers, other), "bad_signature");

    const id = r.headers.get("webhook-id")!;
    const ts = Number(r.headers.get("webhook-timestamp"));
    const forged = new Headers(r.headers);
    forged.set("webhook-signature", await signOne(other, id, ts, r.raw.toString("utf8")));
    await expectRefused(verifyReplicateWebhook(r.raw, forged, secret), "bad_signature");

    const missing = new Headers(r.headers);
    missing.delete("webhook-signature");
    await expectRefused(verifyReplicateWebhook(r.raw, missing, secret), "missing_headers");
  });

  it("accepts when any of several v1 signatures matches, and only v1 ones", async () => {
    const body = JSON.stringify({ id: "p1", status: "succeeded" });
    const ts = Math.floor(Date.now() / 1000);
    const good = await signOne(secret, "msg_1", ts, body);
    const h = (sig: string) => new Headers({ "webhook-id": "msg_1", "webhook-timestamp": String(ts), "webhook-signature": sig });
    await expect(verifyReplicateWebhook(body, h(`v1,AAAA v1,not-base64!! ${good}`), secret)).resolves.toMatchObject({ webhookId: "msg_1" });
    await expectRefused(verifyReplicateWebhook(body, h(good.replace("v1,", "v2,")), secret), "bad_signature");
    await expectRefused(verifyReplicateWebhook(body, h("v1,AAAA"), secret), "bad_signature");
  });

  it("refuses a timestamp more than five minutes off, either way", async () => {
    const { k } = await submit();
    await waitFor(() => forKey(k).length >= 1);
    const r = forKey(k)[0];
    const ts = Number(r.headers.get("webhook-timestamp")) * 1000;
    await expect(verifyReplicateWebhook(r.raw, r.headers, secret, ts + 299_000)).resolves.toBeTruthy();
    await expectRefused(verifyReplicateWebhook(r.raw, r.headers, secret, ts + 301_000), "stale_timestamp");
    await expectRefused(verifyReplicateWebhook(r.raw, r.headers, secret, new Date(ts - 301_000)), "stale_timestamp");
    const garbled = new Headers(r.headers);
    garbled.set("webhook-timestamp", "yesterday");
    await expectRefused(verifyReplicateWebhook(r.raw, garbled, secret), "bad_timestamp");
  });

  it("refuses a correctly signed body that is not a prediction", async () => {
    const ts = Math.floor(Date.now() / 1000);
    for (const body of ["not json", JSON.stringify({ hello: "world" }), JSON.stringify({ id: "p", status: "exploded" })]) {
      const headers = new Headers({ "webhook-id": "msg_x", "webhook-timestamp": String(ts), "webhook-signature": await signOne(secret, "msg_x", ts, body) });
      await expectRefused(verifyReplicateWebhook(body, headers, secret), "malformed_body");
    }
  });
});

describe("replicate webhooks: redelivery, duplicates, late arrival", () => {
  it("a delivery answered 500 is sent again with the same webhook-id, and both verify", async () => {
    const k = key();
    let failedOnce = false;
    reply = (_n, r) => {
      if (!failedOnce && attemptKeyFromWebhookUrl(r.url.toString()) === k && statusOf(r) === "succeeded") {
        failedOnce = true;
        return 500;
      }
      return 200;
    };
    await submit({ mode: "ok" }, k);
    await waitFor(() => forKey(k).length >= 4);
    const ended = forKey(k).filter((r) => statusOf(r) === "succeeded");
    // output (answered 500, then redelivered) and completed: the refused one and its retry share an id.
    expect(ended).toHaveLength(3);
    const ids = ended.map((r) => r.headers.get("webhook-id"));
    expect(ids[1]).toBe(ids[0]);
    expect(ids[2]).not.toBe(ids[0]);
    expect(ended[1].raw.equals(ended[0].raw)).toBe(true);
    expect(ended[1].at - ended[0].at).toBeGreaterThanOrEqual(150);
    for (const r of ended) expect((await verifyReplicateWebhook(r.raw, r.headers, secret)).webhookId).toBe(r.headers.get("webhook-id"));
  });

  it("webhook_twice: the completed delivery arrives twice with one webhook-id", async () => {
    const { k } = await submit({ mode: "webhook_twice" });
    await waitFor(() => forKey(k).length >= 4);
    await new Promise((r) => setTimeout(r, 150));
    const deliveries = forKey(k);
    expect(deliveries).toHaveLength(4);
    const [start, output, completed, again] = deliveries;
    expect(statusOf(start)).toBe("starting");
    expect(again.headers.get("webhook-id")).toBe(completed.headers.get("webhook-id"));
    expect(new Set([start, output, completed].map((r) => r.headers.get("webhook-id"))).size).toBe(3);
    expect(again.raw.equals(completed.raw)).toBe(true);
    const first = await verifyReplicateWebhook(completed.raw, completed.headers, secret);
    const second = await verifyReplicateWebhook(again.raw, again.headers, secret);
    expect(second.webhookId).toBe(first.webhookId);
    expect(second.prediction).toEqual(first.prediction);
  });

  it("webhook_late: a poll sees the end before the completed webhook arrives", async () => {
    const { id, k } = await submit({ mode: "webhook_late", webhookDelayMs: 1200 });
    const a = adapter();
    const done = await pollTask(a, id, (t) => t.status === "succeeded");
    const seenAt = Date.now();
    expect(done.status).toBe("succeeded");
    const isCompleted = (r: Received) => statusOf(r) === "succeeded";
    // output may already be here; the completed event (the second succeeded body) is not.
    expect(forKey(k).filter(isCompleted).length).toBeLessThan(2);
    await waitFor(() => forKey(k).filter(isCompleted).length === 2);
    const completed = forKey(k).filter(isCompleted)[1];
    expect(completed.at).toBeGreaterThanOrEqual(seenAt);
    const v = await verifyReplicateWebhook(completed.raw, completed.headers, secret);
    expect(replicatePredictionToTask(v.prediction).status).toBe("succeeded");
  });
});
