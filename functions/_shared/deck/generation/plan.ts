// What a generation will make, decided at admission from the request alone (so the client learns
// images.total at once and the whole deck is reserved up front): how many cards, their stable
// ids, which of them get an image, and (from a template) their layouts. Pure functions.
import { sha256Hex } from "../../content/sniff.ts";
import type { Card } from "../kind.ts";
import type { Layout } from "../layouts.ts";
import type { ImageTier } from "../params.ts";

export interface PlannedCard {
  card_id: string;
  /** Known at admission only when adapting a template (its layouts are kept). */
  layout: Layout | null;
  wants_image: boolean;
  /** From a template: that card (layout and data), the example its content is adapted from. */
  example?: { layout: Layout; data: unknown };
}

/** The gateway tier each deck image tier runs at (deck.prices image:<tier> is what the org pays). */
export const IMAGE_AI_TIER: Record<ImageTier, "economy" | "balanced" | "premium"> = {
  basic: "economy",
  advanced: "balanced",
  premium: "premium",
};

/** The gateway tier of the text stages (outline, structure, cards). */
export const TEXT_AI_TIER = "balanced" as const;

/**
 * Which cards of a prompt-generated deck carry an image: every card but the closing one (the
 * last of two or more). Position-based, so it is known before the model picks layouts.
 */
export function wantsImage(position: number, numCards: number): boolean {
  return numCards === 1 || position < numCards - 1;
}

const newCardId = (position: number) => `c${position + 1}-${crypto.randomUUID().slice(0, 8)}`;

export function planFromPrompt(numCards: number, images: boolean): PlannedCard[] {
  return Array.from({ length: numCards }, (_, i) => ({ card_id: newCardId(i), layout: null, wants_image: images && wantsImage(i, numCards) }));
}

/**
 * From a template: the same count and layouts; an image where the template card has one or is
 * an image layout.
 */
export function planFromTemplate(cards: Card[], images: boolean): PlannedCard[] {
  return cards.map((c, i) => ({
    card_id: newCardId(i), layout: c.layout, wants_image: images && (c.image !== null || c.layout === "image"),
    example: { layout: c.layout, data: c.data },
  }));
}

/** Lower case, trimmed, inner whitespace collapsed: the form a template prompt is hashed in. */
export function normalizePrompt(prompt: string): string {
  return prompt.toLowerCase().trim().replace(/\s+/g, " ");
}

export async function promptHash(prompt: string): Promise<string> {
  return await sha256Hex(new TextEncoder().encode(normalizePrompt(prompt)));
}
