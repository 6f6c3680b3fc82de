// Search: weighted full text (title above body) with websearch syntax, typo-tolerant titles,
// ranked and paginated, and nothing the caller may not read, whoever asks.
import { beforeAll, describe, expect, it } from "vitest";
import { createTeam, expectSqlError, type Team, type TestUser } from "../helpers/db.ts";
import { contentRpc, createDoc, note } from "../helpers/content.ts";

let team: Team;
let other: Team;
const tag = `zq${Date.now().toString(36)}`;
const ids: Record<string, string> = {};

beforeAll(async () => {
  [team, other] = await Promise.all([createTeam("Search"), createTeam("Rivals")]);
  ids.titleHit = (await createDoc(team.member, team.orgId, { title: `Harvest ${tag} plan`, body: note("crops and weather") })).id;
  ids.bodyHit = (await createDoc(team.member, team.orgId, { title: "Notes", body: note(`the ${tag} harvest went well`) })).id;
  ids.privateHit = (await createDoc(team.owner, team.orgId, { title: `Secret ${tag}`, visibility: "private", body: note("hidden") })).id;
  ids.otherOrg = (await createDoc(other.member, other.orgId, { title: `Rival ${tag} harvest`, body: note(tag) })).id;
  ids.archived = (await createDoc(team.member, team.orgId, { title: `Old ${tag}`, body: note("x") })).id;
  await contentRpc(team.member, "update_document", { p_document_id: ids.archived, p_title: `Old ${tag}` });
  const { admin } = await import("../helpers/db.ts");
  await admin.query("update content.documents set status = 'archived' where id = $1", [ids.archived]);
});

const search = async (who: TestUser, query: string, extra: Record<string, unknown> = {}) =>
  (await contentRpc<{ id: string; rank: number; headline: string }>(who, "search_documents", { p_query: query, ...extra })).map((r) => r.id);

describe("search", () => {
  it("ranks a title match above a body match", async () => {
    const rows = await contentRpc<{ id: string; rank: number; headline: string }>(team.member, "search_documents", { p_query: `${tag} harvest` });
    expect(rows.map((r) => r.id)).toEqual([ids.titleHit, ids.bodyHit]);
    expect(rows[0].rank).toBeGreaterThan(rows[1].rank);
    expect(rows[1].headline).toContain(`<mark>${tag}</mark>`);
  });

  it("returns nothing the caller cannot read: another org's, a private one, for members, viewers and strangers alike", async () => {
    expect(await search(team.member, tag)).toEqual(expect.not.arrayContaining([ids.privateHit, ids.otherOrg]));
    expect((await search(team.viewer, tag)).sort()).toEqual([ids.titleHit, ids.bodyHit].sort());
    expect(await search(team.owner, tag)).toContain(ids.privateHit);
    expect(await search(other.member, tag)).toEqual([ids.otherOrg]);
    const { createUser } = await import("../helpers/db.ts");
    expect(await search(await createUser(), tag)).toEqual([]);
    // Shared with someone outside: then, and only then, they find it.
    await contentRpc(team.owner, "share_with_user", { p_document_id: ids.privateHit, p_level: "view", p_user_id: other.member.id });
    expect((await search(other.member, tag)).sort()).toEqual([ids.otherOrg, ids.privateHit].sort());
    // Even an explicit org filter for someone else's org yields nothing.
    expect(await search(other.owner, tag, { p_org_id: team.orgId })).toEqual([]);
  });

  it("websearch syntax, typo-tolerant titles, archived on request, kind filter and pagination", async () => {
    expect(await search(team.member, `${tag} -crops`)).toEqual([ids.bodyHit]);
    expect(await search(team.member, `"${tag} harvest"`)).toEqual([ids.bodyHit]);
    expect(await search(team.member, `Harvst ${tag}`)).toContain(ids.titleHit);
    expect(await search(team.member, `old ${tag}`)).not.toContain(ids.archived);
    expect(await search(team.member, `old ${tag}`, { p_include_archived: true })).toContain(ids.archived);
    expect(await search(team.member, tag, { p_kind: "checklist" })).toEqual([]);
    const page1 = await search(team.member, tag, { p_limit: 1 });
    const page2 = await search(team.member, tag, { p_limit: 1, p_offset: 1 });
    expect(page1).toHaveLength(1);
    expect(page2).toHaveLength(1);
    expect(page1[0]).not.toBe(page2[0]);
  });

  it("refuses empty or huge queries and silly pages; never errors on odd syntax", async () => {
    await expectSqlError(contentRpc(team.member, "search_documents", { p_query: "  " }), "22023");
    await expectSqlError(contentRpc(team.member, "search_documents", { p_query: "x".repeat(201) }), "22023");
    await expectSqlError(contentRpc(team.member, "search_documents", { p_query: tag, p_limit: 0 }), "22023");
    await expectSqlError(contentRpc(team.member, "search_documents", { p_query: tag, p_offset: -1 }), "22023");
    expect(await search(team.member, `"(${tag} & | ! :*`)).toEqual(expect.any(Array));
    await expectSqlError(contentRpc("anon", "search_documents", { p_query: tag }), "42501");
  });
});
