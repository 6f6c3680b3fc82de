// Kind "checklist": the worked example of a structured kind. Ordered items with stable ids, each
// with a text and a done flag. Live, the items are the Y.Array "items" of Y.Maps { id, text:
// Y.Text, done }, so two people can edit different items (or the same item's text) at once,
// and a comment anchors to an item (element_id) and a range of its text (relative positions).
import * as Y from "yjs";
import { z } from "zod";
import { type KeyedList, syncKeyedArray } from "./list-sync.ts";
import { registerKind } from "./registry.ts";
import { plainText, syncText } from "./text-sync.ts";

export interface ChecklistItem {
  id: string;
  text: string;
  done: boolean;
}

export interface ChecklistBody {
  items: ChecklistItem[];
}

export const ITEM_ID = /^[A-Za-z0-9_-]{1,64}$/;

export const ChecklistBody: z.ZodType<ChecklistBody> = z
  .strictObject({
    items: z
      .array(z.strictObject({ id: z.string().regex(ITEM_ID), text: z.string().max(10_000), done: z.boolean() }))
      .max(1_000),
  })
  .superRefine((body, ctx) => {
    const seen = new Set<string>();
    for (const [i, item] of body.items.entries()) {
      if (seen.has(item.id)) ctx.addIssue({ code: "custom", message: `item id "${item.id}" appears twice`, path: ["items", i, "id"] });
      seen.add(item.id);
    }
  });

const itemsOf = (doc: Y.Doc) => doc.getArray<Y.Map<unknown>>("items");

function readItem(m: Y.Map<unknown>): ChecklistItem | null {
  const id = m.get("id");
  if (typeof id !== "string" || !ITEM_ID.test(id)) return null;
  const text = m.get("text");
  return { id, text: text instanceof Y.Text ? plainText(text).slice(0, 10_000) : "", done: m.get("done") === true };
}

function newItem(item: ChecklistItem): Y.Map<unknown> {
  const m = new Y.Map<unknown>();
  m.set("id", item.id);
  m.set("text", new Y.Text(item.text));
  m.set("done", item.done);
  return m;
}

/** Items keep their Y.Map (and the text's relative positions) unless removed or moved. */
const ITEM_LIST: KeyedList<ChecklistItem> = {
  keyOf: (m) => readItem(m)?.id ?? null,
  idOf: (item) => item.id,
  create: newItem,
  update: (m, item) => {
    const text = m.get("text");
    if (text instanceof Y.Text) syncText(text, item.text ? [{ insert: item.text }] : []);
    else m.set("text", new Y.Text(item.text));
    if (m.get("done") !== item.done) m.set("done", item.done);
  },
};

export const checklist = registerKind<ChecklistBody>({
  kind: "checklist",
  schema: ChecklistBody,
  empty: () => ({ items: [] }),
  toText: (body) => body.items.map((i) => i.text).join("\n"),
  toYDoc: (body, doc) => doc.transact(() => syncKeyedArray(itemsOf(doc), body.items, ITEM_LIST)),
  fromYDoc: (doc) => {
    const seen = new Set<string>();
    const items: ChecklistItem[] = [];
    for (const m of itemsOf(doc).toArray()) {
      const item = m instanceof Y.Map ? readItem(m) : null;
      if (!item || seen.has(item.id) || items.length >= 1_000) continue;
      seen.add(item.id);
      items.push(item);
    }
    return { items };
  },
  elementIds: (body) => body.items.map((i) => i.id),
});

/** The Y.Text of an item, for clients that anchor comments or bind an editor to it. */
export function checklistItemText(doc: Y.Doc, id: string): Y.Text | undefined {
  const m = itemsOf(doc).toArray().find((x) => x instanceof Y.Map && x.get("id") === id);
  const text = m?.get("text");
  return text instanceof Y.Text ? text : undefined;
}
