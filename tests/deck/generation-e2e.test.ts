// Deck generation end to end, over HTTP on the real api and worker, with the AI fakes: the cards
// arrive over Realtime in order, the deck is a valid deck document with its images as verified
// assets, the credits deducted are exactly the price table's (cards × card + images × tier),
// a failing image provider charges nothing for the failed images, and a generation refused for
// credits writes nothing, queues nothing and calls no provider.
import { describe, expect, it } from "vitest";
import { DeckBody } from "../../functions/_shared/deck/kind.ts";
import { EVENT_PAYLOADS } from "../../functions/_shared/events/catalog.ts";
import { account, expectLedgerConsistent } from "../helpers/credits.ts";
import { admin } from "../helpers/db.ts";
import { scriptFake } from "../helpers/fake-ai.ts";
import { stack } from "../helpers/ai.ts";
import { expectError } from "../helpers/http.ts";
import { broadcasts, rtClient, subscribe } from "../helpers/realtime.ts";
import {
  cardRows, countCalls, countRows, deckBody, deckTeam, generate, getGeneration, PRICES, waitForGeneration,
} from "./generation-helpers.ts";

const PROMPT = "Quarterly business review for the Northwind bakery chain: sales grew, two new shops opened, and the sourdough line sold out.";

describe("a deck from a prompt", () => {
  it("cards arrive in order on user:<id>, the deck is valid with its images as assets, and the credits equal the price table", async () => {
    const team = await deckTeam(500);
    const sb = await rtClient({ token: team.token });
    const ch = sb.channel(`user:${team.member.id}`, { config: { private: true } });
    const inbox = broadcasts(ch);
    await subscribe(ch);

    // The cards are written in parallel and finish out of order: the first card request to
    // arrive answers last, the next one second to last, and so on (the outline and structure at once).
    await scriptFake(stack.fakeAiUrl, team.textKey, [{ mode: "ok" }, { mode: "ok" }, ...[5, 4, 3, 2, 1].map((k) => ({ mode: "ok", delayMs: k * 150 }))]);
    const res = await generate({ token: team.token }, { inputText: PROMPT, numCards: 5, orgId: team.orgId, imageOptions: { source: "aiGenerated", tier: "basic" } });
    expect(res.status, res.raw).toBe(202);
    expect(res.headers.get("x-request-id")).toBeTruthy();
    const id = res.body.generationId as string;

    // images.total is known at once: every card but the closing one.
    const first = await getGeneration({ token: team.token }, id);
    expect(first.body).toMatchObject({ generationId: id, cards: { total: 5 }, images: { total: 4 }, credits: { reserved: 5 * PRICES.card + 4 * PRICES.basic } });
    expect(first.body.deckId).toMatch(/^[0-9a-f-]{36}$/);

    const done = await waitForGeneration(team.token, id);
    expect(done, JSON.stringify(done)).toMatchObject({
      status: "completed", stage: "done", progress: 100, error: null,
      cards: { total: 5, done: 5 }, images: { total: 4, done: 4, failed: 0 },
      credits: { reserved: 23, deducted: 23 },
    });

    // Every card, once, in position order (each only after the ones before it).
    const cardEvents = await inbox.waitFor(() => inbox.items.filter((m) => m.event === "deck.card" && m.payload.generation_id === id).length === 5)
      .then(() => inbox.items.filter((m) => m.event === "deck.card" && m.payload.generation_id === id));
    expect(cardEvents.map((m) => m.payload.position)).toEqual([0, 1, 2, 3, 4]);
    // ...though they were stored out of order (so the order above is the pipeline's doing).
    const { rows: answered } = await admin.query(
      `select split_part(idempotency_key, ':', 4)::int as position from ai.jobs where org_id = $1 and idempotency_key like $2 order by finished_at`,
      [team.orgId, `deck:${id}:card:%`]);
    expect(answered).toHaveLength(5);
    expect(answered.map((r) => r.position)).not.toEqual([0, 1, 2, 3, 4]);
    for (const m of cardEvents) expect(DeckBody.safeParse({ theme_id: "plinth-light", dimensions: "16x9", cards: [m.payload.card] }).success).toBe(true);
    const progress = inbox.items.filter((m) => m.event === "deck.generation" && m.payload.generation_id === id);
    expect(progress.at(-1)!.payload).toMatchObject({ status: "completed", progress: 100, cards_done: 5, cards_total: 5, images_done: 4 });
    expect(progress.map((m) => m.payload.progress)).toEqual([...progress.map((m) => m.payload.progress)].sort((a, b) => a - b));

    // Every card written by the model on its first answer (the fake answers the schema it is sent).
    expect((await cardRows(id)).map((c) => c.content_source)).toEqual(["model", "model", "model", "model", "model"]);

    // The deck: a valid body with the five cards, the images verified assets of this deck.
    const deck = await deckBody(done.deckId);
    const body = DeckBody.parse(deck.body);
    expect(body.cards).toHaveLength(5);
    expect(body.cards.map((c) => c.id)).toEqual(cardEvents.map((m) => m.payload.card.id));
    expect(deck.title.length).toBeGreaterThan(0);
    const withImages = body.cards.filter((c) => c.image);
    expect(withImages).toHaveLength(4);
    expect(body.cards[4].image).toBeNull();
    for (const c of withImages) {
      const { rows: [a] } = await admin.query(`select document_id, org_id, status, bucket_id, object_path, mime_type from content.assets where id = $1`, [c.image!.asset_id]);
      expect(a).toMatchObject({ document_id: done.deckId, org_id: team.orgId, status: "verified", bucket_id: "content-assets", mime_type: "image/png" });
      expect(a.object_path.startsWith(`${team.orgId}/${done.deckId}/`)).toBe(true);
    }
    // A normal deck afterwards: a version of the generated deck.
    expect(await countRows(`select count(*)::int as n from content.versions where document_id = $1 and message = 'Generated'`, [done.deckId])).toBe(1);

    // Exactly the price table: 5 cards x 3 + 4 basic images x 2; the gateway charged nothing of its own.
    expect(await account(team.orgId)).toMatchObject({ balance: 500 - 23, reserved: 0 });
    await expectLedgerConsistent(team.orgId);
    const { rows: jobs } = await admin.query(`select settled_credits::int as s, reserved_credits::int as r, source from ai.jobs where org_id = $1`, [team.orgId]);
    expect(jobs.length).toBe(7 + 4);
    expect(jobs.every((j) => j.s === 0 && j.r === 0 && j.source === "deck")).toBe(true);
    // One provider call per thing made: outline, structure, 5 cards; 4 images.
    expect(await countCalls(team.textKey)).toBe(7);
    expect(await countCalls(team.imageKey)).toBe(4);
    // The outbox has the completion, with the payload its catalog schema describes.
    const { rows: events } = await admin.query(`select type, payload from notify.events where org_id = $1 and type like 'deck.%'`, [team.orgId]);
    expect(events.map((e) => e.type)).toEqual(["deck.generation_completed"]);
    expect(EVENT_PAYLOADS["deck.generation_completed"].parse(events[0].payload)).toMatchObject({ deck_id: done.deckId, cards: 5, images: 4, credits: 23, error: null });
  });

  it("a failing image provider: failed images cost nothing, the rest settle, and the generation completes with images.failed", async () => {
    const team = await deckTeam(500);
    // Two of the four images are refused by the provider (and the route has no other deployment).
    await scriptFake(stack.fakeAiUrl, team.imageKey, [{ mode: "content_policy" }, { mode: "ok" }, { mode: "content_policy" }, { mode: "ok" }]);
    const res = await generate({ token: team.token }, { inputText: PROMPT, numCards: 5, orgId: team.orgId });
    expect(res.status, res.raw).toBe(202);
    const done = await waitForGeneration(team.token, res.body.generationId);
    expect(done).toMatchObject({ status: "completed", cards: { done: 5 }, images: { total: 4, done: 2, failed: 2 } });
    expect(done.credits).toMatchObject({ reserved: 23, deducted: 5 * PRICES.card + 2 * PRICES.basic });
    expect(await account(team.orgId)).toMatchObject({ balance: 500 - 19, reserved: 0 });
    await expectLedgerConsistent(team.orgId);
    const cards = await cardRows(res.body.generationId);
    expect(cards.filter((c) => c.image_status === "failed")).toHaveLength(2);
    const body = DeckBody.parse((await deckBody(done.deckId)).body);
    expect(body.cards.filter((c) => c.image)).toHaveLength(2);
    expect(body.cards).toHaveLength(5);
  });

  it("refused for credits: 402 before any row, job or provider call; the balance is unchanged", async () => {
    const team = await deckTeam(20);
    const docsBefore = await countRows(`select count(*)::int as n from content.documents where org_id = $1`, [team.orgId]);
    const res = await generate({ token: team.token }, { inputText: PROMPT, numCards: 5, orgId: team.orgId }, { "idempotency-key": "too-poor" });
    expectError(res, 402, "payment_required");
    expect(res.headers.get("x-request-id")).toBeTruthy();
    expect(await countRows(`select count(*)::int as n from deck.generations where org_id = $1`, [team.orgId])).toBe(0);
    expect(await countRows(`select count(*)::int as n from content.documents where org_id = $1`, [team.orgId])).toBe(docsBefore);
    expect(await countRows(`select count(*)::int as n from billing.credit_reservations where org_id = $1`, [team.orgId])).toBe(0);
    expect(await countRows(`select count(*)::int as n from ai.jobs where org_id = $1`, [team.orgId])).toBe(0);
    expect(await countCalls(team.textKey)).toBe(0);
    expect(await countCalls(team.imageKey)).toBe(0);
    expect(await account(team.orgId)).toMatchObject({ balance: 20, reserved: 0 });
    // Enough for the cards alone: noImages fits (5 x 3 = 15).
    const cheap = await generate({ token: team.token }, { inputText: PROMPT, numCards: 5, orgId: team.orgId, imageOptions: { source: "noImages" } });
    expect(cheap.status, cheap.raw).toBe(202);
    const done = await waitForGeneration(team.token, cheap.body.generationId);
    expect(done).toMatchObject({ status: "completed", images: { total: 0 }, credits: { reserved: 15, deducted: 15 } });
    expect(await countCalls(team.imageKey)).toBe(0);
    expect(await account(team.orgId)).toMatchObject({ balance: 5, reserved: 0 });
  });
});
