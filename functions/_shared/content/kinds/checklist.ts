// Kind "checklist": the worked example of a structured kind. Ordered items with stable ids, each
// with a text and a done flag. Live, the items are the Y.Array "items" of Y.Maps { id, text:
// Y.Text, done }, so two people can edit different items (or the same item's text) at once,
// and a comment anchors to an item (element_id) and a range of its text (relative positions).
import * as Y from "yjs";
import { z } from "zod";
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

/** Indexes (into `seq`) of a longest increasing subsequence: the items that need not move. */
function longestIncreasing(seq: number[]): Set<number> {
  const tails: number[] = [];
  const prev: number[] = new Array(seq.length).fill(-1);
  for (let i = 0; i < seq.length; i++) {
    let lo = 0;
    let hi = tails.length;
    while (lo < hi) {
      const mid = (lo + hi) >> 1;
      if (seq[tails[mid]] < seq[i]) lo = mid + 1;
      else hi = mid;
    }
    if (lo > 0) prev[i] = tails[lo - 1];
    tails[lo] = i;
  }
  const keep = new Set<number>();
  for (let i = tails.length ? tails[tails.length - 1] : -1; i >= 0; i = prev[i]) keep.add(i);
  return keep;
}

/** Items keep their Y.Map (and the text's relative positions) unless removed or moved. */
function syncItems(doc: Y.Doc, target: ChecklistItem[]): void {
  const arr = itemsOf(doc);
  const have = arr.toArray();
  const wanted = new Map(target.map((t, i) => [t.id, i]));
  const seenIds = new Set<string>();
  // Old positions of surviving items, in target order; those off the longest increasing run moved.
  const survivors: { old: number; at: number }[] = [];
  have.forEach((m, old) => {
    const item = readItem(m);
    if (item && wanted.has(item.id) && !seenIds.has(item.id)) {
      seenIds.add(item.id);
      survivors.push({ old, at: wanted.get(item.id)! });
    }
  });
  survivors.sort((a, b) => a.at - b.at);
  const stable = new Set([...longestIncreasing(survivors.map((s) => s.old))].map((i) => survivors[i].old));
  for (let i = have.length - 1; i >= 0; i--) if (!stable.has(i)) arr.delete(i, 1);
  let j = 0;
  for (const item of target) {
    const current = j < arr.length ? arr.get(j) : undefined;
    if (current && readItem(current)?.id === item.id) {
      const text = current.get("text");
      if (text instanceof Y.Text) syncText(text, item.text ? [{ insert: item.text }] : []);
      else current.set("text", new Y.Text(item.text));
      if (current.get("done") !== item.done) current.set("done", item.done);
    } else {
      arr.insert(j, [newItem(item)]);
    }
    j++;
  }
}

export const checklist = registerKind<ChecklistBody>({
  kind: "checklist",
  schema: ChecklistBody,
  empty: () => ({ items: [] }),
  toText: (body) => body.items.map((i) => i.text).join("\n"),
  toYDoc: (body, doc) => doc.transact(() => syncItems(doc, body.items)),
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
