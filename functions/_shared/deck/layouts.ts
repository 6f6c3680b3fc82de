// The deck's card layouts: one zod schema per layout for the card's data. A card is
// { id, layout, data, image, notes }; the layout names how the exports and clients place the data
// (and the image, when the card has one). Every string may be empty except where a schema says
// otherwise, so a half-written card (an AI stage in progress, a co-editor mid-typing) stays valid.
import { z } from "zod";

const line = (max = 200) => z.string().max(max);
const para = (max = 4_000) => z.string().max(max);

export const LAYOUTS = {
  /** The deck's first card: a big title and a line under it. */
  title: z.strictObject({ title: line(), subtitle: line(300) }),
  bullets: z.strictObject({ title: line(), bullets: z.array(line(400)).min(1).max(10) }),
  text: z.strictObject({ title: line(), body: para() }),
  /** Text beside a large picture (the card's image); `side` is where the picture goes. */
  image: z.strictObject({ title: line(), body: para(2_000), side: z.enum(["left", "right"]) }),
  two_column: z.strictObject({
    title: line(),
    columns: z.array(z.strictObject({ heading: line(), body: para(2_000) })).length(2),
  }),
  quote: z.strictObject({ quote: para(600), attribution: line() }),
  stats: z.strictObject({
    title: line(),
    stats: z.array(z.strictObject({ value: line(40), label: line(120) })).min(1).max(4),
  }),
  timeline: z.strictObject({
    title: line(),
    steps: z.array(z.strictObject({ label: line(120), body: para(600) })).min(2).max(8),
  }),
  /** The last card: a closing line and what to do next. */
  closing: z.strictObject({ title: line(), body: para(1_000) }),
} as const;

export type Layout = keyof typeof LAYOUTS;
export const LAYOUT_NAMES = Object.keys(LAYOUTS) as Layout[];

/** A card's title: what the exports name a slide and the analytics a card. */
export function cardTitle(card: { layout: Layout; data: Record<string, unknown> }): string {
  const d = card.data as { title?: string; quote?: string };
  return (d.title ?? d.quote ?? "").trim();
}

/** Every string in a card's data, in reading order (search text, exports' fallbacks). */
export function cardStrings(data: unknown): string[] {
  if (typeof data === "string") return data ? [data] : [];
  if (Array.isArray(data)) return data.flatMap(cardStrings);
  if (data && typeof data === "object") return Object.values(data).flatMap(cardStrings);
  return [];
}
