// The Replicate adapter (official `replicate` SDK) against the fake (scripts/fakes/replicate.ts):
// the prediction lifecycle, input mapping, refusals vs failures, every HTTP error class with no
// retry inside the SDK, the "outcome unknown" lookup by idempotency key, and cancel.
import http from "node:http";
import type { AddressInfo } from "node:net";
import { describe, expect, it } from "vitest";
import { createReplicateAdapter, replicateInput, REPLICATE_ATTEMPT_PARAM } from "../../functions/_shared/ai/providers/replicate.ts";
import { type AsyncSubmitRequest, type AsyncTask, type ProviderAdapter, type ProviderConnection, ProviderError } from "../../functions/_shared/ai/types.ts";
import * as cases from "../helpers/adapter-cases.ts";
import { fakeCalls, rejection, scriptFake, useFakeAi } from "../helpers/fake-ai.ts";

const fake = useFakeAi();
let n = 0;
const model = (name = "img") => `plinth-test/${name}-${++n}-${Math.random().toString(36).slice(2, 8)}`;
const HOOK = "https://hooks.plinth.test/functions/v1/webhooks/replicate";

function adapter(over: Partial<ProviderConnection> = {}): ProviderAdapter {
  return createReplicateAdapter(cases.fakeConnection(fake, "replicate", "/replicate/v1", "r8_test_token", { timeoutMs: 3_000, ...over }));
}

const request = (m: string, k = cases.attemptKey(), input: Record<string, unknown> = { prompt: "x" }): AsyncSubmitRequest => ({ model: m, input, idempotencyKey: k, webhookUrl: HOOK });
const predictions: cases.TaskTarget = { fake, adapter, name: model, key: (m) => `replicate:${m}`, request };

const terminal = (t: AsyncTask) => ["succeeded", "failed", "refused", "canceled"].includes(t.status);

describe("replicate: lifecycle", () => {
  it("submits a prediction, polls it through processing and reads outputs, progress and compute seconds", async () => {
    const m = model();
    await scriptFake(fake.url, `replicate:${m}`, { mode: "ok", clock: "poll", progress: [0.25, 0.75], predictTime: 2.25 });
    const a = adapter();
    const k = cases.attemptKey();
    const submitted = await a.submit!({
      model: m,
      input: { prompt: "a golden retriever", image_url: "https://files.plinth.test/face.png", duration_seconds: 5, ratio: "16:9", seed: 7 },
      idempotencyKey: k,
      webhookUrl: HOOK,
    });
    expect(submitted.status).toBe("queued");
    expect(submitted.providerTaskId).toMatch(/^[a-z2-7]{26}$/);

    const [create] = await fakeCalls(fake.url, `replicate:${m}`);
    expect(create.method).toBe("POST");
    expect(create.path).toBe(`/replicate/v1/models/${m}/predictions`);
    expect(create.headers.authorization).toBe("Bearer r8_test_token");
    const body = create.body as Record<string, any>;
    expect(body.input).toEqual({ prompt: "a golden retriever", image: "https://files.plinth.test/face.png", duration: 5, aspect_ratio: "16:9", seed: 7 });
    expect(body.webhook_events_filter).toEqual(["start", "output", "completed"]);
    const hook = new URL(body.webhook);
    expect(`${hook.origin}${hook.pathname}`).toBe(HOOK);
    expect(hook.searchParams.get(REPLICATE_ATTEMPT_PARAM)).toBe(k);

    const first = await a.get!(submitted.providerTaskId);
    expect(first).toMatchObject({ status: "running", progress: 0.25 });
    const second = await a.get!(submitted.providerTaskId);
    expect(second).toMatchObject({ status: "running", progress: 0.75 });
    const done = await a.get!(submitted.providerTaskId);
    expect(done.status).toBe("succeeded");
    expect(done.computeSeconds).toBe(2.25);
    expect(done.durationSeconds).toBe(5);
    expect(done.outputs).toHaveLength(1);
    expect(done.outputs![0].mimeType).toBe("image/png");

    const file = await fetch(done.outputs![0].url!);
    expect(file.headers.get("content-type")).toBe("image/png");
    const bytes = new Uint8Array(await file.arrayBuffer());
    expect([...bytes.slice(0, 8)]).toEqual([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a]);
  });

  it("sends a versioned ref to POST /v1/predictions and reads a single video URL", async () => {
    const m = `${model("vid")}:5c7d5dc6dd8bf75c1acaa8565735e7986bc5b66206b55cca93cb72c9bf15ccaa`;
    await scriptFake(fake.url, `replicate:${m}`, { mode: "ok", clock: "poll", pollsUntilDone: 1, outputType: "mp4" });
    const a = adapter();
    const t = await a.submit!(request(m, cases.attemptKey(), { prompt: "waves" }));
    const [create] = await fakeCalls(fake.url, `replicate:${m}`);
    expect(create.path).toBe("/replicate/v1/predictions");
    expect((create.body as any).version).toBe(m);

    const done = await a.get!(t.providerTaskId);
    expect(done.status).toBe("succeeded");
    expect(done.outputs).toEqual([{ url: expect.stringMatching(/\/replicate\/files\/.+\.mp4$/), mimeType: "video/mp4" }]);
    expect(done.durationSeconds).toBeUndefined();
    const bytes = new Uint8Array(await (await fetch(done.outputs![0].url!)).arrayBuffer());
    expect(new TextDecoder().decode(bytes.slice(4, 8))).toBe("ftyp");
  });

  it("maps the normalized input without overriding a model's own keys", () => {
    expect(replicateInput({ image_url: "u", image: "mine", script: { text: "hi" }, audio_url: "a" })).toEqual({ image: "mine", audio: "a", text: "hi" });
  });

  it("refuses to submit without a webhook URL (it carries the idempotency key) and sends nothing", async () => {
    const m = model();
    const err = await rejection(adapter().submit!({ model: m, input: { prompt: "x" }, idempotencyKey: cases.attemptKey() }));
    expect(err).toBeInstanceOf(ProviderError);
    expect((err as ProviderError).errorClass).toBe("bad_request");
    expect((err as ProviderError).details.code).toBe("webhook_required");
    expect(await fakeCalls(fake.url, `replicate:${m}`)).toHaveLength(0);
  });

  it("rejects a malformed model ref before any call", async () => {
    const err = (await rejection(adapter().submit!({ model: "no-owner", input: {}, idempotencyKey: cases.attemptKey(), webhookUrl: HOOK }))) as ProviderError;
    expect(err.errorClass).toBe("bad_request");
  });
});

describe("replicate: refused vs failed", () => {
  it("an NSFW failure is a refusal (content_policy)", async () => {
    const { a, task: t } = await cases.submitScripted(predictions, { mode: "refuse", clock: "poll", pollsUntilDone: 1 });
    const done = await a.get!(t.providerTaskId);
    expect(done.status).toBe("refused");
    expect(done.error).toMatchObject({ errorClass: "content_policy", message: expect.stringContaining("NSFW") });
    expect(done.outputs).toBeUndefined();
  });

  it("a sensitive-content code (E005) is a refusal too", async () => {
    const m = model();
    await scriptFake(fake.url, `replicate:${m}`, {
      mode: "fail",
      clock: "poll",
      pollsUntilDone: 1,
      error: "The input or output was flagged as sensitive. Please try again with different inputs. (E005)",
    });
    const a = adapter();
    const t = await a.submit!(request(m));
    const done = await a.get!(t.providerTaskId);
    expect(done).toMatchObject({ status: "refused", error: { code: "E005", errorClass: "content_policy" } });
  });

  it("any other failure is failed with class server, and keeps its compute seconds", async () => {
    const { a, task: t } = await cases.submitScripted(predictions, { mode: "fail", clock: "poll", pollsUntilDone: 2, predictTime: 0.75 });
    expect((await a.get!(t.providerTaskId)).status).toBe("running");
    const done = await a.get!(t.providerTaskId);
    expect(done.status).toBe("failed");
    expect(done.error).toMatchObject({ errorClass: "server", message: expect.stringContaining("Prediction interrupted") });
    expect(done.computeSeconds).toBe(0.75);
  });
});

describe("replicate: HTTP errors are classified and never retried inside the SDK", () => {
  const errors: [string, Record<string, unknown>, string, number][] = [
    ["rate_limit", { retryAfter: 7 }, "rate_limit", 429],
    ["server_error", {}, "server", 500],
    ["overloaded", { retryAfter: 3 }, "overloaded", 503],
    ["auth", {}, "auth", 401],
    ["not_found", {}, "not_found", 404],
    ["bad_request", {}, "bad_request", 422],
  ];
  for (const [mode, opts, errorClass, status] of errors) {
    // One request: the SDK retries a 429 POST up to 5 times on its own; the adapter must not let it.
    it(`submit: ${mode} → ${errorClass} after exactly one request`, async () => {
      const retryAfterMs = opts.retryAfter === undefined ? undefined : Number(opts.retryAfter) * 1000;
      await cases.expectSubmitFailure(predictions, { mode, ...opts }, { errorClass, status, retryAfterMs });
    });
  }

  it("a 422 that reports a safety refusal is content_policy", async () => {
    const m = model();
    await scriptFake(fake.url, `replicate:${m}`, { mode: "bad_request", message: "Input flagged by the safety checker" });
    const err = (await rejection(adapter().submit!(request(m)))) as ProviderError;
    expect(err.errorClass).toBe("content_policy");
  });

  it("get: a 500 and a 429 are one request each (the SDK retries GETs on both)", async () => {
    const { a, name: m, task: t } = await cases.submitScripted(predictions, { mode: "ok", clock: "poll" });
    await scriptFake(fake.url, `replicate:${m}:task`, [{ mode: "server_error" }, { mode: "rate_limit", retryAfter: 1 }]);
    const e1 = (await rejection(a.get!(t.providerTaskId))) as ProviderError;
    expect(e1.errorClass).toBe("server");
    expect(await fakeCalls(fake.url, `replicate:${m}:task`)).toHaveLength(1);
    const e2 = (await rejection(a.get!(t.providerTaskId))) as ProviderError;
    expect(e2).toMatchObject({ errorClass: "rate_limit", details: { retryAfterMs: 1000 } });
    expect(await fakeCalls(fake.url, `replicate:${m}:task`)).toHaveLength(2);
    // Nothing stuck: the next poll goes out and succeeds.
    expect((await a.get!(t.providerTaskId)).status).toBe("running");
  });

  it("get of an unknown prediction is not_found", async () => {
    const err = (await rejection(adapter().get!("zzzzzzzzzzzzzzzzzzzzzzzzzz"))) as ProviderError;
    expect(err.errorClass).toBe("not_found");
  });

  it("a connection failure is one attempt (the SDK would resend a POST six times) and reads as timeout", async () => {
    const closed = http.createServer();
    await new Promise<void>((r) => closed.listen(0, "127.0.0.1", r));
    const port = (closed.address() as AddressInfo).port;
    await new Promise<void>((r) => closed.close(() => r()));
    let attempts = 0;
    const counting: typeof fetch = (input, init) => {
      attempts++;
      return fetch(input, init);
    };
    const err = (await rejection(
      adapter({ baseUrl: `http://127.0.0.1:${port}/v1`, fetch: counting }).submit!({ model: model(), input: {}, idempotencyKey: cases.attemptKey(), webhookUrl: HOOK }),
    )) as ProviderError;
    expect(err).toMatchObject({ errorClass: "timeout", details: { code: "network_error" } });
    expect(attempts).toBe(1);
  });

  it("a caller's abort ends the call as timeout (aborted)", async () => {
    const m = model();
    await scriptFake(fake.url, `replicate:${m}`, { mode: "timeout" });
    const ctl = new AbortController();
    setTimeout(() => ctl.abort(), 100);
    const err = (await rejection(adapter({ timeoutMs: 5_000 }).submit!({ model: m, input: {}, idempotencyKey: cases.attemptKey(), webhookUrl: HOOK }, ctl.signal))) as ProviderError;
    expect(err).toMatchObject({ errorClass: "timeout", details: { code: "aborted" } });
    expect(await fakeCalls(fake.url, `replicate:${m}`)).toHaveLength(1);
  });
});

describe("replicate: outcome unknown", () => {
  it("a submit that timed out is found by its key, is the only prediction made, and completes", async () => {
    // One POST: the SDK's retry loop swallows the timeout and would otherwise send it again.
    const { a, name: m, k } = await cases.expectLostSubmit(predictions, { timeoutMs: 300, step: { stepMs: 60 }, input: { prompt: "late" } });

    const found = await a.findByIdempotencyKey!(k);
    expect(found).not.toBeNull();
    const done = await cases.pollTask(a, found!.providerTaskId, terminal, { everyMs: 40 });
    expect(done.status).toBe("succeeded");
    expect(done.outputs).toHaveLength(1);

    const list = (await (await fetch(`${fake.url}/replicate/v1/predictions`, { headers: { authorization: "Bearer r8_test_token" } })).json()) as {
      results: { id: string; model: string }[];
    };
    expect(list.results.filter((p) => p.model === m).map((p) => p.id)).toEqual([found!.providerTaskId]);
  });

  it("finds nothing when the provider never created the prediction", async () => {
    await cases.expectNothingFoundAfterLostSubmit(predictions);
  });

  it("pages through the list (newest first) to find an older prediction", async () => {
    const a = adapter();
    const keys = [cases.attemptKey(), cases.attemptKey(), cases.attemptKey()];
    const ids: string[] = [];
    for (const k of keys) {
      const m = model();
      await scriptFake(fake.url, `replicate:${m}`, { mode: "ok", clock: "poll" });
      ids.push((await a.submit!({ model: m, input: { prompt: k }, idempotencyKey: k, webhookUrl: HOOK })).providerTaskId);
    }
    const before = (await fakeCalls(fake.url, "replicate:list")).length;
    await scriptFake(fake.url, "replicate:list", { mode: "ok", pageSize: 1 });
    const found = await a.findByIdempotencyKey!(keys[0]);
    expect(found?.providerTaskId).toBe(ids[0]);
    expect((await fakeCalls(fake.url, "replicate:list")).length - before).toBe(3);
  });

  it("a failing list is an error, not a confirmed absence", async () => {
    expect(await cases.lookupFailureClass(predictions, "replicate:list", { mode: "server_error" })).toBe("server");
  });
});

describe("replicate: cancel", () => {
  it("cancels a running prediction", async () => {
    const { a, name: m, task: t } = await cases.submitScripted(predictions, { mode: "ok", clock: "poll", pollsUntilDone: 5 });
    expect((await a.get!(t.providerTaskId)).status).toBe("running");
    await a.cancel!(t.providerTaskId);
    const calls = await fakeCalls(fake.url, `replicate:${m}:task`);
    expect(calls.map((c) => `${c.method} ${c.path}`)).toContain(`POST /replicate/v1/predictions/${t.providerTaskId}/cancel`);
    const after = await a.get!(t.providerTaskId);
    expect(after.status).toBe("canceled");
    expect(after.outputs).toBeUndefined();
  });

  it("has no delete: Replicate removes API predictions' data itself after an hour", () => {
    expect(adapter().delete).toBeUndefined();
  });
});
