// Fake Anthropic Messages API under /anthropic (the SDK's baseURL; it appends /v1/messages):
// JSON answers and the named-event SSE stream, error bodies {"type":"error",...} with a
// request-id header. Any key is accepted; a missing x-api-key (or Bearer token) is a 401 and a
// missing anthropic-version a 400, as on the real API.
//
// Script key: "anthropic:<model>". Modes (options in brackets; every mode takes delayMs and requestId):
//   ok              answer; streams when the request says stream [text, usage, stopReason, chunks, chunkDelayMs]
//   slow            ok after delayMs (default 1000)
//   zero_usage      ok with every usage count an explicit 0
//   content_policy  200 with stop_reason "refusal" (how Claude declines; there is no policy 400)
//   rate_limit      429 rate_limit_error [retryAfter seconds|date (default 1, null omits), retryAfterMs]
//   overloaded      529 overloaded_error
//   server_error    500 api_error
//   timeout         never answers
//   context_window  400 "prompt is too long: 210266 tokens > 200000 maximum"
//   auth            401 authentication_error
//   not_found       404 not_found_error
//   bad_request     400 invalid_request_error
//   error           any status [status, type, message, errorCode (→ error.details.error_code)]
//   stream_cut      stream: message_start + `chunks` text deltas (default 2), then the socket is
//                   destroyed [cutMode "end": close cleanly]; never message_delta/message_stop.
//                   Non-stream: the socket is destroyed before any answer
//   stream_error    stream: `chunks` deltas then `event: error` [errorType (default overloaded_error), errorMessage];
//                   non-stream: 500
// `usage` is merged over the wire usage object: input_tokens, output_tokens,
// cache_read_input_tokens, cache_creation_input_tokens, output_tokens_details.thinking_tokens.
import { hang, sendJson, type FakeRequest, type FakeRoute, type Step } from "./lib/fake-server.ts";
import { contentText, cutStream, estimateTokens, fakeId, mergeUsage, num, retryHeaders, startSse, stepDelay, writePieces, writeSse } from "./lib/ai-wire.ts";

export const anthropicRoutes: FakeRoute[] = [{ method: "POST", path: /^\/anthropic\/v1\/messages$/, handle: messages }];

function baseHeaders(requestId: string): Record<string, string> {
  const reset = new Date(Date.now() + 60_000).toISOString().replace(/\.\d+Z$/, "Z");
  return {
    "request-id": requestId,
    "anthropic-organization-id": "00000000-0000-4000-8000-000000000000",
    "anthropic-ratelimit-requests-limit": "4000",
    "anthropic-ratelimit-requests-remaining": "3999",
    "anthropic-ratelimit-requests-reset": reset,
    "anthropic-ratelimit-input-tokens-limit": "400000",
    "anthropic-ratelimit-input-tokens-remaining": "399000",
    "anthropic-ratelimit-input-tokens-reset": reset,
    "anthropic-ratelimit-output-tokens-limit": "80000",
    "anthropic-ratelimit-output-tokens-remaining": "80000",
    "anthropic-ratelimit-output-tokens-reset": reset,
  };
}

function sendError(r: FakeRequest, status: number, type: string, message: string, headers: Record<string, string>, errorCode?: string) {
  sendJson(r.res, status, {
    type: "error",
    error: { type, message, ...(errorCode ? { details: { error_code: errorCode } } : {}) },
    request_id: headers["request-id"],
  }, headers);
}

async function messages(r: FakeRequest) {
  const body = r.json ?? {};
  const model = String(body.model ?? "");
  const key = `anthropic:${model}`;
  const firstId = fakeId("req_011C", 20);
  if (!r.req.headers["x-api-key"] && !/^Bearer\s+\S+/.test(r.req.headers.authorization ?? "")) {
    r.record(key);
    return sendError(r, 401, "authentication_error", "x-api-key header is required", baseHeaders(firstId));
  }
  if (!r.req.headers["anthropic-version"]) {
    r.record(key);
    return sendError(r, 400, "invalid_request_error", "anthropic-version: header is required", baseHeaders(firstId));
  }
  const step = r.take(key);
  const headers = baseHeaders(typeof step.requestId === "string" ? step.requestId : firstId);
  if (step.mode === "timeout") return hang(r.res);
  await stepDelay(step);

  const stream = body.stream === true;
  switch (step.mode) {
    case "ok":
    case "slow":
    case "zero_usage":
    case "content_policy":
      break;
    case "stream_cut":
    case "stream_error":
      if (stream) break;
      if (step.mode === "stream_cut") {
        r.res.socket?.destroy();
        return;
      }
      return sendError(r, 500, "api_error", "Internal server error", headers);
    case "rate_limit":
      return sendError(r, 429, "rate_limit_error", "This request would exceed your account's rate limit. Please try again later.", { ...headers, ...retryHeaders(step, 1) });
    case "overloaded":
      return sendError(r, 529, "overloaded_error", "Overloaded", headers);
    case "server_error":
      return sendError(r, 500, "api_error", "Internal server error", headers);
    case "context_window":
      return sendError(r, 400, "invalid_request_error", "prompt is too long: 210266 tokens > 200000 maximum", headers);
    case "auth":
      return sendError(r, 401, "authentication_error", "invalid x-api-key", headers);
    case "not_found":
      return sendError(r, 404, "not_found_error", `model: ${model}`, headers);
    case "bad_request":
      return sendError(r, 400, "invalid_request_error", String(step.message ?? "max_tokens: Field required"), headers);
    case "error":
      return sendError(r, num(step.status, 500), String(step.type ?? "api_error"), String(step.message ?? "scripted error"), { ...headers, ...retryHeaders(step, null) }, step.errorCode as string | undefined);
    default:
      return sendError(r, 400, "invalid_request_error", `fake Anthropic: unknown mode ${step.mode}`, headers);
  }

  const refusal = step.mode === "content_policy";
  const text = typeof step.text === "string" ? step.text : refusal ? "" : `This is a fake reply from ${model}.`;
  const stopReason = refusal ? "refusal" : String(step.stopReason ?? "end_turn");
  const usage = wireUsage(step, body, text);
  const id = fakeId("msg_01", 22);
  if (!stream) {
    return sendJson(r.res, 200, {
      id,
      type: "message",
      role: "assistant",
      model,
      content: text ? [{ type: "text", text }] : [],
      stop_reason: stopReason,
      stop_sequence: null,
      usage,
    }, headers);
  }
  await streamMessage(r, step, { id, model, text, stopReason, usage, headers });
}

function wireUsage(step: Step, body: { system?: unknown; messages?: unknown }, text: string) {
  const zero = step.mode === "zero_usage";
  const prompt = [contentText(body.system), ...(Array.isArray(body.messages) ? body.messages.map((m: { content?: unknown }) => contentText(m?.content)) : [])].join("\n");
  return mergeUsage({
    input_tokens: zero ? 0 : estimateTokens(prompt),
    cache_creation_input_tokens: 0,
    cache_read_input_tokens: 0,
    output_tokens: zero ? 0 : estimateTokens(text),
    service_tier: "standard",
  } as Record<string, unknown>, step.usage);
}

async function streamMessage(
  r: FakeRequest,
  step: Step,
  m: { id: string; model: string; text: string; stopReason: string; usage: Record<string, unknown>; headers: Record<string, string> },
) {
  const { output_tokens, ...startUsage } = m.usage;
  const send = (event: string, data: Record<string, unknown>) => writeSse(r.res, { type: event, ...data }, event);

  startSse(r.res, m.headers);
  // Input tokens are final here; output_tokens is a placeholder until message_delta.
  send("message_start", {
    message: { id: m.id, type: "message", role: "assistant", model: m.model, content: [], stop_reason: null, stop_sequence: null, usage: { ...startUsage, output_tokens: step.mode === "zero_usage" ? 0 : 1 } },
  });
  send("content_block_start", { index: 0, content_block: { type: "text", text: "" } });
  send("ping", {});
  if (!(await writePieces(r.res, step, m.text, (text) => send("content_block_delta", { index: 0, delta: { type: "text_delta", text } })))) return;
  if (step.mode === "stream_cut") return cutStream(r.res, step);
  if (step.mode === "stream_error") {
    writeSse(r.res, { type: "error", error: { type: String(step.errorType ?? "overloaded_error"), message: String(step.errorMessage ?? "Overloaded") } }, "error");
    return r.res.end();
  }
  send("content_block_stop", { index: 0 });
  // Cumulative output count for the whole message.
  send("message_delta", { delta: { stop_reason: m.stopReason, stop_sequence: null }, usage: { output_tokens } });
  send("message_stop", {});
  r.res.end();
}
