// OpenAI, and any server that speaks its API at another base URL (vLLM, Ollama, LM Studio,
// Azure-style proxies), through the official SDK. maxRetries is 0: the router is the only
// retry loop, and an SDK-internal retry would be a second billed call inside one attempt.
import OpenAI from "openai";
import {
  type ChatRequest,
  type ChatResult,
  type ChatStreamEvent,
  type EmbeddingRequest,
  type EmbeddingResult,
  type FinishReason,
  type ImageResult,
  type ModerationRequest,
  type ModerationResult,
  type ProviderAdapter,
  type ProviderConnection,
  ProviderError,
  type SpeechRequest,
  type SpeechResult,
  type TokenUsage,
} from "../types.ts";
import { fromBase64, idleTimeout, isTransportDrop } from "./common.ts";
import { toProviderError } from "./openai-errors.ts";
import { sdkClientOptions } from "./sdk.ts";

export function createOpenAIAdapter(conn: ProviderConnection): ProviderAdapter {
  const client = new OpenAI(sdkClientOptions(conn));
  // Reasoning models reject max_tokens; compatible servers often only know max_tokens.
  const official = conn.baseUrl === null || /(^|\.)openai\.com$/i.test(hostOf(conn.baseUrl));

  function chatParams(req: ChatRequest): Omit<OpenAI.ChatCompletionCreateParamsNonStreaming, "stream"> {
    return {
      model: req.model,
      messages: req.messages.map((m) => ({ role: m.role, content: m.content })),
      ...(official ? { max_completion_tokens: req.maxTokens } : { max_tokens: req.maxTokens }),
      ...(req.temperature === undefined ? {} : { temperature: req.temperature }),
      ...(req.responseFormat === "json" ? { response_format: { type: "json_object" as const } } : {}),
    };
  }

  return {
    kind: "openai",

    async chat(req, signal) {
      try {
        const { data, request_id } = await client.chat.completions
          .create({ ...chatParams(req), stream: false }, { signal })
          .withResponse();
        const choice = data.choices[0];
        return {
          text: choice?.message?.content ?? "",
          finishReason: finishReason(choice?.finish_reason),
          usage: usageOf(data.usage),
          providerRequestId: request_id ?? undefined,
          providerModel: data.model,
        } satisfies ChatResult;
      } catch (err) {
        throw toProviderError(err);
      }
    },

    async *chatStream(req, signal) {
      let stream: AsyncIterable<OpenAI.ChatCompletionChunk> & { controller: AbortController };
      let requestId: string | undefined;
      try {
        const { data, request_id } = await client.chat.completions
          .create({ ...chatParams(req), stream: true, stream_options: { include_usage: true } }, { signal })
          .withResponse();
        stream = data;
        requestId = request_id ?? undefined;
      } catch (err) {
        throw toProviderError(err);
      }

      let started = false;
      let finish: FinishReason | undefined;
      let usage: TokenUsage | undefined;
      try {
        for await (const chunk of idleTimeout(stream, conn.timeoutMs, () => stream.controller.abort(), () => usage)) {
          if (!started) {
            started = true;
            yield { type: "start", providerRequestId: requestId, providerModel: chunk.model };
          }
          for (const choice of chunk.choices) {
            if (choice.index !== 0) continue;
            if (choice.delta?.content) yield { type: "delta", text: choice.delta.content };
            if (choice.finish_reason) finish = finishReason(choice.finish_reason);
          }
          if (chunk.usage) {
            usage = usageOf(chunk.usage);
            yield { type: "usage", usage: { ...usage } };
          }
        }
      } catch (err) {
        // The connection dropped under us: that is a cut stream, not a failure.
        if (isTransportDrop(err)) return;
        throw toProviderError(err, usage, requestId);
      }
      // include_usage puts the usage chunk right before [DONE]: without it the stream was cut
      // (or the server ignores stream_options, and we count it as cut: the router bills from
      // the streamed text either way).
      if (finish && usage) yield { type: "done", finishReason: finish, usage } satisfies ChatStreamEvent;
    },

    async image(req, signal): Promise<ImageResult> {
      try {
        const { data, request_id } = await client.images
          .generate(
            {
              model: req.model,
              prompt: req.prompt,
              n: req.n,
              size: req.size,
              ...(req.quality ? { quality: req.quality as "standard" } : {}),
              ...(req.style ? { style: req.style as "vivid" } : {}),
            },
            { signal },
          )
          .withResponse();
        // gpt-image-* answer b64_json in the format asked for (png by default); dall-e answers
        // URLs that expire after an hour (the gateway copies them to Storage at once).
        const mimeType = `image/${data.output_format ?? "png"}`;
        const images = (data.data ?? []).map((img) =>
          img.b64_json ? { bytes: fromBase64(img.b64_json), mimeType } : { url: img.url ?? undefined, mimeType }
        );
        if (images.length === 0) throw new ProviderError("server", "the provider returned no images", { providerRequestId: request_id ?? undefined });
        const u = data.usage;
        return {
          images,
          revisedPrompt: data.data?.[0]?.revised_prompt ?? undefined,
          usage: u
            ? {
              inputTokens: u.input_tokens,
              outputTokens: u.output_tokens,
              ...(u.input_tokens_details && "cached_tokens" in u.input_tokens_details
                ? { cachedInputTokens: (u.input_tokens_details as { cached_tokens?: number }).cached_tokens }
                : {}),
            }
            : undefined,
          providerRequestId: request_id ?? undefined,
        };
      } catch (err) {
        throw toProviderError(err);
      }
    },

    async embed(req: EmbeddingRequest, signal): Promise<EmbeddingResult> {
      try {
        // Ask for base64 explicitly (a quarter of the JSON size) and decode it ourselves, so the
        // result does not depend on the SDK's decoding; servers that ignore encoding_format
        // answer float arrays, which pass through.
        const { data, request_id } = await client.embeddings
          .create(
            {
              model: req.model,
              input: req.input,
              encoding_format: "base64",
              ...(req.dimensions ? { dimensions: req.dimensions } : {}),
            },
            { signal },
          )
          .withResponse();
        const rows = [...data.data].sort((a, b) => a.index - b.index);
        return {
          vectors: rows.map((r) => decodeEmbedding(r.embedding as unknown)),
          usage: { inputTokens: data.usage?.prompt_tokens ?? 0 },
          providerRequestId: request_id ?? undefined,
        };
      } catch (err) {
        throw toProviderError(err);
      }
    },

    async moderate(req: ModerationRequest, signal): Promise<ModerationResult> {
      try {
        const { data, request_id } = await client.moderations
          .create({ model: req.model, input: req.input }, { signal })
          .withResponse();
        return {
          results: data.results.map((r) => ({
            flagged: r.flagged,
            categories: { ...(r.categories as unknown as Record<string, boolean>) },
            scores: { ...(r.category_scores as unknown as Record<string, number>) },
          })),
          providerRequestId: request_id ?? undefined,
        };
      } catch (err) {
        throw toProviderError(err);
      }
    },

    async speech(req: SpeechRequest, signal): Promise<SpeechResult> {
      const format = req.format ?? "mp3";
      try {
        const { data, request_id } = await client.audio.speech
          .create({ model: req.model, voice: req.voice, input: req.text, response_format: format }, { signal })
          .withResponse();
        const bytes = new Uint8Array(await data.arrayBuffer());
        return {
          file: { bytes, mimeType: format === "wav" ? "audio/wav" : "audio/mpeg" },
          seconds: format === "wav" ? wavSeconds(bytes) : undefined,
          characters: [...req.text].length,
          providerRequestId: request_id ?? undefined,
        };
      } catch (err) {
        throw toProviderError(err);
      }
    },
  };
}

// ---------------------------------------------------------------------------- mapping

function hostOf(url: string): string {
  try {
    return new URL(url).hostname;
  } catch {
    return "";
  }
}

function finishReason(reason: string | null | undefined): FinishReason {
  switch (reason) {
    case "length":
      return "length";
    case "content_filter":
      return "content_filter";
    case "tool_calls":
    case "function_call":
      return "tool_calls";
    default:
      return "stop";
  }
}

/** cached_tokens and cache_write_tokens are parts of prompt_tokens, reasoning_tokens of completion_tokens. */
function usageOf(u: OpenAI.CompletionUsage | null | undefined): TokenUsage {
  const out: TokenUsage = { inputTokens: u?.prompt_tokens ?? 0, outputTokens: u?.completion_tokens ?? 0 };
  const cached = u?.prompt_tokens_details?.cached_tokens;
  const written = u?.prompt_tokens_details?.cache_write_tokens;
  const reasoning = u?.completion_tokens_details?.reasoning_tokens;
  if (typeof cached === "number") out.cachedInputTokens = cached;
  if (typeof written === "number") out.cacheWriteInputTokens = written;
  if (typeof reasoning === "number") out.reasoningTokens = reasoning;
  return out;
}

/** A base64 string of little-endian float32s (encoding_format "base64"), or a plain array. */
export function decodeEmbedding(value: unknown): number[] {
  if (Array.isArray(value)) return value.map(Number);
  if (typeof value !== "string") throw new ProviderError("server", "embedding is neither an array nor base64");
  const bytes = fromBase64(value);
  if (bytes.length % 4 !== 0) throw new ProviderError("server", "base64 embedding is not a whole number of float32s");
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const out = new Array<number>(bytes.length / 4);
  for (let i = 0; i < out.length; i++) out[i] = view.getFloat32(i * 4, true);
  return out;
}

/** Duration of a PCM WAV from its fmt byte rate and data chunk size. */
function wavSeconds(b: Uint8Array): number | undefined {
  if (b.length < 44 || String.fromCharCode(...b.subarray(0, 4)) !== "RIFF") return undefined;
  const v = new DataView(b.buffer, b.byteOffset, b.byteLength);
  let byteRate = 0;
  for (let off = 12; off + 8 <= b.length;) {
    const id = String.fromCharCode(...b.subarray(off, off + 4));
    const size = v.getUint32(off + 4, true);
    if (id === "fmt ") byteRate = v.getUint32(off + 16, true);
    // Streamed WAVs carry 0xFFFFFFFF as the data size: measure to the end instead.
    if (id === "data") return byteRate ? Math.min(size, b.length - off - 8) / byteRate : undefined;
    off += 8 + size + (size % 2);
  }
  return undefined;
}
