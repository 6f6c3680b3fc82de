// The generation API around the pipeline: a held outline (edit, approve, resume; approve twice
// 409), cancel (finished cards kept and charged, the rest released), from-template (a readable
// template's count and layouts kept; another org's deck 404), saveAsTemplate (a template in
// review; the same prompt again 409; the same batchKey the same generation), Idempotency-Key,
// an org API key (progress on org:<id>), and bad input (400 naming the field, nothing written).
import { describe, expect, it } from "vitest";
import { DeckBody } from "../../functions/_shared/deck/kind.ts";
import { promptHash } from "../../functions/_shared/deck/generation/plan.ts";
import { account, expectLedgerConsistent } from "../helpers/credits.ts";
import { admin } from "../helpers/db.ts";
import { fakeCalls, scriptFake } from "../helpers/fake-ai.ts";
import { giveCredits, stack } from "../helpers/ai.ts";
import { createApiKey } from "../helpers/openai.ts";
import { call, expectError } from "../helpers/http.ts";
import { contentRpc, createDoc } from "../helpers/content.ts";
import { broadcasts, rtClient, subscribe } from "../helpers/realtime.ts";
import { tokenFor } from "../helpers/supabase.ts";
import { waitFor } from "../helpers/wait.ts";
import {
  countCalls, countRows, deckBody, deckTeam, generate, generationRow, getGeneration, PRICES, waitForGeneration,
} from "./generation-helpers.ts";

const PROMPT = "An onboarding deck for new volunteers at the river clean-up project: safety, tools, meeting points and the season's goals.";

describe("a held outline", () => {
  it("stops at outline_ready; an edited outline is approved and used; approving twice is 409", async () => {
    const team = await deckTeam(500);
    const res = await generate({ token: team.token }, { inputText: PROMPT, numCards: 3, orgId: team.orgId, holdOutline: true, imageOptions: { source: "noImages" } });
    expect(res.status, res.raw).toBe(202);
    const id = res.body.generationId;
    const held = await waitForGeneration(team.token, id, { stage: "outline_ready" });
    expect(held).toMatchObject({ status: "pending", stage: "outline_ready", cards: { total: 3, done: 0 } });
    expect(held.outline.cards).toHaveLength(3);
    // Held means held: one call (the outline), and nothing more until it is approved.
    expect(await countCalls(team.textKey)).toBe(1);

    const edited = [
      { title: "Welcome aboard", points: ["Who we are"] },
      { title: "Staying safe on the bank", points: ["Gloves always", "Never alone"] },
      { title: "See you Saturday", points: ["Meet at the old mill"] },
    ];
    // An outline of another length would change what was reserved: 400, nothing changes.
    const wrong = await call(`/api/deck/generations/${id}/outline`, { token: team.token, json: { outline: edited.slice(0, 2), approve: true } });
    expectError(wrong, 400, "invalid_request");
    expect((await generationRow(id)).stage).toBe("outline_ready");
    const missing = await call(`/api/deck/generations/${id}/outline`, { token: team.token, json: { outline: edited } });
    expectError(missing, 400, "invalid_request");

    const ok = await call(`/api/deck/generations/${id}/outline`, { token: team.token, json: { title: "Volunteer onboarding", outline: edited, approve: true } });
    expect(ok.status, ok.raw).toBe(200);
    const again = await call(`/api/deck/generations/${id}/outline`, { token: team.token, json: { approve: true } });
    expectError(again, 409, "conflict");

    const done = await waitForGeneration(team.token, id);
    expect(done).toMatchObject({ status: "completed", cards: { done: 3 }, credits: { deducted: 3 * PRICES.card } });
    expect(done.outline.title).toBe("Volunteer onboarding");
    // The cards were written from the edited outline.
    const prompts = (await fakeCalls(stack.fakeAiUrl, team.textKey)).map((c) => JSON.stringify(c.body));
    for (const e of edited) expect(prompts.some((p) => p.includes(e.title))).toBe(true);
    expect((await deckBody(done.deckId)).title).toBe("Volunteer onboarding");
  });

  it("held past its reservations' life: approval reserves the deck again (402 while the credits are gone), so it is never made unpaid", async () => {
    const team = await deckTeam(40);
    const id = (await generate({ token: team.token }, { inputText: PROMPT, numCards: 4, orgId: team.orgId, holdOutline: true })).body.generationId;
    await waitForGeneration(team.token, id, { stage: "outline_ready" });
    const price = 4 * PRICES.card + 3 * PRICES.basic;
    expect(await account(team.orgId)).toMatchObject({ balance: 40, reserved: price });
    // A day later the ledger lets both holds lapse: the credits are available again, and spent.
    const g = await generationRow(id);
    const lapsed = new Date(Date.now() - 1000).toISOString();
    await admin.query(`update billing.credit_reservations set expires_at = $2 where id = any($1::uuid[])`,
      [[g.cards_reservation_id, g.images_reservation_id], lapsed]);
    await admin.query(`update billing.credit_accounts set pending_expires_from = $2 where org_id = $1`, [team.orgId, lapsed]);
    expect((await admin.query(`select * from billing.expire_credits(now(), $1)`, [team.orgId])).rows[0]).toMatchObject({ reservations: 2, failures: 0 });
    expect(await account(team.orgId)).toMatchObject({ balance: 40, reserved: 0 });
    await admin.query(`select billing.charge_credits($1, 30, 'elsewhere', 'test')`, [team.orgId]);

    const refused = await call(`/api/deck/generations/${id}/outline`, { token: team.token, json: { approve: true } });
    expectError(refused, 402, "payment_required");
    expect(await generationRow(id)).toMatchObject({ stage: "outline_ready", cards_reservation_id: g.cards_reservation_id });
    expect(await countCalls(team.textKey)).toBe(1);

    await giveCredits(team.orgId, 20);
    const ok = await call(`/api/deck/generations/${id}/outline`, { token: team.token, json: { approve: true } });
    expect(ok.status, ok.raw).toBe(200);
    const done = await waitForGeneration(team.token, id);
    expect(done).toMatchObject({ status: "completed", credits: { deducted: price } });
    expect(await account(team.orgId)).toMatchObject({ balance: 40 - 30 + 20 - price, reserved: 0 });
    await expectLedgerConsistent(team.orgId);
  });

  it("approving a generation that was never held is 409, and someone else's is 404", async () => {
    const team = await deckTeam(500);
    const res = await generate({ token: team.token }, { inputText: PROMPT, numCards: 2, orgId: team.orgId, imageOptions: { source: "noImages" } });
    const id = res.body.generationId;
    await waitForGeneration(team.token, id);
    expectError(await call(`/api/deck/generations/${id}/outline`, { token: team.token, json: { approve: true } }), 409, "conflict");
    const other = await deckTeam(0);
    expectError(await call(`/api/deck/generations/${id}/outline`, { token: other.token, json: { approve: true } }), 404, "not_found");
  });
});

describe("cancel", () => {
  it("held at the outline: everything is released, nothing charged", async () => {
    const team = await deckTeam(500);
    const res = await generate({ token: team.token }, { inputText: PROMPT, numCards: 4, orgId: team.orgId, holdOutline: true });
    const id = res.body.generationId;
    await waitForGeneration(team.token, id, { stage: "outline_ready" });
    expect(await account(team.orgId)).toMatchObject({ reserved: 4 * PRICES.card + 3 * PRICES.basic });
    // A member who is neither its creator nor a billing manager cannot cancel it.
    expectError(await call(`/api/deck/generations/${id}/cancel`, { method: "POST", token: await tokenFor(team.viewer) }), 404, "not_found");
    const c = await call(`/api/deck/generations/${id}/cancel`, { method: "POST", token: team.token });
    expect(c.status, c.raw).toBe(200);
    expect(c.body).toMatchObject({ status: "canceled", credits: { deducted: 0 } });
    expect(await account(team.orgId)).toMatchObject({ balance: 500, reserved: 0 });
    await expectLedgerConsistent(team.orgId);
    // Canceled stays canceled: approving now is a conflict.
    expectError(await call(`/api/deck/generations/${id}/outline`, { token: team.token, json: { approve: true } }), 409, "conflict");
  });

  it("with the cards written and the images still drawing: the cards are kept and charged, the images released", async () => {
    const team = await deckTeam(500);
    await scriptFake(stack.fakeAiUrl, team.imageKey, Array.from({ length: 3 }, () => ({ mode: "slow", delayMs: 2500 })));
    const res = await generate({ token: team.token }, { inputText: PROMPT, numCards: 4, orgId: team.orgId });
    const id = res.body.generationId;
    await waitFor("the cards", async () => ((await generationRow(id)).cards_done === 4 ? true : undefined));
    // The card stage is settled the moment it ends, while the images are still drawing.
    expect(await generationRow(id)).toMatchObject({ status: "pending", images_done: 0, credits_deducted: 4 * PRICES.card });
    expect(await account(team.orgId)).toMatchObject({ balance: 500 - 4 * PRICES.card, reserved: 3 * PRICES.basic });
    const c = await call(`/api/deck/generations/${id}/cancel`, { method: "POST", token: team.token });
    expect(c.status, c.raw).toBe(200);
    expect(c.body).toMatchObject({ status: "canceled", credits: { reserved: 4 * PRICES.card + 3 * PRICES.basic, deducted: 4 * PRICES.card } });
    // The worker writes the finished cards into the deck once the drawings it waited for are back.
    const body = await waitFor("the cards in the deck", async () => {
      const b = DeckBody.parse((await deckBody(c.body.deckId)).body);
      return b.cards.length === 4 ? b : undefined;
    });
    expect(body.cards.every((card) => card.image === null)).toBe(true);
    await waitFor("the drawings to return", async () => ((await countCalls(team.imageKey)) === 3 ? true : undefined));
    await waitFor("the run to end", async () =>
      (await admin.query(`select count(*)::int as n from pgboss.job where name = 'deck.generate' and data->>'generation_id' = $1 and state in ('created','active','retry')`, [id])).rows[0].n === 0 ? true : undefined);
    expect(await generationRow(id)).toMatchObject({ status: "canceled", images_done: 0, credits_deducted: 4 * PRICES.card });
    expect(await countRows(`select count(*)::int as n from content.assets where document_id = $1`, [c.body.deckId])).toBe(0);
    expect(await account(team.orgId)).toMatchObject({ balance: 500 - 4 * PRICES.card, reserved: 0 });
    await expectLedgerConsistent(team.orgId);
  });
});

describe("a deck deleted while it is generated", () => {
  it("stops the generation: failed with deck_deleted, the finished cards charged, the images released, no asset kept", async () => {
    const team = await deckTeam(500);
    await scriptFake(stack.fakeAiUrl, team.imageKey, Array.from({ length: 3 }, () => ({ mode: "slow", delayMs: 2500 })));
    const id = (await generate({ token: team.token }, { inputText: PROMPT, numCards: 4, orgId: team.orgId })).body.generationId;
    const g = await waitFor("the cards", async () => {
      const row = await generationRow(id);
      return row.cards_done === 4 ? row : undefined;
    });
    await admin.query(`delete from content.documents where id = $1`, [g.document_id]);
    const ended = await waitForGeneration(team.token, id, { statuses: ["failed", "completed", "canceled"] });
    expect(ended).toMatchObject({ status: "failed", deckId: null, error: { code: "deck_deleted" }, credits: { deducted: 4 * PRICES.card } });
    await waitFor("the run to end", async () =>
      (await admin.query(`select count(*)::int as n from pgboss.job where name = 'deck.generate' and data->>'generation_id' = $1 and state in ('created','active','retry')`, [id])).rows[0].n === 0 ? true : undefined);
    expect(await generationRow(id)).toMatchObject({ images_done: 0, credits_deducted: 4 * PRICES.card });
    expect(await countRows(`select count(*)::int as n from content.assets where document_id = $1`, [g.document_id])).toBe(0);
    expect(await account(team.orgId)).toMatchObject({ balance: 500 - 4 * PRICES.card, reserved: 0 });
    await expectLedgerConsistent(team.orgId);
  });
});

describe("from a template", () => {
  it("adapts a deck the caller can read: the same count, layouts, theme and dimensions; another org's deck is 404", async () => {
    const team = await deckTeam(500);
    const tpl = await createDoc(team.member, team.orgId, {
      kind: "deck", title: "Pitch template",
      body: {
        theme_id: "midnight", dimensions: "4x3", cards: [
          { id: "t1", layout: "title", data: { title: "Company", subtitle: "What you do" }, image: null, notes: "" },
          { id: "t2", layout: "stats", data: { title: "Traction", stats: [{ value: "10", label: "customers" }] }, image: null, notes: "" },
          { id: "t3", layout: "image", data: { title: "Product", body: "Show it", side: "left" }, image: null, notes: "" },
        ],
      },
    });
    const res = await call("/api/deck/generations/from-template", { token: team.token, json: { templateId: tpl.id, prompt: "A seed pitch for a solar kiosk startup", orgId: team.orgId } });
    expect(res.status, res.raw).toBe(202);
    const done = await waitForGeneration(team.token, res.body.generationId);
    expect(done).toMatchObject({ status: "completed", cards: { total: 3, done: 3 }, images: { total: 1, done: 1 }, credits: { deducted: 3 * PRICES.card + PRICES.basic } });
    const body = DeckBody.parse((await deckBody(done.deckId)).body);
    expect(body.cards.map((c) => c.layout)).toEqual(["title", "stats", "image"]);
    expect(body).toMatchObject({ theme_id: "midnight", dimensions: "4x3" });
    expect(body.cards[2].image).not.toBeNull();
    // The template itself is untouched.
    expect(DeckBody.parse((await deckBody(tpl.id)).body).cards.map((c) => c.id)).toEqual(["t1", "t2", "t3"]);

    const other = await deckTeam(500);
    const before = await countRows(`select count(*)::int as n from deck.generations where org_id = $1`, [other.orgId]);
    const denied = await call("/api/deck/generations/from-template", { token: other.token, json: { templateId: tpl.id, prompt: "Steal it", orgId: other.orgId } });
    expectError(denied, 404, "not_found");
    expect(await countRows(`select count(*)::int as n from deck.generations where org_id = $1`, [other.orgId])).toBe(before);
    expect(await account(other.orgId)).toMatchObject({ balance: 500, reserved: 0 });

    // Shared to the other org's member to view only, without downloads: readable, not copyable,
    // so it cannot be adapted (as it cannot be forked); with downloads allowed, it can.
    await contentRpc(team.owner, "share_with_user", { p_document_id: tpl.id, p_level: "view", p_user_id: other.member.id, p_allow_download: false });
    const viewOnly = await call("/api/deck/generations/from-template", { token: other.token, json: { templateId: tpl.id, prompt: "Copy it", orgId: other.orgId } });
    expectError(viewOnly, 403, "copy_not_allowed");
    expect(await countRows(`select count(*)::int as n from deck.generations where org_id = $1`, [other.orgId])).toBe(before);
    expect(await fakeCalls(stack.fakeAiUrl, other.textKey)).toHaveLength(0);
    await contentRpc(team.owner, "share_with_user", { p_document_id: tpl.id, p_level: "view", p_user_id: other.member.id, p_allow_download: true });
    const allowed = await call("/api/deck/generations/from-template", { token: other.token, json: { templateId: tpl.id, prompt: "Adapt it", orgId: other.orgId } });
    expect(allowed.status, allowed.raw).toBe(202);
    // The worker adapts the cards copied at admission, never the template itself.
    const { rows: examples } = await admin.query(`select example ->> 'layout' as layout from deck.generation_cards where generation_id = $1 order by position`, [allowed.body.generationId]);
    expect(examples.map((e) => e.layout)).toEqual(["title", "stats", "image"]);
    expect(await waitForGeneration(other.token, allowed.body.generationId)).toMatchObject({ status: "completed" });
  });
});

describe("saveAsTemplate", () => {
  it("puts the deck in review; the same prompt again is 409; the same batchKey answers the same generation", async () => {
    const team = await deckTeam(500);
    const prompt = "  A Launch Plan for a   neighbourhood coffee roaster ";
    const res = await generate({ token: team.token }, {
      inputText: prompt, numCards: 2, orgId: team.orgId, imageOptions: { source: "noImages" },
      saveAsTemplate: { category: "marketing", locale: "en", batchKey: "marketing:0" },
    });
    expect(res.status, res.raw).toBe(202);
    const id = res.body.generationId;
    const { rows: [t] } = await admin.query(`select t.*, d.is_template from deck.templates t join content.documents d on d.id = t.document_id where t.generation_id = $1`, [id]);
    expect(t).toMatchObject({ status: "review", category: "marketing", locale: "en", batch_key: "marketing:0", is_template: false, org_id: team.orgId });
    expect(t.prompt_hash).toBe(await promptHash("a launch plan for a neighbourhood coffee roaster"));

    const dup = await generate({ token: team.token }, {
      inputText: "a launch plan for a NEIGHBOURHOOD coffee roaster", numCards: 2, orgId: team.orgId, imageOptions: { source: "noImages" },
      saveAsTemplate: { category: "marketing", batchKey: "marketing:1" },
    });
    expectError(dup, 409, "conflict");
    const same = await generate({ token: team.token }, {
      inputText: "whatever the batch sends again", numCards: 2, orgId: team.orgId, imageOptions: { source: "noImages" },
      saveAsTemplate: { category: "marketing", batchKey: "marketing:0" },
    });
    expect(same.status, same.raw).toBe(200);
    expect(same.body.generationId).toBe(id);
    // Someone else in the org sending that batchKey learns nothing of it: 409, no generation id;
    // a viewer (no right to generate) is refused before any key is looked at.
    const owner = await call("/api/deck/generations", { token: await tokenFor(team.owner), json: {
      inputText: "whatever", numCards: 2, orgId: team.orgId, imageOptions: { source: "noImages" }, saveAsTemplate: { category: "marketing", batchKey: "marketing:0" } } });
    expectError(owner, 409, "conflict");
    expect(owner.raw).not.toContain(id);
    const viewer = await call("/api/deck/generations", { token: await tokenFor(team.viewer), json: {
      inputText: "whatever", numCards: 2, orgId: team.orgId, imageOptions: { source: "noImages" }, saveAsTemplate: { category: "marketing", batchKey: "marketing:0" } } });
    expectError(viewer, 403, "forbidden");
    expect(viewer.raw).not.toContain(id);
    const unknown = await generate({ token: team.token }, { inputText: "x", numCards: 2, orgId: team.orgId, saveAsTemplate: { category: "nonexistent" } });
    expectError(unknown, 400, "invalid_request");
    expect(await countRows(`select count(*)::int as n from deck.generations where org_id = $1`, [team.orgId])).toBe(1);
    // Only the first reservation was ever made.
    await waitForGeneration(team.token, id);
    expect(await account(team.orgId)).toMatchObject({ balance: 500 - 2 * PRICES.card, reserved: 0 });
  });

  it("a template that was never made (canceled or failed) leaves the review queue: its batchKey and prompt start afresh", async () => {
    const team = await deckTeam(500);
    const body = {
      inputText: "A workshop on composting for a school garden club", numCards: 2, orgId: team.orgId, holdOutline: true,
      imageOptions: { source: "noImages" }, saveAsTemplate: { category: "education", batchKey: "education:7" },
    };
    const first = (await generate({ token: team.token }, body)).body.generationId;
    await waitForGeneration(team.token, first, { stage: "outline_ready" });
    expect(await countRows(`select count(*)::int as n from deck.templates where generation_id = $1 and status = 'review'`, [first])).toBe(1);
    // Not made yet: it cannot be published (an empty deck never reaches the gallery).
    const early = await call(`/api/deck/templates/${(await generationRow(first)).document_id}/review`, { token: await tokenFor(team.owner), json: { decision: "publish" } });
    expectError(early, 409, "conflict");
    expect(await countRows(`select count(*)::int as n from deck.templates where generation_id = $1 and status = 'review'`, [first])).toBe(1);
    const c = await call(`/api/deck/generations/${first}/cancel`, { method: "POST", token: team.token });
    expect(c.status, c.raw).toBe(200);
    expect(await countRows(`select count(*)::int as n from deck.templates where org_id = $1`, [team.orgId])).toBe(0);
    // The deck itself stays, as a plain deck outside the gallery.
    expect(await countRows(`select count(*)::int as n from content.documents where id = $1 and not is_template`, [c.body.deckId])).toBe(1);
    const again = await generate({ token: team.token }, body);
    expect(again.status, again.raw).toBe(202);
    expect(again.body.generationId).not.toBe(first);
    expect(await countRows(`select count(*)::int as n from deck.templates where generation_id = $1 and status = 'review'`, [again.body.generationId])).toBe(1);
  });
});

describe("the API's edges", () => {
  it("Idempotency-Key: a repeat answers 200 with the same generation; someone else's use of the key is 409", async () => {
    const team = await deckTeam(500);
    const body = { inputText: PROMPT, numCards: 2, orgId: team.orgId, imageOptions: { source: "noImages" } };
    const a = await generate({ token: team.token }, body, { "idempotency-key": "deck-once" });
    const b = await generate({ token: team.token }, body, { "idempotency-key": "deck-once" });
    expect(a.status, a.raw).toBe(202);
    expect(b.status, b.raw).toBe(200);
    expect(b.body.generationId).toBe(a.body.generationId);
    const c = await generate({ token: await tokenFor(team.admin) }, body, { "idempotency-key": "deck-once" });
    expectError(c, 409, "conflict");
    expect(await countRows(`select count(*)::int as n from deck.generations where org_id = $1`, [team.orgId])).toBe(1);
  });

  it("an org API key generates for its org; progress goes to org:<id>; its generation is its own to read", async () => {
    const team = await deckTeam(500);
    const key = await createApiKey(team.owner, team.orgId, ["ai.use", "content.write", "content.read"]);
    const sb = await rtClient({ token: team.token });
    const ch = sb.channel(`org:${team.orgId}`, { config: { private: true } });
    const inbox = broadcasts(ch);
    await subscribe(ch);
    const res = await generate({ apiKey: key.key }, { inputText: PROMPT, numCards: 2, imageOptions: { source: "noImages" } });
    expect(res.status, res.raw).toBe(202);
    const id = res.body.generationId;
    await inbox.waitFor((m) => m.event === "deck.generation" && m.payload.generation_id === id && m.payload.status === "completed", 30_000);
    const cards = inbox.items.filter((m) => m.event === "deck.card" && m.payload.generation_id === id).map((m) => m.payload.position);
    expect(cards).toEqual([0, 1]);
    expect((await getGeneration({ apiKey: key.key }, id)).body).toMatchObject({ status: "completed", credits: { deducted: 2 * PRICES.card } });
    expect(await generationRow(id)).toMatchObject({ user_id: null, api_key_id: key.id });
    // A member who did not start it (and manages no billing) does not see it.
    expectError(await getGeneration({ token: team.token }, id), 404, "not_found");
    // The owner manages billing: they do.
    expect((await getGeneration({ token: await tokenFor(team.owner) }, id)).status).toBe(200);
  });

  it("the OpenAPI spec describes the generation routes and the request's fields", async () => {
    const res = await call("/api/openapi.json");
    expect(res.status, res.raw).toBe(200);
    const paths = res.body.paths;
    expect(paths["/api/deck/generations"].post).toBeDefined();
    expect(paths["/api/deck/generations/from-template"].post).toBeDefined();
    expect(paths["/api/deck/generations/{generation_id}"].get).toBeDefined();
    expect(paths["/api/deck/generations/{generation_id}/outline"].post).toBeDefined();
    expect(paths["/api/deck/generations/{generation_id}/cancel"].post).toBeDefined();
    const body = paths["/api/deck/generations"].post.requestBody.content["application/json"].schema;
    const schema = body.$ref ? res.body.components.schemas[body.$ref.split("/").pop()] : body;
    expect(Object.keys(schema.properties)).toEqual(expect.arrayContaining(["inputText", "textMode", "numCards", "themeId", "imageOptions", "exportAs"]));
    expect(res.body.components.schemas.DeckGeneration.properties.credits).toBeDefined();
  });

  it("bad input is a 400 naming the field, and writes nothing; a viewer is refused", async () => {
    const team = await deckTeam(500);
    const docs = () => countRows(`select count(*)::int as n from content.documents where org_id = $1`, [team.orgId]);
    const before = await docs();
    for (const [body, field] of [
      [{ inputText: PROMPT, numCards: 0, orgId: team.orgId }, "numCards"],
      [{ inputText: "", orgId: team.orgId }, "inputText"],
      [{ inputText: PROMPT, orgId: team.orgId, imageOptions: { tier: "ultra" } }, "imageOptions"],
      [{ inputText: PROMPT, orgId: team.orgId, surprise: true }, ""],
      [{ inputText: PROMPT, orgId: team.orgId, themeId: "no-such-theme" }, "themeId"],
      [{ inputText: PROMPT, orgId: team.orgId, cardOptions: { dimensions: "21x9" } }, "cardOptions"],
    ] as const) {
      const res = await generate({ token: team.token }, body);
      expectError(res, 400, "invalid_request");
      expect(res.headers.get("x-request-id")).toBeTruthy();
      if (field) expect(JSON.stringify(res.body.error), res.raw).toContain(field);
    }
    const notJson = await call("/api/deck/generations", { token: team.token, body: "{nope", headers: { "content-type": "application/json" } });
    expect(notJson.status).toBe(400);
    const viewer = await generate({ token: await tokenFor(team.viewer) }, { inputText: PROMPT, numCards: 2, orgId: team.orgId });
    expectError(viewer, 403, "forbidden");
    const stranger = await deckTeam(0);
    // A non-member learns nothing of the org (the content engine's answer for an org you are not in).
    expectError(await generate({ token: stranger.token }, { inputText: PROMPT, numCards: 2, orgId: team.orgId }), 404, "not_found");
    expect(await call("/api/deck/generations", { json: { inputText: PROMPT } }).then((r) => r.status)).toBe(401);
    expect(await docs()).toBe(before);
    expect(await countRows(`select count(*)::int as n from deck.generations where org_id = $1`, [team.orgId])).toBe(0);
    expect(await account(team.orgId)).toMatchObject({ balance: 500, reserved: 0 });
    expect(await countCalls(team.textKey)).toBe(0);
    expectError(await getGeneration({ token: team.token }, "00000000-0000-4000-8000-000000000000"), 404, "not_found");
    expectError(await getGeneration({ token: team.token }, "not-a-uuid"), 400, "invalid_request");
  });
});
