// What an AI card operation sends and takes back: the card's canonical hash (what "the card did
// not change" means), the request hash behind idempotency, the gateway input for each op, and
// the parse of the model's answer into a valid card (the layout's zod schema decides).
import { z } from "zod";
import { sha256Hex } from "../../content/sniff.ts";
import type { Card } from "../kind.ts";
import { type Layout, LAYOUTS } from "../layouts.ts";

export const OPS = ["rewrite", "translate", "condense", "expand", "tone"] as const;
export type Op = (typeof OPS)[number];
export const AI_TIERS = ["economy", "balanced", "premium"] as const;
export type AiTier = (typeof AI_TIERS)[number];

export interface OpParams {
  language?: string;
  tone?: string;
  instructions?: string;
  tier: AiTier;
}

/** JSON with object keys sorted at every level: the same value always gives the same text. */
export function canonicalJson(value: unknown): string {
  if (Array.isArray(value)) return `[${value.map(canonicalJson).join(",")}]`;
  if (value && typeof value === "object") {
    const entries = Object.entries(value as Record<string, unknown>).filter(([, v]) => v !== undefined).sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0));
    return `{${entries.map(([k, v]) => `${JSON.stringify(k)}:${canonicalJson(v)}`).join(",")}}`;
  }
  return JSON.stringify(value ?? null);
}

export const hashOf = (value: unknown): Promise<string> => sha256Hex(new TextEncoder().encode(canonicalJson(value)));

/** The card's hash: whatever key order the body came in (jsonb, a Y.Doc), the same card hashes the same. */
export const cardHash = (card: Card): Promise<string> => hashOf(card);

const ASK: Record<Op, (p: OpParams) => string> = {
  rewrite: () => "Rewrite the card's text so it reads clearly and persuasively. Keep its meaning and its facts.",
  translate: (p) => `Translate every text of the card into the language with the BCP 47 tag "${p.language}". Keep names, numbers and the structure.`,
  condense: () => "Condense the card: make every text shorter (about half), keeping the key points and the facts.",
  expand: () => "Expand the card: add useful detail and examples to its texts, within the length limits. Do not invent numbers.",
  tone: (p) => `Rewrite the card's text in this tone: ${p.tone}. Keep its meaning and its facts.`,
};

/** Most tokens the model may answer with: a card's data is a few kB at most. */
export const MAX_OUTPUT_TOKENS = 2_000;

/** The gateway's text input for an operation on a card (response_format json). */
export function aiInput(card: Card, op: Op, params: OpParams) {
  const system = [
    "You edit one card (slide) of a presentation. You are given its layout and its data as JSON.",
    'Answer with JSON only, exactly {"data": <the edited data>}: the same fields and the same number of list items as the input',
    "(the layout's schema), every string within its length limit. Do not add or remove fields.",
  ].join(" ");
  const prompt = [
    ASK[op](params),
    params.instructions ? `Also: ${params.instructions}` : "",
    `Card: ${JSON.stringify({ layout: card.layout, data: card.data })}`,
    // The answer's JSON Schema in a json-schema block, as the generation's prompts give it: models
    // follow it, and the keyless local provider answers with an instance of it.
    `Answer with one JSON object only, valid for this JSON Schema:\n${schemaBlock(card.layout as Layout)}`,
  ].filter(Boolean).join("\n\n");
  return { system, prompt, max_tokens: MAX_OUTPUT_TOKENS, temperature: 0.4, response_format: "json" as const };
}

function schemaBlock(layout: Layout): string {
  const json = z.toJSONSchema(z.strictObject({ data: LAYOUTS[layout] })) as Record<string, unknown>;
  delete json.$schema;
  return "```json-schema\n" + JSON.stringify(json) + "\n```";
}

export type Proposal = { ok: true; card: Card } | { ok: false; message: string };

/**
 * The model's answer as the new card: {"data": …} (or the data alone, or {"card": {data}}),
 * valid for the card's layout. The id, layout, image and notes are the card's own.
 */
export function parseProposal(card: Card, text: string): Proposal {
  const trimmed = text.trim().replace(/^```(?:json)?\s*/i, "").replace(/\s*```$/, "");
  let parsed: unknown;
  try {
    parsed = JSON.parse(trimmed);
  } catch {
    return { ok: false, message: "the model did not answer with JSON" };
  }
  const obj = parsed && typeof parsed === "object" && !Array.isArray(parsed) ? parsed as Record<string, unknown> : null;
  if (!obj) return { ok: false, message: "the model's answer is not a JSON object" };
  const inner = obj.card && typeof obj.card === "object" ? (obj.card as Record<string, unknown>).data : undefined;
  const data = obj.data ?? inner ?? obj;
  const r = LAYOUTS[card.layout as Layout].safeParse(data);
  if (!r.success) {
    const issue = r.error.issues[0];
    return { ok: false, message: `the model's card is not a valid ${card.layout} card (${["data", ...issue.path].join(".")}: ${issue.message})` };
  }
  return { ok: true, card: { ...card, data: r.data } as Card };
}

/** The deck's cards with one replaced (by id); undefined when the card is not there. */
export function replaceCard<B extends { cards: Card[] }>(body: B, next: Card): B | undefined {
  const i = body.cards.findIndex((c) => c.id === next.id);
  if (i < 0) return undefined;
  return { ...body, cards: body.cards.map((c, j) => (j === i ? next : c)) };
}
