// Content tests' client side: documents made through the api as their users, and live editors
// that behave like an app using supabase-js and yjs: subscribe to doc:<id> on the Realtime
// stand-in first, then load the state and the log, batch local Yjs updates for ~100 ms and push
// them through content.push_updates as the user (what supabase.rpc does through PostgREST).
import type { RealtimeChannel, SupabaseClient } from "@supabase/supabase-js";
import * as Y from "yjs";
import { compactDocument, type CompactionOptions, type CompactionResult } from "../../functions/_shared/content/compaction.ts";
import "../../functions/_shared/content/kinds/index.ts";
import { fromBase64, type LivePayload, toBase64 } from "../../functions/_shared/content/ydoc.ts";
import { createDb, type Db } from "../../functions/_shared/db/client.ts";
import { admin, as, type Caller, stack, type TestUser } from "./db.ts";
import { call } from "./http.ts";
import { eventually } from "./notifications.ts";
import { Inbox, rtClient, subscribe } from "./realtime.ts";
import { tokenFor } from "./supabase.ts";

export { eventually };

/** Calls a content route as the user. */
export async function api<T = any>(user: TestUser | null, path: string, opts: { method?: string; json?: unknown } = {}) {
  return call<T>(`/api/content${path}`, { ...opts, token: user ? await tokenFor(user) : undefined });
}

export interface Doc {
  id: string;
  org_id: string;
  kind: string;
  title: string;
  body: any;
  revision: number;
  [k: string]: unknown;
}

export async function createDoc(user: TestUser, orgId: string, input: Record<string, unknown> = {}): Promise<Doc> {
  const res = await api<Doc>(user, "/documents", { json: { org_id: orgId, kind: "note", title: "Untitled", ...input } });
  if (res.status !== 201) throw new Error(`create failed: ${res.status} ${res.raw}`);
  return res.body;
}

export const note = (...paragraphs: string[]) => ({
  type: "doc",
  content: paragraphs.map((text) => (text ? { type: "paragraph", content: [{ type: "text", text }] } : { type: "paragraph" })),
});

/** Calls a content RPC (or a private function the api calls) as the caller, exactly as PostgREST would. */
export function contentRpc<R = Record<string, unknown>>(who: Caller, fn: string, args: Record<string, unknown> = {}) {
  const names = Object.keys(args);
  const params = names.map((n, i) => `${n} => $${i + 1}`).join(", ");
  const qualified = fn.includes(".") ? fn : `content.${fn}`;
  return as(who, async (c) => (await c.query(`select * from ${qualified}(${params})`, names.map((n) => args[n]))).rows as R[]);
}

let workerDb: Db | undefined;
/** The worker's compaction, run in this process against the stack's database. */
export async function compact(documentId: string, opts: CompactionOptions = {}): Promise<CompactionResult> {
  workerDb ??= createDb(stack.dbUrl, 4).db;
  return await compactDocument(workerDb, documentId, opts);
}

export async function docRow(id: string) {
  const { rows } = await admin.query("select * from content.documents where id = $1", [id]);
  return rows[0];
}

export async function pendingBatches(id: string): Promise<number> {
  const { rows } = await admin.query("select count(*)::int as n from content.doc_updates where document_id = $1", [id]);
  return rows[0].n;
}

/**
 * A live editor: a yjs Y.Doc kept in sync through the real Realtime stand-in. Local changes are
 * batched (~100 ms, merged with Y.mergeUpdates) and pushed as the user.
 */
export class LiveEditor {
  readonly doc = new Y.Doc();
  readonly received = new Inbox<{ update_id: number; revision: number }>();
  readonly revokes = new Inbox<Record<string, unknown>>();
  sb!: SupabaseClient;
  channel!: RealtimeChannel;
  private queue: Uint8Array[] = [];
  private timer: ReturnType<typeof setTimeout> | undefined;
  private flushing: Promise<void> = Promise.resolve();
  pushed: number[] = [];
  errors: unknown[] = [];

  constructor(readonly user: TestUser, readonly documentId: string, readonly batchMs = 100) {
    this.doc.on("update", (update: Uint8Array, origin: unknown) => {
      if (origin === "remote") return;
      this.queue.push(update);
      this.timer ??= setTimeout(() => this.flush(), this.batchMs);
    });
  }

  /** Subscribe first, then load: whatever commits in between arrives on the channel. */
  async join(): Promise<LivePayload> {
    this.sb = await rtClient({ token: await tokenFor(this.user) });
    this.channel = this.sb.channel(`doc:${this.documentId}`, { config: { private: true } });
    this.channel.on("broadcast", { event: "update" }, ({ payload }) => {
      for (const u of payload.updates as string[]) Y.applyUpdate(this.doc, fromBase64(u), "remote");
      this.received.push({ update_id: payload.update_id, revision: payload.revision });
    });
    this.channel.on("broadcast", { event: "revoke" }, ({ payload }) => this.revokes.push(payload));
    await subscribe(this.channel);
    const opened = await api<LivePayload>(this.user, `/documents/${this.documentId}/live`, { method: "POST" });
    if (opened.status !== 200) throw new Error(`live open failed: ${opened.status} ${opened.raw}`);
    const live = opened.body;
    if (live.ystate) Y.applyUpdate(this.doc, fromBase64(live.ystate), "remote");
    for (const b of live.updates) for (const u of b.updates) Y.applyUpdate(this.doc, fromBase64(u), "remote");
    return live;
  }

  flush(): Promise<void> {
    clearTimeout(this.timer);
    this.timer = undefined;
    const batch = this.queue.splice(0);
    if (batch.length === 0) return this.flushing;
    this.flushing = this.flushing.then(async () => {
      try {
        const [row] = await contentRpc<{ update_id: number }>(this.user, "push_updates", {
          p_document_id: this.documentId,
          p_updates: [toBase64(Y.mergeUpdates(batch))],
        });
        this.pushed.push(Number(row.update_id));
      } catch (err) {
        this.errors.push(err);
      }
    });
    return this.flushing;
  }

  async leave() {
    clearTimeout(this.timer);
    await this.sb?.removeAllChannels();
  }
}

/** Two docs hold the same content once their state vectors and encoded states agree. */
export function sameState(a: Y.Doc, b: Y.Doc): boolean {
  return Buffer.from(Y.encodeStateVector(a)).equals(Buffer.from(Y.encodeStateVector(b)))
    && JSON.stringify(a.getXmlFragment("default").toJSON()) === JSON.stringify(b.getXmlFragment("default").toJSON())
    && JSON.stringify(a.getArray("items").toJSON()) === JSON.stringify(b.getArray("items").toJSON());
}
