// The generation request, in the shape of Gamma's public Generate API (POST /v1.0/generations), so
// its users can switch: same field names, same enums where we support them. Plinth's own
// additions are marked. One schema serves validation, the stored params and the docs.
import { z } from "zod";
import { DIMENSIONS } from "./kind.ts";

export const TEXT_MODES = ["generate", "condense", "preserve"] as const;
export const TEXT_AMOUNTS = ["brief", "medium", "detailed", "extensive"] as const;
export const IMAGE_SOURCES = ["aiGenerated", "noImages"] as const;
export const IMAGE_TIERS = ["basic", "advanced", "premium"] as const;
export const EXPORT_FORMATS = ["pptx", "pdf", "html"] as const;
export type ImageTier = (typeof IMAGE_TIERS)[number];
export type ExportFormat = (typeof EXPORT_FORMATS)[number];

/** Most cards one generation makes (Gamma's own cap on its top plans is 75). */
export const MAX_GENERATED_CARDS = 60;

export const TextOptions = z.strictObject({
  amount: z.enum(TEXT_AMOUNTS).default("medium"),
  tone: z.string().trim().max(500).optional(),
  audience: z.string().trim().max(500).optional(),
  /** BCP 47 language tag of the cards' text. */
  language: z.string().regex(/^[a-z]{2,3}(-[A-Za-z0-9]{2,8})*$/, "a language tag such as en or pt-BR").default("en"),
});

export const ImageOptions = z.strictObject({
  source: z.enum(IMAGE_SOURCES).default("aiGenerated"),
  style: z.string().trim().max(500).optional(),
  /** Plinth: the price tier of each image (deck.prices image:<tier>); Gamma names models instead. */
  tier: z.enum(IMAGE_TIERS).default("basic"),
});

export const GenerationRequest = z.strictObject({
  // Gamma's cap is about 400k characters; bytes are what the stored request is bounded by.
  inputText: z.string().trim().min(1).max(400_000)
    .refine((s) => new TextEncoder().encode(s).length <= 400_000, "inputText is at most 400,000 bytes (UTF-8)"),
  textMode: z.enum(TEXT_MODES).default("generate"),
  numCards: z.number().int().min(1).max(MAX_GENERATED_CARDS).default(10),
  themeId: z.string().regex(/^[A-Za-z0-9_-]{1,64}$/).optional(),
  additionalInstructions: z.string().trim().max(2_000).optional(),
  textOptions: TextOptions.default({ amount: "medium", language: "en" }),
  imageOptions: ImageOptions.default({ source: "aiGenerated", tier: "basic" }),
  cardOptions: z.strictObject({ dimensions: z.enum(DIMENSIONS).default("16x9") }).default({ dimensions: "16x9" }),
  exportAs: z.enum(EXPORT_FORMATS).optional(),
  /** Plinth: the org the deck belongs to (else the x-plinth-org header, else the caller's personal org). */
  orgId: z.string().uuid().optional(),
  /** Plinth: the deck's title (else the outline's). */
  title: z.string().trim().min(1).max(300).optional(),
  /** Plinth: stop after the outline so the user can edit and approve it (POST .../outline). */
  holdOutline: z.boolean().default(false),
  /** Plinth: save the result as a template in this category, waiting in review (template batches). */
  saveAsTemplate: z
    .strictObject({
      category: z.string().regex(/^[a-z][a-z0-9_-]{1,59}$/),
      locale: z.string().regex(/^[a-z]{2,3}(-[A-Za-z0-9]{2,8})*$/).default("en"),
      batchKey: z.string().min(1).max(200).optional(),
    })
    .optional(),
});
export type GenerationRequest = z.infer<typeof GenerationRequest>;

/** Gamma's POST /generations/from-template: adapt an existing deck (a template) to a new prompt. */
export const FromTemplateRequest = z.strictObject({
  templateId: z.string().uuid(),
  prompt: z.string().trim().min(1).max(20_000),
  themeId: z.string().regex(/^[A-Za-z0-9_-]{1,64}$/).optional(),
  imageOptions: ImageOptions.optional(),
  exportAs: z.enum(EXPORT_FORMATS).optional(),
  orgId: z.string().uuid().optional(),
  title: z.string().trim().min(1).max(300).optional(),
});
export type FromTemplateRequest = z.infer<typeof FromTemplateRequest>;
