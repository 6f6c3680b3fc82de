// What a job may ask for, per modality: one zod schema each, shared by the api (validation and
// OpenAPI), product modules and the worker (which re-reads the stored input). Limits here are
// what makes "bad input gets a 4xx and nothing is reserved" true.
import { z } from "zod";
import type { Demand } from "./pricing.ts";
import type { Modality } from "./types.ts";

/** Text that reaches SQL and providers: no NUL (Postgres refuses it in text and jsonb). */
const text = (max: number) => z.string().min(1).max(max).refine((s) => !s.includes("\u0000"), "must not contain NUL characters");
const presetKey = z.string().regex(/^[a-z0-9][a-z0-9_-]{0,63}$/);
/** A file in one of the org's buckets, e.g. "photos/<org_id>/<...>.jpg" (bucket first). */
export const StoragePath = z.string().max(1024).regex(/^[a-z0-9][a-z0-9_-]{1,62}\/[0-9a-f-]{36}\/[^\u0000]+$/, "bucket/<org_id>/path");

/** 400 kB of prompt is far past every model's context window: refuse before anything is reserved. */
export const MAX_PROMPT_CHARS = 400_000;

export const TextInput = z.object({
  prompt: text(MAX_PROMPT_CHARS).optional(),
  system: text(50_000).optional(),
  messages: z.array(z.object({ role: z.enum(["system", "user", "assistant"]), content: text(MAX_PROMPT_CHARS) })).min(1).max(500).optional(),
  max_tokens: z.number().int().min(1).max(64_000).default(1024),
  temperature: z.number().min(0).max(2).optional(),
  response_format: z.enum(["text", "json"]).default("text"),
  /** A prompt template (ai.available_presets) filled with `variables`. */
  preset: presetKey.optional(),
  variables: z.record(z.string().regex(/^[a-z_][a-z0-9_]{0,39}$/), text(20_000)).optional(),
}).strict().refine((v) => v.prompt || v.messages || v.preset, "give prompt, messages or preset");

export const ImageInput = z.object({
  prompt: text(4000),
  n: z.number().int().min(1).max(10).default(1),
  size: z.string().regex(/^\d{2,4}x\d{2,4}$/).default("1024x1024"),
  quality: z.enum(["low", "medium", "high", "standard", "hd"]).optional(),
  negative_prompt: text(2000).optional(),
  /** A style preset: its prompt suffix and negative prompt are applied. */
  preset: presetKey.optional(),
  /** Rewrite the prompt with a text model first (charged as part of this job). */
  enhance: z.boolean().default(false),
}).strict();

export const VideoInput = z.object({
  prompt: text(4000).optional(),
  /** The source image, as a Storage path the caller can read; the provider gets a signed URL. */
  image_path: StoragePath.optional(),
  /** What the face says: text spoken with a voice, or an uploaded audio file. */
  script: z.object({ text: text(5000), voice: z.string().min(1).max(100), language: z.string().regex(/^[a-z]{2}(-[A-Z]{2})?$/).optional() }).strict().optional(),
  audio_path: StoragePath.optional(),
  duration_seconds: z.number().positive().max(300).default(5),
  resolution: z.enum(["480p", "720p", "1080p"]).default("720p"),
  ratio: z.enum(["16:9", "9:16", "1:1", "4:5"]).default("16:9"),
  preset: presetKey.optional(),
  enhance: z.boolean().default(false),
}).strict().refine((v) => v.prompt || v.image_path, "give a prompt or an image_path");

export const AudioInput = z.object({
  text: text(20_000),
  voice: z.string().min(1).max(100).default("alloy"),
  language: z.string().regex(/^[a-z]{2}(-[A-Z]{2})?$/).optional(),
  format: z.enum(["mp3", "wav"]).default("mp3"),
}).strict();

const stringOrList = (max: number) => z.union([text(max), z.array(text(max)).min(1).max(256)]);
export const EmbeddingInput = z.object({ input: stringOrList(100_000), dimensions: z.number().int().min(1).max(4096).optional() }).strict();
export const ModerationInput = z.object({ input: stringOrList(100_000) }).strict();
/** A face check of an image the submitter can read (Storage path, bucket first). */
export const VisionInput = z.object({ image_path: StoragePath, task: z.literal("faces").default("faces") }).strict();

export const INPUTS = {
  text: TextInput,
  image: ImageInput,
  video: VideoInput,
  audio: AudioInput,
  embedding: EmbeddingInput,
  moderation: ModerationInput,
  vision: VisionInput,
} as const satisfies Record<Modality, z.ZodType>;

export type InputOf<M extends Modality> = z.infer<(typeof INPUTS)[M]>;
export type AnyInput = InputOf<Modality>;

const bytes = (s: string | undefined) => (s ? new TextEncoder().encode(s).length : 0);
const list = (v: string | string[]) => (Array.isArray(v) ? v : [v]);

/** All the text a job sends, for moderation and for sizing. */
export function inputTexts(modality: Modality, input: AnyInput): string[] {
  switch (modality) {
    case "text": {
      const t = input as InputOf<"text">;
      return [t.system, t.prompt, ...(t.messages ?? []).map((m) => m.content), ...Object.values(t.variables ?? {})].filter((s): s is string => !!s);
    }
    case "image":
    case "video": {
      const t = input as InputOf<"image"> | InputOf<"video">;
      return [t.prompt, "script" in t ? t.script?.text : undefined].filter((s): s is string => !!s);
    }
    case "audio":
      return [(input as InputOf<"audio">).text];
    case "embedding":
    case "moderation":
      return list((input as InputOf<"embedding">).input);
    case "vision":
      return [];
  }
}

/** What admission reserves for: the demand's upper bound per unit. */
export function demandOf(modality: Modality, input: AnyInput): Demand {
  const inputBytes = inputTexts(modality, input).reduce((n, s) => n + bytes(s), 0);
  switch (modality) {
    case "text":
      return { modality, inputBytes: inputBytes + 64, maxOutputTokens: (input as InputOf<"text">).max_tokens };
    case "image": {
      const i = input as InputOf<"image">;
      return { modality, images: i.n, variant: i.quality ? `${i.size}/${i.quality}` : i.size };
    }
    case "video": {
      const v = input as InputOf<"video">;
      return { modality, seconds: v.duration_seconds, variant: v.resolution };
    }
    case "audio":
      return { modality, characters: [...(input as InputOf<"audio">).text].length };
    case "embedding":
      return { modality, inputBytes };
    case "moderation":
    case "vision":
      return { modality };
  }
}

/** A rough token count for context-window checks (bytes bound it from above; ~4 bytes a token is typical). */
export function estimatedTokens(modality: Modality, input: AnyInput): number {
  return Math.ceil(inputTexts(modality, input).reduce((n, s) => n + bytes(s), 0) / 4);
}
