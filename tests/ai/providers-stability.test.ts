// The Stability adapter (plain fetch, multipart) against the fake v2beta stable-image API:
// endpoint per model, form fields, n requests for n images, CONTENT_FILTERED on a 200, error
// bodies by status, Retry-After, timeouts.
import { describe, expect, it } from "vitest";
import { randomUUID } from "node:crypto";
import { aspectRatio, createStabilityAdapter, stabilityEndpoint } from "../../functions/_shared/ai/providers/stability.ts";
import type { ImageRequest, ImageResult, ProviderConnection } from "../../functions/_shared/ai/types.ts";
import * as cases from "../helpers/adapter-cases.ts";
import { fakeCalls, providerError, resetFake, scriptFake, useFakeAi } from "../helpers/fake-ai.ts";

const fake = useFakeAi();
const PNG = [0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a];
const conn = (over: Partial<ProviderConnection> = {}) => cases.fakeConnection(fake, "stability", "/stability", "sk-stab-test", over);
const uniqueModel = (tag: string) => `sd3.5-${tag}-${randomUUID().slice(0, 8)}`;
const key = (model: string) => `stability:${model}`;
const req = (model: string, extra: Partial<ImageRequest> = {}): ImageRequest => ({ model, prompt: "a lighthouse at dusk", n: 1, size: "1024x1024", ...extra });
const image: cases.CallTarget<ImageResult> = {
  fake,
  model: uniqueModel,
  key,
  call: (model, over, signal) => createStabilityAdapter(conn(over)).image!(req(model), signal),
};

describe("generate", () => {
  it("posts multipart to /sd3 with the model field and returns the PNG bytes", async () => {
    const model = uniqueModel("ok");
    await scriptFake(fake.url, key(model), { mode: "ok", requestId: "stab-req-1" });
    const out = await createStabilityAdapter(conn()).image!(req(model, { size: "1792x1024", negativePrompt: "fog" }));
    expect(out.filtered).toBe(false);
    expect(out.providerRequestId).toBe("stab-req-1");
    expect(out.images).toHaveLength(1);
    expect(out.images[0].mimeType).toBe("image/png");
    expect([...out.images[0].bytes!.subarray(0, 8)]).toEqual(PNG);
    const [call] = await fakeCalls(fake.url, key(model));
    expect(call.path).toBe("/stability/v2beta/stable-image/generate/sd3");
    expect(call.headers.authorization).toBe("Bearer sk-stab-test");
    expect(call.headers.accept).toBe("image/*");
    expect(call.headers["content-type"]).toMatch(/^multipart\/form-data; boundary=/);
    const form = String(call.body);
    for (const [name, value] of [["prompt", "a lighthouse at dusk"], ["negative_prompt", "fog"], ["aspect_ratio", "16:9"], ["output_format", "png"], ["model", model]]) {
      expect(form).toMatch(new RegExp(`name="${name}"\\r\\n\\r\\n${value.replace(/\./g, "\\.")}\\r\\n`));
    }
  });

  it.each([
    ["stable-image-core", "core"],
    ["stable-image-ultra", "ultra"],
  ])("sends %s to /%s without a model field", async (model, endpoint) => {
    await resetFake(fake.url, `stability:${endpoint}`);
    const out = await createStabilityAdapter(conn()).image!(req(model, { style: "photographic" }));
    expect([...out.images[0].bytes!.subarray(0, 8)]).toEqual(PNG);
    const [call] = await fakeCalls(fake.url, `stability:${endpoint}`);
    expect(call.path).toBe(`/stability/v2beta/stable-image/generate/${endpoint}`);
    expect(String(call.body)).not.toMatch(/name="model"/);
    // style_preset is a Core parameter.
    expect(/name="style_preset"/.test(String(call.body))).toBe(endpoint === "core");
  });

  it("makes n requests for n images", async () => {
    const model = uniqueModel("many");
    const out = await createStabilityAdapter(conn()).image!(req(model, { n: 3 }));
    expect(out.images).toHaveLength(3);
    expect(await fakeCalls(fake.url, key(model))).toHaveLength(3);
  });

  it("reports finish-reason CONTENT_FILTERED on a 200 as filtered, even when one of n is", async () => {
    const model = uniqueModel("filtered");
    await scriptFake(fake.url, key(model), [{ mode: "ok" }, { mode: "content_filter" }]);
    const out = await createStabilityAdapter(conn()).image!(req(model, { n: 2 }));
    expect(out.filtered).toBe(true);
    expect(out.images).toHaveLength(2);
    expect(out.images[0].bytes).not.toEqual(out.images[1].bytes);
  });

  it("reads the JSON form of the answer too (Accept: application/json)", async () => {
    const model = uniqueModel("json");
    await scriptFake(fake.url, key(model), { mode: "content_filter" });
    const asJson: typeof fetch = (input, init) => {
      const headers = new Headers(init?.headers);
      headers.set("accept", "application/json");
      return fetch(input, { ...init, headers });
    };
    const out = await createStabilityAdapter(conn({ fetch: asJson })).image!(req(model));
    expect(out.filtered).toBe(true);
    expect([...out.images[0].bytes!.subarray(0, 8)]).toEqual(PNG);
  });

  it("refuses an unknown model name without calling out", async () => {
    const err = await providerError(createStabilityAdapter(conn()).image!(req("midjourney-v6")));
    expect(err.errorClass).toBe("bad_request");
  });

  it("maps model names and sizes", () => {
    expect(stabilityEndpoint("sd3.5-large-turbo")).toBe("sd3");
    expect(stabilityEndpoint("stable-image-ultra")).toBe("ultra");
    expect(stabilityEndpoint("stable-image-core")).toBe("core");
    expect(stabilityEndpoint("dall-e-3")).toBeNull();
    expect(aspectRatio("1024x1024")).toBe("1:1");
    expect(aspectRatio("1024x1792")).toBe("9:16");
    expect(aspectRatio("1536x1024")).toBe("3:2");
    expect(aspectRatio("2560x1080")).toBe("21:9");
    expect(aspectRatio("4:5")).toBe("4:5");
    expect(aspectRatio("auto")).toBe("1:1");
  });
});

describe("errors", () => {
  const errors: [string, Record<string, unknown>, string, number, string][] = [
    ["content_policy", {}, "content_policy", 403, "content_moderation"],
    ["rate_limit", {}, "rate_limit", 429, "rate_limit_exceeded"],
    ["server_error", {}, "server", 500, "internal_error"],
    ["overloaded", {}, "overloaded", 503, "service_unavailable"],
    ["auth", {}, "auth", 401, "unauthorized"],
    ["not_found", {}, "not_found", 404, "not_found"],
    ["bad_request", {}, "bad_request", 400, "bad_request"],
    ["error", { status: 403, name: "forbidden" }, "auth", 403, "forbidden"],
    ["error", { status: 413, name: "payload_too_large" }, "bad_request", 413, "payload_too_large"],
    ["error", { status: 422, name: "invalid_language" }, "bad_request", 422, "invalid_language"],
  ];

  it.each(errors)("%s %j → %s", async (mode, opts, errorClass, status, code) => {
    const err = await cases.expectFailureInOneCall(image, { mode, requestId: "stab-err", ...opts }, { errorClass, status, code, providerRequestId: "stab-err" });
    expect(err.message.length).toBeGreaterThan(0);
  });

  it("reads Retry-After on a 429", async () => {
    await cases.expectRetryAfter(image, { retryAfter: 3 }, 3_000);
  });

  it("stops at the first failure of n", async () => {
    const model = uniqueModel("nfail");
    await scriptFake(fake.url, key(model), [{ mode: "ok" }, { mode: "server_error" }]);
    const err = await providerError(createStabilityAdapter(conn()).image!(req(model, { n: 3 })));
    expect(err.errorClass).toBe("server");
    expect(await fakeCalls(fake.url, key(model))).toHaveLength(2);
  });

  it("times out once (conn.timeoutMs), without retry", async () => {
    expect((await cases.expectTimeoutWithoutRetry(image)).message).toMatch(/300 ms/);
  });

  it("stops when the caller aborts", async () => {
    expect((await cases.expectAbortAsTimeout(image)).message).toMatch(/aborted by the caller/);
  });

  it("a refused connection is a server error", async () => {
    const err = await providerError(createStabilityAdapter(conn({ baseUrl: "http://127.0.0.1:1/stability" })).image!(req(uniqueModel("down"))));
    expect(err.errorClass).toBe("server");
  });
});
