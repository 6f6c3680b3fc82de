// Body writes, as the api (or a module's server code) makes them, inside the caller's asUser
// transaction: the kind's zod schema and text extraction in TypeScript, the invariants in SQL
// (private.content_*). A live document's new body becomes a Yjs update computed against the
// locked, current state, so it reaches every open client like any other edit, and a version's
// copy is the merged state, never a stale body.
import { sql } from "kysely";
import * as Y from "yjs";
import type { Tx } from "../db/client.ts";
import { ApiError } from "../http/errors.ts";
import "./kinds/index.ts";
import { type ContentKind, getKind } from "./kinds/registry.ts";
import { bodyUpdate, docFromPayload, type LivePayload, seedState } from "./ydoc.ts";

type Body = Record<string, unknown>;

export interface DocumentRow {
  id: string;
  org_id: string;
  kind: string;
  title: string;
  body: Body;
  status: "draft" | "published" | "archived";
  visibility: "private" | "org" | "link" | "public";
  owner_id: string | null;
  tags: string[];
  forked_from: string | null;
  origin: string;
  is_template: boolean;
  template_scope: string;
  template_category: string | null;
  template_locale: string | null;
  revision: number;
  body_revision: number;
  version_count: number;
  last_version_revision: number;
  published_at: string | null;
  created_by: string | null;
  created_at: string;
  updated_at: string;
}

const COLUMNS = sql.raw(`id, org_id, kind, title, body, status, visibility, owner_id, tags, forked_from, origin, is_template,
  template_scope, template_category, template_locale, revision, body_revision, version_count, last_version_revision,
  published_at, created_by, created_at, updated_at`);

/** A document as its reader sees it now: for a live one, the body and revision of the merged state. */
export interface Current {
  row: DocumentRow;
  kind: ContentKind;
  revision: number;
  body: Body;
  /** The merged Yjs doc of a live document (null for one not live yet). */
  doc: Y.Doc | null;
}

export function kindOf(name: string): ContentKind {
  const kind = getKind(name);
  if (!kind) throw new ApiError(400, "invalid_request", `document kind "${name}" is not registered`);
  return kind;
}

/** Validates a body for its kind: 400 naming each bad field. */
export function parseBody(kind: ContentKind, body: unknown): Body {
  const parsed = kind.schema.safeParse(body);
  if (!parsed.success) {
    const details = parsed.error.issues.map((i) => ({ path: ["body", ...i.path].join("."), message: i.message }));
    throw new ApiError(400, "invalid_request", `the body is not a valid ${kind.kind}`, details);
  }
  return parsed.data as Body;
}

export async function readCurrent(tx: Tx, documentId: string, opts: { lock?: boolean } = {}): Promise<Current> {
  if (opts.lock) await sql`select private.content_lock_document(${documentId}::uuid)`.execute(tx);
  const { rows: [row] } = await sql<DocumentRow>`select ${COLUMNS} from content.documents where id = ${documentId}::uuid`.execute(tx);
  if (!row) throw new ApiError(404, "not_found", "document not found");
  const kind = kindOf(row.kind);
  const { rows: [{ live }] } = await sql<{ live: LivePayload }>`select content.load_live(${documentId}::uuid) as live`.execute(tx);
  if (!live.ystate) return { row, kind, revision: row.revision, body: row.body, doc: null };
  const doc = docFromPayload(live);
  // The stored body is current unless live batches arrived after it was derived.
  const body = row.body_revision >= live.revision ? row.body : (kind.schema.safeParse(kind.fromYDoc(doc)).data as Body | undefined) ?? row.body;
  return { row, kind, revision: live.revision, body, doc };
}

export function staleError(current: Current): ApiError {
  return new ApiError(409, "stale_revision", `the document changed: it is at revision ${current.revision} now`, {
    revision: current.revision,
    title: current.row.title,
    body: current.body,
  });
}

export interface CreateInput {
  org_id: string;
  kind: string;
  title?: string;
  body?: Body;
  tags?: string[];
  visibility?: string;
  is_template?: boolean;
  template_category?: string;
  template_locale?: string;
}

/** Creates a document, live from the start: the server seeds its Yjs state once, here. */
export async function createDocument(tx: Tx, input: CreateInput): Promise<DocumentRow> {
  const kind = kindOf(input.kind);
  const body = parseBody(kind, input.body ?? kind.empty());
  const seed = seedState(kind, body);
  const { rows: [row] } = await sql<DocumentRow>`
    select ${COLUMNS} from private.content_create_document(
      ${input.org_id}::uuid, ${input.kind}, ${input.title ?? ""}, ${JSON.stringify(seed.body)}::jsonb, ${kind.toText(seed.body)},
      ${input.tags ?? []}::text[], ${input.visibility ?? "org"}, 'draft', ${seed.state}::bytea, ${seed.sv}::bytea,
      ${input.is_template ?? false}, ${input.template_category ?? null}, ${input.template_locale ?? null})`.execute(tx);
  return row;
}

type Reason = "save" | "import" | "ai_rewrite" | "restore";
const BEFORE: Partial<Record<Reason, string>> = { import: "before_import", ai_rewrite: "before_ai_rewrite" };

async function addVersion(
  tx: Tx,
  cur: { row: DocumentRow; revision: number },
  v: { title: string; body: Body; doc: Y.Doc | null; reason: string; message?: string | null; pinned?: boolean; restoredFrom?: string },
) {
  const { rows: [version] } = await sql<VersionRow>`
    select ${VERSION_COLUMNS} from private.content_add_version(
      ${cur.row.id}::uuid, ${cur.revision}::int, ${v.title}, ${JSON.stringify(v.body)}::jsonb,
      ${v.doc ? Y.encodeStateAsUpdate(v.doc) : null}::bytea, ${v.reason}, ${v.message ?? null}, ${v.pinned ?? false},
      ${v.restoredFrom ?? null}::uuid)`.execute(tx);
  return version;
}

export interface VersionRow {
  id: string;
  document_id: string;
  number: number;
  revision: number;
  reason: string;
  message: string | null;
  title: string;
  pinned: boolean;
  restored_from: string | null;
  created_by: string | null;
  created_at: string;
}
const VERSION_COLUMNS = sql.raw("id, document_id, number, revision, reason, message, title, pinned, restored_from, created_by, created_at");

export interface WriteInput {
  /** The revision the change was made against; omitted only by a restore (which replaces whatever is there). */
  base_revision?: number;
  body: Body;
  title?: string;
  message?: string;
  reason?: Reason;
  restoredFrom?: string;
}

export interface WriteResult {
  revision: number;
  body: Body;
  version: VersionRow | null;
}

/**
 * Replaces the body as of `base_revision` (409 with the current body if the document moved on).
 * An import or AI rewrite first keeps a version of what it replaces; a message keeps a version of
 * the result; a restore always does.
 */
export async function writeBody(tx: Tx, documentId: string, input: WriteInput): Promise<WriteResult> {
  const reason = input.reason ?? "save";
  const cur = await readCurrent(tx, documentId, { lock: true });
  if (input.base_revision !== undefined && cur.revision !== input.base_revision) throw staleError(cur);
  const body = parseBody(cur.kind, input.body);
  const title = input.title ?? cur.row.title;
  const before = BEFORE[reason];
  if (before) await addVersion(tx, cur, { title: cur.row.title, body: cur.body, doc: cur.doc, reason: before });

  let revision = cur.revision;
  let next = body;
  if (cur.doc) {
    const update = bodyUpdate(cur.kind, cur.doc, body);
    next = cur.kind.fromYDoc(cur.doc) as Body;
    if (update) {
      revision = await write(tx, documentId, cur.revision, title, next, cur.kind, update, reason);
    } else if (title !== cur.row.title) {
      await sql`select content.update_document(${documentId}::uuid, ${title})`.execute(tx);
    }
  } else if (JSON.stringify(body) !== JSON.stringify(cur.body) || title !== cur.row.title) {
    revision = await write(tx, documentId, cur.revision, title, body, cur.kind, null, reason);
  }
  const keep = reason === "restore" || input.message !== undefined;
  const version = keep
    ? await addVersion(tx, { row: cur.row, revision }, {
      title, body: next, doc: cur.doc, reason: reason === "restore" ? "restore" : "save", message: input.message, restoredFrom: input.restoredFrom,
    })
    : null;
  return { revision, body: next, version };
}

async function write(tx: Tx, id: string, base: number, title: string, body: Body, kind: ContentKind, update: Uint8Array | null, reason: Reason) {
  const { rows: [{ revision }] } = await sql<{ revision: number }>`
    select private.content_write(${id}::uuid, ${base}::int, ${title}, ${JSON.stringify(body)}::jsonb, ${kind.toText(body)},
                                 ${update}::bytea, ${reason}) as revision`.execute(tx);
  return revision;
}

/** A version of the document as it is now (live: the merged state). */
export async function createVersion(tx: Tx, documentId: string, opts: { message: string; pinned?: boolean }): Promise<VersionRow> {
  const cur = await readCurrent(tx, documentId, { lock: true });
  return await addVersion(tx, cur, { title: cur.row.title, body: cur.body, doc: cur.doc, reason: "save", message: opts.message, pinned: opts.pinned });
}

/** Restores a version as a forward change (and a new version); history is never rewritten. */
export async function restoreVersion(tx: Tx, documentId: string, versionId: string, baseRevision?: number): Promise<WriteResult> {
  const { rows: [version] } = await sql<{ title: string; body: Body }>`
    select title, body from content.versions where id = ${versionId}::uuid and document_id = ${documentId}::uuid`.execute(tx);
  if (!version) throw new ApiError(404, "not_found", "version not found");
  return await writeBody(tx, documentId, {
    base_revision: baseRevision,
    body: version.body,
    title: version.title,
    reason: "restore",
    restoredFrom: versionId,
  });
}

/** Changes the status; publishing keeps a version of what is published first. */
export async function setStatus(tx: Tx, documentId: string, status: "draft" | "published" | "archived"): Promise<DocumentRow> {
  if (status === "published") {
    const cur = await readCurrent(tx, documentId, { lock: true });
    if (cur.row.status !== "published" && cur.row.last_version_revision !== cur.revision) {
      await addVersion(tx, cur, { title: cur.row.title, body: cur.body, doc: cur.doc, reason: "publish" });
    }
  }
  const { rows: [row] } = await sql<DocumentRow>`select ${COLUMNS} from private.content_set_status(${documentId}::uuid, ${status})`.execute(tx);
  return row;
}

/**
 * Opens a document for live editing: seeds its Yjs state from the body once (the server does
 * this, never a client, so content is never duplicated), then returns what content.load_live does.
 */
export async function goLive(tx: Tx, documentId: string): Promise<LivePayload & { seeded: boolean }> {
  const load = async () => (await sql<{ live: LivePayload }>`select content.load_live(${documentId}::uuid) as live`.execute(tx)).rows[0].live;
  let live = await load();
  let seeded = false;
  if (!live.ystate) {
    const { rows: [row] } = await sql<DocumentRow>`select ${COLUMNS} from content.documents where id = ${documentId}::uuid`.execute(tx);
    const kind = kindOf(row.kind);
    const parsed = kind.schema.safeParse(row.body);
    if (!parsed.success) throw new ApiError(409, "invalid_body", `the stored body is not a valid ${row.kind}; save a valid one first`);
    const seed = seedState(kind, parsed.data as Body);
    const { rows: [r] } = await sql<{ seeded: boolean }>`
      select private.content_seed(${documentId}::uuid, ${row.revision}::int, ${seed.state}::bytea, ${seed.sv}::bytea) as seeded`.execute(tx);
    seeded = r.seeded;
    live = await load();
    if (!live.ystate) throw new ApiError(409, "conflict", "the document changed while it was being opened; try again");
  }
  return { ...live, seeded };
}

export function documentJson(cur: Current) {
  return { ...cur.row, revision: cur.revision, body: cur.body, live: cur.doc !== null };
}
