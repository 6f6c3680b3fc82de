// The document kinds registry. A module registers its kind once (at import) with everything the
// core needs to handle its documents without knowing them: the body's zod schema, the text that
// search indexes, and the two-way mapping to a Y.Doc for live editing. content.kinds in the
// database lists the same kinds (a test keeps the two equal).
import type * as Y from "yjs";
import type { z } from "zod";

export interface ContentKind<B extends object = Record<string, unknown>> {
  /** Matches content.kinds.kind: lower case, digits and underscores. */
  kind: string;
  /** The body as stored and as the api accepts it. */
  schema: z.ZodType<B>;
  /** A new document's body when none is given. */
  empty(): B;
  /** Plain text for search (title is indexed separately). */
  toText(body: B): string;
  /**
   * Makes `doc` hold `body`: on an empty doc this seeds it; on a live one it must change only
   * what differs, so that concurrent edits and comment anchors elsewhere survive (a restore or
   * a REST save becomes a small forward update, not a rewrite).
   */
  toYDoc(body: B, doc: Y.Doc): void;
  /** Reads the body back; must accept whatever peers may have written and return a valid body. */
  fromYDoc(doc: Y.Doc): B;
  /** Ids of the elements (cards, layers, items) that comment anchors may name. */
  elementIds(body: B): string[];
}

const kinds = new Map<string, ContentKind>();

export function registerKind<B extends object>(def: ContentKind<B>): ContentKind<B> {
  if (!/^[a-z][a-z0-9_]{1,39}$/.test(def.kind)) throw new Error(`invalid kind name "${def.kind}"`);
  const existing = kinds.get(def.kind);
  if (existing && existing !== (def as unknown as ContentKind)) throw new Error(`kind "${def.kind}" is registered twice`);
  kinds.set(def.kind, def as unknown as ContentKind);
  return def;
}

export function getKind(kind: string): ContentKind | undefined {
  return kinds.get(kind);
}

/** The kind, or an error naming the ones there are (a document of an unregistered kind cannot be handled). */
export function requireKind(kind: string): ContentKind {
  const k = kinds.get(kind);
  if (!k) throw new Error(`document kind "${kind}" is not registered (known: ${[...kinds.keys()].join(", ")})`);
  return k;
}

export function registeredKinds(): string[] {
  return [...kinds.keys()].sort();
}
