// Deck analytics end to end: views through a share link (anon, supabase-js functions.invoke with
// the anon key and a browser's User-Agent) and a signed-in reader's view, card beacons in
// batches, and the rollup job run by the stack's worker. Known durations across several views and
// viewers give exact views, unique viewers, median and p90 dwell and drop-off per card and
// revision; a second revision rolls up apart; a crawler's view is stored flagged and left out;
// a batch sent twice counts once.
import { beforeAll, describe, expect, it } from "vitest";
import { createDb } from "../../functions/_shared/db/client.ts";
import { rollupDue } from "../../functions/_shared/deck/analytics/rollup.ts";
import { deck as deckKind, type DeckBody } from "../../functions/_shared/deck/kind.ts";
import { LiveEditor } from "../helpers/content.ts";
import { admin, createTeam, select, stack, type Team } from "../helpers/db.ts";
import { call } from "../helpers/http.ts";
import { waitForJobCompleted } from "../helpers/notifications.ts";
import { tokenFor } from "../helpers/supabase.ts";
import { beacons, card, deckBody, GOOGLEBOT, LinkViewer, makeDeck, makeLink, memberApp, saveBody } from "./analytics-helpers.ts";

let team: Team;
beforeAll(async () => {
  team = await createTeam("Deck analytics");
});

async function refresh(deckId: string) {
  const res = await call(`/api/deck/${deckId}/analytics/refresh`, { method: "POST", token: await tokenFor(team.owner) });
  expect(res.status, res.raw).toBe(202);
  await waitForJobCompleted(res.body.jobId);
}

async function analytics(deckId: string) {
  const res = await call(`/api/deck/${deckId}/analytics`, { token: await tokenFor(team.viewer) });
  expect(res.status, res.raw).toBe(200);
  return res.body.revisions as any[];
}

const cardsOf = (rev: any) => Object.fromEntries(rev.cards.map((c: any) => [c.card_id, c]));

describe("views and beacons roll up per card and revision", () => {
  it("exact figures from link viewers and a member; bots flagged and left out; a resent batch counts once; revision 2 apart", async () => {
    const deck = await makeDeck(team.owner, team.orgId, ["a", "b", "c", "d"]);
    const link = await makeLink(team.owner, deck.id);

    const one = new LinkViewer();
    const two = new LinkViewer();
    const three = new LinkViewer();
    const bot = new LinkViewer(GOOGLEBOT);

    const v1 = await one.start(link.token);
    expect(v1.status, JSON.stringify(v1.body)).toBeNull();
    expect(v1.body).toMatchObject({ deckId: deck.id, revision: deck.revision, cardIds: ["a", "b", "c", "d"] });
    expect(v1.body.viewerKey).toMatch(/^[A-Za-z0-9_-]{16,128}$/);
    const batch1 = beacons(deck.id, deck.revision, [["a", 1000], ["b", 2000], ["c", 3000], ["d", 4000]]);
    expect((await one.beacons(v1.body.viewId, batch1)).body).toEqual({ accepted: 4, duplicates: 0 });
    // The same batch again (a retry after a lost response): nothing new.
    expect((await one.beacons(v1.body.viewId, batch1)).body).toEqual({ accepted: 0, duplicates: 4 });

    const v2 = await two.start(link.token);
    expect((await two.beacons(v2.body.viewId, beacons(deck.id, deck.revision, [["a", 3000], ["b", 5000]]))).body.accepted).toBe(2);

    // Viewer one comes back (same key, a new view) and looks at b twice.
    const v3 = await one.start(link.token);
    expect(v3.body.viewerKey).toBe(v1.body.viewerKey);
    const batch3 = beacons(deck.id, deck.revision, [["a", 2000], ["b", 1000], ["b", 1000], ["c", 6000]]);
    expect((await one.beacons(v3.body.viewId, batch3.slice(0, 2))).body.accepted).toBe(2);
    // Events without seq are keyed by card and end time: resending one counts once too.
    const unnumbered = batch3.slice(2).map(({ seq: _, ...e }) => e);
    expect((await one.beacons(v3.body.viewId, unnumbered)).body).toEqual({ accepted: 2, duplicates: 0 });
    expect((await one.beacons(v3.body.viewId, unnumbered)).body).toEqual({ accepted: 0, duplicates: 2 });

    // Viewer three opens the deck and sends nothing.
    const v4 = await three.start(link.token);
    expect(v4.status).toBeNull();

    // A crawler's view: stored, flagged (and its events), left out of every figure.
    const vb = await bot.start(link.token);
    expect((await bot.beacons(vb.body.viewId, beacons(deck.id, deck.revision, [["a", 500], ["b", 500], ["c", 500], ["d", 500]]))).body.accepted).toBe(4);
    const { rows: [botView] } = await admin.query(
      `select bot, user_agent, source, share_id, (select bool_and(bot) from deck.card_events e where e.view_id = v.id) as events_bot
       from deck.views v where id = $1`, [vb.body.viewId]);
    expect(botView).toEqual({ bot: true, user_agent: GOOGLEBOT, source: "link", share_id: link.id, events_bot: true });
    // The link token is never stored; the viewer key only as a hash.
    const { rows: stored } = await admin.query(`select viewer_key from deck.views where document_id = $1`, [deck.id]);
    expect(JSON.stringify(stored)).not.toContain(link.token);
    expect(JSON.stringify(stored)).not.toContain(v1.body.viewerKey);

    // A signed-in reader (the org's viewer) with deckId.
    const member = await memberApp(team.viewer);
    const vm = await member.start(deck.id);
    expect(vm.status, JSON.stringify(vm.body)).toBeNull();
    expect(vm.body.viewerKey).toBeNull();
    expect((await member.beacons(vm.body.viewId, beacons(deck.id, deck.revision, [["a", 4000]]))).body.accepted).toBe(1);
    const { rows: [mv] } = await admin.query(`select source, user_id, viewer_key, bot from deck.views where id = $1`, [vm.body.viewId]);
    expect(mv).toEqual({ source: "member", user_id: team.viewer.id, viewer_key: `u:${team.viewer.id}`, bot: false });

    await refresh(deck.id);
    const [r1] = await analytics(deck.id);
    expect(r1).toMatchObject({
      revision: deck.revision, card_count: 4,
      views: 5, // v1, v2, v3, v4 and the member's; the crawler is apart
      unique_viewers: 4, // one (twice), two, three, the member
      bot_views: 1,
      completion: 0.5, // (4/4 + 2/4 + 3/4 + 0 + 1/4) / 5
      completed_views: 1,
      median_total_ms: 8000, // of 10000, 8000, 10000, 0, 4000
    });
    const c1 = cardsOf(r1);
    expect(r1.cards.map((c: any) => c.card_id)).toEqual(["a", "b", "c", "d"]);
    expect(c1.a).toMatchObject({ position: 0, card_title: "Card a", views: 4, unique_viewers: 3, median_ms: 2500, p90_ms: 3700, total_ms: 10000, drop_off: 0.25 });
    expect(c1.b).toMatchObject({ position: 1, views: 3, unique_viewers: 2, median_ms: 2000, p90_ms: 4400, total_ms: 9000, drop_off: 0.3333 });
    expect(c1.c).toMatchObject({ position: 2, views: 2, unique_viewers: 1, median_ms: 4500, p90_ms: 5700, total_ms: 9000, drop_off: 0.5 });
    expect(c1.d).toMatchObject({ position: 3, views: 1, unique_viewers: 1, median_ms: 4000, p90_ms: 4000, total_ms: 4000, drop_off: 1 });

    // Revision 2: b edited, c and d gone, e added. A view pinned to it rolls up apart.
    const rev2 = await saveBody(team.owner, deck, deckBody(card("a", "Card a"), card("b", "Card b, rewritten"), card("e", "Card e")));
    const v5 = await two.start(link.token);
    expect(v5.body).toMatchObject({ revision: rev2, cardIds: ["a", "b", "e"] });
    expect((await two.beacons(v5.body.viewId, beacons(deck.id, rev2, [["a", 1500], ["e", 2500]]))).body.accepted).toBe(2);
    // Viewer one's old view still counts for revision 1.
    expect((await one.beacons(v1.body.viewId, beacons(deck.id, deck.revision, [["a", 1000]], 10))).body.accepted).toBe(1);

    await refresh(deck.id);
    const [n2, n1] = await analytics(deck.id);
    expect(n2).toMatchObject({ revision: rev2, card_count: 3, views: 1, unique_viewers: 1, bot_views: 0, completion: 1, completed_views: 1 });
    const c2 = cardsOf(n2);
    expect(Object.keys(c2).sort()).toEqual(["a", "e"]);
    expect(c2.a).toMatchObject({ position: 0, views: 1, median_ms: 1500, drop_off: 0 });
    expect(c2.e).toMatchObject({ position: 2, views: 1, median_ms: 2500, drop_off: 1 });
    // Unchanged card a keeps its hash across revisions; card b's changed.
    const { rows: hashes } = await admin.query(
      `select revision, card_hashes[1] as a, card_hashes[2] as b from deck.view_revisions where document_id = $1 order by revision`, [deck.id]);
    expect(hashes[0].a).toBe(hashes[1].a);
    expect(hashes[0].b).not.toBe(hashes[1].b);
    // Revision 1 moved only by viewer one's late beacon on a.
    expect(cardsOf(n1).a).toMatchObject({ views: 4, total_ms: 11000, median_ms: 2500 });
    expect(n1.views).toBe(5);
    // The same figures are in the tables the org's readers select.
    const rows = await select(team.viewer, `select revision, card_id, views, median_ms from deck.card_rollups where document_id = $1 order by revision, position`, [deck.id]);
    expect(rows.map((r: any) => `${r.revision}:${r.card_id}:${r.views}:${r.median_ms}`)).toEqual([
      `${deck.revision}:a:4:2500`, `${deck.revision}:b:3:2000`, `${deck.revision}:c:2:4500`, `${deck.revision}:d:1:4000`, `${rev2}:a:1:1500`, `${rev2}:e:1:2500`,
    ]);
  });

  it("a live edit not yet compacted is a new revision: the view is pinned to the merged deck, not the stored body", async () => {
    const deck = await makeDeck(team.owner, team.orgId, ["a", "b"]);
    const link = await makeLink(team.owner, deck.id);
    const editor = new LiveEditor(team.owner, deck.id);
    try {
      await editor.join();
      deckKind.toYDoc(deckBody(card("a", "Card a"), card("n", "New card"), card("b", "Card b")) as DeckBody, editor.doc);
      await editor.flush();
      expect(editor.errors).toEqual([]);
    } finally {
      await editor.leave();
    }
    // (The worker may compact the log meanwhile; either way the view sees the edit.)
    const { rows: [row] } = await admin.query(`select revision from content.documents where id = $1`, [deck.id]);
    expect(row.revision).toBeGreaterThan(deck.revision);
    const viewer = new LinkViewer();
    const v = await viewer.start(link.token);
    expect(v.body).toMatchObject({ revision: row.revision, cardIds: ["a", "n", "b"] });
    // The new card takes beacons; the old revision's card list is not this view's.
    expect((await viewer.beacons(v.body.viewId, beacons(deck.id, row.revision, [["n", 900]]))).body.accepted).toBe(1);
    expect((await viewer.beacons(v.body.viewId, beacons(deck.id, deck.revision, [["a", 900]], 5))).status).toBe(400);
  });

  it("the same batch sent five times at once is stored once", async () => {
    const deck = await makeDeck(team.owner, team.orgId, ["p", "q"]);
    const link = await makeLink(team.owner, deck.id);
    const viewer = new LinkViewer();
    const v = await viewer.start(link.token);
    const batch = beacons(deck.id, deck.revision, [["p", 100], ["q", 200], ["p", 300]]);
    const results = await Promise.all(Array.from({ length: 5 }, () => viewer.beacons(v.body.viewId, batch)));
    expect(results.map((r) => r.status)).toEqual([null, null, null, null, null]);
    expect(results.reduce((n, r) => n + r.body.accepted, 0)).toBe(3);
    expect(results.reduce((n, r) => n + r.body.duplicates, 0)).toBe(12);
    const { rows } = await admin.query(`select seq, duration_ms from deck.card_events where view_id = $1 order by seq`, [v.body.viewId]);
    expect(rows).toEqual([{ seq: 0, duration_ms: 100 }, { seq: 1, duration_ms: 200 }, { seq: 2, duration_ms: 300 }]);
  });

  it("the scheduled rollup recomputes decks seen since their last rollup, idempotently", async () => {
    const { db } = createDb(stack.dbUrl, 2);
    try {
      const deck = await makeDeck(team.owner, team.orgId, ["x", "y"]);
      const link = await makeLink(team.owner, deck.id);
      const viewer = new LinkViewer();
      const v = await viewer.start(link.token);
      await viewer.beacons(v.body.viewId, beacons(deck.id, deck.revision, [["x", 700], ["y", 300]]));
      const snapshot = async () => (await admin.query(
        `select card_id, views, median_ms, drop_off::float8 from deck.card_rollups where document_id = $1 order by position`, [deck.id])).rows;
      expect(await snapshot()).toEqual([]);
      const first = await rollupDue(db);
      expect(first.failed).toBe(0);
      const after = await snapshot();
      expect(after).toEqual([{ card_id: "x", views: 1, median_ms: 700, drop_off: 0 }, { card_id: "y", views: 1, median_ms: 300, drop_off: 1 }]);
      // Again: the same rows (the 2-minute overlap recomputes it; nothing moves).
      await rollupDue(db);
      expect(await snapshot()).toEqual(after);
      // A deck whose rollup is current and quiet is not due once the overlap has passed.
      await admin.query(`update deck.revision_rollups set computed_at = now() + interval '3 minutes' where document_id = $1`, [deck.id]);
      const { rows: due } = await admin.query(`select private.deck_rollup_due(5000) as id`);
      expect(due.map((r) => r.id)).not.toContain(deck.id);
      // A run stops starting decks once its time budget is spent; the rest stay due for the next run.
      const more = await makeDeck(team.owner, team.orgId, ["m"]);
      const moreLink = await makeLink(team.owner, more.id);
      const w = await viewer.start(moreLink.token);
      await viewer.beacons(w.body.viewId, beacons(more.id, more.revision, [["m", 10]]));
      let clock = 0;
      const cut = await rollupDue(db, { budgetMs: 5, now: () => (clock++ < 2 ? 0 : 1_000) });
      expect(cut.decks + cut.failed).toBe(1);
      expect(cut.left).toBeGreaterThanOrEqual(1);
    } finally {
      await db.destroy();
    }
  });
});
