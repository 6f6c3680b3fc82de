// Starting a view of a deck. A signed-in reader's access is checked by reading the deck as them
// (RLS, through the content engine's readCurrent); a link's token, expiry, revocation and
// password by the content engine's own link check (private.deck_link_view_target wraps it, and
// commits a wrong password's count even though the view is refused). The view is then written
// as the service role, pinned to the revision that was read, with that revision's card list
// (deck.view_revisions, written once per revision).
//
// Transactions: a member view is one read as the user and one write as the service; a link view
// is one service transaction (check, read, write), which commits even when the link is refused.
import { sql } from "kysely";
import { readCurrent, type Current } from "../../content/documents.ts";
import { asService, asUser, type Claims, type Db, type Tx } from "../../db/client.ts";
import { ApiError } from "../../http/errors.ts";
import { DeckBody } from "../kind.ts";
import { cardTitle } from "../layouts.ts";
import { clip, isBotAgent } from "./bot.ts";

/** A viewer key: what a link viewer's client keeps (localStorage) to be counted once and to send beacons. */
export const VIEWER_KEY = /^[A-Za-z0-9_-]{16,128}$/;

export interface ViewContext {
  userAgent?: string | null;
  referrer?: string | null;
}

export interface StartedView {
  viewId: string;
  viewerKey: string | null;
  deckId: string;
  revision: number;
  cardIds: string[];
}

/** The link refusals of the content engine's check, plus a link to something that is not a deck. */
export type LinkRefusal = "not_found" | "revoked" | "expired" | "password_required" | "wrong_password" | "locked" | "not_a_deck";

export async function startMemberView(db: Db, claims: Claims, userId: string, deckId: string, ctx: ViewContext): Promise<StartedView> {
  const current = await asUser(db, claims, (tx) => readCurrent(tx, deckId));
  const cards = deckCards(current);
  return await asService(db, (tx) =>
    recordView(tx, { current, cards, source: "member", userId, shareId: null, viewerKey: `u:${userId}`, ctx }));
}

export async function startLinkView(
  db: Db,
  link: { token: string; password?: string | null },
  viewerKey: string | undefined,
  ctx: ViewContext,
): Promise<StartedView | { refused: LinkRefusal }> {
  const key = viewerKey ?? randomKey();
  return await asService(db, async (tx) => {
    const { rows: [{ r }] } = await sql<{ r: { status: LinkRefusal | "ok"; share_id: string; document_id: string } }>`
      select private.deck_link_view_target(${link.token}, ${link.password ?? null}) as r`.execute(tx);
    if (r.status !== "ok") return { refused: r.status };
    const current = await readCurrent(tx, r.document_id);
    const started = await recordView(tx, {
      current, cards: deckCards(current), source: "link", userId: null, shareId: r.share_id, viewerKey: null, plainKey: key, ctx,
    });
    return { ...started, viewerKey: key };
  });
}

interface CardSummary {
  id: string;
  title: string;
  card: unknown;
}

function deckCards(current: Current): CardSummary[] {
  if (current.row.kind !== "deck") throw new ApiError(404, "not_found", "deck not found");
  const body = DeckBody.safeParse(current.body);
  // The content engine only stores valid bodies; a deck that fails its schema has no cards to count.
  if (!body.success) throw new ApiError(409, "deck_unreadable", "this deck's body does not match the deck schema");
  return body.data.cards.map((card) => ({ id: card.id, title: cardTitle(card).slice(0, 300), card }));
}

async function recordView(tx: Tx, v: {
  current: Current;
  cards: CardSummary[];
  source: "member" | "link";
  userId: string | null;
  shareId: string | null;
  /** The stored key for a member (u:<id>); for a link viewer it is derived from plainKey. */
  viewerKey: string | null;
  plainKey?: string;
  ctx: ViewContext;
}): Promise<StartedView> {
  const { row, revision } = v.current;
  await sql`
    insert into deck.view_revisions (document_id, revision, org_id, card_ids, card_titles, card_hashes)
    select ${row.id}::uuid, ${revision}::int, ${row.org_id}::uuid,
           array(select c ->> 'id' from jsonb_array_elements(${JSON.stringify(v.cards)}::jsonb) with ordinality t (c, o) order by o),
           array(select c ->> 'title' from jsonb_array_elements(${JSON.stringify(v.cards)}::jsonb) with ordinality t (c, o) order by o),
           array(select encode(sha256(convert_to((c -> 'card')::text, 'UTF8')), 'hex')
                 from jsonb_array_elements(${JSON.stringify(v.cards)}::jsonb) with ordinality t (c, o) order by o)
    on conflict (document_id, revision) do nothing`.execute(tx);
  const { rows: [view] } = await sql<{ id: string }>`
    insert into deck.views (org_id, document_id, revision, source, share_id, user_id, viewer_key, bot, user_agent, referrer)
    values (${row.org_id}::uuid, ${row.id}::uuid, ${revision}::int, ${v.source}, ${v.shareId}::uuid, ${v.userId}::uuid,
            coalesce(${v.viewerKey}, 'k:' || encode(sha256(convert_to(${v.plainKey ?? null}::text, 'UTF8')), 'hex')),
            ${isBotAgent(v.ctx.userAgent)}, ${clip(v.ctx.userAgent)}, ${clip(v.ctx.referrer)})
    returning id`.execute(tx);
  return { viewId: view.id, viewerKey: null, deckId: row.id, revision, cardIds: v.cards.map((c) => c.id) };
}

function randomKey(): string {
  const bytes = crypto.getRandomValues(new Uint8Array(24));
  return btoa(String.fromCharCode(...bytes)).replaceAll("+", "-").replaceAll("/", "_").replace(/=+$/, "");
}
