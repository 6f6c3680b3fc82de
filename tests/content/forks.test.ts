// Fork, duplicate and templates: a copy into any org the caller writes to keeps its body, tags,
// live state, asset references and lineage; templates are listed in the org's gallery and the
// global one, and "use template" makes a fresh draft.
import * as Y from "yjs";
import { beforeAll, describe, expect, it } from "vitest";
import { noteText } from "../../functions/_shared/content/kinds/note.ts";
import { admin, as, createTeam, expectSqlError, type Team } from "../helpers/db.ts";
import { compact, contentRpc, createDoc, docRow, LiveEditor, note } from "../helpers/content.ts";

let team: Team;
let other: Team;
beforeAll(async () => {
  [team, other] = await Promise.all([createTeam("Forks"), createTeam("Target")]);
});

async function addVerifiedAsset(documentId: string, orgId: string) {
  const { rows } = await admin.query(
    `insert into content.assets (org_id, document_id, object_path, mime_type, size_bytes, sha256, status, verified_at)
     values ($1::uuid, $2::uuid, $1::text || '/' || $2::text || '/x.png', 'image/png', 10, repeat('a', 64), 'verified', now()) returning id, object_path`,
    [orgId, documentId],
  );
  return rows[0] as { id: string; object_path: string };
}

describe("forks across orgs", () => {
  it("copy body, tags, live state (with its pending log) and asset references, and keep forked_from", async () => {
    const doc = await createDoc(team.member, team.orgId, { title: "Pitch", tags: ["sales"], body: note("Hello ") });
    const asset = await addVerifiedAsset(doc.id, team.orgId);
    const w = new LiveEditor(team.member, doc.id);
    await w.join();
    ((w.doc.getXmlFragment("default").get(0) as Y.XmlElement).get(0) as Y.XmlText).insert(6, "world");
    await w.flush();
    // sam-like: a person in both orgs forks it into the other one.
    await admin.query("insert into public.org_members (org_id, user_id, role) values ($1, $2, 'member')", [other.orgId, team.member.id]);
    const [fork] = await contentRpc<{ id: string; org_id: string; forked_from: string; origin: string; tags: string[]; title: string; status: string }>(
      team.member, "fork_document", { p_document_id: doc.id, p_target_org_id: other.orgId });
    expect(fork).toMatchObject({ org_id: other.orgId, forked_from: doc.id, origin: "fork", tags: ["sales"], title: "Pitch", status: "draft" });
    const { rows: refs } = await admin.query("select org_id, object_path, source_asset_id from content.assets where document_id = $1", [fork.id]);
    expect(refs).toEqual([{ org_id: other.orgId, object_path: asset.object_path, source_asset_id: asset.id }]);
    // The fork's live state holds the unsaved edit too; compaction brings its body up to it.
    const reader = new LiveEditor(other.viewer, fork.id);
    await reader.join();
    expect(noteText(reader.doc)).toBe("Hello world");
    await compact(fork.id);
    expect((await docRow(fork.id)).body).toEqual(note("Hello world"));
    // And the two documents now live apart: the fork's edit does not reach the source.
    ((reader.doc.getXmlFragment("default").get(0) as Y.XmlElement).get(0) as Y.XmlText).insert(0, "x");
    const forker = new LiveEditor(team.member, fork.id);
    await forker.join();
    ((forker.doc.getXmlFragment("default").get(0) as Y.XmlElement).get(0) as Y.XmlText).insert(0, "Fork: ");
    await forker.flush();
    await compact(doc.id);
    expect((await docRow(doc.id)).body).toEqual(note("Hello world"));
    await forker.leave();
    await Promise.all([w.leave(), reader.leave()]);
  });

  it("duplicates within the org; refuses an org the caller cannot write to, an unreadable source, and a no-copy share", async () => {
    const doc = await createDoc(team.member, team.orgId, { body: note("dup me") });
    const [dup] = await contentRpc<{ org_id: string; forked_from: string }>(team.member, "fork_document", { p_document_id: doc.id, p_target_org_id: team.orgId, p_title: "Copy" });
    expect(dup).toMatchObject({ org_id: team.orgId, forked_from: doc.id });
    await expectSqlError(contentRpc(team.viewer, "fork_document", { p_document_id: doc.id, p_target_org_id: team.orgId }), "42501");
    await expectSqlError(contentRpc(team.admin, "fork_document", { p_document_id: doc.id, p_target_org_id: other.orgId }), "PT404");
    await expectSqlError(contentRpc(other.owner, "fork_document", { p_document_id: doc.id, p_target_org_id: other.orgId }), "PT404");
    const secret = await createDoc(team.owner, team.orgId, { visibility: "private", body: note("no copies") });
    await contentRpc(team.owner, "share_with_user", { p_document_id: secret.id, p_level: "edit", p_user_id: other.owner.id, p_allow_download: false });
    await expectSqlError(contentRpc(other.owner, "fork_document", { p_document_id: secret.id, p_target_org_id: other.orgId }), "42501", /without copying/);
    await expectSqlError(contentRpc(team.member, "fork_document", { p_document_id: doc.id, p_target_org_id: team.orgId, p_title: "x".repeat(301) }), "22023");
  });
});

describe("templates", () => {
  it("the org gallery lists its templates; the global one, curated by the service role, everyone's; use template makes a fresh draft", async () => {
    const tpl = await createDoc(team.owner, team.orgId, {
      title: "Weekly report", body: note("Wins:", "Risks:"), is_template: true, template_category: "reports", template_locale: "en",
    });
    const gallery = (who: typeof team.owner) => as(who, async (c) => (await c.query("select id, scope, category, locale from content.template_gallery where id = $1", [tpl.id])).rows);
    expect(await gallery(team.viewer)).toEqual([{ id: tpl.id, scope: "org", category: "reports", locale: "en" }]);
    expect(await gallery(other.owner)).toEqual([]);
    await expectSqlError(contentRpc(other.owner, "use_template", { p_template_id: tpl.id, p_target_org_id: other.orgId }), "PT404");

    // Only the platform puts a template in the global gallery (and it must be published).
    await admin.query("update content.documents set template_scope = 'global', status = 'published' where id = $1", [tpl.id]);
    expect(await gallery(other.owner)).toEqual([{ id: tpl.id, scope: "global", category: "reports", locale: "en" }]);
    const [made] = await contentRpc<{ id: string; org_id: string; origin: string; is_template: boolean; status: string; forked_from: string; body: unknown }>(
      other.member, "use_template", { p_template_id: tpl.id, p_target_org_id: other.orgId, p_title: "Report w1" });
    expect(made).toMatchObject({ org_id: other.orgId, origin: "template", is_template: false, status: "draft", forked_from: tpl.id, body: note("Wins:", "Risks:") });
    // Not a template: use_template refuses it.
    const plain = await createDoc(team.owner, team.orgId, { body: note("x") });
    await expectSqlError(contentRpc(team.member, "use_template", { p_template_id: plain.id, p_target_org_id: team.orgId }), "PT404");
    // Listing as a template is a manager's call; template_scope is not a client's at all.
    await expectSqlError(contentRpc(team.viewer, "update_document", { p_document_id: plain.id, p_is_template: true }), "42501");
    await expectSqlError(as(team.owner, (c) => c.query("update content.documents set template_scope = 'global' where id = $1", [plain.id])), "42501");
  });
});
