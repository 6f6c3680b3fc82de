// The kinds registry and the two shipped kinds: the registry matches content.kinds, bodies
// survive a round trip through Yjs, and a new body becomes a minimal update that keeps
// concurrent edits and relative positions in untouched text.
import * as Y from "yjs";
import { describe, expect, it } from "vitest";
import { checklist, checklistItemText } from "../../functions/_shared/content/kinds/checklist.ts";
import { note, type NoteBody, noteText } from "../../functions/_shared/content/kinds/note.ts";
import "../../functions/_shared/deck/kind.ts";
import type { ContentKind } from "../../functions/_shared/content/kinds/registry.ts";
import { registerKind, registeredKinds } from "../../functions/_shared/content/kinds/registry.ts";
import { bodyUpdate, seedState } from "../../functions/_shared/content/ydoc.ts";
import { admin } from "../helpers/db.ts";

const rich: NoteBody = {
  type: "doc",
  content: [
    { type: "heading", attrs: { level: 2, id: "h1" }, content: [{ type: "text", text: "Title" }] },
    {
      type: "paragraph",
      content: [
        { type: "text", text: "plain " },
        { type: "text", text: "bold link", marks: [{ type: "bold" }, { type: "link", attrs: { href: "https://x.test" } }] },
        { type: "hardBreak" },
        { type: "text", text: " tail" },
      ],
    },
    { type: "bulletList", content: [{ type: "listItem", content: [{ type: "paragraph", content: [{ type: "text", text: "item" }] }] }] },
  ],
};

function live<B extends object>(kind: ContentKind<B>, body: B) {
  const doc = new Y.Doc();
  Y.applyUpdate(doc, seedState(kind, body).state);
  return doc;
}

describe("the registry", () => {
  it("lists exactly the kinds in content.kinds", async () => {
    const { rows } = await admin.query("select kind from content.kinds order by kind");
    expect(registeredKinds()).toEqual(rows.map((r) => r.kind));
  });

  it("refuses a bad name and a second registration under the same name", () => {
    expect(() => registerKind({ ...note, kind: "Bad Name" })).toThrow(/invalid kind/);
    expect(() => registerKind({ ...note })).toThrow(/registered twice/);
  });
});

describe("note", () => {
  it("round-trips rich text through a Y.XmlFragment (y-prosemirror's mapping)", () => {
    const doc = live(note, rich);
    expect(note.fromYDoc(doc)).toEqual(rich);
    expect(note.schema.safeParse(rich).success).toBe(true);
    expect(note.toText(rich)).toBe("Title\nplain bold link\n tail\nitem"); // a hard break is a line break
    expect(note.elementIds(rich)).toEqual(["h1"]);
    const para = doc.getXmlFragment("default").get(1) as Y.XmlElement;
    expect(para.nodeName).toBe("paragraph");
    expect((para.get(0) as Y.XmlText).toDelta()[1]).toEqual({ insert: "bold link", attributes: { bold: {}, link: { href: "https://x.test" } } });
  });

  it("turns a new body into an update that changes only what differs: a concurrent edit and an anchor elsewhere survive", () => {
    const doc = live(note, noteOf(p("keep this sentence"), p("change me")));
    const peer = new Y.Doc();
    Y.applyUpdate(peer, Y.encodeStateAsUpdate(doc));
    const keep = (doc.getXmlFragment("default").get(0) as Y.XmlElement).get(0) as Y.XmlText;
    const anchor = Y.createRelativePositionFromTypeIndex(keep, 5);
    const update = bodyUpdate(note, doc, noteOf(p("keep this sentence"), p("changed, me")))!;
    expect(update.length).toBeLessThan(60);
    // Meanwhile a peer typed into the first paragraph.
    ((peer.getXmlFragment("default").get(0) as Y.XmlElement).get(0) as Y.XmlText).insert(0, ">> ");
    Y.applyUpdate(peer, update);
    Y.applyUpdate(doc, Y.encodeStateAsUpdate(peer));
    expect(noteText(doc)).toBe(">> keep this sentence\nchanged, me");
    expect(Y.createAbsolutePositionFromRelativePosition(anchor, doc)?.index).toBe(8);
    expect(bodyUpdate(note, doc, note.fromYDoc(doc))).toBeNull();
  });

  it("refuses what is not a note: wrong root, text without text, nesting past the limit, unknown keys", () => {
    expect(note.schema.safeParse({ type: "page", content: [] }).success).toBe(false);
    expect(note.schema.safeParse({ type: "doc", content: [{ type: "text" }] }).success).toBe(false);
    expect(note.schema.safeParse({ type: "doc", content: [{ type: "paragraph", style: "x" }] }).success).toBe(false);
    let deep: Record<string, unknown> = { type: "paragraph" };
    for (let i = 0; i < 60; i++) deep = { type: "blockquote", content: [deep] };
    expect(note.schema.safeParse({ type: "doc", content: [deep] }).success).toBe(false);
  });
});

describe("checklist", () => {
  it("round-trips and edits items in place: ids keep their Y.Text, moved items move, removed ones go", () => {
    const body = { items: [{ id: "a", text: "alpha", done: false }, { id: "b", text: "beta", done: true }, { id: "c", text: "gamma", done: false }] };
    const doc = live(checklist, body);
    expect(checklist.fromYDoc(doc)).toEqual(body);
    const b = checklistItemText(doc, "b")!;
    const pos = Y.createRelativePositionFromTypeIndex(b, 2);
    bodyUpdate(checklist, doc, { items: [{ id: "c", text: "gamma", done: true }, { id: "b", text: "be-ta", done: true }, { id: "d", text: "new", done: false }] });
    expect(checklist.fromYDoc(doc)).toEqual({ items: [{ id: "c", text: "gamma", done: true }, { id: "b", text: "be-ta", done: true }, { id: "d", text: "new", done: false }] });
    expect(checklistItemText(doc, "b")).toBe(b);
    expect(Y.createAbsolutePositionFromRelativePosition(pos, doc)?.index).toBe(3);
    expect(checklist.toText({ items: [{ id: "x", text: "one", done: false }, { id: "y", text: "two", done: true }] })).toBe("one\ntwo");
  });

  it("reads whatever peers wrote as a valid body: junk items and duplicate ids are dropped", () => {
    const doc = new Y.Doc();
    const items = doc.getArray<Y.Map<unknown>>("items");
    const m = (id: unknown) => {
      const x = new Y.Map<unknown>();
      x.set("id", id);
      x.set("text", new Y.Text("t"));
      return x;
    };
    items.push([m("ok"), m("bad id!"), m("ok"), m(42)]);
    const body = checklist.fromYDoc(doc);
    expect(body).toEqual({ items: [{ id: "ok", text: "t", done: false }] });
    expect(checklist.schema.safeParse(body).success).toBe(true);
  });
});

function p(text: string) {
  return { type: "paragraph", content: [{ type: "text", text }] };
}
const noteOf = (...paragraphs: ReturnType<typeof p>[]): NoteBody => ({ type: "doc", content: paragraphs });
