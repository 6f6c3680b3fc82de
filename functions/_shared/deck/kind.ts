// Kind "deck": an ordered list of cards with stable ids, a theme and card dimensions. Each
// card's data is validated by its layout's schema (layouts.ts). Live, the cards are the Y.Array
// "cards" of Y.Maps { id, layout, data, image, notes } in which every string is a Y.Text, arrays
// are Y.Arrays and objects Y.Maps: two people can edit different cards, or different fields of
// one card, at once, and a comment anchors to a card (element_id) and a range of one of its texts.
import * as Y from "yjs";
import { z } from "zod";
import { type KeyedList, syncKeyedArray } from "../content/kinds/list-sync.ts";
import { registerKind } from "../content/kinds/registry.ts";
import { syncText } from "../content/kinds/text-sync.ts";
import { cardStrings, type Layout, LAYOUTS } from "./layouts.ts";

export const CARD_ID = /^[A-Za-z0-9_-]{1,64}$/;
export const MAX_CARDS = 200;
export const DIMENSIONS = ["16x9", "4x3", "fluid"] as const;
export type Dimensions = (typeof DIMENSIONS)[number];

/** A picture on a card: one of the deck's content assets (its bytes in content-assets). */
export const ImageRef = z.strictObject({ asset_id: z.string().uuid(), alt: z.string().max(300) });
export type ImageRef = z.infer<typeof ImageRef>;

const cardOf = <L extends Layout>(layout: L) =>
  z.strictObject({
    id: z.string().regex(CARD_ID),
    layout: z.literal(layout),
    data: LAYOUTS[layout],
    image: ImageRef.nullable(),
    notes: z.string().max(5_000),
  });

export const Card = z.discriminatedUnion("layout", [
  cardOf("title"), cardOf("bullets"), cardOf("text"), cardOf("image"), cardOf("two_column"),
  cardOf("quote"), cardOf("stats"), cardOf("timeline"), cardOf("closing"),
]);
export type Card = z.infer<typeof Card>;

export const DeckBody = z
  .strictObject({
    theme_id: z.string().min(1).max(64),
    dimensions: z.enum(DIMENSIONS),
    cards: z.array(Card).max(MAX_CARDS),
  })
  .superRefine((body, ctx) => {
    const seen = new Set<string>();
    for (const [i, card] of body.cards.entries()) {
      if (seen.has(card.id)) ctx.addIssue({ code: "custom", message: `card id "${card.id}" appears twice`, path: ["cards", i, "id"] });
      seen.add(card.id);
    }
  });
export type DeckBody = z.infer<typeof DeckBody>;

/** The theme a deck gets when none is named (a global theme the schema migration seeds). */
export const DEFAULT_THEME = "plinth-light";

// ---- the Y.Doc mapping: strings are Y.Text, arrays Y.Array, objects Y.Map ----

type Json = string | number | boolean | null | Json[] | { [k: string]: Json };

function toY(value: Json): unknown {
  if (typeof value === "string") return new Y.Text(value);
  if (Array.isArray(value)) {
    const arr = new Y.Array<unknown>();
    arr.push(value.map(toY));
    return arr;
  }
  if (value && typeof value === "object") {
    const map = new Y.Map<unknown>();
    for (const [k, v] of Object.entries(value)) map.set(k, toY(v));
    return map;
  }
  return value;
}

function fromY(value: unknown): unknown {
  if (value instanceof Y.Text) return value.toString();
  if (value instanceof Y.Array) return value.toArray().map(fromY);
  if (value instanceof Y.Map) return Object.fromEntries([...value.entries()].map(([k, v]) => [k, fromY(v)]));
  return value;
}

/** Sets `key` of `parent` to `value`, editing the Y types already there in place where the shape allows. */
function syncField(parent: Y.Map<unknown> | Y.Array<unknown>, key: string | number, value: Json): void {
  const current = parent instanceof Y.Map ? parent.get(key as string) : (parent as Y.Array<unknown>).get(key as number);
  const replace = () => {
    if (parent instanceof Y.Map) parent.set(key as string, toY(value));
    else {
      parent.delete(key as number, 1);
      parent.insert(key as number, [toY(value)]);
    }
  };
  if (typeof value === "string") {
    if (current instanceof Y.Text) syncText(current, value ? [{ insert: value }] : []);
    else replace();
  } else if (Array.isArray(value)) {
    if (!(current instanceof Y.Array)) return replace();
    if (current.length > value.length) current.delete(value.length, current.length - value.length);
    value.forEach((v, i) => (i < current.length ? syncField(current, i, v) : current.push([toY(v)])));
  } else if (value && typeof value === "object") {
    if (!(current instanceof Y.Map)) return replace();
    for (const k of [...current.keys()]) if (!(k in value)) current.delete(k);
    for (const [k, v] of Object.entries(value)) syncField(current, k, v);
  } else if (current !== value) {
    replace();
  }
}

const cardsOf = (doc: Y.Doc) => doc.getArray<Y.Map<unknown>>("cards");

function readCard(m: Y.Map<unknown>): Card | null {
  const r = Card.safeParse(fromY(m));
  return r.success ? r.data : null;
}

const CARD_LIST: KeyedList<Card> = {
  keyOf: (m) => {
    const id = fromY(m.get("id"));
    return typeof id === "string" && CARD_ID.test(id) ? id : null;
  },
  idOf: (card) => card.id,
  create: (card) => toY(card as unknown as Json) as Y.Map<unknown>,
  update: (m, card) => {
    // Keys a peer added are removed too: a card with a stray key is invalid, and would stay dropped.
    for (const k of [...m.keys()]) if (!(k in card)) m.delete(k);
    for (const [k, v] of Object.entries(card)) syncField(m, k, v as Json);
  },
};

export const deck = registerKind<DeckBody>({
  kind: "deck",
  schema: DeckBody,
  empty: () => ({ theme_id: DEFAULT_THEME, dimensions: "16x9", cards: [] }),
  toText: (body) => body.cards.flatMap((c) => [...cardStrings(c.data), c.notes]).filter(Boolean).join("\n"),
  toYDoc: (body, doc) =>
    doc.transact(() => {
      const meta = doc.getMap<unknown>("deck");
      if (meta.get("theme_id") !== body.theme_id) meta.set("theme_id", body.theme_id);
      if (meta.get("dimensions") !== body.dimensions) meta.set("dimensions", body.dimensions);
      syncKeyedArray(cardsOf(doc), body.cards, CARD_LIST);
    }),
  fromYDoc: (doc) => {
    const meta = doc.getMap<unknown>("deck");
    const theme = meta.get("theme_id");
    const dims = meta.get("dimensions");
    const seen = new Set<string>();
    const cards: Card[] = [];
    for (const m of cardsOf(doc).toArray()) {
      // A card a peer left invalid (a field of the wrong type) is dropped rather than failing the doc.
      const card = m instanceof Y.Map ? readCard(m) : null;
      if (!card || seen.has(card.id) || cards.length >= MAX_CARDS) continue;
      seen.add(card.id);
      cards.push(card);
    }
    return {
      theme_id: typeof theme === "string" && theme.length > 0 && theme.length <= 64 ? theme : DEFAULT_THEME,
      dimensions: (DIMENSIONS as readonly unknown[]).includes(dims) ? (dims as Dimensions) : "16x9",
      cards,
    };
  },
  elementIds: (body) => body.cards.map((c) => c.id),
});

/** The Y.Map of a card, for clients that bind an editor to its texts or anchor comments in them. */
export function deckCardMap(doc: Y.Doc, id: string): Y.Map<unknown> | undefined {
  return cardsOf(doc).toArray().find((m) => m instanceof Y.Map && CARD_LIST.keyOf(m) === id);
}
