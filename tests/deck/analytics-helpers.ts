// What the deck analytics tests share: a deck made through the content api, a share link to it,
// and the viewer's side as a web app would run it: supabase-js functions.invoke with the anon key
// (a link viewer) or a user's token, and a browser's (or a crawler's) User-Agent.
import type { SupabaseClient } from "@supabase/supabase-js";
import { expect } from "vitest";
import { api, contentRpc, createDoc, type Doc } from "../helpers/content.ts";
import { admin, type TestUser } from "../helpers/db.ts";
import { client, userClient } from "../helpers/supabase.ts";

export const BROWSER = "Mozilla/5.0 (Macintosh; Intel Mac OS X 14_5) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.5 Safari/605.1.15";
export const GOOGLEBOT = "Mozilla/5.0 (compatible; Googlebot/2.1; +http://www.google.com/bot.html)";

export const card = (id: string, title: string) => ({ id, layout: "text", data: { title, body: `About ${title}` }, image: null, notes: "" });
export const deckBody = (...cards: ReturnType<typeof card>[]) => ({ theme_id: "plinth-light", dimensions: "16x9", cards });

/** A link-visible deck of `ids` cards, made by the user through the content api. */
export async function makeDeck(user: TestUser, orgId: string, ids: string[], opts: { visibility?: string } = {}): Promise<Doc> {
  return await createDoc(user, orgId, {
    kind: "deck", title: "Analytics deck", visibility: opts.visibility ?? "link", body: deckBody(...ids.map((id) => card(id, `Card ${id}`))),
  });
}

/** A share link's token (managers make links). */
export async function makeLink(user: TestUser, documentId: string, opts: { password?: string; expiresAt?: string } = {}): Promise<{ id: string; token: string }> {
  const [row] = await contentRpc<{ create_link: { id: string; token: string } }>(user, "create_link", {
    p_document_id: documentId, p_level: "view", ...(opts.password ? { p_password: opts.password } : {}),
    ...(opts.expiresAt ? { p_expires_at: opts.expiresAt } : {}),
  });
  return row.create_link;
}

/** Saves a new body (a new revision) through the content api. */
export async function saveBody(user: TestUser, doc: { id: string; revision: number }, body: unknown): Promise<number> {
  const res = await api(user, `/documents/${doc.id}`, { method: "PUT", json: { base_revision: doc.revision, body } });
  expect(res.status, res.raw).toBe(200);
  return res.body.revision as number;
}

export interface Invoked<T> {
  /** The HTTP status of an error; null for a 2xx (supabase-js does not surface it). */
  status: number | null;
  body: T;
}

/** functions.invoke("api/…") as supabase-js does it; the error's response is read back for the status and body. */
export async function invoke<T = any>(sb: SupabaseClient, path: string, body: unknown, headers: Record<string, string> = {}, method = "POST"): Promise<Invoked<T>> {
  const { data, error } = await sb.functions.invoke(`api${path}`, { method: method as "POST", body: body as Record<string, unknown>, headers });
  if (!error) return { status: null, body: data as T };
  const res = (error as { context?: Response }).context;
  if (!res) throw error;
  return { status: res.status, body: (await res.json()) as T };
}

/** A link viewer's browser: the anon key, a User-Agent, and the viewer key it keeps once it has one. */
export class LinkViewer {
  readonly sb = client();
  viewerKey?: string;
  constructor(readonly userAgent = BROWSER) {}

  async start(token: string, password?: string): Promise<Invoked<any>> {
    const res = await invoke(this.sb, "/deck/views", { token, ...(password ? { password } : {}), ...(this.viewerKey ? { viewerKey: this.viewerKey } : {}) },
      { "user-agent": this.userAgent });
    if (res.status === null) this.viewerKey = res.body.viewerKey;
    return res;
  }

  async beacons(viewId: string, events: unknown[]): Promise<Invoked<any>> {
    return await invoke(this.sb, "/deck/beacons", { viewId, viewerKey: this.viewerKey, events }, { "user-agent": this.userAgent });
  }
}

/** A signed-in reader's app. */
export async function memberApp(user: TestUser) {
  const sb = await userClient(user);
  return {
    sb,
    start: (deckId: string, userAgent = BROWSER) => invoke(sb, "/deck/views", { deckId }, { "user-agent": userAgent }),
    beacons: (viewId: string, events: unknown[]) => invoke(sb, "/deck/beacons", { viewId, events }, { "user-agent": BROWSER }),
  };
}

/** Beacons for one view: one per [cardId, durationMs], numbered from `from`, a second apart. */
export function beacons(deckId: string, revision: number, dwell: [string, number][], from = 0) {
  const t0 = Date.now();
  return dwell.map(([cardId, durationMs], i) => ({
    deckId, revision, cardId, durationMs, seq: from + i, ts: new Date(t0 + i * 1000).toISOString(),
  }));
}

/** Rows written for a deck, by table (what a refused request must leave unchanged). */
export async function counts(documentId: string) {
  const { rows: [r] } = await admin.query(
    `select (select count(*) from deck.views where document_id = $1)::int as views,
            (select count(*) from deck.card_events where document_id = $1)::int as events,
            (select count(*) from deck.view_revisions where document_id = $1)::int as revisions`, [documentId]);
  return r as { views: number; events: number; revisions: number };
}
