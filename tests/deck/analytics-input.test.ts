// Bad input to the analytics routes over HTTP on the real api: each gets a clear 4xx and writes
// nothing (the rows are counted again after each). Beacons: an unknown view, a wrong or missing
// viewer key, another user's view, another deck, another revision, a card not in the revision,
// durations out of range, a batch too large, a batch with one bad item. Views: the link's own
// refusals (expired, revoked, password), a link or id of something that is not a deck, a deck
// the caller cannot read, and malformed requests.
import { randomUUID } from "node:crypto";
import { beforeAll, describe, expect, it } from "vitest";
import { contentRpc, createDoc, type Doc } from "../helpers/content.ts";
import { admin, createTeam, type Team } from "../helpers/db.ts";
import { call, expectError } from "../helpers/http.ts";
import { tokenFor } from "../helpers/supabase.ts";
import { isBotAgent } from "../../functions/_shared/deck/analytics/bot.ts";
import { beacons, BROWSER, counts, GOOGLEBOT, LinkViewer, makeDeck, makeLink, memberApp } from "./analytics-helpers.ts";

let team: Team;
let other: Team;
let deck: Doc;
let otherDeck: Doc;
let token: string;
let viewId: string;
let viewerKey: string;

const post = (path: string, json: unknown, bearer?: string) =>
  call(`/api/deck${path}`, { method: "POST", json, token: bearer, headers: { "user-agent": BROWSER } });

beforeAll(async () => {
  [team, other] = await Promise.all([createTeam("Analytics input"), createTeam("Analytics input other")]);
  deck = await makeDeck(team.owner, team.orgId, ["a", "b"]);
  otherDeck = await makeDeck(team.owner, team.orgId, ["a", "b"]);
  token = (await makeLink(team.owner, deck.id)).token;
  const started = await post("/views", { token });
  expect(started.status, started.raw).toBe(201);
  ({ viewId, viewerKey } = started.body);
});

describe("views", () => {
  it("keep only the origin of the referrer the client sends, never the request's Referer (the viewer page holds the link's token)", async () => {
    const page = `https://app.example/view?link=${token}`;
    const withReferrer = await call(`/api/deck/views`, {
      method: "POST", json: { token, referrer: `https://news.example/story?id=7&t=${token}` }, headers: { "user-agent": BROWSER, referer: page },
    });
    expect(withReferrer.status, withReferrer.raw).toBe(201);
    const without = await call(`/api/deck/views`, { method: "POST", json: { token }, headers: { "user-agent": BROWSER, referer: page } });
    expect(without.status, without.raw).toBe(201);
    const { rows } = await admin.query(`select id, referrer from deck.views where id = any($1::uuid[]) order by started_at`,
      [[withReferrer.body.viewId, without.body.viewId]]);
    expect(Object.fromEntries(rows.map((r) => [r.id, r.referrer]))).toEqual({
      [withReferrer.body.viewId]: "https://news.example", [without.body.viewId]: null,
    });
    expect((await admin.query(`select count(*)::int as n from deck.views where referrer like '%' || $1 || '%'`, [token])).rows[0].n).toBe(0);
  });
});

describe("beacons", () => {
  const good = () => beacons(deck.id, deck.revision, [["a", 1000]]);

  it.each([
    ["an unknown view", 404, "view_not_found", () => ({ viewId: randomUUID(), viewerKey, events: good() })],
    ["a wrong viewer key", 404, "view_not_found", () => ({ viewId, viewerKey: "x".repeat(32), events: good() })],
    ["no viewer key for a link view", 404, "view_not_found", () => ({ viewId, events: good() })],
    ["a view of another deck", 400, "invalid_beacons", () => ({ viewId, viewerKey, events: beacons(otherDeck.id, deck.revision, [["a", 1000]]) })],
    ["another revision", 400, "invalid_beacons", () => ({ viewId, viewerKey, events: beacons(deck.id, deck.revision + 1, [["a", 1000]]) })],
    ["a card not in the revision", 400, "invalid_beacons", () => ({ viewId, viewerKey, events: beacons(deck.id, deck.revision, [["zz", 1000]]) })],
    ["one bad item among good ones", 400, "invalid_beacons", () => ({ viewId, viewerKey, events: beacons(deck.id, deck.revision, [["a", 10], ["b", 20], ["nope", 30]]) })],
    ["a negative duration", 400, "invalid_request", () => ({ viewId, viewerKey, events: beacons(deck.id, deck.revision, [["a", -1]]) })],
    ["a duration over 30 minutes", 400, "invalid_request", () => ({ viewId, viewerKey, events: beacons(deck.id, deck.revision, [["a", 30 * 60 * 1000 + 1]]) })],
    ["a fractional duration", 400, "invalid_request", () => ({ viewId, viewerKey, events: beacons(deck.id, deck.revision, [["a", 1.5]]) })],
    ["101 events", 400, "invalid_request", () => ({ viewId, viewerKey, events: beacons(deck.id, deck.revision, Array.from({ length: 101 }, () => ["a", 1] as [string, number])) })],
    ["no events", 400, "invalid_request", () => ({ viewId, viewerKey, events: [] })],
    ["a ts a year away", 400, "invalid_beacons", () => ({ viewId, viewerKey, events: good().map((e) => ({ ...e, ts: new Date(Date.now() + 365 * 86_400_000).toISOString() })) })],
    ["an unknown field", 400, "invalid_request", () => ({ viewId, viewerKey, events: good().map((e) => ({ ...e, bot: false })) })],
  ] as const)("%s: %i %s, nothing written", async (_what, status, code, body) => {
    const before = await counts(deck.id);
    const res = await post("/beacons", body());
    expectError(res, status, code);
    expect(await counts(deck.id)).toEqual(before);
    expect((await counts(otherDeck.id)).events).toBe(0);
  });

  it("names each bad item of a refused batch", async () => {
    const res = await post("/beacons", { viewId, viewerKey, events: beacons(deck.id, deck.revision, [["a", 10], ["zz", 20], ["b", 30], ["yy", 40]]) });
    expectError(res, 400, "invalid_beacons");
    expect(res.body.error.details.map((d: { index: number }) => d.index)).toEqual([1, 3]);
  });

  it("a member's view: only that user sends its beacons", async () => {
    const app = await memberApp(team.member);
    const v = await app.start(deck.id);
    const mine = v.body.viewId as string;
    const before = await counts(deck.id);
    expectError(await post("/beacons", { viewId: mine, events: good() }), 401, "unauthorized");
    expectError(await post("/beacons", { viewId: mine, events: good() }, await tokenFor(team.viewer)), 404, "view_not_found");
    expectError(await post("/beacons", { viewId: mine, viewerKey, events: good() }), 404, "view_not_found");
    expect(await counts(deck.id)).toEqual(before);
    const ok = await post("/beacons", { viewId: mine, events: good() }, await tokenFor(team.member));
    expect(ok.status, ok.raw).toBe(200);
    expect(ok.body).toEqual({ accepted: 1, duplicates: 0 });
  });

  it("more time on the cards than has passed since the view started is refused; a resend is not counted twice", async () => {
    const viewer = new LinkViewer();
    const v = await viewer.start(token);
    const long = beacons(deck.id, deck.revision, [["a", 25 * 60 * 1000], ["b", 25 * 60 * 1000]]);
    const before = await counts(deck.id);
    expectError(await post("/beacons", { viewId: v.body.viewId, viewerKey: viewer.viewerKey, events: long }), 400, "invalid_beacons");
    expect(await counts(deck.id)).toEqual(before);
    // An hour later, the same fifty minutes are plausible; sent again, they are duplicates, not a hundred minutes.
    await admin.query(`update deck.views set started_at = now() - interval '1 hour' where id = $1`, [v.body.viewId]);
    const ok = await post("/beacons", { viewId: v.body.viewId, viewerKey: viewer.viewerKey, events: long });
    expect(ok.body).toEqual({ accepted: 2, duplicates: 0 });
    expect((await post("/beacons", { viewId: v.body.viewId, viewerKey: viewer.viewerKey, events: long })).body).toEqual({ accepted: 0, duplicates: 2 });
    // But twenty more minutes on top are not (70 minutes in an hour, past its 10% and 2 minutes of slack).
    expectError(await post("/beacons", { viewId: v.body.viewId, viewerKey: viewer.viewerKey, events: beacons(deck.id, deck.revision, [["a", 20 * 60 * 1000]], 10) }), 400, "invalid_beacons");
    expect((await counts(deck.id)).events).toBe(before.events + 2);
  });

  it("a view over a day old takes no more beacons", async () => {
    const viewer = new LinkViewer();
    const v = await viewer.start(token);
    await admin.query(`update deck.views set started_at = now() - interval '25 hours' where id = $1`, [v.body.viewId]);
    const before = await counts(deck.id);
    expectError(await post("/beacons", { viewId: v.body.viewId, viewerKey: viewer.viewerKey, events: good() }), 410, "view_expired");
    expect(await counts(deck.id)).toEqual(before);
  });
});

describe("starting a view", () => {
  it("the link's own refusals: expired, revoked, password required, wrong password; nothing written", async () => {
    const expiring = await makeLink(team.owner, deck.id, { expiresAt: new Date(Date.now() + 60_000).toISOString() });
    await admin.query(`update content.shares set expires_at = now() - interval '1 second' where id = $1`, [expiring.id]);
    const revoked = await makeLink(team.owner, deck.id);
    await contentRpc(team.owner, "revoke_share", { p_share_id: revoked.id });
    const locked = await makeLink(team.owner, deck.id, { password: "open sesame" });
    const before = await counts(deck.id);
    expectError(await post("/views", { token: expiring.token }), 410, "link_expired");
    expectError(await post("/views", { token: revoked.token }), 410, "link_revoked");
    expectError(await post("/views", { token: locked.token }), 401, "password_required");
    expectError(await post("/views", { token: locked.token, password: "not it" }), 403, "wrong_password");
    expectError(await post("/views", { token: "x".repeat(43) }), 404, "not_found");
    expect(await counts(deck.id)).toEqual(before);
    // The same answers as the content engine's own open route.
    expectError(await call("/api/content/links/open", { json: { token: expiring.token } }), 410, "link_expired");
    // The wrong password was counted by the content engine's check.
    expect((await admin.query(`select failed_attempts from content.shares where id = $1`, [locked.id])).rows[0].failed_attempts).toBe(1);
    const ok = await post("/views", { token: locked.token, password: "open sesame" });
    expect(ok.status, ok.raw).toBe(201);
    expect((await counts(deck.id)).views).toBe(before.views + 1);
  });

  it("something that is not a deck, a deck the caller cannot read, and malformed requests", async () => {
    const note = await createDoc(team.owner, team.orgId, { visibility: "link" });
    const noteLink = await makeLink(team.owner, note.id);
    const before = await counts(deck.id);
    expectError(await post("/views", { token: noteLink.token }), 404, "not_found");
    expectError(await post("/views", { deckId: note.id }, await tokenFor(team.owner)), 404, "not_found");
    expectError(await post("/views", { deckId: deck.id }, await tokenFor(other.owner)), 404, "not_found");
    expectError(await post("/views", { deckId: deck.id }), 401, "unauthorized");
    expectError(await post("/views", { deckId: deck.id, token }, await tokenFor(team.owner)), 400, "invalid_request");
    expectError(await post("/views", {}), 400, "invalid_request");
    expectError(await post("/views", { token, viewerKey: "short" }), 400, "invalid_request");
    expectError(await post("/views", { token, viewerKey: "has spaces in it, and more" }), 400, "invalid_request");
    expect(await counts(deck.id)).toEqual(before);
    expect((await admin.query(`select count(*)::int as n from deck.views where document_id = $1`, [note.id])).rows[0].n).toBe(0);
  });

  it("a link viewer keeps its key: the same key is the same viewer", async () => {
    const key = "my-own-viewer-key-0001";
    const a = await post("/views", { token, viewerKey: key });
    const b = await post("/views", { token, viewerKey: key });
    expect(a.body.viewerKey).toBe(key);
    const { rows } = await admin.query(`select distinct viewer_key from deck.views where id = any($1::uuid[])`, [[a.body.viewId, b.body.viewId]]);
    expect(rows).toHaveLength(1);
    // The bot rule: isbot's verdict, and no User-Agent at all is a bot too.
    expect([isBotAgent(BROWSER), isBotAgent(GOOGLEBOT), isBotAgent(""), isBotAgent(undefined), isBotAgent("curl/8.5.0")]).toEqual([false, true, true, true, true]);
  });
});
