// Yjs plumbing shared by the api, the worker and clients' tests: base64 on the wire, building a
// doc from a state and its log, state-vector domination, body <-> update, anchor resolution.
import * as Y from "yjs";
import type { ContentKind } from "./kinds/registry.ts";

export function toBase64(bytes: Uint8Array): string {
  let s = "";
  for (let i = 0; i < bytes.length; i += 0x8000) s += String.fromCharCode(...bytes.subarray(i, i + 0x8000));
  return btoa(s);
}

export function fromBase64(text: string): Uint8Array {
  const s = atob(text);
  const out = new Uint8Array(s.length);
  for (let i = 0; i < s.length; i++) out[i] = s.charCodeAt(i);
  return out;
}

/** A batch of the live log as content.load_live returns it. */
export interface LiveBatch {
  update_id: number;
  revision: number;
  updates: string[];
}

export interface LivePayload {
  document_id: string;
  revision: number;
  level: "view" | "comment" | "edit";
  ystate: string | null;
  updates: LiveBatch[];
}

/** Applies a state and a log (base64) to a new doc. Malformed bytes throw. */
export function docFrom(state: Uint8Array | null, batches: Uint8Array[][], opts: { gc?: boolean } = {}): Y.Doc {
  const doc = new Y.Doc({ gc: opts.gc ?? true });
  if (state) Y.applyUpdate(doc, state);
  for (const batch of batches) for (const u of batch) Y.applyUpdate(doc, u);
  return doc;
}

export function docFromPayload(p: { ystate: string | null; updates: LiveBatch[] }, opts: { gc?: boolean } = {}): Y.Doc {
  return docFrom(p.ystate ? fromBase64(p.ystate) : null, p.updates.map((b) => b.updates.map(fromBase64)), opts);
}

/** Whether state vector `a` has seen everything `b` has (every client's clock at least as far). */
export function dominates(a: Uint8Array | Map<number, number>, b: Uint8Array | Map<number, number>): boolean {
  const am = a instanceof Map ? a : Y.decodeStateVector(a);
  const bm = b instanceof Map ? b : Y.decodeStateVector(b);
  for (const [client, clock] of bm) if ((am.get(client) ?? 0) < clock) return false;
  return true;
}

/** A fresh doc holding the body: what the server seeds a document with, once. */
export function seedState<B extends object>(kind: ContentKind<B>, body: B): { state: Uint8Array; sv: Uint8Array; body: B } {
  const doc = new Y.Doc();
  kind.toYDoc(body, doc);
  return { state: Y.encodeStateAsUpdate(doc), sv: Y.encodeStateVector(doc), body: kind.fromYDoc(doc) };
}

/**
 * Turns `body` into a forward update on top of `doc` (changing only what differs); `doc` then
 * holds the result. Returns null when nothing changed.
 */
export function bodyUpdate<B extends object>(kind: ContentKind<B>, doc: Y.Doc, body: B): Uint8Array | null {
  const before = Y.encodeStateVector(doc);
  kind.toYDoc(body, doc);
  const update = Y.encodeStateAsUpdate(doc, before);
  // An empty update is 2 bytes (no structs, empty delete set).
  return dominates(before, Y.encodeStateVector(doc)) && update.length <= 2 ? null : update;
}

export interface Anchor {
  element_id?: string;
  rel_start?: string;
  rel_end?: string;
  quoted_text?: string;
}

export interface ResolvedAnchor {
  status: "anchored" | "deleted";
  text: string | null;
  /** Re-encoded at the current first and last surviving characters, so later GC cannot orphan them. */
  rel_start?: string;
  rel_end?: string;
}

function typeText(type: Y.AbstractType<unknown>): string | null {
  if (!(type instanceof Y.Text)) return null;
  return (type.toDelta() as { insert: unknown }[]).map((op) => (typeof op.insert === "string" ? op.insert : " ")).join("");
}

/**
 * Where an anchor is now. Resolve on a doc built without GC, so positions inside text deleted
 * since the last compaction still land where it was. A range with nothing left, a deleted
 * parent, or an element that no longer exists is "deleted".
 */
export function resolveAnchor<B extends object>(doc: Y.Doc, kind: ContentKind<B>, body: B, anchor: Anchor): ResolvedAnchor {
  if (anchor.element_id && !kind.elementIds(body).includes(anchor.element_id)) return { status: "deleted", text: null };
  if (!anchor.rel_start || !anchor.rel_end) return { status: "anchored", text: null };
  let start: Y.AbsolutePosition | null;
  let end: Y.AbsolutePosition | null;
  let assoc: [number, number];
  try {
    const rs = Y.decodeRelativePosition(fromBase64(anchor.rel_start));
    const re = Y.decodeRelativePosition(fromBase64(anchor.rel_end));
    assoc = [rs.assoc, re.assoc];
    start = Y.createAbsolutePositionFromRelativePosition(rs, doc);
    end = Y.createAbsolutePositionFromRelativePosition(re, doc);
  } catch {
    return { status: "deleted", text: null };
  }
  if (!start || !end || start.type !== end.type) return { status: "deleted", text: null };
  const item = start.type._item;
  if (item && (item.deleted || isInsideDeleted(item))) return { status: "deleted", text: null };
  const quoted = anchor.quoted_text ?? "";
  if (end.index <= start.index && quoted.length > 0) return { status: "deleted", text: null };
  const text = typeText(start.type);
  return {
    status: "anchored",
    text: text === null ? null : text.slice(start.index, Math.max(start.index, end.index)),
    // Same associations as the client chose (a range end usually sticks to the character before it).
    rel_start: toBase64(Y.encodeRelativePosition(Y.createRelativePositionFromTypeIndex(start.type, start.index, assoc[0]))),
    rel_end: toBase64(Y.encodeRelativePosition(Y.createRelativePositionFromTypeIndex(start.type, Math.max(start.index, end.index), assoc[1]))),
  };
}

function isInsideDeleted(item: Y.Item): boolean {
  for (let p: Y.Item | null = item; p; p = (p.parent as Y.AbstractType<unknown>)._item) if (p.deleted) return true;
  return false;
}
