// Documents through the api: creation per kind (zod-validated, seeded live once), saving against
// a revision (409 when stale, with the latest body), versions (explicit, before imports and AI
// rewrites, on publish), restoring as a forward change, and bad input refused with nothing changed.
import { beforeAll, describe, expect, it } from "vitest";
import { admin, createTeam, createUser, type Team } from "../helpers/db.ts";
import { expectError } from "../helpers/http.ts";
import { api, createDoc, docRow, note } from "../helpers/content.ts";

let team: Team;
let other: Team;
beforeAll(async () => {
  [team, other] = await Promise.all([createTeam("Docs"), createTeam("Other")]);
});

const versionsOf = async (id: string) =>
  (await admin.query("select number, revision, reason, message, body, ystate is not null as live from content.versions where document_id = $1 order by number", [id])).rows;

describe("creating", () => {
  it("creates a note live from the start: body normalized, search text extracted, the Yjs state seeded once", async () => {
    const doc = await createDoc(team.member, team.orgId, { title: "Plan", body: note("Hello world"), tags: ["q3"] });
    expect(doc).toMatchObject({ kind: "note", title: "Plan", revision: 1, status: "draft", visibility: "org", tags: ["q3"], owner_id: team.member.id, live: true });
    expect(doc.body).toEqual(note("Hello world"));
    const row = await docRow(doc.id);
    expect(row.search_text).toBe("Hello world");
    const { rows } = await admin.query("select count(*)::int as n from content.live_states where document_id = $1", [doc.id]);
    expect(rows[0].n).toBe(1);
    // Opening it live changes nothing: the server seeded it already.
    const live = await api(team.member, `/documents/${doc.id}/live`, { method: "POST" });
    expect(live.status, live.raw).toBe(200);
    expect(live.body).toMatchObject({ document_id: doc.id, revision: 1, level: "edit", seeded: false, updates: [] });
  });

  it("creates a checklist with an empty body by default", async () => {
    const doc = await createDoc(team.member, team.orgId, { kind: "checklist", title: "Launch" });
    expect(doc.body).toEqual({ items: [] });
  });

  it("refuses a body that is not valid for its kind, an unknown kind, and unknown fields; nothing is created", async () => {
    const before = (await admin.query("select count(*)::int as n from content.documents where org_id = $1", [team.orgId])).rows[0].n;
    const bad = await api(team.member, "/documents", { json: { org_id: team.orgId, kind: "note", body: { type: "doc", content: [{ type: "text" }] } } });
    expectError(bad, 400, "invalid_request");
    expect(JSON.stringify(bad.body.error.details)).toContain("body");
    const dup = await api(team.member, "/documents", {
      json: { org_id: team.orgId, kind: "checklist", body: { items: [{ id: "a", text: "x", done: false }, { id: "a", text: "y", done: true }] } },
    });
    expectError(dup, 400, "invalid_request");
    expectError(await api(team.member, "/documents", { json: { org_id: team.orgId, kind: "slides" } }), 400, "invalid_request");
    expectError(await api(team.member, "/documents", { json: { org_id: team.orgId, kind: "note", colour: "red" } }), 400, "invalid_request");
    expectError(await api(team.member, "/documents", { json: { org_id: "nope", kind: "note" } }), 400, "invalid_request");
    expect((await admin.query("select count(*)::int as n from content.documents where org_id = $1", [team.orgId])).rows[0].n).toBe(before);
  });

  it("needs content.write in the org: a viewer gets 403, a stranger 404, no token 401", async () => {
    expectError(await api(team.viewer, "/documents", { json: { org_id: team.orgId, kind: "note" } }), 403, "forbidden");
    expectError(await api(other.owner, "/documents", { json: { org_id: team.orgId, kind: "note" } }), 404, "not_found");
    expectError(await api(null, "/documents", { json: { org_id: team.orgId, kind: "note" } }), 401, "unauthorized");
  });
});

describe("saving against a revision", () => {
  it("saves, then answers 409 with the latest revision and body to a save based on an older one", async () => {
    const doc = await createDoc(team.member, team.orgId, { body: note("v1") });
    const first = await api(team.member, `/documents/${doc.id}`, { method: "PUT", json: { base_revision: 1, body: note("v2") } });
    expect(first.status, first.raw).toBe(200);
    expect(first.body).toMatchObject({ revision: 2, body: note("v2"), version: null });

    const stale = await api(team.admin, `/documents/${doc.id}`, { method: "PUT", json: { base_revision: 1, body: note("mine") } });
    expectError(stale, 409, "stale_revision");
    expect(stale.body.error.details).toMatchObject({ revision: 2, body: note("v2") });
    const row = await docRow(doc.id);
    expect(row.body).toEqual(note("v2"));
    expect(row.revision).toBe(2);
  });

  it("keeps a version of the result when the save has a message, and of what it replaces for an import or AI rewrite", async () => {
    const doc = await createDoc(team.member, team.orgId, { body: note("draft") });
    const saved = await api(team.member, `/documents/${doc.id}`, { method: "PUT", json: { base_revision: 1, body: note("reviewed"), message: "After review" } });
    expect(saved.body.version).toMatchObject({ number: 1, revision: 2, reason: "save", message: "After review" });
    const imported = await api(team.member, `/documents/${doc.id}`, { method: "PUT", json: { base_revision: 2, body: note("imported"), reason: "import" } });
    expect(imported.status, imported.raw).toBe(200);
    const rewritten = await api(team.member, `/documents/${doc.id}`, { method: "PUT", json: { base_revision: 3, body: note("rewritten"), reason: "ai_rewrite" } });
    expect(rewritten.status, rewritten.raw).toBe(200);
    expect(await versionsOf(doc.id)).toEqual([
      { number: 1, revision: 2, reason: "save", message: "After review", body: note("reviewed"), live: true },
      { number: 2, revision: 2, reason: "before_import", message: null, body: note("reviewed"), live: true },
      { number: 3, revision: 3, reason: "before_ai_rewrite", message: null, body: note("imported"), live: true },
    ]);
  });

  it("refuses a viewer (403) and a stranger (404), and an invalid body (400), changing nothing", async () => {
    const doc = await createDoc(team.member, team.orgId, { body: note("keep") });
    expectError(await api(team.viewer, `/documents/${doc.id}`, { method: "PUT", json: { base_revision: 1, body: note("x") } }), 403, "forbidden");
    expectError(await api(other.member, `/documents/${doc.id}`, { method: "PUT", json: { base_revision: 1, body: note("x") } }), 404, "not_found");
    expectError(await api(team.member, `/documents/${doc.id}`, { method: "PUT", json: { base_revision: 1, body: { type: "page" } } }), 400, "invalid_request");
    expectError(await api(team.member, `/documents/${doc.id}`, { method: "PUT", json: { body: note("x") } }), 400, "invalid_request");
    expectError(await api(team.member, `/documents/${doc.id}`, { method: "PUT", json: { base_revision: 1, body: note("x"), reason: "restore" } }), 400, "invalid_request");
    expect((await docRow(doc.id)).revision).toBe(1);
    expect((await docRow(doc.id)).body).toEqual(note("keep"));
  });
});

describe("versions and restore", () => {
  it("restores an old version as a new forward change and a new version; nothing is rewritten", async () => {
    const doc = await createDoc(team.member, team.orgId, { body: note("one") });
    const v1 = await api(team.member, `/documents/${doc.id}/versions`, { json: { message: "one" } });
    expect(v1.status, v1.raw).toBe(201);
    await api(team.member, `/documents/${doc.id}`, { method: "PUT", json: { base_revision: 1, body: note("two") } });
    const restored = await api(team.member, `/documents/${doc.id}/versions/${v1.body.id}/restore`, { json: {} });
    expect(restored.status, restored.raw).toBe(200);
    expect(restored.body).toMatchObject({ revision: 3, body: note("one") });
    expect(restored.body.version).toMatchObject({ number: 2, revision: 3, reason: "restore", restored_from: v1.body.id });
    const row = await docRow(doc.id);
    expect(row).toMatchObject({ revision: 3, body: note("one") });
    const versions = await versionsOf(doc.id);
    expect(versions.map((v) => [v.number, v.reason, v.revision])).toEqual([[1, "save", 1], [2, "restore", 3]]);
    // The live state moved forward too: its log holds the restore as an update.
    const { rows } = await admin.query("select revision from content.doc_updates where document_id = $1 order by id", [doc.id]);
    expect(rows.map((r) => r.revision)).toEqual([2, 3]);
  });

  it("a stale base refuses the restore; a version of another document is 404", async () => {
    const doc = await createDoc(team.member, team.orgId, { body: note("a") });
    const v = await api(team.member, `/documents/${doc.id}/versions`, { json: { message: "a" } });
    const otherDoc = await createDoc(team.member, team.orgId, { body: note("b") });
    expectError(await api(team.member, `/documents/${otherDoc.id}/versions/${v.body.id}/restore`, { json: {} }), 404, "not_found");
    expectError(await api(team.member, `/documents/${doc.id}/versions/${v.body.id}/restore`, { json: { base_revision: 7 } }), 409, "stale_revision");
    expectError(await api(team.viewer, `/documents/${doc.id}/versions`, { json: { message: "x" } }), 403, "forbidden");
    expectError(await api(team.member, `/documents/${doc.id}/versions`, { json: { message: "" } }), 400, "invalid_request");
  });

  it("publishing keeps a version of what is published, once", async () => {
    const doc = await createDoc(team.member, team.orgId, { body: note("launch") });
    const pub = await api(team.member, `/documents/${doc.id}/status`, { json: { status: "published" } });
    expect(pub.status, pub.raw).toBe(200);
    expect(pub.body).toMatchObject({ status: "published", published_at: expect.any(String) });
    expect((await versionsOf(doc.id)).map((v) => v.reason)).toEqual(["publish"]);
    await api(team.member, `/documents/${doc.id}/status`, { json: { status: "archived" } });
    expect((await versionsOf(doc.id)).map((v) => v.reason)).toEqual(["publish"]);
    expectError(await api(team.viewer, `/documents/${doc.id}/status`, { json: { status: "draft" } }), 403, "forbidden");
    expectError(await api(team.member, `/documents/${doc.id}/status`, { json: { status: "deleted" } }), 400, "invalid_request");
  });

  it("SQL refuses publishing without a version of the current revision, and imports without a version of what they replace", async () => {
    const doc = await createDoc(team.member, team.orgId, { body: note("x") });
    const { as, expectSqlError } = await import("../helpers/db.ts");
    await expectSqlError(as(team.member, (c) => c.query("select private.content_set_status($1, 'published')", [doc.id])), "22023", /needs a version/);
    await expectSqlError(
      as(team.member, (c) => c.query("select private.content_write($1, 1, null, $2, '', null, 'import')", [doc.id, JSON.stringify(note("y"))])),
      "22023",
      /make a version of it first/,
    );
  });
});

describe("reading", () => {
  it("GET returns the current body; another org gets 404", async () => {
    const doc = await createDoc(team.member, team.orgId, { body: note("read me") });
    const got = await api(team.viewer, `/documents/${doc.id}`);
    expect(got.status, got.raw).toBe(200);
    expect(got.body).toMatchObject({ id: doc.id, body: note("read me"), revision: 1 });
    expectError(await api(other.owner, `/documents/${doc.id}`), 404, "not_found");
    const stranger = await createUser();
    expectError(await api(stranger, `/documents/${doc.id}`), 404, "not_found");
  });
});
