// Versions over time: automatic versions after a quiet period only when something changed,
// retention by the plan's content_version_days keeping pinned versions and each document's
// newest, pinning rules, and versions being append-only for clients.
import { beforeAll, describe, expect, it } from "vitest";
import { admin, as, createTeam, expectSqlError, type Team } from "../helpers/db.ts";
import { api, compact, contentRpc, createDoc, note } from "../helpers/content.ts";

let team: Team;
let free: Team;
beforeAll(async () => {
  [team, free] = await Promise.all([createTeam("Versions"), createTeam("Free versions", { plan: null })]);
});

const reasons = async (id: string) =>
  (await admin.query("select reason from content.versions where document_id = $1 order by number", [id])).rows.map((r) => r.reason);

/** Makes the document look quiet since `seconds` ago. */
const quiet = (id: string, seconds: number) =>
  admin.query("update content.documents set updated_at = now() - make_interval(secs => $2), last_edit_at = now() - make_interval(secs => $2) where id = $1", [id, seconds]);

const autoVersions = async () => (await admin.query("select private.content_auto_versions(interval '30 seconds') as n")).rows[0].n;

/** What the sweep does first: the log goes into the state, so the version is of the merged document. */
async function settle(id: string, seconds: number) {
  await compact(id);
  await quiet(id, seconds);
}

describe("automatic versions", () => {
  it("after a quiet period, only if the content changed since the last version", async () => {
    const doc = await createDoc(team.member, team.orgId, { body: note("one") });
    await api(team.member, `/documents/${doc.id}`, { method: "PUT", json: { base_revision: 1, body: note("two") } });
    await compact(doc.id);
    await autoVersions();
    expect(await reasons(doc.id)).toEqual([]); // not quiet yet
    await settle(doc.id, 60);
    await autoVersions();
    expect(await reasons(doc.id)).toEqual(["auto"]);
    const { rows: [v] } = await admin.query("select body, revision, ystate is not null as live from content.versions where document_id = $1", [doc.id]);
    expect(v).toEqual({ body: note("two"), revision: 2, live: true });
    await settle(doc.id, 120);
    await autoVersions();
    expect(await reasons(doc.id)).toEqual(["auto"]); // nothing changed since
    // Changed and back again: the revision moved but the content did not, so no version.
    await api(team.member, `/documents/${doc.id}`, { method: "PUT", json: { base_revision: 2, body: note("three") } });
    await api(team.member, `/documents/${doc.id}`, { method: "PUT", json: { base_revision: 3, body: note("two") } });
    await settle(doc.id, 60);
    await autoVersions();
    expect(await reasons(doc.id)).toEqual(["auto"]);
  });
});

describe("retention", () => {
  it("prunes unpinned versions past the plan's days (7 on free), keeping pinned ones and each document's newest", async () => {
    const doc = await createDoc(free.owner, free.orgId, { body: note("x") });
    for (const message of ["a", "b", "c", "d"]) await api(free.owner, `/documents/${doc.id}/versions`, { json: { message } });
    const { rows: vs } = await admin.query("select id, number from content.versions where document_id = $1 order by number", [doc.id]);
    await contentRpc(free.owner, "pin_version", { p_version_id: vs[1].id });
    await admin.query("update content.versions set created_at = now() - interval '8 days' where document_id = $1", [doc.id]);
    await admin.query("update content.versions set created_at = now() - interval '6 days' where id = $1", [vs[2].id]);
    const teamDoc = await createDoc(team.owner, team.orgId, { body: note("y") });
    await api(team.owner, `/documents/${teamDoc.id}/versions`, { json: { message: "old" } });
    await api(team.owner, `/documents/${teamDoc.id}/versions`, { json: { message: "new" } });
    await admin.query("update content.versions set created_at = now() - interval '8 days' where document_id = $1", [teamDoc.id]);
    await admin.query("select private.content_prune_versions()");
    const { rows } = await admin.query("select number from content.versions where document_id = $1 order by number", [doc.id]);
    expect(rows.map((r) => r.number)).toEqual([2, 3, 4]); // 1 pruned; 2 pinned; 3 within 7 days; 4 newest
    // The team plan keeps 90 days.
    expect((await admin.query("select count(*)::int as n from content.versions where document_id = $1", [teamDoc.id])).rows[0].n).toBe(2);
  });

  it("pinning needs edit access; versions are append-only for clients", async () => {
    const doc = await createDoc(team.member, team.orgId, { body: note("x") });
    const v = await api(team.member, `/documents/${doc.id}/versions`, { json: { message: "keep" } });
    await expectSqlError(contentRpc(team.viewer, "pin_version", { p_version_id: v.body.id }), "42501");
    await expectSqlError(contentRpc(team.member, "pin_version", { p_version_id: crypto.randomUUID() }), "PT404");
    await expectSqlError(contentRpc(team.member, "pin_version", { p_version_id: v.body.id, p_pinned: null }), "22023");
    const [pinned] = await contentRpc<{ pinned: boolean }>(team.member, "pin_version", { p_version_id: v.body.id });
    expect(pinned.pinned).toBe(true);
    await expectSqlError(as(team.owner, (c) => c.query("update content.versions set body = '{}' where id = $1", [v.body.id])), "42501");
    await expectSqlError(as(team.owner, (c) => c.query("delete from content.versions where id = $1", [v.body.id])), "42501");
    await expectSqlError(as(team.owner, (c) => c.query("insert into content.versions (org_id, document_id, number, revision, reason, title, body) values ($1, $2, 9, 1, 'save', '', '{}')", [team.orgId, doc.id])), "42501");
    expect((await as(team.viewer, (c) => c.query("select id from content.versions where document_id = $1", [doc.id]))).rowCount).toBe(1);
    const outsider = (await createTeam("Peek")).owner;
    expect((await as(outsider, (c) => c.query("select id from content.versions where document_id = $1", [doc.id]))).rowCount).toBe(0);
  });
});
