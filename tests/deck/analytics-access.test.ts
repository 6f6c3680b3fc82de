// Who reads deck analytics, as PostgREST would run it (one transaction with the caller's claims
// and role): readers of the deck in its org (the viewer role included) read its views, events,
// revisions and rollups; a private deck's only its owner and the org's admins; another org's
// members (even one the deck is shared with), the link viewer who sent the beacons, and anon read
// nothing. No client writes them; events are append-only even for the service role.
import { beforeAll, describe, expect, it } from "vitest";
import { contentRpc } from "../helpers/content.ts";
import { admin, as, createTeam, expectSqlError, select, type Team } from "../helpers/db.ts";
import { call } from "../helpers/http.ts";
import { tokenFor } from "../helpers/supabase.ts";
import { beacons, LinkViewer, makeDeck, makeLink, memberApp } from "./analytics-helpers.ts";

const TABLES = ["deck.views", "deck.card_events", "deck.view_revisions", "deck.card_rollups", "deck.revision_rollups"] as const;

let team: Team;
let other: Team;
let deckId: string;
let privateDeckId: string;

/** How many rows of each analytics table of the deck the caller reads. */
async function visible(who: Parameters<typeof select>[0], documentId: string) {
  const out: Record<string, number> = {};
  for (const t of TABLES) out[t] = (await select(who, `select 1 from ${t} where document_id = $1`, [documentId])).length;
  return out;
}
const none = Object.fromEntries(TABLES.map((t) => [t, 0]));

beforeAll(async () => {
  [team, other] = await Promise.all([createTeam("Analytics access"), createTeam("Analytics other")]);
  const deck = await makeDeck(team.owner, team.orgId, ["a", "b"]);
  deckId = deck.id;
  const link = await makeLink(team.owner, deck.id);
  const viewer = new LinkViewer();
  const v = await viewer.start(link.token);
  expect((await viewer.beacons(v.body.viewId, beacons(deck.id, deck.revision, [["a", 1000], ["b", 2000]]))).body.accepted).toBe(2);
  // A private deck of the member's, viewed by its owner.
  const priv = await makeDeck(team.member, team.orgId, ["p"], { visibility: "private" });
  privateDeckId = priv.id;
  const app = await memberApp(team.member);
  const pv = await app.start(priv.id);
  expect(pv.status, JSON.stringify(pv.body)).toBeNull();
  expect((await app.beacons(pv.body.viewId, beacons(priv.id, priv.revision, [["p", 500]]))).body.accepted).toBe(1);
  await admin.query(`select private.deck_rollup_document(id) from unnest($1::uuid[]) id`, [[deckId, privateDeckId]]);
});

describe("reading", () => {
  it("the org's readers read every analytics table of a deck they read (the viewer role included)", async () => {
    for (const who of [team.owner, team.member, team.viewer]) {
      const seen = await visible(who, deckId);
      for (const t of TABLES) expect(seen[t], t).toBeGreaterThan(0);
    }
  });

  it("another org's owner reads nothing, even with the deck shared to them; anon is refused every table", async () => {
    expect(await visible(other.owner, deckId)).toEqual(none);
    await contentRpc(team.owner, "share_with_user", { p_document_id: deckId, p_level: "edit", p_user_id: other.owner.id });
    // They now read the deck itself, but its analytics are its org's.
    expect(await select(other.owner, `select id from content.documents where id = $1`, [deckId])).toHaveLength(1);
    expect(await visible(other.owner, deckId)).toEqual(none);
    for (const t of TABLES) await expectSqlError(select("anon", `select 1 from ${t} limit 1`), "42501");
  });

  it("a private deck's analytics: its owner and the org's admins, not other members", async () => {
    expect((await visible(team.member, privateDeckId))["deck.card_rollups"]).toBe(1);
    expect((await visible(team.admin, privateDeckId))["deck.views"]).toBe(1);
    expect(await visible(team.viewer, privateDeckId)).toEqual(none);
  });

  it("the api: a reader gets the rollups; an outsider gets none and cannot ask for a rollup", async () => {
    const mine = await call(`/api/deck/${deckId}/analytics`, { token: await tokenFor(team.viewer) });
    expect(mine.status).toBe(200);
    expect(mine.body.revisions[0]).toMatchObject({ views: 1, unique_viewers: 1, completion: 1 });
    const theirs = await call(`/api/deck/${deckId}/analytics`, { token: await tokenFor(other.member) });
    expect(theirs.status).toBe(200);
    expect(theirs.body.revisions).toEqual([]);
    const refused = await call(`/api/deck/${deckId}/analytics/refresh`, { method: "POST", token: await tokenFor(other.member) });
    expect(refused.status, refused.raw).toBe(404);
    expect((await call(`/api/deck/${deckId}/analytics`)).status).toBe(401);
  });
});

describe("writing", () => {
  it("no client writes any analytics table, not even the org's owner", async () => {
    const { rows: [view] } = await admin.query(`select * from deck.views where document_id = $1 limit 1`, [deckId]);
    const w = (q: string, p: unknown[]) => as(team.owner, (c) => c.query(q, p));
    await expectSqlError(w(`insert into deck.views (org_id, document_id, revision, source, viewer_key, bot) values ($1, $2, $3, 'member', $4, false)`,
      [team.orgId, deckId, view.revision, `u:${team.owner.id}`]), "42501");
    await expectSqlError(w(`insert into deck.card_events (org_id, view_id, document_id, revision, card_id, position, duration_ms, event_key, bot, ts)
      values ($1, $2, $3, $4, 'a', 0, 99, 'forged', false, now())`, [team.orgId, view.id, deckId, view.revision]), "42501");
    await expectSqlError(w(`update deck.card_rollups set views = 1000 where document_id = $1`, [deckId]), "42501");
    await expectSqlError(w(`delete from deck.card_events where document_id = $1`, [deckId]), "42501");
    await expectSqlError(w(`update deck.views set bot = true where id = $1`, [view.id]), "42501");
    expect((await admin.query(`select count(*)::int as n from deck.card_events where document_id = $1`, [deckId])).rows[0].n).toBe(2);
  });

  it("events are append-only, even for the service role; deleting the deck takes them with it", async () => {
    await expectSqlError(admin.query(`update deck.card_events set duration_ms = 0 where document_id = $1`, [deckId]), "42501");
    await expectSqlError(admin.query(`delete from deck.card_events where document_id = $1`, [deckId]), "42501");
    await expectSqlError(admin.query(`truncate deck.card_events`), "42501");
    const deck = await makeDeck(team.owner, team.orgId, ["z"]);
    const link = await makeLink(team.owner, deck.id);
    const viewer = new LinkViewer();
    const v = await viewer.start(link.token);
    expect((await viewer.beacons(v.body.viewId, beacons(deck.id, deck.revision, [["z", 10]]))).body.accepted).toBe(1);
    await contentRpc(team.owner, "delete_document", { p_document_id: deck.id });
    const { rows: [left] } = await admin.query(
      `select (select count(*) from deck.card_events where view_id = $1)::int as events, (select count(*) from deck.views where id = $1)::int as views`, [v.body.viewId]);
    expect(left).toEqual({ events: 0, views: 0 });
  });
});
