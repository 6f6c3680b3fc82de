// Compaction: merges a live document's update log into its stored Yjs state, and derives the
// body, the search text and where its comment anchors are now.
//
// Transactions: (1) one REPEATABLE READ, read-only snapshot of the state (with its epoch), every
// batch in the log and the anchored threads; no lock is held while merging, so editors keep
// pushing. (2) a short write (private.content_store_compaction) under the document's row lock:
// it stores the state only if the epoch is still the one read (no other compaction stored in
// between), and deletes exactly the batch ids that were merged, never a range: a batch that
// committed after the snapshot, even with a lower id, stays for the next run.
// Before writing, the merged state vector must dominate the stored one and every merged batch's:
// a failed or empty load can never replace a real document with less.
import { sql } from "kysely";
import * as Y from "yjs";
import { asService, type Db } from "../db/client.ts";
import { getKind } from "./kinds/registry.ts";
import { type Anchor, dominates, resolveAnchor } from "./ydoc.ts";

export interface Snapshot {
  documentId: string;
  kind: string;
  body: Record<string, unknown>;
  epoch: number;
  ystate: Uint8Array;
  ystateSv: Uint8Array;
  batches: { id: number; revision: number; updates: Uint8Array[] }[];
  threads: { id: string; anchor: Anchor }[];
}

export interface CompactionResult {
  merged: number;
  invalid: number;
  deleted?: number;
  bytes?: number;
  /** waiting: every batch builds on an update not in the log yet (pushed out of order). */
  skipped?: "not_live" | "empty" | "raced" | "waiting";
}

export class RefusedCompaction extends Error {}

export interface CompactionOptions {
  /** Replaces what was loaded (tests: a failed or empty load must be refused, not stored). */
  load?: (s: Snapshot) => Snapshot;
}

export async function readSnapshot(db: Db, documentId: string): Promise<Snapshot | null> {
  return await db.transaction().setIsolationLevel("repeatable read").execute(async (tx) => {
    await sql`set transaction read only`.execute(tx);
    await sql`select set_config('request.jwt.claims', '{"role":"service_role"}', true), set_config('role', 'service_role', true)`.execute(tx);
    const { rows: [doc] } = await sql<{ kind: string; body: Record<string, unknown>; epoch: number; ystate: Uint8Array; ystate_sv: Uint8Array }>`
      select d.kind, d.body, s.epoch, s.ystate, s.ystate_sv
      from content.documents d join content.live_states s on s.document_id = d.id
      where d.id = ${documentId}`.execute(tx);
    if (!doc) return null;
    const { rows: batches } = await sql<{ id: string; revision: number; updates: Uint8Array[] }>`
      select id, revision, updates from content.doc_updates where document_id = ${documentId} order by id`.execute(tx);
    const { rows: threads } = await sql<{ id: string; anchor: Anchor }>`
      select id, anchor from content.comment_threads
      where document_id = ${documentId} and anchor_status = 'anchored'`.execute(tx);
    return {
      documentId,
      kind: doc.kind,
      body: doc.body,
      epoch: doc.epoch,
      ystate: doc.ystate,
      ystateSv: doc.ystate_sv,
      batches: batches.map((b) => ({ id: Number(b.id), revision: b.revision, updates: b.updates })),
      threads,
    };
  });
}

/** Validates every update of a batch before any is applied: a malformed batch is left out whole. */
function decodable(updates: Uint8Array[]): boolean {
  try {
    for (const u of updates) Y.decodeUpdate(u);
    return true;
  } catch {
    return false;
  }
}

export async function compactDocument(db: Db, documentId: string, opts: CompactionOptions = {}): Promise<CompactionResult> {
  const read = await readSnapshot(db, documentId);
  if (!read) return { merged: 0, invalid: 0, skipped: "not_live" };
  if (read.batches.length === 0) return { merged: 0, invalid: 0, skipped: "empty" };
  const snap = opts.load ? opts.load(read) : read;

  // Without GC first: anchors inside text deleted since the last compaction still resolve to
  // where it was. A corrupt stored state throws here, and nothing is written.
  const full = new Y.Doc({ gc: false });
  Y.applyUpdate(full, snap.ystate);
  const applied: { id: number; revision: number; svs: Uint8Array[] }[] = [];
  const invalid: number[] = [];
  for (const batch of snap.batches) {
    if (!decodable(batch.updates)) {
      invalid.push(batch.id);
      continue;
    }
    for (const u of batch.updates) Y.applyUpdate(full, u);
    applied.push({ id: batch.id, revision: batch.revision, svs: batch.updates.map((u) => Y.encodeStateVectorFromUpdate(u)) });
  }
  const sv = Y.encodeStateVector(full);
  // Checked against what the database holds (read.ystateSv), whatever the load produced.
  if (!dominates(sv, read.ystateSv)) {
    throw new RefusedCompaction(`refusing to store a state of document ${documentId} that does not contain the stored one`);
  }
  // A batch is merged only if the state now contains all of it. One still waiting for an update
  // it builds on (pushed out of order) stays in the log for the next run.
  const merged = applied.filter((b) => b.svs.every((bsv) => dominates(sv, bsv)));
  const waiting = applied.filter((b) => !merged.includes(b));
  if (merged.length === 0 && invalid.length === 0) return { merged: 0, invalid: 0, skipped: "waiting" };

  const kind = getKind(snap.kind);
  let body: Record<string, unknown> | null = null;
  let text = "";
  const anchors: { thread_id: string; status: string; text: string | null; rel_start?: string; rel_end?: string }[] = [];
  if (kind) {
    const parsed = kind.schema.safeParse(kind.fromYDoc(full));
    // A body the kind rejects keeps the last good one; the Yjs state (the edits) is kept either way.
    if (parsed.success) {
      body = parsed.data as Record<string, unknown>;
      text = kind.toText(parsed.data);
    }
    for (const t of snap.threads) anchors.push({ thread_id: t.id, ...resolveAnchor(full, kind, body ?? snap.body, t.anchor) });
  }

  // The stored state is garbage-collected: deleted content shrinks to tombstone ranges.
  const gc = new Y.Doc({ gc: true });
  Y.applyUpdate(gc, Y.encodeStateAsUpdate(full));
  const state = Y.encodeStateAsUpdate(gc);
  // Revisions commit in order, so the body reflects every revision up to the last one read,
  // or up to just before the first batch still waiting.
  const bodyRevision = waiting.length
    ? Math.min(...waiting.map((b) => b.revision)) - 1
    : snap.batches.reduce((m, b) => Math.max(m, b.revision), 0);

  try {
    const deleted = await asService(db, async (tx) => {
      const { rows } = await sql<{ deleted: number }>`
        select private.content_store_compaction(
          ${documentId}::uuid, ${read.epoch}::int, ${state}::bytea, ${sv}::bytea,
          ${body === null ? null : JSON.stringify(body)}::jsonb, ${text}::text, ${bodyRevision}::int,
          ${[...merged.map((b) => b.id), ...invalid]}::bigint[], ${JSON.stringify(anchors)}::jsonb) as deleted`.execute(tx);
      return rows[0].deleted;
    });
    return { merged: merged.length, invalid: invalid.length, deleted, bytes: state.length };
  } catch (err) {
    // Another compaction stored first; what it did not merge, the next run will.
    if ((err as { code?: string }).code === "40001") return { merged: 0, invalid: invalid.length, skipped: "raced" };
    throw err;
  }
}
