// RLS and the functions' own checks for deck.generations and deck.generation_cards, as PostgREST
// would run the queries: the creator and the org's billing managers read a generation and its
// cards; another member of the org, a member of another org and anon read nothing; no client
// writes them; the private functions the api calls act only as the caller, and the worker's only
// for the service role.
import { beforeAll, describe, expect, it } from "vitest";
import { admin, as, expectSqlError, select, type TestUser } from "../helpers/db.ts";
import { deckTeam, type DeckTeam, generate, waitForGeneration } from "./generation-helpers.ts";

let team: DeckTeam;
let other: DeckTeam;
let id: string;

beforeAll(async () => {
  team = await deckTeam(500);
  other = await deckTeam(500);
  const res = await generate({ token: team.token }, { inputText: "Row level security, explained with cats.", numCards: 2, orgId: team.orgId, imageOptions: { source: "noImages" } });
  expect(res.status, res.raw).toBe(202);
  id = res.body.generationId;
  await waitForGeneration(team.token, id);
});

const gens = (who: TestUser | "anon") => select(who, `select id, credits_deducted::int from deck.generations where id = $1`, [id]);
const cards = (who: TestUser | "anon") => select(who, `select position from deck.generation_cards where generation_id = $1`, [id]);

describe("deck.generations and deck.generation_cards", () => {
  it("the creator reads their generation and its cards", async () => {
    expect(await gens(team.member)).toEqual([{ id, credits_deducted: 6 }]);
    expect(await cards(team.member)).toHaveLength(2);
  });

  it("the org's billing managers (owner, admin) read it too", async () => {
    expect(await gens(team.owner)).toHaveLength(1);
    expect(await gens(team.admin)).toHaveLength(1);
    expect(await cards(team.owner)).toHaveLength(2);
  });

  it("another member of the org (a viewer), a member of another org and anon read nothing", async () => {
    expect(await gens(team.viewer)).toEqual([]);
    expect(await cards(team.viewer)).toEqual([]);
    expect(await gens(other.owner)).toEqual([]);
    expect(await cards(other.owner)).toEqual([]);
    await expectSqlError(gens("anon"), "42501");
    await expectSqlError(cards("anon"), "42501");
  });

  it("no client writes them, not even the creator", async () => {
    await expectSqlError(as(team.member, (c) => c.query(`update deck.generations set credits_deducted = 0 where id = $1`, [id])), "42501");
    await expectSqlError(as(team.member, (c) => c.query(`delete from deck.generations where id = $1`, [id])), "42501");
    await expectSqlError(as(team.member, (c) => c.query(`update deck.generation_cards set content = '{}' where generation_id = $1`, [id])), "42501");
    await expectSqlError(as(team.owner, (c) => c.query(
      `insert into deck.generations (org_id, params, num_cards, price_card, price_image) values ($1, '{}', 1, 0, 0)`, [team.orgId])), "42501");
    const { rows } = await admin.query(`select credits_deducted::int from deck.generations where id = $1`, [id]);
    expect(rows[0].credits_deducted).toBe(6);
  });
});

describe("the private functions", () => {
  const start = (who: TestUser, userId: string, orgId: string, documentId: string) =>
    as(who, (c) => c.query(
      `select id from private.deck_start_generation($1, $2, null, $3, 'prompt', null, '{}'::jsonb,
         '[{"card_id": "c1", "layout": null, "wants_image": false}]'::jsonb, null, null, null, false, '{balanced}', null)`,
      [orgId, userId, documentId]));

  it("a generation is started only as the caller, with ai.use and content.write in the org", async () => {
    const { rows: [doc] } = await admin.query(`select document_id from deck.generations where id = $1`, [id]);
    // As someone else: refused.
    await expectSqlError(start(team.member, team.owner.id, team.orgId, doc.document_id), "42501", /as the caller/);
    // A viewer (no ai.use, no content.write) and a member of another org: refused.
    await expectSqlError(start(team.viewer, team.viewer.id, team.orgId, doc.document_id), "42501");
    await expectSqlError(start(other.owner, other.owner.id, team.orgId, doc.document_id), "42501");
    // The deck must be the org's: another org's deck id is not found.
    const { rows: [theirs] } = await admin.query(`select id from content.documents where org_id = $1 limit 1`, [team.orgId]);
    await expectSqlError(start(other.owner, other.owner.id, other.orgId, theirs.id), "PT404");
  });

  it("approve and cancel act only for the creator (cancel also for billing managers); others get PT404", async () => {
    await expectSqlError(as(team.viewer, (c) => c.query(`select private.deck_cancel_generation($1)`, [id])), "PT404");
    await expectSqlError(as(other.owner, (c) => c.query(`select private.deck_cancel_generation($1)`, [id])), "PT404");
    await expectSqlError(as(team.owner, (c) => c.query(`select private.deck_approve_outline($1, null)`, [id])), "PT404");
    // The creator: it is completed, so approving is a conflict, and cancel answers it as it ended.
    await expectSqlError(as(team.member, (c) => c.query(`select private.deck_approve_outline($1, null)`, [id])), "PT409");
    const { rows } = await as(team.owner, (c) => c.query(`select status from private.deck_cancel_generation($1)`, [id]));
    expect(rows[0].status).toBe("completed");
  });

  it("the worker's steps are the service role's only", async () => {
    for (const q of [
      `select private.deck_store_card('${id}', 0, '{}'::jsonb, 'model')`,
      `select private.deck_store_image('${id}', 0, null, null, 'x')`,
      `select private.deck_finish_generation('${id}', 'failed', null)`,
      `select private.deck_settle('${id}', 'cards', 0)`,
      `select private.deck_store_outline('${id}', '{}'::jsonb)`,
    ]) {
      await expectSqlError(as(team.owner, (c) => c.query(q)), "42501");
    }
  });
});
