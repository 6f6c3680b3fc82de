// The deck document kind: every layout's schema (valid and invalid data), the body's rules
// (duplicate card ids, dimensions, limits), the round trip through Yjs, a save onto a live deck
// as a small update that keeps a peer's concurrent edit in another card and a comment's anchor
// in an untouched text, what fromYDoc makes of a peer's invalid card, and decks created through
// the content api (201; an invalid body is a 400 naming the field).
import * as Y from "yjs";
import { describe, expect, it } from "vitest";
import { bodyUpdate, seedState } from "../../functions/_shared/content/ydoc.ts";
import { type Card, deck, deckCardMap, type DeckBody, DeckBody as DeckSchema } from "../../functions/_shared/deck/kind.ts";
import { cardStrings, cardTitle, LAYOUT_NAMES, LAYOUTS } from "../../functions/_shared/deck/layouts.ts";
import { admin, createTeam } from "../helpers/db.ts";
import { call, expectError } from "../helpers/http.ts";
import { tokenFor } from "../helpers/supabase.ts";

const s = (n: number) => "x".repeat(n);

/** For each layout: data that is valid, and data that is not (with the path zod names). */
const CASES: Record<string, { valid: unknown[]; invalid: [unknown, string][] }> = {
  title: {
    valid: [{ title: "Launch", subtitle: "2026" }, { title: "", subtitle: "" }],
    invalid: [[{ title: "Launch" }, "subtitle"], [{ title: s(201), subtitle: "" }, "title"], [{ title: "t", subtitle: "s", extra: 1 }, ""], [{ title: 1, subtitle: "" }, "title"]],
  },
  bullets: {
    valid: [{ title: "Why", bullets: ["one"] }, { title: "Why", bullets: Array(10).fill("b") }],
    invalid: [[{ title: "Why", bullets: [] }, "bullets"], [{ title: "Why", bullets: Array(11).fill("b") }, "bullets"], [{ title: "Why", bullets: [s(401)] }, "bullets.0"], [{ title: "Why", bullets: "one" }, "bullets"]],
  },
  text: {
    valid: [{ title: "Plan", body: "Body" }, { title: "", body: s(4000) }],
    invalid: [[{ title: "Plan", body: s(4001) }, "body"], [{ body: "b" }, "title"]],
  },
  image: {
    valid: [{ title: "Pic", body: "b", side: "left" }, { title: "Pic", body: "", side: "right" }],
    invalid: [[{ title: "Pic", body: "b", side: "top" }, "side"], [{ title: "Pic", body: s(2001), side: "left" }, "body"]],
  },
  two_column: {
    valid: [{ title: "Compare", columns: [{ heading: "A", body: "a" }, { heading: "B", body: "b" }] }],
    invalid: [[{ title: "Compare", columns: [{ heading: "A", body: "a" }] }, "columns"], [{ title: "C", columns: [{ heading: "A", body: "a" }, { heading: "B" }] }, "columns.1.body"]],
  },
  quote: {
    valid: [{ quote: "Ship it", attribution: "Ada" }],
    invalid: [[{ quote: s(601), attribution: "Ada" }, "quote"], [{ quote: "q", attribution: "a", title: "t" }, ""]],
  },
  stats: {
    valid: [{ title: "Numbers", stats: [{ value: "120", label: "teams" }] }, { title: "N", stats: Array(4).fill({ value: "1", label: "l" }) }],
    invalid: [[{ title: "N", stats: [] }, "stats"], [{ title: "N", stats: Array(5).fill({ value: "1", label: "l" }) }, "stats"], [{ title: "N", stats: [{ value: 120, label: "teams" }] }, "stats.0.value"], [{ title: "N", stats: [{ value: s(41), label: "l" }] }, "stats.0.value"]],
  },
  timeline: {
    valid: [{ title: "Road", steps: [{ label: "Q1", body: "beta" }, { label: "Q2", body: "GA" }] }],
    invalid: [[{ title: "Road", steps: [{ label: "Q1", body: "beta" }] }, "steps"], [{ title: "Road", steps: Array(9).fill({ label: "l", body: "b" }) }, "steps"]],
  },
  closing: {
    valid: [{ title: "Questions?", body: "hi@acme.test" }],
    invalid: [[{ title: "Questions?", body: s(1001) }, "body"], [{ title: "Q" }, "body"]],
  },
};

const card = (id: string, layout: string, data: unknown, extra: Partial<Card> = {}) => ({ id, layout, data, image: null, notes: "", ...extra }) as Card;
const CARDS: Card[] = [
  card("c-title", "title", { title: "Launch plan", subtitle: "From beta to GA" }, { notes: "Welcome everyone." }),
  card("c-why", "bullets", { title: "Why now", bullets: ["Teams ship AI weekly", "Backends are slow"] }),
  card("c-two", "two_column", { title: "Before and after", columns: [{ heading: "Before", body: "Weeks" }, { heading: "After", body: "Days" }] }),
  card("c-stats", "stats", { title: "Beta", stats: [{ value: "120", label: "teams" }, { value: "4.8", label: "rating" }] }),
  card("c-img", "image", { title: "Product", body: "Screens", side: "right" }, { image: { asset_id: "a0000000-0000-4000-8000-0000000000aa", alt: "the dashboard" } }),
  card("c-end", "closing", { title: "Questions?", body: "launch@acme.test" }),
];
const BODY: DeckBody = { theme_id: "midnight", dimensions: "4x3", cards: CARDS };

function live(body: DeckBody) {
  const doc = new Y.Doc();
  Y.applyUpdate(doc, seedState(deck, body).state);
  return doc;
}
const text = (doc: Y.Doc, cardId: string, ...path: (string | number)[]) => {
  let t: unknown = deckCardMap(doc, cardId);
  for (const k of path) t = t instanceof Y.Map ? t.get(k as string) : (t as Y.Array<unknown>).get(k as number);
  return t as Y.Text;
};

describe("layouts", () => {
  it("covers every layout", () => {
    expect(Object.keys(CASES).sort()).toEqual([...LAYOUT_NAMES].sort());
  });

  for (const layout of LAYOUT_NAMES) {
    it(`${layout}: valid data passes, invalid data is refused naming the field`, () => {
      for (const data of CASES[layout].valid) {
        expect(LAYOUTS[layout].safeParse(data).success, JSON.stringify(data)).toBe(true);
        expect(DeckSchema.safeParse({ ...BODY, cards: [card("c1", layout, data)] }).success).toBe(true);
      }
      for (const [data, path] of CASES[layout].invalid) {
        const r = DeckSchema.safeParse({ ...BODY, cards: [card("c1", layout, data)] });
        expect(r.success, JSON.stringify(data)).toBe(false);
        expect(r.error!.issues.map((i) => i.path.join(".")), JSON.stringify(data)).toContainEqual(`cards.0.data${path ? `.${path}` : ""}`);
      }
    });
  }

  it("a card's layout decides its data: bullets data under the title layout is refused", () => {
    expect(DeckSchema.safeParse({ ...BODY, cards: [card("c1", "title", CASES.bullets.valid[0])] }).success).toBe(false);
    expect(DeckSchema.safeParse({ ...BODY, cards: [card("c1", "chart", { title: "t" })] }).success).toBe(false);
  });

  it("titles and strings for exports and search", () => {
    expect(cardTitle(CARDS[0])).toBe("Launch plan");
    expect(cardTitle(card("q", "quote", { quote: " Ship it ", attribution: "Ada" }))).toBe("Ship it");
    expect(cardStrings(CARDS[3].data)).toEqual(["Beta", "120", "teams", "4.8", "rating"]);
    expect(deck.toText(BODY).split("\n")).toContain("Welcome everyone.");
    expect(deck.elementIds(BODY)).toEqual(CARDS.map((c) => c.id));
  });
});

describe("the body", () => {
  it("refuses duplicate card ids, bad ids, unknown dimensions, a card without image or notes, and extra keys", () => {
    const dup = DeckSchema.safeParse({ ...BODY, cards: [CARDS[0], { ...CARDS[1], id: "c-title" }] });
    expect(dup.success).toBe(false);
    expect(dup.error!.issues[0]).toMatchObject({ path: ["cards", 1, "id"], message: 'card id "c-title" appears twice' });
    expect(DeckSchema.safeParse({ ...BODY, cards: [{ ...CARDS[0], id: "bad id" }] }).success).toBe(false);
    expect(DeckSchema.safeParse({ ...BODY, dimensions: "21x9" }).success).toBe(false);
    const { image: _i, ...noImage } = CARDS[0];
    expect(DeckSchema.safeParse({ ...BODY, cards: [noImage] }).success).toBe(false);
    expect(DeckSchema.safeParse({ ...BODY, cards: [{ ...CARDS[4], image: { asset_id: "not-a-uuid", alt: "" } }] }).success).toBe(false);
    expect(DeckSchema.safeParse({ ...BODY, extra: true }).success).toBe(false);
    expect(DeckSchema.safeParse({ ...BODY, cards: Array.from({ length: 201 }, (_, i) => ({ ...CARDS[0], id: `c${i}` })) }).success).toBe(false);
    expect(DeckSchema.safeParse(deck.empty()).success).toBe(true);
  });

  it("round-trips through Yjs: cards are keyed Y.Maps whose strings are Y.Text", () => {
    const doc = live(BODY);
    expect(deck.fromYDoc(doc)).toEqual(BODY);
    expect(text(doc, "c-why", "data", "bullets", 1)).toBeInstanceOf(Y.Text);
    expect(text(doc, "c-two", "data", "columns", 0, "body").toString()).toBe("Weeks");
    expect(deckCardMap(doc, "nope")).toBeUndefined();
    // A second doc built from the first's update reads the same.
    const copy = new Y.Doc();
    Y.applyUpdate(copy, Y.encodeStateAsUpdate(doc));
    expect(deck.fromYDoc(copy)).toEqual(BODY);
    expect(bodyUpdate(deck, doc, BODY)).toBeNull();
  });

  it("a save onto a live deck is a small update that keeps a peer's edit in another card and an anchor in an untouched text", () => {
    const doc = live(BODY);
    const peer = new Y.Doc();
    Y.applyUpdate(peer, Y.encodeStateAsUpdate(doc));
    // A comment anchored inside c-two's first column ("Weeks": between "We" and "eks").
    const anchor = Y.createRelativePositionFromTypeIndex(text(doc, "c-two", "data", "columns", 0, "body"), 2);
    const saved = structuredClone(BODY);
    (saved.cards[1].data as { bullets: string[] }).bullets[1] = "Backends are slow to build";
    const update = bodyUpdate(deck, doc, saved)!;
    expect(update).not.toBeNull();
    expect(update.length).toBeLessThan(80);
    // Meanwhile a peer edits another card, and text inside the anchored one before the anchor.
    text(peer, "c-title", "data", "title").insert(0, "Our ");
    text(peer, "c-two", "data", "columns", 0, "body").insert(0, "Many ");
    Y.applyUpdate(peer, update);
    Y.applyUpdate(doc, Y.encodeStateAsUpdate(peer));
    const merged = deck.fromYDoc(doc);
    expect(deck.fromYDoc(peer)).toEqual(merged);
    expect(merged.cards[0].data).toEqual({ title: "Our Launch plan", subtitle: "From beta to GA" });
    expect((merged.cards[1].data as { bullets: string[] }).bullets).toEqual(["Teams ship AI weekly", "Backends are slow to build"]);
    expect(Y.createAbsolutePositionFromRelativePosition(anchor, doc)?.index).toBe(7);
  });

  it("moves, adds and removes cards by id: cards that stay in order keep their Y.Map (and their texts' anchors)", () => {
    const doc = live(BODY);
    const [title, end] = [deckCardMap(doc, "c-title"), deckCardMap(doc, "c-end")];
    const next = { ...BODY, cards: [CARDS[3], CARDS[0], card("c-new", "text", { title: "New", body: "b" }), CARDS[5]] };
    bodyUpdate(deck, doc, next);
    expect(deck.fromYDoc(doc)).toEqual(next);
    expect(deckCardMap(doc, "c-title")).toBe(title);
    expect(deckCardMap(doc, "c-end")).toBe(end);
  });

  it("changes a card's layout and its image in place", () => {
    const doc = live(BODY);
    const next = structuredClone(BODY);
    next.cards[1] = card("c-why", "text", { title: "Why now", body: "Because." }, { image: { asset_id: "a0000000-0000-4000-8000-0000000000bb", alt: "x" } });
    next.cards[4] = { ...next.cards[4], image: null };
    bodyUpdate(deck, doc, next);
    expect(deck.fromYDoc(doc)).toEqual(next);
  });

  it("drops a card a peer left invalid, and a duplicate id, rather than failing the deck; meta falls back to defaults", () => {
    const doc = live(BODY);
    doc.transact(() => {
      (deckCardMap(doc, "c-stats")!.get("data") as Y.Map<unknown>).set("stats", 42);
      const dup = new Y.Map<unknown>();
      dup.set("id", new Y.Text("c-end"));
      dup.set("layout", new Y.Text("closing"));
      const data = new Y.Map<unknown>();
      data.set("title", new Y.Text("dup"));
      data.set("body", new Y.Text(""));
      dup.set("data", data);
      dup.set("image", null);
      dup.set("notes", new Y.Text(""));
      doc.getArray("cards").push([dup]);
      doc.getMap("deck").set("dimensions", "21x9");
      doc.getMap("deck").set("theme_id", 7);
    });
    const body = deck.fromYDoc(doc);
    expect(body.cards.map((c) => c.id)).toEqual(["c-title", "c-why", "c-two", "c-img", "c-end"]);
    expect(body.cards[4].data).toEqual({ title: "Questions?", body: "launch@acme.test" });
    expect(body).toMatchObject({ theme_id: "plinth-light", dimensions: "16x9" });
    expect(DeckSchema.safeParse(body).success).toBe(true);
  });

  it("a save repairs a card a peer broke, stray keys included", () => {
    const doc = live(BODY);
    deckCardMap(doc, "c-why")!.set("junk", 1);
    (deckCardMap(doc, "c-stats")!.get("data") as Y.Map<unknown>).set("stats", 42);
    expect(deck.fromYDoc(doc).cards.map((c) => c.id)).not.toContain("c-why");
    bodyUpdate(deck, doc, BODY);
    expect(deck.fromYDoc(doc)).toEqual(BODY);
  });
});

describe("decks through the content api", () => {
  it("creates a valid deck (201, live, searchable text) and refuses an invalid body with 400 naming the field, writing nothing", async () => {
    const team = await createTeam("Kind");
    const token = await tokenFor(team.member);
    const made = await call("/api/content/documents", { token, json: { org_id: team.orgId, kind: "deck", title: "Launch", body: BODY } });
    expect(made.status, made.raw).toBe(201);
    expect(made.body).toMatchObject({ kind: "deck", body: BODY });
    const empty = await call("/api/content/documents", { token, json: { org_id: team.orgId, kind: "deck", title: "Empty" } });
    expect(empty.status, empty.raw).toBe(201);
    expect(empty.body.body).toEqual({ theme_id: "plinth-light", dimensions: "16x9", cards: [] });

    const bad = structuredClone(BODY) as unknown as { cards: { data: Record<string, unknown> }[] };
    bad.cards[1].data.bullets = [];
    const res = await call("/api/content/documents", { token, json: { org_id: team.orgId, kind: "deck", title: "Bad", body: bad } });
    expectError(res, 400, "invalid_request");
    expect(res.body.error.details).toContainEqual(expect.objectContaining({ path: "body.cards.1.data.bullets" }));
    const dup = { ...BODY, cards: [CARDS[0], CARDS[0]] };
    const res2 = await call("/api/content/documents", { token, json: { org_id: team.orgId, kind: "deck", title: "Dup", body: dup } });
    expectError(res2, 400, "invalid_request");
    expect(res2.body.error.details).toContainEqual({ path: "body.cards.1.id", message: 'card id "c-title" appears twice' });
    const { rows } = await admin.query("select title from content.documents where org_id = $1 order by title", [team.orgId]);
    expect(rows.map((r) => r.title)).toEqual(["Empty", "Launch"]);
    // A save with an invalid card is refused too, and the deck is unchanged.
    const save = await call(`/api/content/documents/${made.body.id}`, { method: "PUT", token, json: { base_revision: made.body.revision, body: bad } });
    expectError(save, 400, "invalid_request");
    const got = await call(`/api/content/documents/${made.body.id}`, { token });
    expect(got.body).toMatchObject({ revision: made.body.revision, body: BODY });
  });
});
