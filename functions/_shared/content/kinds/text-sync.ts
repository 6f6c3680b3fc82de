// Brings a Y.Text (or Y.XmlText) to a target delta with the smallest change: the common prefix
// and suffix stay (and with them every relative position inside them), only the middle is
// replaced, and formatting is then corrected in place.
import * as Y from "yjs";

export interface TextOp {
  insert: string;
  attributes?: Record<string, unknown>;
}

const plain = (ops: TextOp[]) => ops.map((o) => o.insert).join("");

const isHigh = (s: string, i: number) => i >= 0 && i < s.length && s.charCodeAt(i) >= 0xd800 && s.charCodeAt(i) <= 0xdbff;

/** Length of the common prefix and suffix, never splitting a surrogate pair. */
function commonEnds(a: string, b: string): [number, number] {
  const max = Math.min(a.length, b.length);
  let p = 0;
  while (p < max && a.charCodeAt(p) === b.charCodeAt(p)) p++;
  if (p > 0 && isHigh(a, p - 1)) p--;
  let s = 0;
  while (s < max - p && a.charCodeAt(a.length - 1 - s) === b.charCodeAt(b.length - 1 - s)) s++;
  if (s > 0 && isHigh(a, a.length - s - 1)) s--;
  return [p, s];
}

function sameAttributes(a: Record<string, unknown> | undefined, b: Record<string, unknown> | undefined): boolean {
  return JSON.stringify(a ?? {}) === JSON.stringify(b ?? {});
}

/** The text's current delta as string ops; null when it holds embeds (then it is rewritten whole). */
export function textOps(text: Y.Text): TextOp[] | null {
  const ops: TextOp[] = [];
  for (const op of text.toDelta() as { insert: unknown; attributes?: Record<string, unknown> }[]) {
    if (typeof op.insert !== "string") return null;
    ops.push(op.attributes ? { insert: op.insert, attributes: op.attributes } : { insert: op.insert });
  }
  return ops;
}

export function syncText(text: Y.Text, target: TextOp[]): void {
  let current = textOps(text);
  if (current === null) {
    text.delete(0, text.length);
    current = [];
  }
  const from = plain(current);
  const to = plain(target);
  if (from !== to) {
    const [p, s] = commonEnds(from, to);
    const removed = from.length - p - s;
    if (removed > 0) text.delete(p, removed);
    // Insert the target's middle, piece by piece with its own formatting (an explicit {} stops
    // the inserted text from inheriting its left neighbour's marks).
    let at = 0;
    let pos = p;
    for (const op of target) {
      const start = Math.max(at, p);
      const end = Math.min(at + op.insert.length, to.length - s);
      if (end > start) {
        text.insert(pos, op.insert.slice(start - at, end - at), { ...(op.attributes ?? {}) });
        pos += end - start;
      }
      at += op.insert.length;
    }
  }
  // Formatting of the untouched ends may differ too: set each target run's attributes, nulling
  // any the text has there that the target does not.
  const now = textOps(text) ?? [];
  if (now.length === target.length && now.every((op, i) => op.insert === target[i].insert && sameAttributes(op.attributes, target[i].attributes))) {
    return;
  }
  let index = 0;
  for (const op of target) {
    const attrs: Record<string, unknown> = { ...(op.attributes ?? {}) };
    let at = 0;
    for (const cur of now) {
      const overlaps = at < index + op.insert.length && at + cur.insert.length > index;
      if (overlaps) for (const key of Object.keys(cur.attributes ?? {})) if (!(key in attrs)) attrs[key] = null;
      at += cur.insert.length;
    }
    if (Object.keys(attrs).length > 0) text.format(index, op.insert.length, attrs);
    index += op.insert.length;
  }
}

/** A Y.Text's plain string (an XmlText's toString() would add markup for its formatting). */
export function plainText(text: Y.Text): string {
  return (text.toDelta() as { insert: unknown }[]).map((op) => (typeof op.insert === "string" ? op.insert : "")).join("");
}
