// Deck export tests' shared steps: decks made through the content api as their users, a real
// PNG uploaded as a deck asset the way a client does, export requests over HTTP, and waits for
// the stack's worker to finish a render.
import { createDb, type Db } from "../../functions/_shared/db/client.ts";
import type { StorageAccess } from "../../functions/_shared/content/storage.ts";
import { admin, stack, type TestUser } from "../helpers/db.ts";
import { call } from "../helpers/http.ts";
import { userClient, tokenFor } from "../helpers/supabase.ts";
import { png } from "../helpers/video.ts";
import { waitFor } from "../helpers/wait.ts";

export type CardInput = { id: string; layout: string; data: Record<string, unknown>; image?: { asset_id: string; alt: string } | null; notes?: string };

export const deckBody = (cards: CardInput[], opts: { dimensions?: string; theme_id?: string } = {}) => ({
  theme_id: opts.theme_id ?? "plinth-light",
  dimensions: opts.dimensions ?? "16x9",
  cards: cards.map((c) => ({ image: null, notes: "", ...c })),
});

/** A small deck of n cards: a title card, then bullet cards titled "Card 2", "Card 3", … */
export const simpleCards = (n: number, prefix = "Card"): CardInput[] => [
  { id: "c1", layout: "title", data: { title: `${prefix} 1`, subtitle: "Opening" } },
  ...Array.from({ length: n - 1 }, (_, i) => ({ id: `c${i + 2}`, layout: "bullets", data: { title: `${prefix} ${i + 2}`, bullets: ["One point", "Another point"] } })),
];

export interface Deck {
  id: string;
  org_id: string;
  revision: number;
}

export async function createDeck(user: TestUser, orgId: string, body: unknown, title = "Export test deck"): Promise<Deck> {
  const res = await call("/api/content/documents", { token: await tokenFor(user), json: { org_id: orgId, kind: "deck", title, body } });
  if (res.status !== 201) throw new Error(`creating a deck failed: ${res.status} ${res.raw}`);
  return res.body;
}

export async function saveDeck(user: TestUser, deck: { id: string }, baseRevision: number, body: unknown): Promise<number> {
  const res = await call(`/api/content/documents/${deck.id}`, { token: await tokenFor(user), method: "PUT", json: { base_revision: baseRevision, body } });
  if (res.status !== 200) throw new Error(`saving a deck failed: ${res.status} ${res.raw}`);
  return res.body.revision ?? res.body.document?.revision;
}

/** Uploads a real w×h PNG as the deck's asset (reserve, then upload with supabase-js) and waits for its verification. */
export async function uploadPicture(user: TestUser, documentId: string, w = 64, h = 36): Promise<string> {
  const bytes = png(w, h);
  const res = await call(`/api/content/documents/${documentId}/assets`, { token: await tokenFor(user), json: { filename: "chart.png", mime_type: "image/png", size: bytes.length } });
  if (res.status !== 201) throw new Error(`reserving an asset failed: ${res.status} ${res.raw}`);
  const sb = await userClient(user);
  const { error } = await sb.storage.from("content-assets").uploadToSignedUrl(res.body.upload.path, res.body.upload.token, new Blob([bytes as BlobPart], { type: "image/png" }));
  if (error) throw error;
  const id = res.body.asset.id as string;
  await waitFor(`asset ${id} verified`, async () => (await admin.query("select 1 from content.assets where id = $1 and status = 'verified'", [id])).rowCount);
  return id;
}

/** POST /api/deck/decks/{id}/exports as the user (or with a raw token). */
export async function askExport(who: TestUser | string, documentId: string, json: unknown) {
  return await call(`/api/deck/decks/${documentId}/exports`, { token: typeof who === "string" ? who : await tokenFor(who), json });
}

export async function getExport(who: TestUser, exportId: string) {
  return await call(`/api/deck/exports/${exportId}`, { token: await tokenFor(who) });
}

export interface ExportDbRow {
  id: string;
  status: string;
  storage_path: string | null;
  renders: number;
  pages: number | null;
  sha256: string | null;
  error_code: string | null;
  error: string | null;
  expires_at: Date | null;
}

export async function exportRow(id: string): Promise<ExportDbRow | undefined> {
  return (await admin.query<ExportDbRow>("select * from deck.exports where id = $1", [id])).rows[0];
}

/** Waits for the worker to finish a render (stored or failed) and returns the row. */
export async function settled(id: string): Promise<ExportDbRow> {
  return await waitFor(`export ${id} to be stored or failed`, async () => {
    const row = await exportRow(id);
    return row && ["stored", "failed"].includes(row.status) ? row : undefined;
  });
}

/** Waits for a stored export and downloads its file through the signed URL the api gives. */
export async function downloadExport(user: TestUser, id: string): Promise<{ bytes: Uint8Array; url: string; contentType: string | null }> {
  const row = await settled(id);
  if (row.status !== "stored") throw new Error(`export ${id} failed: ${row.error_code} ${row.error}`);
  const got = await getExport(user, id);
  if (got.status !== 200 || !got.body.url) throw new Error(`GET export: ${got.status} ${got.raw}`);
  const res = await fetch(got.body.url);
  if (!res.ok) throw new Error(`download failed: ${res.status}`);
  return { bytes: new Uint8Array(await res.arrayBuffer()), url: got.body.url, contentType: res.headers.get("content-type") };
}

let db: Db | undefined;
/** The worker's dependencies, for running its steps in this process against the stack. */
export function workerDeps(extra: { chromiumPath?: string } = {}): { db: Db; storage: StorageAccess; chromiumPath?: string } {
  db ??= createDb(stack.dbUrl, 4).db;
  return { db, storage: { url: stack.supabaseUrl, serviceRoleKey: stack.serviceRoleKey }, ...extra };
}

export async function exportCount(documentId: string): Promise<number> {
  return (await admin.query<{ n: number }>("select count(*)::int as n from deck.exports where document_id = $1", [documentId])).rows[0].n;
}
