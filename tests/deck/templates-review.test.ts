// Template review: deck.review_template (and its api route, which versions a live deck's merged
// state first) publishes a template waiting in review into the org's gallery or rejects it.
// Allowed: a member with content.write and manage access (member, admin, owner). Denied: the
// viewer (42501/403), another org (PT404/404), a template already reviewed (PT409/409), a bad
// decision (22023/400); a refusal changes nothing.
import { beforeAll, describe, expect, it } from "vitest";
import { addMember, admin, type Caller, createTeam, createUser, expectSqlError, select, type Team } from "../helpers/db.ts";
import { call, expectError } from "../helpers/http.ts";
import { tokenFor } from "../helpers/supabase.ts";
import { createDeck, DECK } from "./operations-setup.ts";

let team: Team;
let other: Team;
beforeAll(async () => {
  [team, other] = await Promise.all([createTeam("Templates"), createTeam("Other")]);
});

/** A deck waiting in review as a template (what a generation with saveAsTemplate leaves). */
async function inReview(opts: { live?: boolean; category?: string; locale?: string } = {}) {
  let id: string;
  if (opts.live ?? true) {
    id = (await createDeck(team.member, team.orgId)).id;
  } else {
    id = (await admin.query(
      `insert into content.documents (org_id, kind, title, body, owner_id, created_by) values ($1, 'deck', 'Plain', $2, $3, $3) returning id`,
      [team.orgId, JSON.stringify(DECK), team.member.id])).rows[0].id;
  }
  await admin.query(`insert into deck.templates (document_id, org_id, category, locale, prompt, batch_key) values ($1, $2, $3, $4, 'A pitch', $5)`,
    [id, team.orgId, opts.category ?? "pitch", opts.locale ?? "en", `pitch:${id.slice(0, 8)}`]);
  return id;
}

const review = (who: Caller, id: string, decision: string, note?: string) =>
  select(who, "select * from deck.review_template($1, $2, $3)", [id, decision, note ?? null]);

async function state(id: string) {
  const { rows: [r] } = await admin.query(
    `select t.status, t.reviewed_by, t.reviewed_at, t.review_note, d.is_template, d.template_category, d.template_locale, d.status as doc_status,
            d.revision, d.last_version_revision,
            (select count(*)::int from content.versions v where v.document_id = d.id and v.reason = 'publish') as publish_versions
     from deck.templates t join content.documents d on d.id = t.document_id where t.document_id = $1`, [id]);
  return r;
}

describe("deck.review_template", () => {
  it("publishes a template into the gallery: is_template, its category and locale, status published, with a version", async () => {
    const id = await inReview({ live: false, category: "sales", locale: "pt-BR" });
    const [t] = await review(team.admin, id, "publish", "Looks good");
    expect(t).toMatchObject({ status: "published", reviewed_by: team.admin.id, review_note: "Looks good" });
    expect(await state(id)).toMatchObject({
      status: "published", is_template: true, template_category: "sales", template_locale: "pt-BR", doc_status: "published", publish_versions: 1,
    });
    // The org's gallery lists it.
    expect(await select(team.viewer, "select id from content.documents where id = $1 and is_template and status = 'published'", [id])).toHaveLength(1);
  });

  it("rejects a template: it stays out of the gallery", async () => {
    const id = await inReview({ live: false });
    const [t] = await review(team.member, id, "reject", "Off-brand");
    expect(t).toMatchObject({ status: "rejected", reviewed_by: team.member.id, review_note: "Off-brand" });
    expect(await state(id)).toMatchObject({ status: "rejected", is_template: false, doc_status: "draft" });
  });

  it("only from review: a second decision is PT409 and changes nothing", async () => {
    const id = await inReview({ live: false });
    await review(team.owner, id, "reject");
    const before = await state(id);
    await expectSqlError(review(team.owner, id, "publish"), "PT409");
    await expectSqlError(review(team.owner, id, "reject"), "PT409");
    expect(await state(id)).toEqual(before);
  });

  it("the viewer is refused (42501), another org's owner and a stranger see nothing (PT404); a bad decision is 22023", async () => {
    const id = await inReview({ live: false });
    const before = await state(id);
    await expectSqlError(review(team.viewer, id, "publish"), "42501");
    await expectSqlError(review(other.owner, id, "publish"), "PT404");
    await expectSqlError(review(team.owner, "00000000-0000-4000-8000-000000000000", "publish"), "PT404");
    await expectSqlError(review(team.owner, id, "approve"), "22023");
    await expectSqlError(review(team.owner, id, "reject", "x".repeat(1001)), "22023");
    expect(await state(id)).toEqual(before);
    // A deck that is not a template at all.
    const plain = (await createDeck(team.member, team.orgId)).id;
    await expectSqlError(review(team.owner, plain, "publish"), "PT404");
  });

  it("the operator (service role) reviews any org's template", async () => {
    const id = await inReview({ live: false });
    const [t] = await review({ claims: { role: "service_role" } }, id, "publish");
    expect(t).toMatchObject({ status: "published", reviewed_by: null });
    expect(await state(id)).toMatchObject({ is_template: true, doc_status: "published", publish_versions: 1 });
  });

  it("a private deck is reviewed by its owner (and org admins), not by another member (PT404)", async () => {
    const id = await inReview({ live: false });
    await admin.query("update content.documents set visibility = 'private' where id = $1", [id]);
    const another = await createUser();
    await addMember(team.orgId, another, "member");
    await expectSqlError(review(another, id, "publish"), "PT404");
    await review(team.member, id, "reject"); // its owner may
  });

  it("a private deck's template row (its prompt) is read only by those who read the deck", async () => {
    const id = await inReview({ live: false });
    await admin.query("update content.documents set visibility = 'private' where id = $1", [id]);
    const another = await createUser();
    await addMember(team.orgId, another, "member");
    expect(await select(another, "select prompt from deck.templates where document_id = $1", [id])).toEqual([]);
    expect(await select(team.viewer, "select prompt from deck.templates where document_id = $1", [id])).toEqual([]);
    expect(await select(team.member, "select prompt from deck.templates where document_id = $1", [id])).toEqual([{ prompt: "A pitch" }]);
    expect(await select(team.admin, "select prompt from deck.templates where document_id = $1", [id])).toEqual([{ prompt: "A pitch" }]);
  });

  it("a live deck with edits not merged yet cannot be versioned in SQL: PT409 pointing at the api", async () => {
    const id = await inReview();
    const cur = (await admin.query("select revision from content.documents where id = $1", [id])).rows[0].revision;
    const save = await call(`/api/content/documents/${id}`, { method: "PUT", token: await tokenFor(team.member), json: { base_revision: cur, body: { ...DECK, theme_id: "forest" } } });
    expect(save.status, save.raw).toBe(200);
    // Hold it unmerged, as it is until the worker compacts it.
    await admin.query("update content.documents set pending_updates = greatest(pending_updates, 1) where id = $1", [id]);
    await expectSqlError(review(team.owner, id, "publish"), "PT409", /publish it through the api/);
    expect(await state(id)).toMatchObject({ status: "review", is_template: false });
  });
});

describe("POST /api/deck/templates/{id}/review", () => {
  it("publishes a live deck with a version of its merged state first", async () => {
    const id = await inReview({ category: "report" });
    const cur = (await admin.query("select revision from content.documents where id = $1", [id])).rows[0].revision;
    const edited = { ...DECK, theme_id: "forest" };
    expect((await call(`/api/content/documents/${id}`, { method: "PUT", token: await tokenFor(team.member), json: { base_revision: cur, body: edited } })).status).toBe(200);
    await admin.query("update content.documents set pending_updates = greatest(pending_updates, 1) where id = $1", [id]);
    const res = await call(`/api/deck/templates/${id}/review`, { token: await tokenFor(team.owner), json: { decision: "publish" } });
    expect(res.status, res.raw).toBe(200);
    expect(res.body.template).toMatchObject({ document_id: id, status: "published", reviewed_by: team.owner.id });
    const s = await state(id);
    expect(s).toMatchObject({ is_template: true, template_category: "report", doc_status: "published", publish_versions: 1 });
    expect(s.last_version_revision).toBe(s.revision);
    const { rows: [v] } = await admin.query("select body from content.versions where document_id = $1 and reason = 'publish'", [id]);
    expect(v.body.theme_id).toBe("forest");
  });

  it("refusals roll everything back: viewer 403, other org 404, reviewed 409, bad input 400", async () => {
    const id = await inReview();
    const before = await state(id);
    expectError(await call(`/api/deck/templates/${id}/review`, { token: await tokenFor(team.viewer), json: { decision: "publish" } }), 403, "forbidden");
    expectError(await call(`/api/deck/templates/${id}/review`, { token: await tokenFor(other.owner), json: { decision: "publish" } }), 404, "not_found");
    expectError(await call(`/api/deck/templates/${id}/review`, { token: await tokenFor(team.owner), json: { decision: "maybe" } }), 400, "invalid_request");
    expect(await state(id)).toEqual(before);
    expect((await call(`/api/deck/templates/${id}/review`, { token: await tokenFor(team.owner), json: { decision: "reject", note: "no" } })).status).toBe(200);
    const rejected = await state(id);
    expectError(await call(`/api/deck/templates/${id}/review`, { token: await tokenFor(team.owner), json: { decision: "publish" } }), 409, "conflict");
    expect(await state(id)).toEqual(rejected);
  });
});
