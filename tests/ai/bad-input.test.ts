// Bad input to the AI gateway, over HTTP: POST /api/ai/jobs, /api/ai/batches and the
// OpenAI-compatible endpoint. Every case gets a 4xx with the standard error body (OpenAI's
// shape under /ai/v1), and nothing is reserved: no job, no batch, no reservation, the same
// balance, and no provider call.
import { beforeAll, describe, expect, it } from "vitest";
import { admin, createTeam, type Team } from "../helpers/db.ts";
import { call, expectError, type JsonResponse } from "../helpers/http.ts";
import { fakeCalls } from "../helpers/fake-ai.ts";
import { createModel, giveCredits, stack, submit, waitForJob } from "../helpers/ai.ts";
import { expectUnchanged, OPENAI_BASE, orgState } from "../helpers/openai.ts";
import { tokenFor } from "../helpers/supabase.ts";
import { MAX_PROMPT_CHARS } from "../../functions/_shared/ai/inputs.ts";
import { parseInput } from "../../functions/_shared/ai/submit.ts";
import { ApiError } from "../../functions/_shared/http/errors.ts";

let team: Team;
let token: string;
let model: string;
let modelKey: string;
/** Context window 1,000 tokens, max output 4,096. */
let smallModel: string;
let unpriced: string;
let halfPriced: string;
let imageModel: string;

beforeAll(async () => {
  team = await createTeam("Bad input");
  await giveCredits(team.orgId, 100_000);
  token = await tokenFor(team.member);
  const m = await createModel({ modality: "text", deployments: [{ provider: "openai" }] });
  model = m.model;
  modelKey = m.deployments[0].key;
  smallModel = (await createModel({ modality: "text", contextWindow: 1000, deployments: [{ provider: "openai" }] })).model;
  unpriced = (await createModel({ modality: "text", deployments: [{ provider: "openai", prices: [] }] })).model;
  // Priced for input only: output is unknown, so it is refused as unpriced (fail closed).
  halfPriced = (await createModel({ modality: "text", deployments: [{ provider: "openai", prices: [{ unit: "input_token", credits: 1, per_units: 1000 }] }] })).model;
  imageModel = (await createModel({ modality: "image", deployments: [{ provider: "openai" }] })).model;
});

async function batchesOf(orgId: string): Promise<number> {
  return (await admin.query("select count(*)::int as n from ai.batches where org_id = $1", [orgId])).rows[0].n;
}

/** Runs the request and proves it left the org exactly as it was and called no provider. */
async function refused(send: () => Promise<JsonResponse>): Promise<JsonResponse> {
  const before = await orgState(team.orgId);
  const batches = await batchesOf(team.orgId);
  const calls = (await fakeCalls(stack.fakeAiUrl, modelKey)).length;
  const res = await send();
  expect(res.status, res.raw).toBeGreaterThanOrEqual(400);
  expect(res.status, res.raw).toBeLessThan(500);
  await expectUnchanged(team.orgId, before);
  expect(await batchesOf(team.orgId)).toBe(batches);
  expect((await fakeCalls(stack.fakeAiUrl, modelKey)).length).toBe(calls);
  return res;
}

const job = (body: unknown, headers: Record<string, string> = {}) => submit({ token }, body as Record<string, unknown>, headers);
const text = (input: Record<string, unknown>, extra: Record<string, unknown> = {}) => job({ org_id: team.orgId, modality: "text", model, input, ...extra });

describe("POST /api/ai/jobs", () => {
  it("an oversized body is 413; an oversized field is 400 naming it", async () => {
    expectError(await refused(() => text({ prompt: "x".repeat(70_000) })), 413, "payload_too_large");
    const res = await refused(() => text({ prompt: "hi", system: "s".repeat(50_001) }));
    expectError(res, 400, "invalid_request");
    expect(res.body.error.details).toEqual([expect.objectContaining({ path: "input.system" })]);
    expectError(await refused(() => text({ preset: "summarize", variables: { text: "v".repeat(20_001), length: "a line" } })), 400, "invalid_request");
  });

  it("a prompt past the limit is refused by the input schema itself (bodies that large never reach it here)", () => {
    expect(() => parseInput("text", { prompt: "x".repeat(MAX_PROMPT_CHARS + 1) })).toThrow(ApiError);
    expect(() => parseInput("text", { prompt: "x".repeat(MAX_PROMPT_CHARS) })).not.toThrow();
    expect(() => parseInput("text", { messages: [{ role: "user", content: "x".repeat(MAX_PROMPT_CHARS + 1) }] })).toThrow(ApiError);
  });

  it("an unknown model is 404 model_not_found; a disabled one too", async () => {
    expectError(await refused(() => job({ org_id: team.orgId, modality: "text", model: "no-such-model", input: { prompt: "hi" } })), 404, "model_not_found");
    const disabled = (await createModel({ modality: "text", deployments: [{ provider: "openai" }] })).model;
    await admin.query("update ai.models set enabled = false where id = $1", [disabled]);
    expectError(await refused(() => job({ org_id: team.orgId, modality: "text", model: disabled, input: { prompt: "hi" } })), 404, "model_not_found");
  });

  it("a model with no price, or without a price for every unit it needs, is refused (fail closed): 400 no_route", async () => {
    for (const m of [unpriced, halfPriced]) {
      expectError(await refused(() => job({ org_id: team.orgId, modality: "text", model: m, input: { prompt: "hi" } })), 400, "no_route");
    }
    // A text model asked for as an image is not a route either.
    expectError(await refused(() => job({ org_id: team.orgId, modality: "image", model, input: { prompt: "hi" } })), 400, "no_route");
  });

  it("a tier and a model both, or neither, is 400", async () => {
    expectError(await refused(() => job({ org_id: team.orgId, modality: "text", tier: "economy", model, input: { prompt: "hi" } })), 400, "invalid_request");
    expectError(await refused(() => job({ org_id: team.orgId, modality: "text", input: { prompt: "hi" } })), 400, "invalid_request");
  });

  it("malformed JSON, a missing body and a non-JSON body are 400", async () => {
    expectError(await refused(() => call("/api/ai/jobs", { token, body: '{"modality": "text", "model": ', headers: { "content-type": "application/json" } })), 400, "invalid_request");
    expectError(await refused(() => call("/api/ai/jobs", { token, method: "POST", headers: { "content-type": "application/json" } })), 400, "invalid_request");
    const res = await refused(() => call("/api/ai/jobs", { token, body: "modality=text", headers: { "content-type": "application/x-www-form-urlencoded" } }));
    expect(res.body.error.code).toBeTypeOf("string");
  });

  it("wrong types and unknown fields are 400 naming the field", async () => {
    const cases: [Record<string, unknown>, string][] = [
      [{ org_id: team.orgId, modality: "telepathy", model, input: { prompt: "hi" } }, "modality"],
      [{ org_id: team.orgId, modality: "text", model: 42, input: { prompt: "hi" } }, "model"],
      [{ org_id: team.orgId, modality: "text", model: "UPPER CASE", input: { prompt: "hi" } }, "model"],
      [{ org_id: team.orgId, modality: "text", model, input: ["hi"] }, "input"],
      [{ org_id: "not-a-uuid", modality: "text", model, input: { prompt: "hi" } }, "org_id"],
      [{ org_id: team.orgId, modality: "text", model, input: { prompt: "hi" }, priority: "high" }, ""],
      [{ org_id: team.orgId, modality: "text", model, input: { prompt: "hi", max_tokens: "ten" } }, "input.max_tokens"],
      [{ org_id: team.orgId, modality: "text", model, input: { prompt: "hi", max_tokens: 0 } }, "input.max_tokens"],
      [{ org_id: team.orgId, modality: "text", model, input: { prompt: "hi", max_tokens: 64_001 } }, "input.max_tokens"],
      [{ org_id: team.orgId, modality: "text", model, input: { prompt: "hi", temperature: 9 } }, "input.temperature"],
      [{ org_id: team.orgId, modality: "text", model, input: { prompt: "hi", stream: true } }, "input"],
      [{ org_id: team.orgId, modality: "text", model, input: {} }, "input"],
      [{ org_id: team.orgId, modality: "text", model, input: { messages: [{ role: "wizard", content: "hi" }] } }, "input.messages.0.role"],
      [{ org_id: team.orgId, modality: "image", model: imageModel, input: { prompt: "a cat", size: "huge" } }, "input.size"],
    ];
    for (const [body, path] of cases) {
      const res = await refused(() => job(body));
      expectError(res, 400, "invalid_request");
      if (path) expect(JSON.stringify(res.body.error.details), `${JSON.stringify(body)}: ${res.raw}`).toContain(`"${path}`);
    }
  });

  it("NUL characters anywhere in the text are 400", async () => {
    expectError(await refused(() => text({ prompt: "before\u0000after" })), 400, "invalid_request");
    expectError(await refused(() => text({ messages: [{ role: "user", content: "a\u0000" }] })), 400, "invalid_request");
    expectError(await refused(() => text({ prompt: "hi", system: "\u0000" })), 400, "invalid_request");
    expectError(await refused(() => job({ org_id: team.orgId, modality: "image", model: imageModel, input: { prompt: "cat", negative_prompt: "dog\u0000" } })), 400, "invalid_request");
  });

  it("n above 10 images is 400", async () => {
    const res = await refused(() => job({ org_id: team.orgId, modality: "image", model: imageModel, input: { prompt: "a cat", n: 11 } }));
    expectError(res, 400, "invalid_request");
    expect(JSON.stringify(res.body.error.details)).toContain("input.n");
  });

  it("max_tokens that no model of the route can fit with the input is 400 context_length_exceeded", async () => {
    // The small model holds 1,000 tokens: 990 of output plus the prompt do not fit.
    expectError(await refused(() => job({ org_id: team.orgId, modality: "text", model: smallModel, input: { prompt: "x".repeat(100), max_tokens: 990 } })), 400, "context_length_exceeded");
    // A prompt alone past the window: ~1,250 tokens of input.
    expectError(await refused(() => job({ org_id: team.orgId, modality: "text", model: smallModel, input: { prompt: "y".repeat(5000), max_tokens: 1 } })), 400, "context_length_exceeded");
    // What fits is admitted (and reserved).
    const ok = await job({ org_id: team.orgId, modality: "text", model: smallModel, input: { prompt: "x".repeat(100), max_tokens: 900 } });
    expect(ok.status, ok.raw).toBe(202);
    // Let it end here, so that its settle cannot land inside another case's before/after.
    expect((await waitForJob(ok.body.id)).status).toBe("succeeded");
  });

  it("a bad Idempotency-Key or x-plinth-org header is 400", async () => {
    expectError(await refused(() => job({ org_id: team.orgId, modality: "text", model, input: { prompt: "hi" } }, { "idempotency-key": "has spaces in it" })), 400, "invalid_request");
    expectError(await refused(() => job({ org_id: team.orgId, modality: "text", model, input: { prompt: "hi" } }, { "idempotency-key": "k".repeat(201) })), 400, "invalid_request");
    expectError(await refused(() => job({ modality: "text", model, input: { prompt: "hi" } }, { "x-plinth-org": "acme" })), 400, "invalid_request");
  });
});

describe("reading and canceling jobs with bad ids and queries", () => {
  it("a malformed id or query is 400; an id nobody may see is 404", async () => {
    expectError(await refused(() => call("/api/ai/jobs/not-a-uuid", { token })), 400, "invalid_request");
    expectError(await refused(() => call("/api/ai/jobs/not-a-uuid/cancel", { token, method: "POST" })), 400, "invalid_request");
    expectError(await refused(() => call("/api/ai/batches/42", { token })), 400, "invalid_request");
    expectError(await refused(() => call("/api/ai/jobs?limit=1000", { token })), 400, "invalid_request");
    expectError(await refused(() => call("/api/ai/jobs?status=exploded", { token })), 400, "invalid_request");
    expectError(await refused(() => call("/api/ai/jobs?before=yesterday", { token })), 400, "invalid_request");
    const unknown = "00000000-0000-4000-8000-000000000000";
    expectError(await refused(() => call(`/api/ai/jobs/${unknown}`, { token })), 404, "not_found");
    expectError(await refused(() => call(`/api/ai/jobs/${unknown}/cancel`, { token, method: "POST" })), 404, "not_found");
    expectError(await refused(() => call(`/api/ai/batches/${unknown}/cancel`, { token, method: "POST" })), 404, "not_found");
  });
});

describe("POST /api/ai/batches", () => {
  const batch = (body: Record<string, unknown>) => call("/api/ai/batches", { token, json: { org_id: team.orgId, modality: "text", model, ...body } });

  it("one bad input refuses the whole batch, naming it: no batch, no job, nothing reserved", async () => {
    const res = await refused(() => batch({ inputs: [{ prompt: "fine" }, { prompt: 42 }, { prompt: "fine too" }] }));
    expectError(res, 400, "invalid_request");
    expect(res.body.error.message).toMatch(/input 1/);
    expect(res.body.error.details).toEqual([expect.objectContaining({ path: "inputs.1.prompt" })]);
  });

  it("no inputs, too many inputs, or inputs of the wrong type are 400", async () => {
    expectError(await refused(() => batch({ inputs: [] })), 400, "invalid_request");
    expectError(await refused(() => batch({ inputs: Array.from({ length: 101 }, () => ({ prompt: "p" })) })), 400, "invalid_request");
    expectError(await refused(() => batch({ inputs: "prompt" })), 400, "invalid_request");
    expectError(await refused(() => batch({ inputs: [{ prompt: "p" }], label: "" })), 400, "invalid_request");
  });

  it("an unknown or unpriced model refuses the batch", async () => {
    expectError(await refused(() => batch({ model: "no-such-model", inputs: [{ prompt: "p" }] })), 404, "model_not_found");
    expectError(await refused(() => batch({ model: unpriced, inputs: [{ prompt: "p" }] })), 400, "no_route");
  });
});

describe("the OpenAI-compatible endpoint", () => {
  async function post(path: string, body: unknown, headers: Record<string, string> = {}): Promise<JsonResponse> {
    const res = await fetch(`${OPENAI_BASE}${path}`, {
      method: "POST",
      headers: { authorization: `Bearer ${token}`, "x-plinth-org": team.orgId, "content-type": "application/json", ...headers },
      body: typeof body === "string" ? body : JSON.stringify(body),
    });
    const raw = await res.text();
    let parsed: unknown;
    try {
      parsed = JSON.parse(raw);
    } catch {
      parsed = undefined;
    }
    return { status: res.status, headers: res.headers, body: parsed, raw };
  }
  /** OpenAI's error shape: {error: {message, type, param, code}}. */
  function expectOpenAiError(res: JsonResponse, status: number, code?: string | null) {
    expect(res.status, res.raw).toBe(status);
    expect(Object.keys(res.body?.error ?? {}).sort(), res.raw).toEqual(["code", "message", "param", "type"]);
    expect(res.body.error).toMatchObject({ message: expect.any(String), type: expect.any(String) });
    // param names the offending field when the refusal knows it (a NUL found by the api's input check), else null.
    expect(res.body.error.param === null || typeof res.body.error.param === "string", res.raw).toBe(true);
    if (code !== undefined) expect(res.body.error.code, res.raw).toBe(code);
    if (status === 400) expect(res.body.error.type).toBe("invalid_request_error");
  }
  const chat = (body: Record<string, unknown>) => post("/chat/completions", { model, messages: [{ role: "user", content: "hi" }], ...body });

  it("malformed bodies and wrong types are 400 invalid_request_error", async () => {
    expectOpenAiError(await refused(() => post("/chat/completions", "{not json")), 400, null);
    expectOpenAiError(await refused(() => post("/chat/completions", "")), 400, null);
    for (const body of [
      { messages: [] },
      { messages: "hi" },
      { messages: [{ role: "wizard", content: "hi" }] },
      { messages: [{ role: "user", content: 42 }] },
      { model: "" },
      { model: 7 },
      { max_tokens: "big" },
      { max_tokens: 0 },
      { max_completion_tokens: -1 },
      { temperature: 3 },
      { n: 2 },
      { stream: "yes" },
      { response_format: { type: "xml" } },
    ]) {
      const res = await refused(() => chat(body));
      expectOpenAiError(res, 400);
    }
    const res = await refused(() => post("/chat/completions", { messages: [{ role: "user", content: "hi" }] }));
    expectOpenAiError(res, 400, null);
    expect(res.body.error.message).toMatch(/model/);
  });

  it("NUL characters in a message are 400", async () => {
    expectOpenAiError(await refused(() => chat({ messages: [{ role: "user", content: "nul\u0000here" }] })), 400);
    expectOpenAiError(await refused(() => chat({ messages: [{ role: "user", content: [{ type: "text", text: "\u0000" }] }] })), 400);
  });

  it("an unknown model (or tier alias) is 404 model_not_found; an unpriced one 400 no_route", async () => {
    expectOpenAiError(await refused(() => chat({ model: "no-such-model" })), 404, "model_not_found");
    expectOpenAiError(await refused(() => chat({ model: "plinth/ultra" })), 404, "model_not_found");
    expectOpenAiError(await refused(() => chat({ model: unpriced })), 400, "no_route");
    expectOpenAiError(await refused(() => chat({ model: halfPriced, stream: true })), 400, "no_route");
  });

  it("max_tokens past every model's context is 400 context_length_exceeded, streaming or not", async () => {
    expectOpenAiError(await refused(() => chat({ model: smallModel, max_tokens: 2000 })), 400, "context_length_exceeded");
    // "hi" is one token: 1 + 1,000 is one past the window.
    expectOpenAiError(await refused(() => chat({ model: smallModel, max_completion_tokens: 1000, stream: true })), 400, "context_length_exceeded");
    // Without max_tokens the default (4,096, capped by the model's max output) does not fit a 1,000-token window either.
    expectOpenAiError(await refused(() => chat({ model: smallModel })), 400, "context_length_exceeded");
  });

  it("an oversized body is 413 in OpenAI's shape", async () => {
    const res = await refused(() => chat({ messages: [{ role: "user", content: "x".repeat(70_000) }] }));
    expectOpenAiError(res, 413, "payload_too_large");
  });

  it("images, embeddings and moderations refuse bad input the same way", async () => {
    const cases: [string, Record<string, unknown>][] = [
      ["/images/generations", { model: imageModel }],
      ["/images/generations", { model: imageModel, prompt: "" }],
      ["/images/generations", { model: imageModel, prompt: "cat", n: 11 }],
      ["/images/generations", { model: imageModel, prompt: "cat", n: 0 }],
      ["/images/generations", { model: imageModel, prompt: "cat", size: "huge" }],
      ["/images/generations", { model: imageModel, prompt: "cat", response_format: "gif" }],
      ["/images/generations", { model: imageModel, prompt: "cat\u0000" }],
      ["/embeddings", { model: "x" }],
      ["/embeddings", { model, input: "" }],
      ["/embeddings", { model, input: [] }],
      ["/embeddings", { model, input: "hi", encoding_format: "hex" }],
      ["/embeddings", { model, input: "hi", dimensions: 0 }],
      ["/moderations", { input: 5 }],
      ["/moderations", { model, input: [""] }],
    ];
    for (const [path, body] of cases) {
      const res = await refused(() => post(path, body));
      expect(res.status, `${path} ${JSON.stringify(body)}: ${res.raw}`).toBe(400);
      expectOpenAiError(res, 400);
    }
  });

  it("a bad x-plinth-org is 400", async () => {
    expectOpenAiError(await refused(() => post("/chat/completions", { model, messages: [{ role: "user", content: "hi" }] }, { "x-plinth-org": "acme" })), 400);
  });
});
