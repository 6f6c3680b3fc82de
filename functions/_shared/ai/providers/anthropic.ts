// Anthropic Messages through the official SDK, with maxRetries 0 (the router is the only retry
// loop). Streams report the exact input tokens at message_start, so a stream that fails or is
// cut later still carries what Anthropic billed.
import Anthropic, { APIConnectionError, APIConnectionTimeoutError, APIError, APIUserAbortError } from "@anthropic-ai/sdk";
import type { ChatRequest, ChatResult, ErrorClass, FinishReason, ProviderAdapter, ProviderConnection, TokenUsage } from "../types.ts";
import { classifyStatus, idleTimeout, isTransportDrop } from "./common.ts";
import { sdkClientOptions, sdkErrorMapper } from "./sdk.ts";

/** Anthropic has no JSON mode for plain text; the instruction goes into the system prompt. */
const JSON_INSTRUCTION = "Respond with a single valid JSON object and nothing else: no prose, no code fences.";

export function createAnthropicAdapter(conn: ProviderConnection): ProviderAdapter {
  const client = new Anthropic(sdkClientOptions(conn));

  function params(req: ChatRequest): Anthropic.MessageCreateParamsNonStreaming {
    // Anthropic takes the system prompt apart from the turns.
    const system = req.messages.filter((m) => m.role === "system").map((m) => m.content);
    if (req.responseFormat === "json") system.push(JSON_INSTRUCTION);
    return {
      model: req.model,
      max_tokens: req.maxTokens,
      messages: req.messages
        .filter((m) => m.role !== "system")
        .map((m) => ({ role: m.role as "user" | "assistant", content: m.content })),
      ...(system.length ? { system: system.join("\n\n") } : {}),
      ...(req.temperature === undefined ? {} : { temperature: req.temperature }),
    };
  }

  return {
    kind: "anthropic",

    async chat(req, signal): Promise<ChatResult> {
      try {
        const { data, request_id } = await client.messages.create(params(req), { signal }).withResponse();
        return {
          text: data.content.map((b) => (b.type === "text" ? b.text : "")).join(""),
          finishReason: finishReason(data.stop_reason),
          usage: usageOf(data.usage),
          providerRequestId: request_id ?? undefined,
          providerModel: data.model,
        };
      } catch (err) {
        throw toProviderError(err);
      }
    },

    async *chatStream(req, signal) {
      let stream: AsyncIterable<Anthropic.RawMessageStreamEvent> & { controller: AbortController };
      let requestId: string | undefined;
      try {
        const { data, request_id } = await client.messages.create({ ...params(req), stream: true }, { signal }).withResponse();
        stream = data;
        requestId = request_id ?? undefined;
      } catch (err) {
        throw toProviderError(err);
      }

      // What Anthropic has billed so far: input from message_start, output as message_delta reports it.
      let usage: TokenUsage | undefined;
      let finish: FinishReason = "stop";
      try {
        for await (const event of idleTimeout(stream, conn.timeoutMs, () => stream.controller.abort(), () => usage)) {
          switch (event.type) {
            case "message_start":
              usage = usageOf(event.message.usage);
              yield { type: "start", providerRequestId: requestId, inputTokens: usage.inputTokens, providerModel: event.message.model };
              break;
            case "content_block_delta":
              // Thinking and tool-input deltas are not answer text.
              if (event.delta.type === "text_delta" && event.delta.text) yield { type: "delta", text: event.delta.text };
              break;
            case "message_delta": {
              // Counts here are cumulative; input fields are null unless they changed.
              const u = event.usage;
              usage = usageOf({
                input_tokens: u.input_tokens ?? rawInput(usage),
                cache_read_input_tokens: u.cache_read_input_tokens ?? usage?.cachedInputTokens ?? null,
                cache_creation_input_tokens: u.cache_creation_input_tokens ?? usage?.cacheWriteInputTokens ?? null,
                output_tokens: u.output_tokens,
                output_tokens_details: u.output_tokens_details,
              });
              if (event.delta.stop_reason) finish = finishReason(event.delta.stop_reason);
              yield { type: "usage", usage: { ...usage } };
              break;
            }
            case "message_stop":
              if (usage) yield { type: "done", finishReason: finish, usage };
              return;
          }
        }
      } catch (err) {
        // The connection dropped: a cut stream (the router keeps message_start's input tokens).
        if (isTransportDrop(err)) return;
        throw toProviderError(err, usage, requestId);
      }
    },
  };
}

// ---------------------------------------------------------------------------- mapping

function finishReason(reason: string | null | undefined): FinishReason {
  switch (reason) {
    case "max_tokens":
    case "model_context_window_exceeded":
      return "length";
    case "refusal":
      return "content_filter";
    case "tool_use":
      return "tool_calls";
    default: // end_turn, stop_sequence, pause_turn
      return "stop";
  }
}

interface WireUsage {
  input_tokens: number | null;
  output_tokens: number;
  cache_read_input_tokens?: number | null;
  cache_creation_input_tokens?: number | null;
  output_tokens_details?: { thinking_tokens?: number } | null;
}

/** Anthropic's input_tokens excludes cache reads and writes; ours includes them (types.ts). */
function usageOf(u: WireUsage): TokenUsage {
  const read = u.cache_read_input_tokens ?? 0;
  const written = u.cache_creation_input_tokens ?? 0;
  const out: TokenUsage = { inputTokens: (u.input_tokens ?? 0) + read + written, outputTokens: u.output_tokens };
  if (u.cache_read_input_tokens != null) out.cachedInputTokens = read;
  if (u.cache_creation_input_tokens != null) out.cacheWriteInputTokens = written;
  const thinking = u.output_tokens_details?.thinking_tokens;
  if (typeof thinking === "number") out.reasoningTokens = thinking;
  return out;
}

function rawInput(u: TokenUsage | undefined): number {
  return u ? u.inputTokens - (u.cachedInputTokens ?? 0) - (u.cacheWriteInputTokens ?? 0) : 0;
}

/**
 * Status first (400 "prompt is too long" → context_window, 401/403 auth, 404 not_found,
 * 429 rate_limit, 500 server, 529 overloaded; see classifyStatus), except that 429s for a
 * spend limit are auth: the account is capped, waiting will not help. An `event: error` inside
 * a 200 stream has no status: its error.type decides.
 */
export const toProviderError = sdkErrorMapper({ APIError, APIConnectionError, APIConnectionTimeoutError, APIUserAbortError }, (err, streamRequestId) => {
  const type = err.type ?? undefined;
  const message = err.apiMessage ?? err.message;
  let errorClass: ErrorClass;
  if ((err.status === 400 || type === "invalid_request_error") && /prompt is too long|context window|too many (input )?tokens/i.test(message)) {
    errorClass = "context_window";
  } else if (err.status === 429 && /spend_limit/.test(err.errorCode ?? "")) errorClass = "auth";
  else if (err.status !== undefined) errorClass = classifyStatus(err.status);
  else errorClass = classifyType(type);
  const body = err.error as { request_id?: string } | undefined;
  return { errorClass, message, code: err.errorCode ?? type, providerRequestId: err.requestID ?? body?.request_id ?? streamRequestId };
});

function classifyType(type: string | undefined): ErrorClass {
  switch (type) {
    case "overloaded_error":
      return "overloaded";
    case "rate_limit_error":
      return "rate_limit";
    case "timeout_error":
      return "timeout";
    case "invalid_request_error":
    case "request_too_large":
      return "bad_request";
    case "authentication_error":
    case "permission_error":
    case "billing_error":
      return "auth";
    case "not_found_error":
      return "not_found";
    default: // api_error and anything new
      return "server";
  }
}
