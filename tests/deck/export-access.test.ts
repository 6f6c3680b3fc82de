// Deck exports as a keyed, reusable job: the same (deck, revision, format) twice is one export
// and one file (no second render), a new revision renders anew; progress reaches the requester
// on user:<id>. Who may ask and read (the deck's downloaders: members, share grantees whose share
// allows downloads) and who may not (another org, a view-only share), bad input that writes
// nothing, a worker without Chromium (failed, clear error, nothing stored), the retention job,
// and server code asking as the service role (what a generation ending in an export does).
import { randomUUID } from "node:crypto";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { asService } from "../../functions/_shared/db/client.ts";
import { renderExport } from "../../functions/_shared/deck/exports/render-job.ts";
import { requestExport } from "../../functions/_shared/deck/exports/request.ts";
import { purgeExpiredExports } from "../../functions/_shared/deck/exports/retention.ts";
import { Producer } from "../../functions/_shared/jobs/queue.ts";
import { contentRpc } from "../helpers/content.ts";
import { admin, createTeam, createUser, expectSqlError, select, as, stack, type Team } from "../helpers/db.ts";
import { call, expectError } from "../helpers/http.ts";
import { broadcasts, rtClient, subscribe } from "../helpers/realtime.ts";
import { createApiKey } from "../helpers/openai.ts";
import { objectRow } from "../helpers/storage.ts";
import { tokenFor } from "../helpers/supabase.ts";
import {
  askExport, createDeck, deckBody, exportCount, exportRow, getExport, saveDeck, settled, simpleCards, workerDeps,
} from "./export-helpers.ts";

const BUCKET = "deck-exports";
let team: Team;
let other: Team;
const producer = new Producer(stack.dbUrl);
beforeAll(async () => {
  [team, other] = await Promise.all([createTeam("Exports access"), createTeam("Elsewhere")]);
});
afterAll(async () => {
  await producer.stop();
});

const objectsUnder = async (prefix: string) =>
  (await admin.query<{ name: string }>("select name from storage.objects where bucket_id = $1 and name like $2", [BUCKET, `${prefix}%`])).rows.map((r) => r.name);

describe("one export per deck, revision and format", () => {
  it("the same request twice reuses the export and its file; a new revision renders anew; progress goes live to the requester", async () => {
    const sb = await rtClient({ token: await tokenFor(team.member) });
    const ch = sb.channel(`user:${team.member.id}`, { config: { private: true } });
    const inbox = broadcasts(ch);
    await subscribe(ch);
    try {
      const deck = await createDeck(team.member, team.orgId, deckBody(simpleCards(3)));
      const first = await askExport(team.member, deck.id, { format: "html" });
      expect(first.status, first.raw).toBe(202);
      expect(first.body).toMatchObject({ export: { status: "queued", revision: deck.revision, format: "html" }, url: null });
      const id = first.body.export.id as string;
      const stored = await settled(id);
      expect(stored).toMatchObject({ status: "stored", renders: 1, pages: 3 });
      const object = await objectRow(BUCKET, stored.storage_path!);
      expect(object).toBeDefined();
      await inbox.waitFor((m) => m.event === "deck.export" && m.payload.export_id === id && m.payload.status === "stored", 15_000, "stored");
      const states = inbox.items.filter((m) => m.event === "deck.export" && m.payload.export_id === id).map((m) => m.payload.status);
      expect(states).toEqual(["queued", "rendering", "stored"]);

      // Again: the same export, answered 200 with its URL, and no second render.
      const again = await askExport(team.member, deck.id, { format: "html" });
      expect(again.status, again.raw).toBe(200);
      expect(again.body.export.id).toBe(id);
      expect(again.body.url).toMatch(/\/storage\/v1\/object\/sign\/deck-exports\//);
      const byRevision = await askExport(team.member, deck.id, { format: "html", revision: deck.revision });
      expect(byRevision.status).toBe(200);
      expect(byRevision.body.export.id).toBe(id);
      const after = await exportRow(id);
      expect(after).toMatchObject({ status: "stored", renders: 1, storage_path: stored.storage_path, sha256: stored.sha256 });
      expect(await objectRow(BUCKET, stored.storage_path!)).toEqual(object);
      expect(await exportCount(deck.id)).toBe(1);
      // Asking again kept the file a week from now (never shorter).
      expect(after!.expires_at!.getTime()).toBeGreaterThanOrEqual(stored.expires_at!.getTime());

      // Another format is another export; a new revision is another export, rendered anew.
      const revision = await saveDeck(team.member, deck, deck.revision, deckBody(simpleCards(4)));
      const next = await askExport(team.member, deck.id, { format: "html" });
      expect(next.status, next.raw).toBe(202);
      expect(next.body.export).toMatchObject({ revision, status: "queued" });
      expect(next.body.export.id).not.toBe(id);
      const nextRow = await settled(next.body.export.id);
      expect(nextRow).toMatchObject({ status: "stored", pages: 4, renders: 1 });
      expect(nextRow.storage_path).not.toBe(stored.storage_path);
      expect(await exportCount(deck.id)).toBe(2);
    } finally {
      await sb.removeAllChannels();
    }
  });

  it("six requests at once are one export and one render", async () => {
    const deck = await createDeck(team.member, team.orgId, deckBody(simpleCards(2)));
    const answers = await Promise.all([team.member, team.owner, team.admin, team.viewer, team.member, team.owner].map((u) => askExport(u, deck.id, { format: "pdf" })));
    for (const a of answers) expect([200, 202], a.raw).toContain(a.status);
    expect(new Set(answers.map((a) => a.body.export.id)).size).toBe(1);
    expect(await settled(answers[0].body.export.id)).toMatchObject({ status: "stored", renders: 1 });
    expect(await exportCount(deck.id)).toBe(1);
    expect(await objectsUnder(`${team.orgId}/${deck.id}/`)).toHaveLength(1);
  });

  it("renders the revision asked for, even when the deck moved on before the worker ran", async () => {
    const deck = await createDeck(team.member, team.orgId, deckBody(simpleCards(2, "Before")));
    // Asked for with a queue that holds the job back, so the deck surely changes first.
    const held = { ready: async () => ({ send: async () => null }) } as unknown as Producer;
    const { db } = workerDeps();
    const asked = await asService(db, (tx) => requestExport(tx, held, { orgId: team.orgId, documentId: deck.id, format: "html", userId: team.member.id }));
    await saveDeck(team.member, deck, deck.revision, deckBody(simpleCards(5, "After")));
    expect(await renderExport(workerDeps(), asked.exportId)).toMatchObject({ status: "stored", pages: 2 });
    const got = await getExport(team.member, asked.exportId);
    expect(got.body.export).toMatchObject({ revision: deck.revision, pages: 2 });
    const html = await (await fetch(got.body.url)).text();
    expect(html).toContain("Before 2");
    expect(html).not.toContain("After");
    // The snapshot is gone once rendered.
    expect((await admin.query("select body from deck.exports where id = $1", [asked.exportId])).rows[0].body).toBeNull();
  });
});

describe("bad input writes nothing", () => {
  it("unknown format, extra fields, bad revisions, a document that is not a deck, a deck that does not exist", async () => {
    const deck = await createDeck(team.member, team.orgId, deckBody(simpleCards(2)));
    const revision = await saveDeck(team.member, deck, deck.revision, deckBody(simpleCards(3)));
    expect((await admin.query("select count(*)::int as n from content.versions where document_id = $1 and revision = $2", [deck.id, deck.revision])).rows[0].n).toBe(0);
    const cases: [unknown, number, string][] = [
      [{ format: "docx" }, 400, "invalid_request"],
      [{}, 400, "invalid_request"],
      [{ format: "pdf", extra: true }, 400, "invalid_request"],
      [{ format: "pdf", revision: 0 }, 400, "invalid_request"],
      [{ format: "pdf", revision: "1" }, 400, "invalid_request"],
      [{ format: "pdf", revision: revision + 1 }, 404, "not_found"],
      // A past revision with no kept copy cannot be rendered.
      [{ format: "pdf", revision: deck.revision }, 404, "not_found"],
    ];
    for (const [json, status, code] of cases) expectError(await askExport(team.member, deck.id, json), status, code);
    const future = await askExport(team.member, deck.id, { format: "pdf", revision: revision + 1 });
    expect(future.body.error.message).toMatch(/does not exist: it is at revision/);
    const note = await call("/api/content/documents", { token: await tokenFor(team.member), json: { org_id: team.orgId, kind: "note", title: "A note", body: { type: "doc", content: [] } } });
    expect(note.status, note.raw).toBe(201);
    expectError(await askExport(team.member, note.body.id, { format: "pdf" }), 404, "not_found");
    expectError(await askExport(team.member, randomUUID(), { format: "pdf" }), 404, "not_found");
    expectError(await call(`/api/deck/decks/not-a-uuid/exports`, { token: await tokenFor(team.member), json: { format: "pdf" } }), 400, "invalid_request");
    expectError(await call(`/api/deck/decks/${deck.id}/exports`, { json: { format: "pdf" } }), 401, "unauthorized");
    expect(await exportCount(deck.id)).toBe(0);
    expect(await exportCount(note.body.id)).toBe(0);
  });
});

describe("who may ask for and read an export", () => {
  let deck: { id: string; revision: number };
  let exportId: string;
  beforeAll(async () => {
    deck = await createDeck(team.member, team.orgId, deckBody(simpleCards(2)));
    exportId = (await askExport(team.member, deck.id, { format: "html" })).body.export.id;
    await settled(exportId);
  });

  it("members of the deck's org read it and ask for it (a viewer too)", async () => {
    const res = await askExport(team.viewer, deck.id, { format: "html" });
    expect(res.status, res.raw).toBe(200);
    expect(res.body.export.id).toBe(exportId);
    expect((await getExport(team.viewer, exportId)).body.url).toMatch(/deck-exports/);
    expect(await select(team.viewer, "select id from deck.exports where id = $1", [exportId])).toEqual([{ id: exportId }]);
  });

  it("another org's member can neither ask (404) nor read the row", async () => {
    expectError(await askExport(other.owner, deck.id, { format: "html" }), 404, "not_found");
    expectError(await askExport(other.owner, deck.id, { format: "pptx" }), 404, "not_found");
    expectError(await getExport(other.owner, exportId), 404, "not_found");
    expect(await select(other.owner, "select id from deck.exports where id = $1", [exportId])).toEqual([]);
    expect(await select(other.owner, "select id from deck.exports where document_id = $1", [deck.id])).toEqual([]);
    expect(await exportCount(deck.id)).toBe(1);
  });

  it("a share without downloads lets its guest view the deck but not export it; one with downloads does", async () => {
    const [viewOnly, downloader] = await Promise.all([createUser(), createUser()]);
    await contentRpc(team.owner, "share_with_user", { p_document_id: deck.id, p_level: "view", p_user_id: viewOnly.id, p_allow_download: false });
    await contentRpc(team.owner, "share_with_user", { p_document_id: deck.id, p_level: "view", p_user_id: downloader.id, p_allow_download: true });
    // The view-only guest sees the deck…
    expect(await select(viewOnly, "select id from content.documents where id = $1", [deck.id])).toHaveLength(1);
    // …but may not export it, nor read its exports.
    const refused = await askExport(viewOnly, deck.id, { format: "pdf" });
    expectError(refused, 403, "forbidden");
    expect(refused.body.error.message).toMatch(/allows downloads/);
    expectError(await getExport(viewOnly, exportId), 404, "not_found");
    expect(await select(viewOnly, "select id from deck.exports where document_id = $1", [deck.id])).toEqual([]);
    expect(await exportCount(deck.id)).toBe(1);
    // The guest whose share allows downloads may.
    const allowed = await askExport(downloader, deck.id, { format: "html" });
    expect(allowed.status, allowed.raw).toBe(200);
    expect(allowed.body.export.id).toBe(exportId);
    expect(await select(downloader, "select id from deck.exports where document_id = $1", [deck.id])).toEqual([{ id: exportId }]);
  });

  it("an org API key with content.read asks and reads like a member; one of another org gets 404", async () => {
    const key = await createApiKey(team.owner, team.orgId, ["content.read"]);
    const res = await call(`/api/deck/decks/${deck.id}/exports`, { apiKey: key.key, json: { format: "pptx" } });
    expect(res.status, res.raw).toBe(202);
    expect(res.body.export).toMatchObject({ format: "pptx", requested_by: null });
    expect((await admin.query("select api_key_id from deck.exports where id = $1", [res.body.export.id])).rows[0].api_key_id).toBe(key.id);
    expect(await settled(res.body.export.id)).toMatchObject({ status: "stored" });
    const got = await call(`/api/deck/exports/${res.body.export.id}`, { apiKey: key.key });
    expect(got.status, got.raw).toBe(200);
    expect(got.body.url).toMatch(/deck-exports/);
    const otherKey = await createApiKey(other.owner, other.orgId, ["content.read"]);
    expectError(await call(`/api/deck/decks/${deck.id}/exports`, { apiKey: otherKey.key, json: { format: "pdf" } }), 404, "not_found");
    expectError(await call(`/api/deck/exports/${res.body.export.id}`, { apiKey: otherKey.key }), 404, "not_found");
  });

  it("clients read no snapshot and write nothing; nobody asks in another's name", async () => {
    await expectSqlError(select(team.owner, "select body from deck.exports where id = $1", [exportId]), "42501");
    await expectSqlError(as(team.owner, (c) => c.query("update deck.exports set status = 'queued' where id = $1", [exportId])), "42501");
    await expectSqlError(as(team.owner, (c) => c.query("delete from deck.exports where id = $1", [exportId])), "42501");
    await expectSqlError(as(team.member, (c) => c.query("select private.deck_request_export($1, $2, 'pdf', $3)", [deck.id, deck.revision, team.owner.id])), "42501");
    expect(await exportRow(exportId)).toMatchObject({ status: "stored" });
    expect(await exportCount(deck.id)).toBe(2);
  });
});

describe("rendering and keeping files", () => {
  it("without Chromium a PDF export fails with chromium_missing, says how to install it, and stores nothing; asking again retries", async () => {
    const deck = await createDeck(team.member, team.orgId, deckBody(simpleCards(2)));
    // The row and snapshot as a request makes them, but no job: this process's worker runs it.
    const { rows: [row] } = await admin.query(
      `insert into deck.exports (org_id, document_id, revision, format, title, body, requested_by)
       select org_id, id, revision, 'pdf', title, body, $2 from content.documents where id = $1 returning id`, [deck.id, team.member.id]);
    const missing = `/nonexistent/${randomUUID()}/chromium`;
    expect(await renderExport(workerDeps({ chromiumPath: missing }), row.id)).toEqual({ status: "failed", error_code: "chromium_missing" });
    const failed = await exportRow(row.id);
    expect(failed).toMatchObject({ status: "failed", error_code: "chromium_missing", storage_path: null, sha256: null });
    expect(failed!.error).toContain(missing);
    expect(failed!.error).toContain("apt-get install -y chromium");
    expect(failed!.error).toContain("PLINTH_CHROMIUM_PATH");
    expect(await objectsUnder(`${team.orgId}/${deck.id}/`)).toEqual([]);
    const got = await getExport(team.member, row.id);
    expect(got.body).toMatchObject({ export: { status: "failed", error_code: "chromium_missing" }, url: null });

    // Asked for again (the stack's worker has Chromium): reset, rendered, stored.
    const again = await askExport(team.member, deck.id, { format: "pdf" });
    expect(again.status, again.raw).toBe(202);
    expect(again.body.export).toMatchObject({ id: row.id, status: "queued", error_code: null });
    expect(await settled(row.id)).toMatchObject({ status: "stored", renders: 2, error_code: null });
    expect(await objectsUnder(`${team.orgId}/${deck.id}/`)).toEqual([`${team.orgId}/${deck.id}/${deck.revision}/${row.id}-2.pdf`]);
  });

  it("the retention job removes expired files; asking again renders a new one", async () => {
    const deck = await createDeck(team.member, team.orgId, deckBody(simpleCards(2)));
    const id = (await askExport(team.member, deck.id, { format: "html" })).body.export.id as string;
    const stored = await settled(id);
    const fresh = await createDeck(team.member, team.orgId, deckBody(simpleCards(2)));
    const keptId = (await askExport(team.member, fresh.id, { format: "html" })).body.export.id as string;
    const kept = await settled(keptId);
    await admin.query("update deck.exports set expires_at = now() - interval '1 minute' where id = $1", [id]);
    // Past its expiry the URL is gone even before the job runs.
    expect((await getExport(team.member, id)).body.url).toBeNull();

    const result = await purgeExpiredExports(workerDeps());
    expect(result.expired).toBeGreaterThanOrEqual(1);
    expect(await exportRow(id)).toMatchObject({ status: "expired", storage_path: null });
    expect(await objectRow(BUCKET, stored.storage_path!)).toBeUndefined();
    // A file still in its week stays.
    expect(await exportRow(keptId)).toMatchObject({ status: "stored", storage_path: kept.storage_path });
    expect(await objectRow(BUCKET, kept.storage_path!)).toBeDefined();

    const again = await askExport(team.member, deck.id, { format: "html" });
    expect(again.status, again.raw).toBe(202);
    expect(again.body.export.id).toBe(id);
    const renewed = await settled(id);
    expect(renewed).toMatchObject({ status: "stored", renders: 2 });
    expect(renewed.storage_path).not.toBe(stored.storage_path);
    expect(await objectRow(BUCKET, renewed.storage_path!)).toBeDefined();
  });

  it("the retention job removes the files of a deleted deck (its export rows went with it); a live deck's file stays", async () => {
    const gone = await createDeck(team.member, team.orgId, deckBody(simpleCards(2)));
    const goneFile = (await settled((await askExport(team.member, gone.id, { format: "html" })).body.export.id)).storage_path!;
    const live = await createDeck(team.member, team.orgId, deckBody(simpleCards(2)));
    const liveFile = (await settled((await askExport(team.member, live.id, { format: "html" })).body.export.id)).storage_path!;
    await admin.query("delete from content.documents where id = $1", [gone.id]);
    expect((await admin.query("select count(*)::int as n from deck.exports where document_id = $1", [gone.id])).rows[0].n).toBe(0);
    expect(await objectRow(BUCKET, goneFile)).toBeDefined();

    // Only files older than an hour are orphans (a render writes its file before its row names it):
    // this one is dated back rather than the age shortened, so no other test's render in flight is touched.
    await admin.query("update storage.objects set created_at = now() - interval '2 hours' where bucket_id = $1 and name = $2", [BUCKET, goneFile]);
    const result = await purgeExpiredExports(workerDeps());
    expect(result.orphans_removed).toBeGreaterThanOrEqual(1);
    expect(await objectRow(BUCKET, goneFile)).toBeUndefined();
    expect(await objectRow(BUCKET, liveFile)).toBeDefined();
  });

  it("server code asks as the service role on a member's behalf (the interface generations call)", async () => {
    const deck = await createDeck(team.member, team.orgId, deckBody(simpleCards(3)));
    const { db } = workerDeps();
    const asked = await asService(db, (tx) => requestExport(tx, producer, { orgId: team.orgId, documentId: deck.id, format: "pptx", userId: team.member.id }));
    expect(asked).toMatchObject({ status: "queued", reused: false });
    expect(await settled(asked.exportId)).toMatchObject({ status: "stored", pages: 3, requested_by: team.member.id });
    const again = await asService(db, (tx) => requestExport(tx, producer, { orgId: team.orgId, documentId: deck.id, format: "pptx", userId: null }));
    expect(again).toEqual({ exportId: asked.exportId, status: "stored", reused: true });
    // The wrong org for the deck is a 404, with nothing written.
    await expect(asService(db, (tx) => requestExport(tx, producer, { orgId: other.orgId, documentId: deck.id, format: "pdf", userId: null })))
      .rejects.toMatchObject({ status: 404 });
    expect(await exportCount(deck.id)).toBe(1);
  });
});
