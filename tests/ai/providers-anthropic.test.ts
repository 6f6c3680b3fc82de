// The Anthropic adapter through the real @anthropic-ai/sdk against the fake Messages API:
// system prompts, usage with cache reads and writes, stop reasons, exact input tokens at
// message_start, cut and failed streams (with what was billed), errors and timeouts.
import { describe, expect, it } from "vitest";
import { randomUUID } from "node:crypto";
import { createAnthropicAdapter } from "../../functions/_shared/ai/providers/anthropic.ts";
import type { ChatRequest, ProviderConnection } from "../../functions/_shared/ai/types.ts";
import * as cases from "../helpers/adapter-cases.ts";
import { fakeCalls, providerError, scriptFake, useFakeAi } from "../helpers/fake-ai.ts";

const fake = useFakeAi();
const conn = (over: Partial<ProviderConnection> = {}) => cases.fakeConnection(fake, "anthropic", "/anthropic", "sk-ant-test", over);
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
const chat = cases.chatTarget(fake, uniqueModel, key, (over) => createAnthropicAdapter(conn(over)), (model) => chatReq(model));

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
    expect((await cases.scriptedCall(chat, { mode: "ok", stopReason: wire })).finishReason).toBe(ours);
  });

  it("maps a refusal to finish reason content_filter, with its usage", async () => {
    const out = await cases.scriptedCall(chat, { mode: "content_policy", usage: { input_tokens: 12, output_tokens: 3 } });
    expect(out.finishReason).toBe("content_filter");
    expect(out.text).toBe("");
    expect(out.usage).toMatchObject({ inputTokens: 12, outputTokens: 3 });
  });

  it("keeps explicit zero usage as zeros", async () => {
    const out = await cases.scriptedCall(chat, { mode: "zero_usage" });
    expect(out.usage).toEqual({ inputTokens: 0, outputTokens: 0, cachedInputTokens: 0, cacheWriteInputTokens: 0 });
  });
});

describe("errors", () => {
  const errors: [string, Record<string, unknown>, string, number, string][] = [
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

  // maxRetries 0: the SDK retries 408/409/429/5xx (and 529) twice by default.
  it.each(errors)("%s %j → %s, in exactly one HTTP call", async (mode, opts, errorClass, status, code) => {
    await cases.expectFailureInOneCall(chat, { mode, requestId: "req_011CERR", ...opts }, { errorClass, status, code, providerRequestId: "req_011CERR" });
  });

  it("keeps the provider's message for context overflows", async () => {
    const err = await providerError(cases.scriptedCall(chat, { mode: "context_window" }));
    expect(err.message).toBe("prompt is too long: 210266 tokens > 200000 maximum");
  });

  it.each([
    [{ retryAfter: 12 }, 12_000],
    [{ retryAfter: 90 }, 90_000],
    [{ retryAfter: 5, retryAfterMs: 250 }, 250],
    [{ retryAfter: null }, undefined],
  ])("reads Retry-After %j as %s ms", async (opts, ms) => {
    await cases.expectRetryAfter(chat, opts, ms);
  });

  it("times out as ProviderError(timeout) after one call and no retry", async () => {
    await cases.expectTimeoutWithoutRetry(chat);
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
    const call = await cases.expectCompleteStream(
      chat,
      { requestId: "req_011CSTREAM", usage: { input_tokens: 30, cache_read_input_tokens: 100, cache_creation_input_tokens: 0, output_tokens: 9 } },
      { start: { providerRequestId: "req_011CSTREAM", inputTokens: 130 }, usage: { inputTokens: 130, outputTokens: 9, cachedInputTokens: 100, cacheWriteInputTokens: 0 } },
    );
    expect((call.body as { stream: boolean }).stream).toBe(true);
  });

  it("a streamed refusal ends with done(content_filter)", async () => {
    const { events } = await cases.scriptedStream(chat, { mode: "content_policy", text: "I can't" });
    expect(events.at(-1)).toMatchObject({ type: "done", finishReason: "content_filter" });
  });

  it("keeps explicit zeros in a stream", async () => {
    const { events } = await cases.scriptedStream(chat, { mode: "zero_usage" });
    expect(events[0]).toMatchObject({ type: "start", inputTokens: 0 });
    expect(events.at(-1)).toMatchObject({ type: "done", usage: { inputTokens: 0, outputTokens: 0 } });
  });

  it.each([["destroy"], ["end"]])("a cut stream (%s) ends after its deltas without done; start kept the input tokens", async (cutMode) => {
    const events = await cases.expectCutStream(chat, cutMode, { usage: { input_tokens: 77 } });
    expect(events[0]).toMatchObject({ type: "start", inputTokens: 77 });
  });

  it("an error event mid-stream throws with what was billed (input from message_start)", async () => {
    const e = await cases.expectMidStreamError(chat, { text: "first second third", usage: { input_tokens: 42 }, requestId: "req_011CSERR" });
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
    expect((await cases.expectMidStreamError(chat, { errorType })).errorClass).toBe(cls);
  });

  it("a stream request that gets no answer times out once, without retry", async () => {
    await cases.expectStreamTimeoutWithoutRetry(chat);
  });

  it("a stream that stalls after message_start times out with the input billed", async () => {
    const error = await cases.expectStalledStreamTimeout(chat, { usage: { input_tokens: 15 } });
    expect(error).toMatchObject({ errorClass: "timeout", details: { billedUsage: { inputTokens: 15 } } });
  });

  it("maps an error status on a stream request", async () => {
    await cases.expectStreamRefused(chat, { mode: "overloaded" }, { errorClass: "overloaded", details: { status: 529 } });
  });
});
