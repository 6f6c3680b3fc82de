// The text stages' prompts and how their answers are read. Every stage asks for JSON and puts the
// JSON Schema of the answer in a ```json-schema block (models follow it; the keyless local
// provider answers an instance of it). Answers are parsed leniently (a fenced or wrapped object,
// unknown keys dropped) and then validated strictly by zod; an invalid answer gets one repair
// call, then a deterministic fallback built from the outline. Pure functions.
import { z } from "zod";
import type { Layout } from "../layouts.ts";
import { LAYOUT_NAMES, LAYOUTS } from "../layouts.ts";
import type { GenerationRequest } from "../params.ts";

export const OutlineCard = z.strictObject({
  title: z.string().trim().min(1).max(200),
  points: z.array(z.string().trim().min(1).max(400)).min(1).max(8),
});
export type OutlineCard = z.infer<typeof OutlineCard>;
export const Outline = z.strictObject({ title: z.string().trim().min(1).max(300), cards: z.array(OutlineCard).min(1).max(200) });
export type Outline = z.infer<typeof Outline>;

const StructureCard = z.strictObject({ layout: z.enum(LAYOUT_NAMES as [Layout, ...Layout[]]), image_prompt: z.string().max(1000) });
export type StructureCard = z.infer<typeof StructureCard>;

const schemaBlock = (schema: z.ZodType) => {
  const json = z.toJSONSchema(schema) as Record<string, unknown>;
  delete json.$schema;
  return "```json-schema\n" + JSON.stringify(json) + "\n```";
};

const outlineSchema = (n: number) =>
  z.strictObject({
    title: z.string().max(300),
    cards: z.array(z.strictObject({ title: z.string().max(200), points: z.array(z.string().max(400)).min(1).max(5) })).length(n),
  });
const structureSchema = (n: number) => z.strictObject({ cards: z.array(StructureCard).length(n) });

export interface TextCall {
  system: string;
  prompt: string;
  max_tokens: number;
  response_format: "json";
}

const AMOUNT_TOKENS = { brief: 500, medium: 900, detailed: 1400, extensive: 2000 } as const;
const INPUT_CHARS = 24_000;

function voice(p: Pick<GenerationRequest, "textOptions" | "additionalInstructions">): string {
  const o = p.textOptions;
  return [
    `Write in the language with tag "${o.language}".`,
    `Amount of text per card: ${o.amount}.`,
    o.tone ? `Tone: ${o.tone}.` : "",
    o.audience ? `Audience: ${o.audience}.` : "",
    p.additionalInstructions ? `Also: ${p.additionalInstructions}` : "",
  ].filter(Boolean).join(" ");
}

const MODE: Record<GenerationRequest["textMode"], string> = {
  generate: "Expand the input into a complete presentation; add what a good deck on it needs.",
  condense: "Condense the input: keep its main points, drop the rest.",
  preserve: "Preserve the input's own wording as far as possible; split it across the cards.",
};

export function outlineCall(p: GenerationRequest, numCards: number, templateTitles?: string[]): TextCall {
  return {
    system: [
      `You plan presentations. Plan a deck of exactly ${numCards} cards: a title for the deck, and for each card its title and 1 to 5 key points.`,
      numCards >= 2 ? "The first card opens the deck; the last one closes it." : "",
      MODE[p.textMode],
      templateTitles ? `Follow the shape of this template, card by card: ${templateTitles.map((t, i) => `${i + 1}. ${t}`).join("; ")}.` : "",
      voice(p),
      `Answer with one JSON object only, valid for this JSON Schema:\n${schemaBlock(outlineSchema(numCards))}`,
    ].filter(Boolean).join("\n"),
    prompt: p.inputText.slice(0, INPUT_CHARS),
    max_tokens: Math.min(16_000, 300 + 150 * numCards),
    response_format: "json",
  };
}

export function structureCall(outline: Outline, imageStyle: string | undefined): TextCall {
  const n = outline.cards.length;
  return {
    system: [
      `You lay out presentations. For each of the ${n} cards choose a layout (${LAYOUT_NAMES.join(", ")}) that fits its content,`,
      "and write a short prompt for an illustration of it (no text in the picture).",
      n >= 2 ? "The first card is a title card and the last a closing card." : "",
      imageStyle ? `Illustration style: ${imageStyle}.` : "",
      `Answer with one JSON object only, valid for this JSON Schema:\n${schemaBlock(structureSchema(n))}`,
    ].filter(Boolean).join("\n"),
    prompt: outline.cards.map((c, i) => `${i + 1}. ${c.title}: ${c.points.join("; ")}`).join("\n"),
    max_tokens: Math.min(16_000, 200 + 120 * n),
    response_format: "json",
  };
}

export interface CardContext {
  deckTitle: string;
  position: number;
  total: number;
  outline: OutlineCard;
  layout: Layout;
  /** From a template: the card being adapted. */
  example?: unknown;
}

export function contentCall(p: GenerationRequest, c: CardContext): TextCall {
  return {
    system: [
      `You write one card of a presentation titled "${c.deckTitle}": card ${c.position + 1} of ${c.total}, layout "${c.layout}".`,
      MODE[p.textMode],
      voice(p),
      c.example ? `Adapt this template card to the new topic, keeping its shape: ${JSON.stringify(c.example)}` : "",
      `Answer with one JSON object only, valid for this JSON Schema:\n${schemaBlock(LAYOUTS[c.layout])}`,
    ].filter(Boolean).join("\n"),
    prompt: [c.outline.title, ...c.outline.points.map((pt) => `- ${pt}`), "", "Source material:", p.inputText.slice(0, 6_000)].join("\n"),
    max_tokens: AMOUNT_TOKENS[p.textOptions.amount],
    response_format: "json",
  };
}

/** The repair call: the same request, told what was wrong with the first answer. */
export function repairCall(first: TextCall, answer: string, problem: string): TextCall {
  return {
    ...first,
    prompt: `${first.prompt}\n\nYour previous answer was not valid (${problem.slice(0, 500)}):\n${answer.slice(0, 4_000)}\n\nAnswer again with the corrected JSON object only.`,
  };
}

// ---------------------------------------------------------------------------- reading answers

/** The JSON object in a model's answer (bare, fenced, or with words around it). */
export function parseObject(text: string): unknown {
  const trimmed = text.trim();
  const fenced = /```(?:json)?\s*\n?([\s\S]*?)```/.exec(trimmed)?.[1];
  for (const candidate of [trimmed, fenced, trimmed.slice(trimmed.indexOf("{"), trimmed.lastIndexOf("}") + 1)]) {
    if (!candidate) continue;
    try {
      const v = JSON.parse(candidate);
      if (v && typeof v === "object" && !Array.isArray(v)) return v;
    } catch {
      // try the next form
    }
  }
  return undefined;
}

/** Drops keys a strict object schema does not have (models add them); nested objects too. */
function pick(schema: z.ZodType, value: unknown): unknown {
  const def = (schema as unknown as { def?: { type?: string; shape?: Record<string, z.ZodType>; element?: z.ZodType } }).def;
  if (def?.type === "object" && def.shape && value && typeof value === "object" && !Array.isArray(value)) {
    const out: Record<string, unknown> = {};
    for (const [k, s] of Object.entries(def.shape)) if (k in (value as object)) out[k] = pick(s, (value as Record<string, unknown>)[k]);
    return out;
  }
  if (def?.type === "array" && def.element && Array.isArray(value)) return value.map((v) => pick(def.element!, v));
  return value;
}

export type Read<T> = { ok: true; value: T } | { ok: false; problem: string };

function read<T>(schema: z.ZodType<T>, text: string): Read<T> {
  const obj = parseObject(text);
  if (obj === undefined) return { ok: false, problem: "the answer is not a JSON object" };
  const r = schema.safeParse(pick(schema, obj));
  if (r.success) return { ok: true, value: r.data };
  return { ok: false, problem: r.error.issues.slice(0, 5).map((i) => `${i.path.join(".") || "(root)"}: ${i.message}`).join("; ") };
}

export function readOutline(text: string, numCards: number): Read<Outline> {
  const r = read(Outline, text);
  if (r.ok && r.value.cards.length !== numCards) return { ok: false, problem: `the outline has ${r.value.cards.length} cards, not ${numCards}` };
  return r;
}

export function readStructure(text: string, numCards: number): Read<StructureCard[]> {
  const r = read(z.strictObject({ cards: z.array(StructureCard) }), text);
  if (!r.ok) return r;
  if (r.value.cards.length !== numCards) return { ok: false, problem: `the structure has ${r.value.cards.length} cards, not ${numCards}` };
  return { ok: true, value: r.value.cards };
}

export function readCard(layout: Layout, text: string): Read<Record<string, unknown>> {
  return read(LAYOUTS[layout] as unknown as z.ZodType<Record<string, unknown>>, text);
}

// ---------------------------------------------------------------------------- fallbacks

const MIDDLE: Layout[] = ["bullets", "image", "text", "two_column", "bullets", "timeline", "image", "stats"];

/** A layout per card when the structure stage's answer is unusable: title, a rotation, closing. */
export function fallbackLayout(position: number, total: number, wantsImage: boolean): Layout {
  if (position === 0 && total >= 2) return "title";
  if (position === total - 1 && total >= 2) return "closing";
  if (wantsImage && position % 2 === 1) return "image";
  return MIDDLE[position % MIDDLE.length];
}

/** A deterministic outline from the input when the model gives none (split into sentences). */
export function fallbackOutline(input: string, numCards: number, title?: string): Outline {
  const sentences = input.split(/(?<=[.!?])\s+|\n+/).map((s) => s.trim()).filter(Boolean);
  const pool = sentences.length ? sentences : [input.trim() || "Untitled"];
  const cut = (s: string, n: number) => (s.length > n ? `${s.slice(0, n - 1).trimEnd()}…` : s);
  const deckTitle = cut(title ?? pool[0], 300);
  return {
    title: deckTitle,
    cards: Array.from({ length: numCards }, (_, i) => {
      const s = pool[i % pool.length];
      return { title: cut(i === 0 ? deckTitle : s, 200), points: [cut(s, 400)] };
    }),
  };
}

/** A valid card for the layout from its outline entry: what a card gets when the model fails twice. */
export function fallbackCard(layout: Layout, o: OutlineCard): Record<string, unknown> {
  const t = o.title.slice(0, 200);
  const points = o.points.length ? o.points : [o.title];
  const body = points.join("\n").slice(0, 1_000);
  const data: Record<Layout, Record<string, unknown>> = {
    title: { title: t, subtitle: (points[0] ?? "").slice(0, 300) },
    bullets: { title: t, bullets: points.slice(0, 10).map((p) => p.slice(0, 400)) },
    text: { title: t, body },
    image: { title: t, body, side: "right" },
    two_column: {
      title: t,
      columns: [
        { heading: (points[0] ?? t).slice(0, 200), body: points.slice(0, Math.ceil(points.length / 2)).join("\n").slice(0, 2_000) },
        { heading: (points[1] ?? "").slice(0, 200), body: points.slice(Math.ceil(points.length / 2)).join("\n").slice(0, 2_000) },
      ],
    },
    quote: { quote: (points[0] ?? t).slice(0, 600), attribution: "" },
    stats: { title: t, stats: points.slice(0, 4).map((p, i) => ({ value: String(i + 1), label: p.slice(0, 120) })) },
    timeline: {
      title: t,
      steps: (points.length >= 2 ? points : [...points, t]).slice(0, 8).map((p, i) => ({ label: `Step ${i + 1}`, body: p.slice(0, 600) })),
    },
    closing: { title: t, body },
  };
  return LAYOUTS[layout].parse(data[layout]) as Record<string, unknown>;
}
