// One provider call per synchronous modality, from a job's stored input to the normalized
// request, and from the result to units (what is priced) and the job's output.
import { estimatedTokens, type InputOf } from "./inputs.ts";
import { bytesOf, signedUrlFor, type StorageConfig, storeOutputs } from "./outputs.ts";
import { tokenUnits } from "./pricing.ts";
import type { CallOutcome } from "./execute.ts";
import { OutputStoreError, toProviderError } from "./execute.ts";
import type { Candidate } from "./route.ts";
import type { ChatMessage, ChatStreamEvent, ProviderAdapter, TokenUsage } from "./types.ts";
import { ProviderError } from "./types.ts";

export function messagesOf(input: InputOf<"text">): ChatMessage[] {
  const messages: ChatMessage[] = [];
  if (input.system) messages.push({ role: "system", content: input.system });
  if (input.messages) messages.push(...input.messages);
  if (input.prompt) messages.push({ role: "user", content: input.prompt });
  return messages;
}

function unsupported(c: Candidate, what: string): never {
  throw new ProviderError("bad_request", `deployment ${c.deployment_id} cannot ${what}`);
}

/**
 * Text, streamed where the adapter can so that progress is real (tokens so far over
 * max_tokens). A stream that ends without `done` was cut: the attempt fails, billed for what
 * the provider counted, and the router retries or falls back (no client has seen any of it).
 */
export async function textCall(
  adapter: ProviderAdapter,
  c: Candidate,
  input: InputOf<"text">,
  onProgress: (fraction: number) => void,
): Promise<CallOutcome<{ text: string; finish_reason: string; usage: TokenUsage; model: string }>> {
  const req = {
    model: c.provider_model,
    messages: messagesOf(input),
    maxTokens: Math.min(input.max_tokens, c.max_output ?? input.max_tokens),
    temperature: input.temperature,
    responseFormat: input.response_format,
  };
  if (!adapter.chatStream) {
    if (!adapter.chat) unsupported(c, "chat");
    const r = await adapter.chat(req);
    return { value: { text: r.text, finish_reason: r.finishReason, usage: r.usage, model: c.model_id }, units: tokenUnits(r.usage), providerRequestId: r.providerRequestId };
  }
  let text = "";
  let requestId: string | undefined;
  let usage: Partial<TokenUsage> = {};
  let done: Extract<ChatStreamEvent, { type: "done" }> | undefined;
  // Without the provider's count (OpenAI reports usage only at the end), the provider still
  // billed the prompt: count it from our estimate, and the output from the text streamed.
  const consumed = (): TokenUsage => ({
    inputTokens: usage.inputTokens ?? estimatedTokens("text", input),
    outputTokens: usage.outputTokens ?? Math.ceil(text.length / 4),
  });
  try {
    for await (const ev of adapter.chatStream(req)) {
      if (ev.type === "start") {
        requestId = ev.providerRequestId;
        if (ev.inputTokens !== undefined) usage.inputTokens = ev.inputTokens;
      } else if (ev.type === "delta") {
        text += ev.text;
        onProgress(Math.min(1, text.length / 4 / req.maxTokens));
      } else if (ev.type === "usage") {
        usage = { ...usage, ...ev.usage };
      } else {
        done = ev;
      }
    }
  } catch (err) {
    // Failed mid-stream (an error event after some text): billed like a cut stream.
    const e = toProviderError(err);
    if (e.details.billedUsage || (!text && usage.inputTokens === undefined)) throw e;
    throw new ProviderError(e.errorClass, e.message, { ...e.details, providerRequestId: e.details.providerRequestId ?? requestId, billedUsage: consumed() });
  }
  if (!done) {
    throw new ProviderError("server", "the provider's stream was cut before it finished", { providerRequestId: requestId, billedUsage: consumed() });
  }
  const u: TokenUsage = done.usage ?? (usage.inputTokens !== undefined && usage.outputTokens !== undefined ? (usage as TokenUsage) : consumed());
  return { value: { text, finish_reason: done.finishReason, usage: u, model: c.model_id }, units: tokenUnits(u), providerRequestId: requestId };
}

export async function imageCall(
  adapter: ProviderAdapter,
  c: Candidate,
  input: InputOf<"image"> & { enhanced_prompt?: string },
  store: { cfg: StorageConfig; orgId: string; jobId: string },
) {
  if (!adapter.image) unsupported(c, "make images");
  const variant = input.quality ? `${input.size}/${input.quality}` : input.size;
  const r = await adapter.image({
    model: c.provider_model, prompt: input.enhanced_prompt ?? input.prompt, n: input.n, size: input.size,
    quality: input.quality, negativePrompt: input.negative_prompt,
  });
  const units = { image: r.images.length };
  if (r.filtered) return { value: undefined, units, variant, providerRequestId: r.providerRequestId, refused: true } satisfies CallOutcome<undefined>;
  const files = await storeOrThrow(store, r.images, units);
  return { value: { files, revised_prompt: r.revisedPrompt ?? null }, units, variant, providerRequestId: r.providerRequestId };
}

export async function speechCall(
  adapter: ProviderAdapter,
  c: Candidate,
  input: InputOf<"audio">,
  store: { cfg: StorageConfig; orgId: string; jobId: string },
) {
  if (!adapter.speech) unsupported(c, "speak");
  const r = await adapter.speech({ model: c.provider_model, text: input.text, voice: input.voice, language: input.language, format: input.format });
  const units = { character: r.characters };
  const files = await storeOrThrow(store, [r.file], units);
  return { value: { files, seconds: r.seconds ?? null }, units, providerRequestId: r.providerRequestId };
}

export async function embedCall(adapter: ProviderAdapter, c: Candidate, input: InputOf<"embedding">) {
  if (!adapter.embed) unsupported(c, "embed");
  const r = await adapter.embed({ model: c.provider_model, input: Array.isArray(input.input) ? input.input : [input.input], dimensions: input.dimensions });
  return {
    value: { vectors: r.vectors, dimensions: r.vectors[0]?.length ?? 0, usage: r.usage },
    units: { input_token: r.usage.inputTokens },
    providerRequestId: r.providerRequestId,
  };
}

export async function moderationCall(adapter: ProviderAdapter, c: Candidate, texts: string[]) {
  if (!adapter.moderate) unsupported(c, "moderate");
  const r = await adapter.moderate({ model: c.provider_model, input: texts });
  return { value: { results: r.results, flagged: r.results.some((x) => x.flagged) }, units: { call: 1 }, providerRequestId: r.providerRequestId };
}

/** Largest image a face check fetches (a photo upload is far smaller). */
const MAX_VISION_BYTES = 20 * 1024 * 1024;

/** A face check: the image as a signed URL and as bytes (fetched once here, bounded). */
export async function visionCall(adapter: ProviderAdapter, c: Candidate, input: InputOf<"vision">, storage: StorageConfig) {
  if (!adapter.detectFaces) unsupported(c, "check faces");
  const imageUrl = await signedUrlFor(storage, input.image_path, 600);
  const image = await bytesOf({ url: imageUrl, mimeType: "application/octet-stream" }, storage.fetch ?? fetch, 30_000);
  if (image.length > MAX_VISION_BYTES) throw new ProviderError("bad_request", "the image is larger than 20 MB");
  const r = await adapter.detectFaces({ model: c.provider_model, imageUrl, image });
  return { value: { faces: r.faces }, units: { call: 1 }, providerRequestId: r.providerRequestId };
}

async function storeOrThrow(store: { cfg: StorageConfig; orgId: string; jobId: string }, files: Parameters<typeof storeOutputs>[3], units: Record<string, number>) {
  try {
    return await storeOutputs(store.cfg, store.orgId, store.jobId, files);
  } catch (err) {
    throw new OutputStoreError((err as Error).message, units);
  }
}

