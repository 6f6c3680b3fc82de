// The OpenAI adapter through the real `openai` SDK against the fake OpenAI API: results and
// usage exactly as the wire says, every error class, Retry-After, cut and failed streams,
// timeouts without SDK-internal retries, base64 embeddings.
import { describe, expect, it } from "vitest";
import { randomUUID } from "node:crypto";
import { createOpenAIAdapter, decodeEmbedding } from "../../functions/_shared/ai/providers/openai.ts";
import { type ProviderConnection, ProviderError } from "../../functions/_shared/ai/types.ts";
import * as cases from "../helpers/adapter-cases.ts";
import { fakeCalls, providerError, scriptFake, useFakeAi } from "../helpers/fake-ai.ts";

const fake = useFakeAi();
const conn = (over: Partial<ProviderConnection> = {}) => cases.fakeConnection(fake, "openai", "/openai/v1", "sk-test-key", over);
const uniqueModel = (tag: string) => `gpt-test-${tag}-${randomUUID().slice(0, 8)}`;
const key = (model: string) => `openai:${model}`;
const chatReq = (model: string, extra: Record<string, unknown> = {}) => ({
  model,
  messages: [
    { role: "system" as const, content: "You are terse." },
    { role: "user" as const, content: "Say hello to the fake." },
  ],
  maxTokens: 64,
  ...extra,
});
const chat = cases.chatTarget(fake, uniqueModel, key, (over) => createOpenAIAdapter(conn(over)), (model) => chatReq(model));

describe("chat", () => {
  it("maps text, finish reason, exact usage (cached and reasoning) and the request id", async () => {
    const model = uniqueModel("chat");
    await scriptFake(fake.url, key(model), {
      mode: "ok",
      text: "Hello, fake!",
      requestId: "req_chat_1",
      usage: { prompt_tokens: 120, completion_tokens: 30, prompt_tokens_details: { cached_tokens: 100, cache_write_tokens: 4 }, completion_tokens_details: { reasoning_tokens: 12 } },
    });
    const out = await createOpenAIAdapter(conn()).chat!(chatReq(model, { temperature: 0.2, responseFormat: "json" }));
    expect(out).toEqual({
      text: "Hello, fake!",
      finishReason: "stop",
      usage: { inputTokens: 120, outputTokens: 30, cachedInputTokens: 100, cacheWriteInputTokens: 4, reasoningTokens: 12 },
      providerRequestId: "req_chat_1",
      providerModel: model,
    });
    const [call] = await fakeCalls(fake.url, key(model));
    const body = call.body as Record<string, unknown>;
    expect(call.headers.authorization).toBe("Bearer sk-test-key");
    expect(body.messages).toEqual([
      { role: "system", content: "You are terse." },
      { role: "user", content: "Say hello to the fake." },
    ]);
    // A compatible base URL gets max_tokens, which every OpenAI-style server knows.
    expect(body.max_tokens).toBe(64);
    expect(body.max_completion_tokens).toBeUndefined();
    expect(body.temperature).toBe(0.2);
    expect(body.response_format).toEqual({ type: "json_object" });
    expect(body.stream).toBe(false);
  });

  it("sends max_completion_tokens to api.openai.com (reasoning models reject max_tokens)", async () => {
    const model = uniqueModel("official");
    // The real host, with fetch rerouted to the fake.
    const reroute: typeof fetch = (input, init) =>
      fetch(String(input instanceof Request ? input.url : input).replace("https://api.openai.com/v1", `${fake.url}/openai/v1`), init);
    const out = await createOpenAIAdapter(conn({ baseUrl: "https://api.openai.com/v1", fetch: reroute })).chat!(chatReq(model));
    expect(out.text).toBe(`This is a fake reply from ${model}.`);
    const [call] = await fakeCalls(fake.url, key(model));
    expect((call.body as Record<string, unknown>).max_completion_tokens).toBe(64);
    expect((call.body as Record<string, unknown>).max_tokens).toBeUndefined();
  });

  it.each([
    ["length", "length"],
    ["tool_calls", "tool_calls"],
    ["stop", "stop"],
  ] as const)("maps finish_reason %s", async (wire, ours) => {
    expect((await cases.scriptedCall(chat, { mode: "ok", finishReason: wire })).finishReason).toBe(ours);
  });

  it("reports finish_reason content_filter as a result with its usage (the router records a refusal)", async () => {
    const out = await cases.scriptedCall(chat, { mode: "content_filter", usage: { prompt_tokens: 9, completion_tokens: 2 } });
    expect(out.finishReason).toBe("content_filter");
    expect(out.usage).toMatchObject({ inputTokens: 9, outputTokens: 2 });
  });

  it("keeps explicit zero usage as zeros, not as missing", async () => {
    const out = await cases.scriptedCall(chat, { mode: "zero_usage" });
    expect(out.usage).toEqual({ inputTokens: 0, outputTokens: 0, cachedInputTokens: 0, reasoningTokens: 0 });
  });

  it("waits for a slow answer that is inside the timeout", async () => {
    expect((await cases.scriptedCall(chat, { mode: "slow", delayMs: 300, text: "eventually" }, { timeoutMs: 3_000 })).text).toBe("eventually");
  });
});

describe("chat errors", () => {
  const errors: [string, Record<string, unknown>, string, number | undefined, string | undefined][] = [
    ["rate_limit", {}, "rate_limit", 429, "rate_limit_exceeded"],
    ["quota", {}, "auth", 429, "insufficient_quota"],
    ["server_error", {}, "server", 500, "server_error"],
    ["overloaded", {}, "overloaded", 503, "server_error"],
    ["context_window", {}, "context_window", 400, "context_length_exceeded"],
    ["content_policy", {}, "content_policy", 400, "content_policy_violation"],
    ["auth", {}, "auth", 401, "invalid_api_key"],
    ["not_found", {}, "not_found", 404, "model_not_found"],
    ["bad_request", {}, "bad_request", 400, "invalid_value"],
    ["error", { status: 403, type: "invalid_request_error", code: "unsupported_country_region_territory" }, "auth", 403, "unsupported_country_region_territory"],
    ["error", { status: 422, type: "invalid_request_error" }, "bad_request", 422, "invalid_request_error"],
    ["error", { status: 408, type: "timeout" }, "timeout", 408, "timeout"],
    ["error", { status: 409, type: "conflict" }, "server", 409, "conflict"],
    ["error", { status: 502, type: "server_error" }, "server", 502, "server_error"],
    ["error", { status: 529, type: "server_error" }, "overloaded", 529, "server_error"],
    ["error", { status: 400, type: "invalid_request_error", code: "content_filter" }, "content_policy", 400, "content_filter"],
  ];

  // maxRetries 0: the SDK would otherwise retry 408/409/429/5xx by itself.
  it.each(errors)("%s %j → %s, in exactly one HTTP call", async (mode, opts, errorClass, status, code) => {
    await cases.expectFailureInOneCall(chat, { mode, requestId: "req_err_1", ...opts }, { errorClass, status, code, providerRequestId: "req_err_1" });
  });

  it.each([
    [{ retryAfter: 7 }, 7_000],
    [{ retryAfter: 30, retryAfterMs: 1500 }, 1_500],
    [{ retryAfter: 120 }, 120_000],
    [{ retryAfter: null }, undefined],
  ])("reads Retry-After %j as %s ms", async (opts, ms) => {
    await cases.expectRetryAfter(chat, opts, ms);
  });

  it("reads Retry-After as an HTTP date", async () => {
    const err = await providerError(cases.scriptedCall(chat, { mode: "rate_limit", retryAfter: new Date(Date.now() + 20_000).toUTCString() }));
    expect(err.details.retryAfterMs).toBeGreaterThan(15_000);
    expect(err.details.retryAfterMs).toBeLessThanOrEqual(20_000);
  });

  it("times out as ProviderError(timeout) after one call and no retry", async () => {
    await cases.expectTimeoutWithoutRetry(chat);
  });

  it("treats the caller's abort as a timeout", async () => {
    expect((await cases.expectAbortAsTimeout(chat)).message).toMatch(/aborted/);
  });

  it("a dropped connection before any answer is a server error", async () => {
    const model = uniqueModel("reset");
    await scriptFake(fake.url, key(model), { mode: "stream_cut" });
    const err = await providerError(createOpenAIAdapter(conn()).chat!(chatReq(model)));
    expect(err.errorClass).toBe("server");
    expect(await fakeCalls(fake.url, key(model))).toHaveLength(1);
  });

  it("the fake refuses a request without an API key", async () => {
    const res = await fetch(`${fake.url}/openai/v1/chat/completions`, {
      method: "POST",
      headers: { "content-type": "application/json" },
      body: JSON.stringify({ model: uniqueModel("nokey"), messages: [] }),
    });
    expect(res.status).toBe(401);
    expect((await res.json()).error.type).toBe("invalid_request_error");
  });
});

describe("chat streams", () => {
  it("yields start, deltas, cumulative usage and done with exact usage", async () => {
    const call = await cases.expectCompleteStream(
      chat,
      {
        keepAlive: true,
        requestId: "req_stream_1",
        usage: { prompt_tokens: 50, completion_tokens: 6, prompt_tokens_details: { cached_tokens: 20 }, completion_tokens_details: { reasoning_tokens: 2 } },
      },
      { start: { providerRequestId: "req_stream_1" }, usage: { inputTokens: 50, outputTokens: 6, cachedInputTokens: 20, reasoningTokens: 2 } },
    );
    expect(call.body).toMatchObject({ stream: true, stream_options: { include_usage: true } });
  });

  it("ends a finish_reason content_filter stream with done(content_filter)", async () => {
    const { events } = await cases.scriptedStream(chat, { mode: "content_filter", text: "partial answer" });
    expect(events.at(-1)).toMatchObject({ type: "done", finishReason: "content_filter" });
  });

  it.each([["destroy"], ["end"]])("a cut stream (%s) ends after its deltas without usage or done", async (cutMode) => {
    await cases.expectCutStream(chat, cutMode);
  });

  it("a mid-stream error event throws ProviderError after the deltas", async () => {
    const e = await cases.expectMidStreamError(chat, { text: "first second third", requestId: "req_serr" });
    expect(e.errorClass).toBe("server");
    expect(e.details.status).toBeUndefined();
    expect(e.details.code).toBe("server_error");
    expect(e.details.providerRequestId).toBe("req_serr");
  });

  it("classifies a mid-stream error by its type", async () => {
    expect((await cases.expectMidStreamError(chat, { errorType: "rate_limit_exceeded" })).errorClass).toBe("rate_limit");
  });

  it("a stream request that gets no answer times out once, without retry", async () => {
    await cases.expectStreamTimeoutWithoutRetry(chat);
  });

  it("a stream that stalls after its headers times out instead of hanging", async () => {
    await cases.expectStalledStreamTimeout(chat);
  });

  it("maps an error status on a stream request", async () => {
    await cases.expectStreamRefused(chat, { mode: "rate_limit", retryAfter: 2 }, { errorClass: "rate_limit", details: { status: 429, retryAfterMs: 2_000 } });
  });
});

describe("embeddings", () => {
  it("asks for base64 and decodes little-endian float32 exactly", async () => {
    const model = uniqueModel("embed");
    const vectors = [[0.1, -0.25, 3.5e-8, 1], [0.5, 0.5, -0.5, 0.125]];
    await scriptFake(fake.url, key(model), { mode: "ok", vectors });
    const out = await createOpenAIAdapter(conn()).embed!({ model, input: ["first text", "second"], dimensions: 4 });
    expect(out.vectors).toEqual(vectors.map((v) => v.map(Math.fround)));
    expect(out.usage.inputTokens).toBe(3 + 2);
    const [call] = await fakeCalls(fake.url, key(model));
    expect(call.body).toMatchObject({ encoding_format: "base64", dimensions: 4, input: ["first text", "second"] });
  });

  it("passes float arrays through from servers that ignore encoding_format", async () => {
    const model = uniqueModel("embedf");
    await scriptFake(fake.url, key(model), { mode: "ok", vectors: [[0.1, 0.2]], ignoreEncoding: true });
    const out = await createOpenAIAdapter(conn()).embed!({ model, input: ["x"] });
    expect(out.vectors).toEqual([[0.1, 0.2]]);
  });

  it("decodes a known base64 vector", () => {
    // [1, -2, 0.5] as float32 little-endian
    expect(decodeEmbedding("AACAPwAAAMAAAAA/")).toEqual([1, -2, 0.5]);
    expect(() => decodeEmbedding("AACA")).toThrow(ProviderError);
  });

  it("maps errors on embeddings too", async () => {
    const model = uniqueModel("embederr");
    await scriptFake(fake.url, key(model), { mode: "server_error" });
    const err = await providerError(createOpenAIAdapter(conn()).embed!({ model, input: ["x"] }));
    expect(err.errorClass).toBe("server");
  });
});

describe("images, moderation, speech", () => {
  const PNG = [0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a];

  it("returns dall-e URLs (that serve a PNG) and the revised prompt", async () => {
    const model = `dall-e-3-${randomUUID().slice(0, 8)}`;
    await scriptFake(fake.url, key(model), { mode: "ok", revisedPrompt: "A red fox, detailed" });
    const out = await createOpenAIAdapter(conn()).image!({ model, prompt: "a red fox", n: 1, size: "1024x1024", quality: "hd", style: "vivid" });
    expect(out.revisedPrompt).toBe("A red fox, detailed");
    expect(out.images).toHaveLength(1);
    expect(out.images[0].bytes).toBeUndefined();
    expect(out.images[0].url).toMatch(new RegExp(`^${fake.url}/openai/files/`));
    const bytes = new Uint8Array(await (await fetch(out.images[0].url!)).arrayBuffer());
    expect([...bytes.subarray(0, 8)]).toEqual(PNG);
    const [call] = await fakeCalls(fake.url, key(model));
    expect(call.body).toMatchObject({ prompt: "a red fox", n: 1, size: "1024x1024", quality: "hd", style: "vivid" });
  });

  it("decodes gpt-image b64_json and maps its token usage", async () => {
    const model = `gpt-image-1-${randomUUID().slice(0, 8)}`;
    await scriptFake(fake.url, key(model), { mode: "ok", usage: { input_tokens: 50, output_tokens: 4160 } });
    const out = await createOpenAIAdapter(conn()).image!({ model, prompt: "a blue whale", n: 2, size: "1024x1024" });
    expect(out.images).toHaveLength(2);
    for (const img of out.images) {
      expect(img.mimeType).toBe("image/png");
      expect([...img.bytes!.subarray(0, 8)]).toEqual(PNG);
    }
    expect(out.images[0].bytes).not.toEqual(out.images[1].bytes);
    expect(out.usage).toEqual({ inputTokens: 50, outputTokens: 4160 });
  });

  it("maps an image content_policy_violation", async () => {
    const model = `dall-e-3-${randomUUID().slice(0, 8)}`;
    await scriptFake(fake.url, key(model), { mode: "content_policy" });
    const err = await providerError(createOpenAIAdapter(conn()).image!({ model, prompt: "x", n: 1, size: "1024x1024" }));
    expect(err.errorClass).toBe("content_policy");
    expect(err.details.code).toBe("content_policy_violation");
  });

  it("moderates each input", async () => {
    const model = uniqueModel("mod");
    const out = await createOpenAIAdapter(conn()).moderate!({ model, input: ["a kind word", "FLAGME please"] });
    expect(out.results.map((r) => r.flagged)).toEqual([false, true]);
    expect(out.results[1].categories.violence).toBe(true);
    expect(out.results[1].scores.violence).toBeCloseTo(0.91);
    expect(out.results[0].categories.violence).toBe(false);
    expect(out.providerRequestId).toMatch(/^req_/);
  });

  it("returns speech bytes as MP3 or WAV (with its length)", async () => {
    const model = uniqueModel("tts");
    const adapter = createOpenAIAdapter(conn());
    const text = "Hello there, this is thirty chars"; // 33 characters
    const mp3 = await adapter.speech!({ model, text, voice: "alloy" });
    expect(mp3.file.mimeType).toBe("audio/mpeg");
    expect(new TextDecoder().decode(mp3.file.bytes!.subarray(0, 3))).toBe("ID3");
    expect(mp3.characters).toBe(33);
    expect(mp3.seconds).toBeUndefined();
    const wav = await adapter.speech!({ model, text, voice: "alloy", format: "wav" });
    expect(wav.file.mimeType).toBe("audio/wav");
    expect(new TextDecoder().decode(wav.file.bytes!.subarray(0, 4))).toBe("RIFF");
    expect(wav.seconds).toBeCloseTo(33 / 15, 2);
    const calls = await fakeCalls(fake.url, key(model));
    expect(calls.map((c) => (c.body as { response_format: string }).response_format)).toEqual(["mp3", "wav"]);
  });
});
