// The stages' edge cases over the real api and worker: an invalid model answer gets one repair
// call, then a deterministic card from the outline (never a 5xx, never an invalid body, and not
// charged); an outline no provider can make fails the generation and charges nothing; a plan's AI
// rate limit makes the pipeline wait, not fail; exportAs requests the export on completion and
// GET then carries its signed URL.
import { describe, expect, it } from "vitest";
import { DeckBody } from "../../functions/_shared/deck/kind.ts";
import { account, expectLedgerConsistent } from "../helpers/credits.ts";
import { admin } from "../helpers/db.ts";
import { scriptFake } from "../helpers/fake-ai.ts";
import { stack } from "../helpers/ai.ts";
import { waitFor } from "../helpers/wait.ts";
import { ownModel, orgRoute } from "../helpers/ai-jobs.ts";
import { cardRows, countCalls, countRows, deckBody, deckTeam, generate, generationRow, getGeneration, inProcessDeps, noJobs, PRICES, waitForGeneration } from "./generation-helpers.ts";
import { gotrueClaims } from "../../scripts/lib/keys.ts";
import { asUser } from "../../functions/_shared/db/client.ts";
import { admitGeneration } from "../../functions/_shared/deck/generation/admission.ts";
import { runGeneration } from "../../functions/_shared/deck/generation/stages.ts";
import { GenerationRequest } from "../../functions/_shared/deck/params.ts";

const PROMPT = "How our library lends tools: borrowing, returns, fees and the repair café.";
const one = (team: { orgId: string }) => ({ inputText: PROMPT, numCards: 1, orgId: team.orgId, imageOptions: { source: "noImages" } });

describe("reading the model's answers", () => {
  it("an invalid card is repaired once; invalid again, the card is built from its outline and not charged", async () => {
    const team = await deckTeam(100);
    // outline and structure answered from their schemas; the card twice invalid.
    await scriptFake(stack.fakeAiUrl, team.textKey, [
      { mode: "ok" }, { mode: "ok" }, { mode: "ok", text: "Sure! Here is your card." }, { mode: "ok", text: '{"title": 42}' },
    ]);
    const res = await generate({ token: team.token }, one(team));
    expect(res.status, res.raw).toBe(202);
    const done = await waitForGeneration(team.token, res.body.generationId);
    expect(done).toMatchObject({ status: "completed", cards: { done: 1 }, credits: { reserved: PRICES.card, deducted: 0 } });
    expect((await cardRows(res.body.generationId))[0].content_source).toBe("fallback");
    expect(await countCalls(team.textKey)).toBe(4);
    const body = DeckBody.parse((await deckBody(done.deckId)).body);
    expect(body.cards).toHaveLength(1);
    expect(JSON.stringify(body.cards[0].data)).toContain(done.outline.cards[0].title);
    expect(await account(team.orgId)).toMatchObject({ balance: 100, reserved: 0 });
    await expectLedgerConsistent(team.orgId);
  });

  it("a card that is valid on repair is charged, with extra keys and a code fence forgiven", async () => {
    const team = await deckTeam(100);
    await scriptFake(stack.fakeAiUrl, team.textKey, [
      { mode: "ok" },
      { mode: "ok", text: '{"cards": [{"layout": "text", "image_prompt": ""}]}' },
      { mode: "ok", text: '{"title": "Only a title"}' },
      { mode: "ok", text: '```json\n{"title": "Borrowing tools", "body": "Bring a card.", "mood": "cheerful"}\n```' },
    ]);
    const res = await generate({ token: team.token }, one(team));
    const done = await waitForGeneration(team.token, res.body.generationId);
    expect(done).toMatchObject({ status: "completed", credits: { deducted: PRICES.card } });
    const [card] = await cardRows(res.body.generationId);
    expect(card).toMatchObject({ layout: "text", content_source: "repaired", content: { title: "Borrowing tools", body: "Bring a card." } });
  });

  it("an outline no provider can make fails the generation: nothing charged, deck.generation_failed emitted", async () => {
    const team = await deckTeam(100);
    await scriptFake(stack.fakeAiUrl, team.textKey, { mode: "content_policy" });
    const res = await generate({ token: team.token }, { ...one(team), numCards: 3 });
    const done = await waitForGeneration(team.token, res.body.generationId);
    expect(done).toMatchObject({ status: "failed", error: { code: "outline_failed" }, credits: { deducted: 0 } });
    expect(await account(team.orgId)).toMatchObject({ balance: 100, reserved: 0 });
    expect(await countRows(`select count(*)::int as n from notify.events where org_id = $1 and type = 'deck.generation_failed'`, [team.orgId])).toBe(1);
    await expectLedgerConsistent(team.orgId);
  });
});

describe("an async image provider", () => {
  it("images from a submit-and-poll provider (Replicate) are awaited until the worker's poll or callback ends them", async () => {
    const team = await deckTeam(100);
    const { deployments: [d] } = await ownModel({ modality: "image", deployments: [{ provider: "replicate" }] });
    await admin.query(`delete from ai.org_routes where org_id = $1 and modality = 'image'`, [team.orgId]);
    await orgRoute(team.orgId, "image", "economy", [d.id]);
    const res = await generate({ token: team.token }, { inputText: PROMPT, numCards: 3, orgId: team.orgId });
    const done = await waitForGeneration(team.token, res.body.generationId, {}, 60_000);
    expect(done).toMatchObject({ status: "completed", images: { total: 2, done: 2, failed: 0 }, credits: { deducted: 3 * PRICES.card + 2 * PRICES.basic } });
    const { rows } = await admin.query(`select count(*)::int as n from ai.jobs where org_id = $1 and modality = 'image' and status = 'succeeded'`, [team.orgId]);
    expect(rows[0].n).toBe(2);
    const body = DeckBody.parse((await deckBody(done.deckId)).body);
    expect(body.cards.filter((c) => c.image)).toHaveLength(2);
  });
});

describe("rate limits", () => {
  it("on the free plan (10 AI requests a minute), an 11-call deck waits out the gateway's 429 at admission and completes", async () => {
    const team = await deckTeam(200, { plan: null });
    const waits: number[] = [];
    const deps = inProcessDeps();
    const sleep = async (ms: number) => {
      waits.push(ms);
      await new Promise((r) => setTimeout(r, ms));
    };
    const req = GenerationRequest.parse({ inputText: PROMPT, numCards: 5, orgId: team.orgId });
    try {
      const { generationId: id } = await asUser(deps.db, gotrueClaims(team.member) as never, (tx) =>
        admitGeneration(tx, noJobs, { orgId: team.orgId, userId: team.member.id, apiKeyId: null }, req));
      expect(await runGeneration({ ...deps, sleep }, id)).toMatchObject({ status: "completed", cards: 5, images: 4, images_failed: 0 });
      expect(await generationRow(id)).toMatchObject({ status: "completed", credits_deducted: 23 });
    } finally {
      await deps.close();
    }
    // 2 + 5 text calls and 4 images: one more than the bucket holds, so admissions were refused
    // (429) and waited for the bucket (Retry-After, whole seconds), never failed.
    expect(waits.length).toBeGreaterThan(0);
    expect(waits.every((ms) => ms >= 1000)).toBe(true);
    expect(await countRows(`select count(*)::int as n from ai.jobs where org_id = $1`, [team.orgId])).toBe(11);
    expect(await countCalls(team.textKey) + await countCalls(team.imageKey)).toBe(11);
  });
});

describe("exportAs", () => {
  it("requests the export when the deck is done; GET then has a signed URL to the file", async () => {
    const team = await deckTeam(100);
    const res = await generate({ token: team.token }, { ...one(team), numCards: 2, exportAs: "html" });
    const done = await waitForGeneration(team.token, res.body.generationId);
    expect(done.status).toBe("completed");
    const withUrl = await waitFor("the export URL", async () => {
      const g = await getGeneration({ token: team.token }, res.body.generationId);
      return g.body.exportUrl ? g.body : undefined;
    }, 60_000);
    const file = await fetch(withUrl.exportUrl);
    expect(file.status).toBe(200);
    const html = await file.text();
    expect(html).toContain("<html");
    const { rows } = await admin.query(`select format, document_id from deck.exports where id = (select export_id from deck.generations where id = $1)`, [res.body.generationId]);
    expect(rows[0]).toMatchObject({ format: "html", document_id: done.deckId });
  });
});
