// The provider boundary of the AI gateway: normalized requests and results per modality, the
// adapter each provider implements, and the error classes the router acts on. Adapters speak
// their provider's wire format (with its official SDK where one exists, always maxRetries 0:
// the router is the only retry loop) and translate to and from these types.

export type Modality = "text" | "image" | "video" | "audio" | "embedding" | "moderation" | "vision";

export type ProviderKind = "openai" | "anthropic" | "replicate" | "stability" | "runway" | "did" | "local";

/** How an adapter reaches its provider; built by the gateway from ai.providers and the env. */
export interface ProviderConnection {
  /** ai.providers.id, e.g. "openai". */
  id: string;
  kind: ProviderKind;
  /** API root as the SDK wants it (e.g. https://api.openai.com/v1); null = the SDK's default. */
  baseUrl: string | null;
  /** The secret, read from the env var or Vault secret named by ai.providers.api_key_secret. */
  apiKey: string;
  /** Per-call timeout; a timeout is ProviderError("timeout"). */
  timeoutMs: number;
  /** Injectable for tests; defaults to globalThis.fetch. */
  fetch?: typeof fetch;
}

// ---------------------------------------------------------------------------- text

export interface ChatMessage {
  role: "system" | "user" | "assistant";
  content: string;
}

export interface ChatRequest {
  /** The provider's own model name (ai.deployments.provider_model). */
  model: string;
  messages: ChatMessage[];
  /** Always set: the gateway reserves credits for exactly this many output tokens. */
  maxTokens: number;
  temperature?: number;
  /** "json" asks for a JSON object (OpenAI response_format, Anthropic via the system prompt). */
  responseFormat?: "text" | "json";
  /** Our idempotency key for this attempt; sent where the provider supports one. */
  idempotencyKey?: string;
}

/** Token counts as the provider reported them. Cached and reasoning tokens are parts of input and output. */
export interface TokenUsage {
  inputTokens: number;
  outputTokens: number;
  /** Included in inputTokens (OpenAI prompt_tokens_details.cached_tokens, Anthropic cache_read_input_tokens). */
  cachedInputTokens?: number;
  /** Included in inputTokens: tokens written to the prompt cache (Anthropic cache_creation_input_tokens, priced above plain input). */
  cacheWriteInputTokens?: number;
  /** Included in outputTokens (OpenAI completion_tokens_details.reasoning_tokens). */
  reasoningTokens?: number;
}

export type FinishReason = "stop" | "length" | "content_filter" | "tool_calls";

export interface ChatResult {
  text: string;
  finishReason: FinishReason;
  usage: TokenUsage;
  providerRequestId?: string;
  /** The model the provider says answered (may carry a date suffix). */
  providerModel?: string;
}

/**
 * A stream as the router consumes it. `start` comes first when the provider reports input
 * tokens up front (Anthropic message_start); `usage` may come at any point with the counts so
 * far (cumulative); `done` ends a complete stream. A stream that ends without `done` was cut;
 * one that throws failed (ProviderError), possibly after some deltas.
 */
export type ChatStreamEvent =
  | { type: "start"; providerRequestId?: string; inputTokens?: number; providerModel?: string }
  | { type: "delta"; text: string }
  | { type: "usage"; usage: Partial<TokenUsage> }
  | { type: "done"; finishReason: FinishReason; usage?: TokenUsage };

// ---------------------------------------------------------------------------- images, embeddings, moderation, speech

export interface ImageRequest {
  model: string;
  prompt: string;
  n: number;
  /** e.g. "1024x1024"; also the price variant. */
  size: string;
  /** e.g. "standard" | "hd" | "low" | "medium" | "high". */
  quality?: string;
  style?: string;
  negativePrompt?: string;
  idempotencyKey?: string;
}

export interface GeneratedFile {
  /** The bytes, when the provider returned them inline (b64_json, image/* bodies). */
  bytes?: Uint8Array;
  /** A provider URL to fetch them from (expires: the gateway copies it to Storage at once). */
  url?: string;
  mimeType: string;
}

export interface ImageResult {
  images: GeneratedFile[];
  /** Prompt rewritten by the provider, if any. */
  revisedPrompt?: string;
  /** Token usage, for providers that bill images by tokens (gpt-image-1). */
  usage?: TokenUsage;
  /** True when the provider filtered the output on content policy but still answered 200 (Stability). */
  filtered?: boolean;
  providerRequestId?: string;
}

export interface EmbeddingRequest {
  model: string;
  input: string[];
  dimensions?: number;
}

export interface EmbeddingResult {
  vectors: number[][];
  usage: { inputTokens: number };
  providerRequestId?: string;
}

export interface ModerationRequest {
  model: string;
  input: string[];
}

export interface ModerationResult {
  results: { flagged: boolean; categories: Record<string, boolean>; scores: Record<string, number> }[];
  providerRequestId?: string;
}

export interface SpeechRequest {
  model: string;
  text: string;
  voice: string;
  /** BCP 47, e.g. "en-IN". */
  language?: string;
  format?: "mp3" | "wav";
}

export interface SpeechResult {
  file: GeneratedFile;
  /** Length of the audio, when known. */
  seconds?: number;
  characters: number;
  providerRequestId?: string;
}

// ---------------------------------------------------------------------------- vision

/** A face check of one image (the talking-video module's pre-check before anything is paid for). */
export interface FaceRequest {
  model: string;
  /** A short-lived URL the provider can fetch the image from (a signed Storage URL). */
  imageUrl: string;
  /** The same image's bytes, already fetched by the gateway, for providers that take them inline. */
  image: Uint8Array;
}

export interface FaceResult {
  /** Faces found, largest first; boxes are fractions (0..1) of the image's width and height. */
  faces: { x: number; y: number; width: number; height: number; score: number }[];
  providerRequestId?: string;
}

// ---------------------------------------------------------------------------- async tasks (video, talking photo, Replicate)

export interface AsyncSubmitRequest {
  model: string;
  /**
   * Normalized input: `prompt`, `image_url` (a URL the provider can fetch, e.g. a signed
   * Storage URL), `audio_url`, `script` ({ text, voice, language }), `duration_seconds`,
   * `resolution` ("720p" | "1080p"), `ratio` ("16:9" | "9:16" | "1:1"), plus provider-specific keys.
   */
  input: Record<string, unknown>;
  /** Ours, unique per attempt. Lets the adapter find the task again if the submit's answer was lost. */
  idempotencyKey: string;
  /** Where the provider should call back, if it supports webhooks. */
  webhookUrl?: string;
}

export type AsyncTaskStatus = "queued" | "running" | "succeeded" | "failed" | "refused" | "canceled";

export interface AsyncTask {
  providerTaskId: string;
  status: AsyncTaskStatus;
  /** 0..1 while running, when the provider reports it. */
  progress?: number;
  outputs?: GeneratedFile[];
  /** Seconds of video or audio the provider produced (what per-second pricing settles on). */
  durationSeconds?: number;
  /** Billable compute seconds (Replicate metrics.predict_time). */
  computeSeconds?: number;
  /** On failed/refused: the provider's code and message, and the class the router acts on. */
  error?: { code: string; message: string; errorClass: ErrorClass };
}

// ---------------------------------------------------------------------------- the adapter

export interface ProviderAdapter {
  readonly kind: ProviderKind;
  chat?(req: ChatRequest, signal?: AbortSignal): Promise<ChatResult>;
  chatStream?(req: ChatRequest, signal?: AbortSignal): AsyncIterable<ChatStreamEvent>;
  image?(req: ImageRequest, signal?: AbortSignal): Promise<ImageResult>;
  embed?(req: EmbeddingRequest, signal?: AbortSignal): Promise<EmbeddingResult>;
  moderate?(req: ModerationRequest, signal?: AbortSignal): Promise<ModerationResult>;
  speech?(req: SpeechRequest, signal?: AbortSignal): Promise<SpeechResult>;
  /** Finds faces in an image; a refusal (content policy) is a ProviderError("content_policy"). */
  detectFaces?(req: FaceRequest, signal?: AbortSignal): Promise<FaceResult>;
  /** Starts an async task. Throws ProviderError("timeout") when the answer did not arrive in time. */
  submit?(req: AsyncSubmitRequest, signal?: AbortSignal): Promise<AsyncTask>;
  /** Reads a task's state. */
  get?(providerTaskId: string, signal?: AbortSignal): Promise<AsyncTask>;
  /**
   * Finds the task a submit with this idempotency key created, or null when the provider
   * confirms there is none. How is provider-specific (a field we set on submit and can list by).
   */
  findByIdempotencyKey?(key: string, signal?: AbortSignal): Promise<AsyncTask | null>;
  /** Asks the provider to stop a task, where it can. */
  cancel?(providerTaskId: string, signal?: AbortSignal): Promise<void>;
  /** Asks the provider to delete its copy of a task's input and output (GDPR erasure). */
  delete?(providerTaskId: string, signal?: AbortSignal): Promise<void>;
}

// ---------------------------------------------------------------------------- errors

/**
 * What went wrong, as the router acts on it:
 * - rate_limit, overloaded, server, timeout: retry with backoff (honour retryAfterMs), then fall back
 * - context_window: skip to deployments with a larger context window
 * - content_policy: never retry; fall back only to deployments flagged policy_alternative
 * - auth, bad_request, not_found: terminal for that deployment
 */
export type ErrorClass =
  | "rate_limit"
  | "overloaded"
  | "server"
  | "timeout"
  | "context_window"
  | "content_policy"
  | "auth"
  | "bad_request"
  | "not_found";

export class ProviderError extends Error {
  constructor(
    readonly errorClass: ErrorClass,
    message: string,
    readonly details: {
      /** The provider's HTTP status, if there was a response. */
      status?: number;
      /** From retry-after-ms / retry-after, when the provider sent one. */
      retryAfterMs?: number;
      /** The provider's own error code (e.g. context_length_exceeded, SAFETY.INPUT.TEXT). */
      code?: string;
      providerRequestId?: string;
      /** What the provider billed despite the failure (input tokens of a failed call, a cut stream). */
      billedUsage?: TokenUsage;
    } = {},
  ) {
    super(message);
    this.name = "ProviderError";
  }
}
