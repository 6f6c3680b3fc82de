// Fake OpenAI API under /openai/v1 (point the SDK's baseURL there): chat completions (JSON
// and SSE), images, embeddings (float or base64), moderations and speech, in the shapes the
// official SDK parses. Any key is accepted; a missing Authorization header is a 401.
//
// Script key: "openai:<model>". Modes (options in brackets; every mode takes delayMs and requestId):
//   ok              answer; chat streams when the request says stream [text, usage, finishReason, chunks, chunkDelayMs, keepAlive]
//   slow            ok after delayMs (default 1000)
//   zero_usage      ok with every usage count an explicit 0
//   content_filter  chat: 200 with finish_reason "content_filter" (partial text)
//   rate_limit      429 rate_limit_exceeded [retryAfter seconds|date (default 1, null omits), retryAfterMs]
//   quota           429 insufficient_quota
//   server_error    500 server_error
//   overloaded      503 "engine is currently overloaded"
//   timeout         never answers (the client's timeout ends it)
//   context_window  400 context_length_exceeded (the exact body OpenAI sends)
//   content_policy  400 content_policy_violation
//   auth            401 invalid_api_key
//   not_found       404 model_not_found
//   bad_request     400 invalid_request_error
//   error           any status [status, type, code, message, param]
//   stream_cut      stream: role chunk + `chunks` content chunks (default 2), then the socket is
//                   destroyed [cutMode "end": close cleanly, still no usage and no [DONE]];
//                   non-stream: the socket is destroyed before any answer
//   stream_error    stream: `chunks` content chunks then a data: {"error":...} event [errorType, errorCode, errorMessage];
//                   non-stream: 500
// Chat in JSON mode whose messages carry a ```json-schema block answers an instance of the schema
// (unless text is scripted). Embeddings also take [vectors, dimensions, ignoreEncoding (answer floats even when base64 was
// asked, like servers that ignore encoding_format)]; moderations flag inputs containing FLAGME
// [flagged: boolean[]]; images [revisedPrompt, usage].
import { createHash } from "node:crypto";
import { instanceOf, schemaIn, withoutSchemas } from "../../functions/_shared/ai/providers/local-json.ts";
import { encodePng, encodeWav } from "../../functions/_shared/ai/providers/local-media.ts";
import { hang, sendJson, type FakeRequest, type FakeRoute, type Step } from "./lib/fake-server.ts";
import { contentText, cutStream, estimateTokens, fakeId, mergeUsage, num, retryHeaders, startSse, stepDelay, writePieces, writeSse } from "./lib/ai-wire.ts";

const PREFIX = "/openai/v1";
const FLAG_WORD = "FLAGME";

export const openaiRoutes: FakeRoute[] = [
  { method: "POST", path: new RegExp(`^${PREFIX}/chat/completions$`), handle: chat },
  { method: "POST", path: new RegExp(`^${PREFIX}/images/generations$`), handle: images },
  { method: "POST", path: new RegExp(`^${PREFIX}/embeddings$`), handle: embeddings },
  { method: "POST", path: new RegExp(`^${PREFIX}/moderations$`), handle: moderations },
  { method: "POST", path: new RegExp(`^${PREFIX}/audio/speech$`), handle: speech },
  // Where image URLs point (like OpenAI's expiring blob URLs: no auth).
  { method: "GET", path: /^\/openai\/files\/([\w.-]+)$/, handle: file },
];

// ---------------------------------------------------------------------------- common

interface Ctx {
  step: Step;
  model: string;
  headers: Record<string, string>;
}

function baseHeaders(requestId: string): Record<string, string> {
  return {
    "x-request-id": requestId,
    "openai-version": "2020-10-01",
    "openai-processing-ms": "42",
    "x-ratelimit-limit-requests": "5000",
    "x-ratelimit-limit-tokens": "160000",
    "x-ratelimit-remaining-requests": "4999",
    "x-ratelimit-remaining-tokens": "159976",
    "x-ratelimit-reset-requests": "12ms",
    "x-ratelimit-reset-tokens": "9ms",
  };
}

function sendError(r: FakeRequest, status: number, error: { message: string; type: string; param?: string | null; code?: string | null }, headers: Record<string, string>) {
  sendJson(r.res, status, { error: { message: error.message, type: error.type, param: error.param ?? null, code: error.code ?? null } }, headers);
}

/**
 * Auth check, step, delay and the error modes every endpoint shares. Returns null when the
 * request has been answered (or deliberately left hanging).
 */
async function begin(r: FakeRequest, endpointModes: string[] = []): Promise<Ctx | null> {
  const model = String(r.json?.model ?? "");
  const key = `openai:${model}`;
  const auth = r.req.headers.authorization ?? "";
  if (!/^Bearer\s+\S+/.test(auth)) {
    r.record(key);
    sendError(r, 401, { message: "You didn't provide an API key. You need to provide your API key in an Authorization header using Bearer auth (i.e. Authorization: Bearer YOUR_KEY).", type: "invalid_request_error" }, baseHeaders(fakeId("req_", 32)));
    return null;
  }
  const step = r.take(key);
  const headers = baseHeaders(typeof step.requestId === "string" ? step.requestId : fakeId("req_", 32));
  if (step.mode === "timeout") {
    hang(r.res);
    return null;
  }
  await stepDelay(step);
  if (endpointModes.includes(step.mode)) return { step, model, headers };
  switch (step.mode) {
    case "ok":
    case "slow":
    case "zero_usage":
      return { step, model, headers };
    case "rate_limit":
      sendError(r, 429, { message: `Rate limit reached for ${model} in organization org-fake on requests per min (RPM): Limit 5000, Used 5000, Requested 1. Please try again in 12ms.`, type: "requests", code: "rate_limit_exceeded" }, { ...headers, "x-ratelimit-remaining-requests": "0", ...retryHeaders(step, 1) });
      return null;
    case "quota":
      sendError(r, 429, { message: "You exceeded your current quota, please check your plan and billing details.", type: "insufficient_quota", code: "insufficient_quota" }, headers);
      return null;
    case "server_error":
    case "stream_error": // a non-stream request cannot fail mid-stream
      sendError(r, 500, { message: "The server had an error while processing your request. Sorry about that!", type: "server_error" }, headers);
      return null;
    case "overloaded":
      sendError(r, 503, { message: "The engine is currently overloaded, please try again later.", type: "server_error" }, { ...headers, ...retryHeaders(step, null) });
      return null;
    case "context_window":
      sendError(r, 400, {
        message: "This model's maximum context length is 4097 tokens. However, you requested 4120 tokens (3120 in the messages, 1000 in the completion). Please reduce the length of the messages or completion.",
        type: "invalid_request_error",
        param: "messages",
        code: "context_length_exceeded",
      }, headers);
      return null;
    case "content_policy":
      sendError(r, 400, { code: "content_policy_violation", message: "Your request was rejected as a result of our safety system. Your prompt may contain text that is not allowed by our safety system.", param: null, type: "invalid_request_error" }, headers);
      return null;
    case "auth":
      sendError(r, 401, { message: "Incorrect API key provided: sk-fake***. You can find your API key at https://platform.openai.com/account/api-keys.", type: "invalid_request_error", code: "invalid_api_key" }, headers);
      return null;
    case "not_found":
      sendError(r, 404, { message: `The model \`${model}\` does not exist or you do not have access to it.`, type: "invalid_request_error", code: "model_not_found" }, headers);
      return null;
    case "bad_request":
      sendError(r, 400, { message: String(step.message ?? "Invalid value for 'temperature': expected a number between 0 and 2."), type: "invalid_request_error", param: "temperature", code: "invalid_value" }, headers);
      return null;
    case "error":
      sendError(r, num(step.status, 500), {
        message: String(step.message ?? "scripted error"),
        type: String(step.type ?? "server_error"),
        param: (step.param as string | undefined) ?? null,
        code: (step.code as string | undefined) ?? null,
      }, { ...headers, ...retryHeaders(step, null) });
      return null;
    case "stream_cut":
      r.res.socket?.destroy();
      return null;
    default:
      sendError(r, 400, { message: `fake OpenAI: unknown mode ${step.mode}`, type: "invalid_request_error" }, headers);
      return null;
  }
}

// ---------------------------------------------------------------------------- chat

/**
 * JSON mode with a JSON Schema in the messages (a ```json-schema block, as the deck pipeline
 * writes them): a schema-valid answer, as a real model in JSON mode gives, from the last user
 * message's words. Scripted text still wins.
 */
function schemaAnswer(body: any): string | undefined {
  if (body?.response_format?.type !== "json_object" || !Array.isArray(body.messages)) return undefined;
  const texts: string[] = body.messages.map((m: { content?: unknown }) => contentText(m?.content));
  const schema = schemaIn(texts);
  if (!schema) return undefined;
  const user = [...body.messages].reverse().find((m: { role?: string }) => m?.role === "user");
  const words = withoutSchemas(contentText(user?.content)).match(/[\p{L}\p{N}]{4,}/gu) ?? [];
  return JSON.stringify(instanceOf(schema, [...new Set(words)].slice(0, 64)));
}

function chatUsage(ctx: Ctx, messages: unknown, text: string) {
  const prompt = Array.isArray(messages) ? messages.map((m: { content?: unknown }) => contentText(m?.content)).join("\n") : "";
  const zero = ctx.step.mode === "zero_usage";
  const base = {
    prompt_tokens: zero ? 0 : estimateTokens(prompt),
    completion_tokens: zero ? 0 : estimateTokens(text),
    total_tokens: 0,
    prompt_tokens_details: { cached_tokens: 0, audio_tokens: 0 },
    completion_tokens_details: { reasoning_tokens: 0, audio_tokens: 0, accepted_prediction_tokens: 0, rejected_prediction_tokens: 0 },
  };
  const u = mergeUsage(base, ctx.step.usage);
  const total = (ctx.step.usage as { total_tokens?: number } | undefined)?.total_tokens;
  return { ...u, total_tokens: total ?? u.prompt_tokens + u.completion_tokens };
}

async function chat(r: FakeRequest) {
  // Non-stream requests get the stream_* modes' non-stream behaviour from begin().
  const ctx = await begin(r, r.json?.stream ? ["content_filter", "stream_cut", "stream_error"] : ["content_filter"]);
  if (!ctx) return;
  const { step, model, headers } = ctx;
  const body = r.json ?? {};
  const filtered = step.mode === "content_filter";
  const text = typeof step.text === "string" ? step.text : filtered ? "I can" : schemaAnswer(body) ?? `This is a fake reply from ${model}.`;
  const finish = filtered ? "content_filter" : String(step.finishReason ?? "stop");
  const id = fakeId("chatcmpl-", 29);
  const created = Math.floor(Date.now() / 1000);
  const usage = chatUsage(ctx, body.messages, text);

  if (!body.stream) {
    return sendJson(r.res, 200, {
      id,
      object: "chat.completion",
      created,
      model,
      system_fingerprint: "fp_fake",
      choices: [{ index: 0, message: { role: "assistant", content: text, refusal: null, annotations: [] }, logprobs: null, finish_reason: finish }],
      usage,
      service_tier: "default",
    }, headers);
  }

  const includeUsage = body.stream_options?.include_usage === true;
  const chunk = (choices: unknown[], u: unknown = null) => ({
    id,
    object: "chat.completion.chunk",
    created,
    model,
    service_tier: "default",
    system_fingerprint: "fp_fake",
    choices,
    ...(includeUsage ? { usage: u } : {}),
  });
  const delta = (d: Record<string, unknown>, finishReason: string | null = null) => ({ index: 0, delta: d, logprobs: null, finish_reason: finishReason });

  startSse(r.res, headers);
  if (step.keepAlive) r.res.write(": OPENROUTER PROCESSING\n\n");
  writeSse(r.res, chunk([delta({ role: "assistant", content: "", refusal: null })]));
  if (!(await writePieces(r.res, step, text, (content) => writeSse(r.res, chunk([delta({ content })]))))) return;
  if (step.mode === "stream_cut") return cutStream(r.res, step);
  if (step.mode === "stream_error") {
    writeSse(r.res, {
      error: {
        message: String(step.errorMessage ?? "The server had an error while processing your request. Sorry about that!"),
        type: String(step.errorType ?? "server_error"),
        param: null,
        code: (step.errorCode as string | undefined) ?? null,
      },
    });
    return r.res.end();
  }
  writeSse(r.res, chunk([delta({}, finish)]));
  if (includeUsage) writeSse(r.res, chunk([], usage));
  writeSse(r.res, "[DONE]");
  r.res.end();
}

// ---------------------------------------------------------------------------- images

async function images(r: FakeRequest) {
  const ctx = await begin(r);
  if (!ctx) return;
  const { step, model, headers } = ctx;
  const body = r.json ?? {};
  const prompt = String(body.prompt ?? "");
  if (!prompt) return sendError(r, 400, { message: "Missing required parameter: 'prompt'.", type: "invalid_request_error", param: "prompt", code: "missing_required_parameter" }, headers);
  const gptImage = model.startsWith("gpt-image");
  const b64 = gptImage || body.response_format === "b64_json";
  const n = num(body.n, 1);
  const data = Array.from({ length: n }, (_, i) => {
    const png = placeholderPng(`${prompt}#${i}`);
    const revised = typeof step.revisedPrompt === "string" ? step.revisedPrompt : model === "dall-e-3" || model.startsWith("dall-e-3") ? `A detailed rendering of ${prompt}` : undefined;
    if (b64) return { b64_json: Buffer.from(png).toString("base64"), ...(revised ? { revised_prompt: revised } : {}) };
    const fileId = fakeId("img_", 16);
    r.server.data.set(`openai:file:${fileId}`, png);
    return { url: `${r.server.url}/openai/files/${fileId}.png`, ...(revised ? { revised_prompt: revised } : {}) };
  });
  const out: Record<string, unknown> = { created: Math.floor(Date.now() / 1000), data };
  if (gptImage) {
    const input = step.mode === "zero_usage" ? 0 : estimateTokens(prompt);
    const output = step.mode === "zero_usage" ? 0 : 272 * n;
    const usage = mergeUsage({ input_tokens: input, input_tokens_details: { text_tokens: input, image_tokens: 0 }, output_tokens: output, total_tokens: 0 }, step.usage);
    out.usage = { ...usage, total_tokens: usage.input_tokens + usage.output_tokens };
    out.output_format = body.output_format ?? "png";
    out.size = body.size ?? "1024x1024";
    out.quality = body.quality ?? "medium";
  }
  sendJson(r.res, 200, out, headers);
}

function file(r: FakeRequest) {
  const png = r.server.data.get(`openai:file:${r.params[0].replace(/\.png$/, "")}`) as Uint8Array | undefined;
  if (!png) return sendJson(r.res, 404, { error: { message: "file not found or expired" } });
  r.res.writeHead(200, { "content-type": "image/png", "content-length": png.length });
  r.res.end(Buffer.from(png));
}

function placeholderPng(seed: string): Uint8Array {
  const d = createHash("sha256").update(seed).digest();
  return encodePng(16, 16, [d[0], d[1], d[2]], [d[3], d[4], d[5]]);
}

// ---------------------------------------------------------------------------- embeddings

async function embeddings(r: FakeRequest) {
  const ctx = await begin(r);
  if (!ctx) return;
  const { step, model, headers } = ctx;
  const body = r.json ?? {};
  const inputs: string[] = Array.isArray(body.input) ? body.input.map(String) : [String(body.input ?? "")];
  const dims = num(step.dimensions, num(body.dimensions, 8));
  const scripted = Array.isArray(step.vectors) ? (step.vectors as number[][]) : undefined;
  const base64 = body.encoding_format === "base64" && !step.ignoreEncoding;
  const data = inputs.map((text, index) => {
    const vector = scripted?.[index] ?? fakeVector(text, dims);
    return {
      object: "embedding",
      index,
      embedding: base64 ? Buffer.from(new Float32Array(vector).buffer).toString("base64") : vector,
    };
  });
  const tokens = step.mode === "zero_usage" ? 0 : inputs.reduce((n, s) => n + estimateTokens(s), 0);
  sendJson(r.res, 200, { object: "list", data, model, usage: { prompt_tokens: tokens, total_tokens: tokens } }, headers);
}

function fakeVector(text: string, dims: number): number[] {
  const d = createHash("sha256").update(text).digest();
  // Values float32 can hold exactly, so a test can compare decoded numbers with ===.
  return Array.from({ length: dims }, (_, i) => (d[i % d.length] - 128) / 128);
}

// ---------------------------------------------------------------------------- moderations

const MODERATION_CATEGORIES = [
  "harassment", "harassment/threatening", "hate", "hate/threatening", "illicit", "illicit/violent",
  "self-harm", "self-harm/instructions", "self-harm/intent", "sexual", "sexual/minors", "violence", "violence/graphic",
];

async function moderations(r: FakeRequest) {
  const ctx = await begin(r);
  if (!ctx) return;
  const { step, model, headers } = ctx;
  const raw = r.json?.input;
  const inputs: string[] = (Array.isArray(raw) ? raw : [raw]).map((i: unknown) =>
    typeof i === "string" ? i : typeof (i as { text?: unknown })?.text === "string" ? (i as { text: string }).text : ""
  );
  const scripted = Array.isArray(step.flagged) ? (step.flagged as boolean[]) : undefined;
  const results = inputs.map((text, i) => {
    const flagged = scripted?.[i] ?? text.includes(FLAG_WORD);
    const hit = flagged ? "violence" : undefined;
    return {
      flagged,
      categories: Object.fromEntries(MODERATION_CATEGORIES.map((c) => [c, c === hit])),
      category_scores: Object.fromEntries(MODERATION_CATEGORIES.map((c) => [c, c === hit ? 0.91 : 0.0001])),
      category_applied_input_types: Object.fromEntries(MODERATION_CATEGORIES.map((c) => [c, ["text"]])),
    };
  });
  sendJson(r.res, 200, { id: fakeId("modr-", 20), model: model || "omni-moderation-latest", results }, headers);
}

// ---------------------------------------------------------------------------- speech

async function speech(r: FakeRequest) {
  const ctx = await begin(r);
  if (!ctx) return;
  const { headers } = ctx;
  const body = r.json ?? {};
  const text = String(body.input ?? "");
  if (!text) return sendError(r, 400, { message: "Missing required parameter: 'input'.", type: "invalid_request_error", param: "input", code: "missing_required_parameter" }, headers);
  const seconds = Math.max(0.5, text.length / 15);
  const wav = body.response_format === "wav";
  const bytes = wav ? encodeWav(seconds, 440) : fakeMp3(Math.ceil(seconds * 38));
  // Speech is streamed back chunked, without a content-length.
  r.res.writeHead(200, { ...headers, "content-type": wav ? "audio/wav" : "audio/mpeg", "transfer-encoding": "chunked" });
  r.res.end(Buffer.from(bytes));
}

/** An ID3 header and `frames` silent MPEG-1 Layer III frames (128 kbit/s, 44.1 kHz: 417 bytes each). */
function fakeMp3(frames: number): Uint8Array {
  const id3 = [0x49, 0x44, 0x33, 4, 0, 0, 0, 0, 0, 0];
  const frame = new Uint8Array(417);
  frame.set([0xff, 0xfb, 0x90, 0x64]);
  const out = new Uint8Array(id3.length + frames * frame.length);
  out.set(id3);
  for (let i = 0; i < frames; i++) out.set(frame, id3.length + i * frame.length);
  return out;
}
