// The D-ID adapter (plain fetch) against the D-ID-like fake (scripts/fakes/did.ts): talks from a
// photo and a text or audio script, rejected vs error, HTTP error classes, the user_data lookup
// after a submit timed out (paging the talk list), delete, and the finished-talk webhook.
import http from "node:http";
import type { AddressInfo } from "node:net";
import { describe, expect, it } from "vitest";
import { createDidAdapter, DID_DEFAULT_VOICE } from "../../functions/_shared/ai/providers/did.ts";
import { type AsyncSubmitRequest, type ProviderAdapter, type ProviderConnection, ProviderError } from "../../functions/_shared/ai/types.ts";
import * as cases from "../helpers/adapter-cases.ts";
import { fakeCalls, rejection, scriptFake, type Step, useFakeAi } from "../helpers/fake-ai.ts";

const fake = useFakeAi();
let n = 0;
// D-ID has no model field: the fake keys scripts by the talk's `name` ("did:<name>").
const talkName = () => `talk-test-${++n}-${Math.random().toString(36).slice(2, 8)}`;
const API_KEY = "dXNlckBwbGludGgudGVzdA:secret";

function adapter(over: Partial<ProviderConnection> = {}): ProviderAdapter {
  return createDidAdapter(cases.fakeConnection(fake, "did", "/did", API_KEY, { timeoutMs: 3_000, ...over }));
}

function request(name: string, k = cases.attemptKey(), input: Record<string, unknown> = {}): AsyncSubmitRequest {
  return {
    model: "talks",
    idempotencyKey: k,
    input: { image_url: "https://files.plinth.test/face.png", script: { text: "Namaste! Welcome to TalkingPhoto.", voice: "en-IN-NeerjaNeural", language: "en-IN" }, name, ...input },
  };
}

const talks: cases.TaskTarget = { fake, adapter, name: talkName, key: (name) => `did:${name}`, request };

describe("d-id: lifecycle", () => {
  it("creates a talk from a photo and a text script, polls created → started → done with result_url and duration", async () => {
    const name = talkName();
    await scriptFake(fake.url, `did:${name}`, { mode: "ok", pollsUntilDone: 2, durationSeconds: 4.25 });
    const a = adapter();
    const k = cases.attemptKey();
    const t = await a.submit!(request(name, k));
    expect(t.status).toBe("queued");
    expect(t.providerTaskId).toMatch(/^tlk_/);

    const [create] = await fakeCalls(fake.url, `did:${name}`);
    expect(create).toMatchObject({ method: "POST", path: "/did/talks" });
    expect(create.headers.authorization).toBe(`Basic ${API_KEY}`);
    expect(create.body).toEqual({
      source_url: "https://files.plinth.test/face.png",
      script: { type: "text", input: "Namaste! Welcome to TalkingPhoto.", provider: { type: "microsoft", voice_id: "en-IN-NeerjaNeural", language: "en-IN" } },
      user_data: k,
      name,
    });

    expect(await a.get!(t.providerTaskId)).toEqual({ providerTaskId: t.providerTaskId, status: "running" });
    const done = await a.get!(t.providerTaskId);
    expect(done.status).toBe("succeeded");
    expect(done.durationSeconds).toBe(4.25);
    expect(done.outputs).toEqual([{ url: `${fake.url}/did/files/${t.providerTaskId}.mp4`, mimeType: "video/mp4" }]);
    const bytes = new Uint8Array(await (await fetch(done.outputs![0].url!)).arrayBuffer());
    expect(new TextDecoder().decode(bytes.slice(4, 8))).toBe("ftyp");
  });

  it("sends an audio script when the input has audio, and the default voice otherwise", async () => {
    const a = adapter();
    const audio = talkName();
    await a.submit!(request(audio, cases.attemptKey(), { audio_url: "https://files.plinth.test/voice.mp3" }));
    expect(((await fakeCalls(fake.url, `did:${audio}`))[0].body as any).script).toEqual({ type: "audio", audio_url: "https://files.plinth.test/voice.mp3" });
    const plain = talkName();
    await a.submit!(request(plain, cases.attemptKey(), { script: { text: "Hi" } }));
    expect(((await fakeCalls(fake.url, `did:${plain}`))[0].body as any).script).toEqual({ type: "text", input: "Hi", provider: { type: "microsoft", voice_id: DID_DEFAULT_VOICE } });
  });

  it("refuses a talk without a script before calling", async () => {
    const name = talkName();
    const err = (await rejection(adapter().submit!(request(name, cases.attemptKey(), { script: undefined })))) as ProviderError;
    expect(err).toMatchObject({ errorClass: "bad_request", details: { code: "missing_script" } });
    expect(await fakeCalls(fake.url, `did:${name}`)).toHaveLength(0);
  });

  it("has no cancel: D-ID cannot stop a talk", () => {
    expect(adapter().cancel).toBeUndefined();
  });
});

describe("d-id: rejected vs error", () => {
  it("rejected is a refusal (content_policy)", async () => {
    const { a, task: t } = await cases.submitScripted(talks, { mode: "refuse", pollsUntilDone: 1 });
    const done = await a.get!(t.providerTaskId);
    expect(done).toMatchObject({ status: "refused", error: { errorClass: "content_policy" } });
    expect(done.outputs).toBeUndefined();
  });

  it("error is failed with class server", async () => {
    const { a, task: t } = await cases.submitScripted(talks, { mode: "fail", pollsUntilDone: 2 });
    await a.get!(t.providerTaskId);
    const done = await a.get!(t.providerTaskId);
    expect(done).toMatchObject({ status: "failed", error: { code: "InternalServerError", errorClass: "server" } });
  });

  it("an error whose kind names the input (no face) is bad_request", async () => {
    const { a, task: t } = await cases.submitScripted(talks, { mode: "fail", pollsUntilDone: 1, kind: "FaceError", description: "Failed to detect a face" });
    expect(await a.get!(t.providerTaskId)).toMatchObject({ status: "failed", error: { code: "FaceError", message: "Failed to detect a face", errorClass: "bad_request" } });
  });
});

describe("d-id: HTTP errors", () => {
  const errors: [Step, string, number, number | undefined][] = [
    [{ mode: "rate_limit", retryAfter: 30 }, "rate_limit", 429, 30_000],
    [{ mode: "server_error" }, "server", 500, undefined],
    [{ mode: "overloaded", retryAfter: 1 }, "overloaded", 503, 1_000],
    [{ mode: "auth" }, "auth", 401, undefined],
    [{ mode: "server_error", status: 402, message: "not enough credits" }, "auth", 402, undefined],
    [{ mode: "not_found" }, "not_found", 404, undefined],
    [{ mode: "bad_request", status: 400 }, "bad_request", 400, undefined],
  ];
  for (const [step, errorClass, status, retryAfterMs] of errors) {
    it(`submit: ${step.mode} ${status} → ${errorClass}, one request`, async () => {
      await cases.expectSubmitFailure(talks, step, { errorClass, status, retryAfterMs });
    });
  }

  it("get of an unknown talk is not_found", async () => {
    expect(((await rejection(adapter().get!("tlk_doesnotexist"))) as ProviderError).errorClass).toBe("not_found");
  });
});

describe("d-id: outcome unknown", () => {
  it("a submit that timed out is found by user_data across list pages, is the only talk, and completes", async () => {
    const { a, k } = await cases.expectLostSubmit(talks);

    // Newer talks push ours off the first page.
    const other = talkName();
    await adapter().submit!(request(other));
    await adapter().submit!(request(other));
    const before = (await fakeCalls(fake.url, "did:list")).length;
    await scriptFake(fake.url, "did:list", [{ mode: "ok", limit: 1 }, { mode: "ok", limit: 1 }, { mode: "ok", limit: 1 }]);
    const found = await a.findByIdempotencyKey!(k);
    expect(found).not.toBeNull();
    const listCalls = (await fakeCalls(fake.url, "did:list")).slice(before);
    expect(listCalls).toHaveLength(3);
    expect(listCalls[1].path).toMatch(/[?&]token=/);

    const done = await cases.pollTask(a, found!.providerTaskId, (t) => t.status === "succeeded");
    expect(done.outputs).toHaveLength(1);

    const all = (await (await fetch(`${fake.url}/did/talks?limit=100`, { headers: { authorization: `Basic ${API_KEY}` } })).json()) as { talks: { id: string; user_data?: string }[] };
    expect(all.talks.filter((t) => t.user_data === k).map((t) => t.id)).toEqual([found!.providerTaskId]);
  });

  it("finds nothing when the provider never created the talk", async () => {
    await cases.expectNothingFoundAfterLostSubmit(talks);
  });

  it("a failing list is an error, not a confirmed absence", async () => {
    expect(await cases.lookupFailureClass(talks, "did:list", { mode: "overloaded" })).toBe("overloaded");
  });
});

describe("d-id: delete and webhook", () => {
  it("delete erases the talk and its video, and is idempotent", async () => {
    await cases.expectDeleteErases(talks);
  });

  it("POSTs the finished talk (with our user_data) to the webhook, twice under webhook_twice", async () => {
    const bodies: any[] = [];
    const receiver = http.createServer((req, res) => {
      let body = "";
      req.on("data", (c) => (body += c));
      req.on("end", () => {
        bodies.push(JSON.parse(body));
        res.writeHead(200);
        res.end();
      });
    });
    await new Promise<void>((r) => receiver.listen(0, "127.0.0.1", r));
    try {
      const name = talkName();
      await scriptFake(fake.url, `did:${name}`, { mode: "webhook_twice", stepMs: 30 });
      const k = cases.attemptKey();
      const url = `http://127.0.0.1:${(receiver.address() as AddressInfo).port}/functions/v1/webhooks/did`;
      const t = await adapter().submit!({ ...request(name, k), webhookUrl: url });
      expect(((await fakeCalls(fake.url, `did:${name}`))[0].body as any).webhook).toBe(url);
      const deadline = Date.now() + 5_000;
      while (bodies.length < 2 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 20));
      expect(bodies).toHaveLength(2);
      for (const b of bodies) expect(b).toMatchObject({ id: t.providerTaskId, status: "done", user_data: k });
    } finally {
      receiver.closeAllConnections();
      await new Promise<void>((r) => receiver.close(() => r()));
    }
  });
});
