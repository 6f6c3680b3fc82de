// Kind "note": rich text as ProseMirror/Tiptap JSON. Live, it is the Y.XmlFragment "default" in
// y-prosemirror's mapping (what Tiptap's Collaboration extension edits): a node is a
// Y.XmlElement named after its type with its attrs as attributes; runs of text nodes are one
// Y.XmlText whose formatting attributes are the marks ({ bold: {}, link: { href } }).
import * as Y from "yjs";
import { z } from "zod";
import { registerKind } from "./registry.ts";
import { plainText, syncText, type TextOp } from "./text-sync.ts";

export interface PmMark {
  type: string;
  attrs?: Record<string, unknown>;
}

export interface PmNode {
  type: string;
  attrs?: Record<string, unknown>;
  content?: PmNode[];
  text?: string;
  marks?: PmMark[];
}

export interface NoteBody {
  type: "doc";
  content: PmNode[];
}

export const NOTE_FRAGMENT = "default";
const MAX_DEPTH = 48;

const Name = z.string().regex(/^[A-Za-z][A-Za-z0-9_]{0,63}$/);
const Attrs = z.record(z.string().min(1).max(64), z.json());
const Mark = z.strictObject({ type: Name, attrs: Attrs.optional() });
const Node: z.ZodType<PmNode> = z.lazy(() =>
  z
    .strictObject({
      type: Name,
      attrs: Attrs.optional(),
      content: z.array(Node).max(10_000).optional(),
      text: z.string().min(1).max(100_000).optional(),
      marks: z.array(Mark).max(20).optional(),
    })
    .refine((n) => (n.type === "text") === (n.text !== undefined), { message: "text nodes (and only they) carry text" })
    .refine((n) => n.type !== "text" || n.content === undefined, { message: "a text node has no content" }),
);

function depthOf(nodes: PmNode[]): number {
  let max = 0;
  const stack: [PmNode[], number][] = [[nodes, 1]];
  while (stack.length) {
    const [list, depth] = stack.pop()!;
    max = Math.max(max, depth);
    if (depth > MAX_DEPTH) break;
    for (const n of list) if (Array.isArray(n.content)) stack.push([n.content, depth + 1]);
  }
  return max;
}

export const NoteBody: z.ZodType<NoteBody> = z
  .strictObject({ type: z.literal("doc"), content: z.array(Node).max(10_000) })
  .superRefine((body, ctx) => {
    if (depthOf(body.content as PmNode[]) > MAX_DEPTH) ctx.addIssue({ code: "custom", message: `nodes nest at most ${MAX_DEPTH} deep` });
  });

// ---------------------------------------------------------------------------- JSON <-> Y

const nonEmpty = <T extends object>(o: T | undefined) => (o && Object.keys(o).length > 0 ? o : undefined);

/** Node attrs without nulls (y-prosemirror does not store null attributes). */
function cleanAttrs(attrs: Record<string, unknown> | undefined): Record<string, unknown> | undefined {
  if (!attrs) return undefined;
  return nonEmpty(Object.fromEntries(Object.entries(attrs).filter(([, v]) => v !== null && v !== undefined)));
}

const marksToAttributes = (marks: PmMark[] | undefined) => Object.fromEntries((marks ?? []).map((m) => [m.type, m.attrs ?? {}]));

function attributesToMarks(attributes: Record<string, unknown> | undefined): PmMark[] | undefined {
  if (!attributes) return undefined;
  const marks = Object.entries(attributes)
    .filter(([, v]) => v !== null && v !== undefined)
    .map(([type, a]) => {
      const attrs = a && typeof a === "object" && !Array.isArray(a) ? nonEmpty(a as Record<string, unknown>) : undefined;
      return attrs ? { type, attrs } : { type };
    });
  return marks.length ? marks : undefined;
}

/** What sits in one Y child slot: an element, or a run of text nodes (one Y.XmlText). */
type Slot = { el: PmNode } | { text: PmNode[] };

function slotsOf(nodes: PmNode[]): Slot[] {
  const slots: Slot[] = [];
  for (const n of nodes) {
    if (n.type === "text") {
      const last = slots[slots.length - 1];
      if (last && "text" in last) last.text.push(n);
      else slots.push({ text: [n] });
    } else {
      slots.push({ el: n });
    }
  }
  return slots;
}

const textRunOps = (run: PmNode[]): TextOp[] =>
  run.map((n) => {
    const attributes = marksToAttributes(n.marks);
    return Object.keys(attributes).length ? { insert: n.text ?? "", attributes } : { insert: n.text ?? "" };
  });

function textNodesOf(text: Y.XmlText): PmNode[] {
  const out: PmNode[] = [];
  for (const op of text.toDelta() as { insert: unknown; attributes?: Record<string, unknown> }[]) {
    if (typeof op.insert !== "string" || op.insert.length === 0) continue;
    const marks = attributesToMarks(op.attributes);
    out.push(marks ? { type: "text", text: op.insert, marks } : { type: "text", text: op.insert });
  }
  return out;
}

function elementToNode(el: Y.XmlElement): PmNode {
  const node: PmNode = { type: el.nodeName };
  const attrs = cleanAttrs(el.getAttributes() as Record<string, unknown>);
  if (attrs) node.attrs = attrs;
  const content = childrenToNodes(el);
  if (content.length) node.content = content;
  return node;
}

function childrenToNodes(parent: Y.XmlFragment | Y.XmlElement): PmNode[] {
  const out: PmNode[] = [];
  for (const child of parent.toArray()) {
    if (child instanceof Y.XmlText) out.push(...textNodesOf(child));
    else if (child instanceof Y.XmlElement && /^[A-Za-z][A-Za-z0-9_]{0,63}$/.test(child.nodeName)) out.push(elementToNode(child));
  }
  return out;
}

/** The normal form of a node (what a round trip through Y gives). */
function normalizeNode(n: PmNode): PmNode {
  if (n.type === "text") {
    const marks = attributesToMarks(marksToAttributes(n.marks));
    return marks ? { type: "text", text: n.text, marks } : { type: "text", text: n.text };
  }
  const out: PmNode = { type: n.type };
  const attrs = cleanAttrs(n.attrs);
  if (attrs) out.attrs = attrs;
  const content = mergeTextRuns((n.content ?? []).map(normalizeNode));
  if (content.length) out.content = content;
  return out;
}

/** Adjacent text nodes with the same marks are one text node once in Y. */
function mergeTextRuns(nodes: PmNode[]): PmNode[] {
  const out: PmNode[] = [];
  for (const n of nodes) {
    const last = out[out.length - 1];
    if (n.type === "text" && last?.type === "text" && JSON.stringify(last.marks ?? []) === JSON.stringify(n.marks ?? [])) {
      out[out.length - 1] = { ...last, text: (last.text ?? "") + (n.text ?? "") };
    } else out.push(n);
  }
  return out;
}

const slotKey = (s: Slot) => JSON.stringify("el" in s ? normalizeNode(s.el) : mergeTextRuns(s.text.map(normalizeNode)));

function currentSlot(child: Y.XmlElement | Y.XmlText): Slot {
  return child instanceof Y.XmlText ? { text: textNodesOf(child) } : { el: elementToNode(child) };
}

function insertSlots(parent: Y.XmlFragment | Y.XmlElement, index: number, slots: Slot[]): void {
  const made = slots.map((s) => ("el" in s ? new Y.XmlElement(s.el.type) : new Y.XmlText()));
  parent.insert(index, made);
  slots.forEach((s, i) => {
    const y = made[i];
    if (y instanceof Y.XmlText) syncText(y, textRunOps((s as { text: PmNode[] }).text));
    else fillElement(y, (s as { el: PmNode }).el);
  });
}

function fillElement(el: Y.XmlElement, node: PmNode): void {
  const attrs = cleanAttrs(node.attrs) ?? {};
  for (const key of Object.keys(el.getAttributes())) if (!(key in attrs)) el.removeAttribute(key);
  for (const [key, value] of Object.entries(attrs)) {
    if (JSON.stringify(el.getAttribute(key)) !== JSON.stringify(value)) el.setAttribute(key, value as string);
  }
  syncChildren(el, node.content ?? []);
}

/** Changes a parent's children into `target`, keeping the unchanged ones at both ends. */
function syncChildren(parent: Y.XmlFragment | Y.XmlElement, target: PmNode[]): void {
  const want = slotsOf(target);
  const have = parent.toArray().filter((c): c is Y.XmlElement | Y.XmlText => c instanceof Y.XmlElement || c instanceof Y.XmlText);
  const haveKeys = have.map((c) => slotKey(currentSlot(c)));
  const wantKeys = want.map(slotKey);
  let p = 0;
  while (p < have.length && p < want.length && haveKeys[p] === wantKeys[p]) p++;
  let s = 0;
  while (s < have.length - p && s < want.length - p && haveKeys[have.length - 1 - s] === wantKeys[want.length - 1 - s]) s++;
  const oldMiddle = have.slice(p, have.length - s);
  const newMiddle = want.slice(p, want.length - s);
  if (oldMiddle.length === newMiddle.length) {
    // Slot by slot: text runs and same-type elements are edited in place (anchors inside survive).
    oldMiddle.forEach((y, i) => {
      const slot = newMiddle[i];
      if (y instanceof Y.XmlText && "text" in slot) syncText(y, textRunOps(slot.text));
      else if (y instanceof Y.XmlElement && "el" in slot && y.nodeName === slot.el.type) fillElement(y, slot.el);
      else {
        const at = parent.toArray().indexOf(y);
        parent.delete(at, 1);
        insertSlots(parent, at, [slot]);
      }
    });
    return;
  }
  const at = p;
  if (oldMiddle.length) parent.delete(at, oldMiddle.length);
  if (newMiddle.length) insertSlots(parent, at, newMiddle);
}

function textOf(nodes: PmNode[], out: string[]): void {
  for (const n of nodes) {
    if (n.type === "text") out.push(n.text ?? "");
    else {
      textOf(n.content ?? [], out);
      out.push("\n");
    }
  }
}

function idsOf(nodes: PmNode[], out: string[]): void {
  for (const n of nodes) {
    const id = n.attrs?.id;
    if (typeof id === "string" && id) out.push(id);
    idsOf(n.content ?? [], out);
  }
}

export const note = registerKind<NoteBody>({
  kind: "note",
  schema: NoteBody,
  empty: () => ({ type: "doc", content: [] }),
  toText: (body) => {
    const out: string[] = [];
    textOf(body.content, out);
    return out.join("").replace(/\n{3,}/g, "\n\n").trim();
  },
  toYDoc: (body, doc) => doc.transact(() => syncChildren(doc.getXmlFragment(NOTE_FRAGMENT), body.content)),
  fromYDoc: (doc) => ({ type: "doc", content: childrenToNodes(doc.getXmlFragment(NOTE_FRAGMENT)) }),
  elementIds: (body) => {
    const out: string[] = [];
    idsOf(body.content, out);
    return out;
  },
});

/** For tests and modules: the plain text of a note's Y.XmlText nodes in order. */
export function noteText(doc: Y.Doc): string {
  const out: string[] = [];
  const walk = (parent: Y.XmlFragment | Y.XmlElement) => {
    for (const c of parent.toArray()) {
      if (c instanceof Y.XmlText) out.push(plainText(c));
      else if (c instanceof Y.XmlElement) walk(c);
    }
  };
  walk(doc.getXmlFragment(NOTE_FRAGMENT));
  return out.join("\n");
}
