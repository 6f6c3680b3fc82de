// The Anthropic adapter through the real @anthropic-ai/sdk against the fake Messages API:
// system prompts, usage with cache reads and writes, stop reasons, exact input tokens at
// message_start, cut and failed streams (with what was billed), errors and timeouts.
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { randomUUID } from "node:crypto";
import { createAnthropicAdapter } from "../../functions/_shared/ai/providers/anthropic.ts";
import { type ChatRequest, type ProviderConnection, ProviderError } from "../../functions/_shared/ai/types.ts";
import type { FakeServer } from "../../scripts/fakes/lib/fake-server.ts";
import { drain, fakeCalls, rejection, scriptFake, startFakeAi } from "../helpers/fake-ai.ts";

let fake: FakeServer;
beforeAll(async () => {
  fake = await startFakeAi();
});
afterAll(() => fake.close());

const conn = (over: Partial<ProviderConnection> = {}): ProviderConnection => ({
  id: "anthropic",
  kind: "anthropic",
  baseUrl: `${fake.url}/anthropic`,
  apiKey: "sk-ant-test",
  timeoutMs: 5_000,
  ...over,
});
const uniqueModel = (tag: string) => `claude-test-${tag}-${randomUUID().slice(0, 8)}`;
const key = (model: string) => `anthropic:${model}`;
const chatReq = (model: string, extra: Partial<ChatRequest> = {}): ChatRequest => ({
  model,
  messages: [
    { role: "system", content: "You are terse." },
    { role: "system", content: "Answer in English." },
    { role: "user", content: "Say hello." },
    { role: "assistant", content: "Hello." },
    { role: "user", content: "Again." },
  ],
  maxTokens: 100,
  ...extra,
});
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

async function providerError(p: Promise<unknown>): Promise<ProviderError> {
  const err = await rejection(p);
  expect(err).toBeInstanceOf(ProviderError);
  return err as ProviderError;
}

describe("chat", () => {
  it("sends system apart, maps text and usage (cache reads and writes count as input)", async () => {
    const model = uniqueModel("chat");
    await scriptFake(fake.url, key(model), {
      mode: "ok",
      text: "Hi again.",
      requestId: "req_011CTEST",
      usage: { input_tokens: 10, cache_read_input_tokens: 40, cache_creation_input_tokens: 5, output_tokens: 20, output_tokens_details: { thinking_tokens: 7 } },
    });
    const out = await createAnthropicAdapter(conn()).chat!(chatReq(model, { temperature: 0.5 }));
    expect(out).toEqual({
      text: "Hi again.",
      finishReason: "stop",
      usage: { inputTokens: 55, outputTokens: 20, cachedInputTokens: 40, cacheWriteInputTokens: 5, reasoningTokens: 7 },
      providerRequestId: "req_011CTEST",
      providerModel: model,
    });
    const [call] = await fakeCalls(fake.url, key(model));
    expect(call.path).toBe("/anthropic/v1/messages");
    // SDK 1.x sends the key as a Bearer token; older ones as x-api-key. The fake takes either.
    expect(call.headers["x-api-key"] ?? call.headers.authorization?.replace(/^Bearer /, "")).toBe("sk-ant-test");
    expect(call.headers["anthropic-version"]).toMatch(/^\d{4}-\d{2}-\d{2}$/);
    expect(call.body).toEqual({
      model,
      max_tokens: 100,
      system: "You are terse.\n\nAnswer in English.",
      messages: [
        { role: "user", content: "Say hello." },
        { role: "assistant", content: "Hello." },
        { role: "user", content: "Again." },
      ],
      temperature: 0.5,
    });
  });

  it("asks for JSON through the system prompt", async () => {
    const model = uniqueModel("json");
    await createAnthropicAdapter(conn()).chat!(chatReq(model, { responseFormat: "json" }));
    const [call] = await fakeCalls(fake.url, key(model));
    expect((call.body as { system: string }).system).toMatch(/^You are terse\.\n\nAnswer in English\.\n\n.*JSON object/);
  });

  it.each([
    ["end_turn", "stop"],
    ["stop_sequence", "stop"],
    ["max_tokens", "length"],
    ["model_context_window_exceeded", "length"],
    ["tool_use", "tool_calls"],
  ] as const)("maps stop_reason %s → %s", async (wire, ours) => {
    const model = uniqueModel("stop");
    await scriptFake(fake.url, key(model), { mode: "ok", stopReason: wire });
    expect((await createAnthropicAdapter(conn()).chat!(chatReq(model))).finishReason).toBe(ours);
  });

  it("maps a refusal to finish reason content_filter, with its usage", async () => {
    const model = uniqueModel("refusal");
    await scriptFake(fake.url, key(model), { mode: "content_policy", usage: { input_tokens: 12, output_tokens: 3 } });
    const out = await createAnthropicAdapter(conn()).chat!(chatReq(model));
    expect(out.finishReason).toBe("content_filter");
    expect(out.text).toBe("");
    expect(out.usage).toMatchObject({ inputTokens: 12, outputTokens: 3 });
  });

  it("keeps explicit zero usage as zeros", async () => {
    const model = uniqueModel("zero");
    await scriptFake(fake.url, key(model), { mode: "zero_usage" });
    const out = await createAnthropicAdapter(conn()).chat!(chatReq(model));
    expect(out.usage).toEqual({ inputTokens: 0, outputTokens: 0, cachedInputTokens: 0, cacheWriteInputTokens: 0 });
  });
});

describe("errors", () => {
  const cases: [string, Record<string, unknown>, string, number, string][] = [
    ["rate_limit", {}, "rate_limit", 429, "rate_limit_error"],
    ["overloaded", {}, "overloaded", 529, "overloaded_error"],
    ["server_error", {}, "server", 500, "api_error"],
    ["context_window", {}, "context_window", 400, "invalid_request_error"],
    ["auth", {}, "auth", 401, "authentication_error"],
    ["not_found", {}, "not_found", 404, "not_found_error"],
    ["bad_request", {}, "bad_request", 400, "invalid_request_error"],
    ["error", { status: 403, type: "permission_error" }, "auth", 403, "permission_error"],
    ["error", { status: 413, type: "request_too_large" }, "bad_request", 413, "request_too_large"],
    ["error", { status: 504, type: "timeout_error" }, "timeout", 504, "timeout_error"],
    ["error", { status: 429, type: "rate_limit_error", errorCode: "enforced_spend_limit_reached" }, "auth", 429, "enforced_spend_limit_reached"],
  ];

  it.each(cases)("%s %j → %s, in exactly one HTTP call", async (mode, opts, cls, status, code) => {
    const model = uniqueModel("err");
    await scriptFake(fake.url, key(model), { mode, requestId: "req_011CERR", ...opts });
    const err = await providerError(createAnthropicAdapter(conn()).chat!(chatReq(model)));
    expect(err.errorClass).toBe(cls);
    expect(err.details.status).toBe(status);
    expect(err.details.code).toBe(code);
    expect(err.details.providerRequestId).toBe("req_011CERR");
    // maxRetries 0: the SDK retries 408/409/429/5xx (and 529) twice by default.
    expect(await fakeCalls(fake.url, key(model))).toHaveLength(1);
  });

  it("keeps the provider's message for context overflows", async () => {
    const model = uniqueModel("ctx");
    await scriptFake(fake.url, key(model), { mode: "context_window" });
    const err = await providerError(createAnthropicAdapter(conn()).chat!(chatReq(model)));
    expect(err.message).toBe("prompt is too long: 210266 tokens > 200000 maximum");
  });

  it.each([
    [{ retryAfter: 12 }, 12_000],
    [{ retryAfter: 90 }, 90_000],
    [{ retryAfter: 5, retryAfterMs: 250 }, 250],
    [{ retryAfter: null }, undefined],
  ])("reads Retry-After %j as %s ms", async (opts, ms) => {
    const model = uniqueModel("retry");
    await scriptFake(fake.url, key(model), { mode: "rate_limit", ...opts });
    const err = await providerError(createAnthropicAdapter(conn()).chat!(chatReq(model)));
    expect(err.details.retryAfterMs).toBe(ms);
  });

  it("times out as ProviderError(timeout) after one call and no retry", async () => {
    const model = uniqueModel("timeout");
    await scriptFake(fake.url, key(model), { mode: "timeout" });
    const err = await providerError(createAnthropicAdapter(conn({ timeoutMs: 300 })).chat!(chatReq(model)));
    expect(err.errorClass).toBe("timeout");
    await sleep(400);
    expect(await fakeCalls(fake.url, key(model))).toHaveLength(1);
  });

  it("the fake wants an API key and an anthropic-version header", async () => {
    const body = JSON.stringify({ model: uniqueModel("raw"), max_tokens: 5, messages: [{ role: "user", content: "x" }] });
    const noKey = await fetch(`${fake.url}/anthropic/v1/messages`, { method: "POST", headers: { "anthropic-version": "2023-06-01" }, body });
    expect(noKey.status).toBe(401);
    expect((await noKey.json()).error.type).toBe("authentication_error");
    const noVersion = await fetch(`${fake.url}/anthropic/v1/messages`, { method: "POST", headers: { "x-api-key": "k" }, body });
    expect(noVersion.status).toBe(400);
  });
});

describe("streams", () => {
  it("start carries the exact input tokens; usage is cumulative; done at message_stop", async () => {
    const model = uniqueModel("stream");
    const text = "one two three four five six";
    await scriptFake(fake.url, key(model), {
      mode: "ok",
      text,
      chunks: 3,
      requestId: "req_011CSTREAM",
      usage: { input_tokens: 30, cache_read_input_tokens: 100, cache_creation_input_tokens: 0, output_tokens: 9 },
    });
    const { events, error } = await drain(createAnthropicAdapter(conn()).chatStream!(chatReq(model)));
    expect(error).toBeUndefined();
    expect(events[0]).toEqual({ type: "start", providerRequestId: "req_011CSTREAM", inputTokens: 130, providerModel: model });
    const deltas = events.filter((e) => e.type === "delta");
    expect(deltas).toHaveLength(3);
    expect(deltas.map((d) => (d as { text: string }).text).join("")).toBe(text);
    const usage = { inputTokens: 130, outputTokens: 9, cachedInputTokens: 100, cacheWriteInputTokens: 0 };
    expect(events.filter((e) => e.type === "usage")).toEqual([{ type: "usage", usage }]);
    expect(events.at(-1)).toEqual({ type: "done", finishReason: "stop", usage });
    const [call] = await fakeCalls(fake.url, key(model));
    expect((call.body as { stream: boolean }).stream).toBe(true);
  });

  it("a streamed refusal ends with done(content_filter)", async () => {
    const model = uniqueModel("srefusal");
    await scriptFake(fake.url, key(model), { mode: "content_policy", text: "I can't" });
    const { events } = await drain(createAnthropicAdapter(conn()).chatStream!(chatReq(model)));
    expect(events.at(-1)).toMatchObject({ type: "done", finishReason: "content_filter" });
  });

  it("keeps explicit zeros in a stream", async () => {
    const model = uniqueModel("szero");
    await scriptFake(fake.url, key(model), { mode: "zero_usage" });
    const { events } = await drain(createAnthropicAdapter(conn()).chatStream!(chatReq(model)));
    expect(events[0]).toMatchObject({ type: "start", inputTokens: 0 });
    expect(events.at(-1)).toMatchObject({ type: "done", usage: { inputTokens: 0, outputTokens: 0 } });
  });

  it.each([["destroy"], ["end"]])("a cut stream (%s) ends after its deltas without done; start kept the input tokens", async (cutMode) => {
    const model = uniqueModel("cut");
    const text = "alpha beta gamma delta epsilon zeta";
    await scriptFake(fake.url, key(model), { mode: "stream_cut", chunks: 2, text, cutMode, usage: { input_tokens: 77 } });
    const { events, error } = await drain(createAnthropicAdapter(conn()).chatStream!(chatReq(model)));
    expect(error).toBeUndefined();
    expect(events[0]).toMatchObject({ type: "start", inputTokens: 77 });
    const streamed = events.filter((e) => e.type === "delta").map((e) => (e as { text: string }).text).join("");
    expect(events.filter((e) => e.type === "delta")).toHaveLength(2);
    expect(text.startsWith(streamed) && streamed.length > 0 && streamed.length < text.length).toBe(true);
    expect(events.some((e) => e.type === "done" || e.type === "usage")).toBe(false);
  });

  it("an error event mid-stream throws with what was billed (input from message_start)", async () => {
    const model = uniqueModel("serr");
    await scriptFake(fake.url, key(model), { mode: "stream_error", chunks: 1, text: "first second third", usage: { input_tokens: 42 }, requestId: "req_011CSERR" });
    const { events, error } = await drain(createAnthropicAdapter(conn()).chatStream!(chatReq(model)));
    expect(events.filter((e) => e.type === "delta")).toHaveLength(1);
    expect(error).toBeInstanceOf(ProviderError);
    const e = error as ProviderError;
    expect(e.errorClass).toBe("overloaded");
    expect(e.details.code).toBe("overloaded_error");
    expect(e.details.status).toBeUndefined();
    expect(e.details.providerRequestId).toBe("req_011CSERR");
    expect(e.details.billedUsage).toEqual({ inputTokens: 42, outputTokens: 1, cachedInputTokens: 0, cacheWriteInputTokens: 0 });
  });

  it.each([
    ["api_error", "server"],
    ["rate_limit_error", "rate_limit"],
    ["invalid_request_error", "bad_request"],
  ])("classifies a mid-stream %s as %s", async (errorType, cls) => {
    const model = uniqueModel("serr2");
    await scriptFake(fake.url, key(model), { mode: "stream_error", chunks: 1, errorType });
    const { error } = await drain(createAnthropicAdapter(conn()).chatStream!(chatReq(model)));
    expect((error as ProviderError).errorClass).toBe(cls);
  });

  it("a stream request that gets no answer times out once, without retry", async () => {
    const model = uniqueModel("stimeout");
    await scriptFake(fake.url, key(model), { mode: "timeout" });
    const { events, error } = await drain(createAnthropicAdapter(conn({ timeoutMs: 300 })).chatStream!(chatReq(model)));
    expect(events).toEqual([]);
    expect((error as ProviderError).errorClass).toBe("timeout");
    await sleep(400);
    expect(await fakeCalls(fake.url, key(model))).toHaveLength(1);
  });

  it("a stream that stalls after message_start times out with the input billed", async () => {
    const model = uniqueModel("stall");
    await scriptFake(fake.url, key(model), { mode: "ok", chunkDelayMs: 2_000, usage: { input_tokens: 15 } });
    const { events, error } = await drain(createAnthropicAdapter(conn({ timeoutMs: 300 })).chatStream!(chatReq(model)));
    expect(events.map((e) => e.type)).toEqual(["start"]);
    expect(error).toMatchObject({ errorClass: "timeout", details: { billedUsage: { inputTokens: 15 } } });
  });

  it("maps an error status on a stream request", async () => {
    const model = uniqueModel("s529");
    await scriptFake(fake.url, key(model), { mode: "overloaded" });
    const { events, error } = await drain(createAnthropicAdapter(conn()).chatStream!(chatReq(model)));
    expect(events).toEqual([]);
    expect(error).toMatchObject({ errorClass: "overloaded", details: { status: 529 } });
    expect(await fakeCalls(fake.url, key(model))).toHaveLength(1);
  });
});
