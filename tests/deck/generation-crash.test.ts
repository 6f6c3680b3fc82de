// A worker killed during the card stage: the pipeline runs in this process until the query that
// stores its third card fails as if the process died there (and everything after it too); the
// stack's worker then takes the job over, as pg-boss's retry does. It resumes at the card stage:
// no provider is asked again for the outline, the structure or a card already written (nor for
// the card whose answer arrived just before the death: the gateway kept it under its key), and
// the org is charged exactly the price table, once.
import { afterAll, describe, expect, it } from "vitest";
import { gotrueClaims } from "../../scripts/lib/keys.ts";
import { asUser } from "../../functions/_shared/db/client.ts";
import { admitGeneration } from "../../functions/_shared/deck/generation/admission.ts";
import { runGeneration } from "../../functions/_shared/deck/generation/stages.ts";
import { generationHandlers, MAX_FAILED_RUNS } from "../../functions/_shared/deck/generation/jobs.ts";
import { GenerationRequest } from "../../functions/_shared/deck/params.ts";
import { DeckBody } from "../../functions/_shared/deck/kind.ts";
import { account, expectLedgerConsistent } from "../helpers/credits.ts";
import { admin } from "../helpers/db.ts";
import {
  cardRows, countCalls, deckBody, deckTeam, generationRow, handToWorker, inProcessDeps, noJobs, PRICES, waitForGeneration,
} from "./generation-helpers.ts";

const open: { close(): Promise<void> }[] = [];
afterAll(async () => {
  for (const d of open) await d.close();
});

describe("a worker killed during the card stage", () => {
  it("resumes at the card stage: nothing is asked of a provider twice and the credits are charged once", async () => {
    const team = await deckTeam(500);
    const deps = inProcessDeps({ dieAt: /deck_store_card/, nth: 3, concurrency: 1 });
    open.push(deps);
    const req = GenerationRequest.parse({ inputText: "A field guide to the birds of the Baltic coast, season by season.", numCards: 5, orgId: team.orgId });
    const { generationId: id } = await asUser(deps.db, gotrueClaims(team.member) as never, (tx) =>
      admitGeneration(tx, noJobs, { orgId: team.orgId, userId: team.member.id, apiKeyId: null }, req));

    await expect(runGeneration(deps, id)).rejects.toThrow("the worker was killed");
    expect(deps.dead()).toBe(true);
    // What the dead run left: outline and structure stored, two cards written, the third answered
    // by the provider but not stored, nothing settled.
    const left = await generationRow(id);
    expect(left).toMatchObject({ status: "pending", stage: "cards", cards_done: 2, images_done: 0, credits_deducted: 0 });
    expect((await cardRows(id)).filter((c) => c.content !== null).map((c) => c.position)).toEqual([0, 1]);
    const { rows: third } = await admin.query(`select status from ai.jobs where org_id = $1 and idempotency_key like $2`, [team.orgId, `deck:${id}:card:2%`]);
    expect(third.map((j) => j.status)).toEqual(["succeeded"]);
    expect(await countCalls(team.textKey)).toBe(2 + 3);
    expect(await countCalls(team.imageKey)).toBe(0);

    await handToWorker(id);
    const done = await waitForGeneration(team.token, id);
    expect(done).toMatchObject({ status: "completed", cards: { total: 5, done: 5 }, images: { total: 4, done: 4, failed: 0 } });
    // Once per thing made: outline, structure, five cards (the third's answer reused), four images.
    expect(await countCalls(team.textKey)).toBe(2 + 5);
    expect(await countCalls(team.imageKey)).toBe(4);
    const cost = 5 * PRICES.card + 4 * PRICES.basic;
    expect(done.credits).toMatchObject({ reserved: cost, deducted: cost });
    expect(await account(team.orgId)).toMatchObject({ balance: 500 - cost, reserved: 0 });
    await expectLedgerConsistent(team.orgId);
    const { rows: res } = await admin.query(
      `select status, settled_amount::int as settled from billing.credit_reservations where org_id = $1 order by amount`, [team.orgId]);
    expect(res).toEqual([{ status: "posted", settled: 4 * PRICES.basic }, { status: "posted", settled: 5 * PRICES.card }]);
    const body = DeckBody.parse((await deckBody(done.deckId)).body);
    expect(body.cards).toHaveLength(5);
    expect(body.cards.filter((c) => c.image)).toHaveLength(4);
  });

  it("a run that keeps failing (the deck's Storage down) fails after the queue's retries: finished cards kept and charged, the rest released", async () => {
    const team = await deckTeam(500);
    const deps = inProcessDeps();
    open.push(deps);
    const req = GenerationRequest.parse({ inputText: "Tide pools: what lives there and how to visit without harm.", numCards: 3, orgId: team.orgId });
    const { generationId: id } = await asUser(deps.db, gotrueClaims(team.member) as never, (tx) =>
      admitGeneration(tx, noJobs, { orgId: team.orgId, userId: team.member.id, apiKeyId: null }, req));
    // The gateway stores its outputs, but copying them into the deck's assets fails every time.
    const handler = generationHandlers({ ...deps, storage: { url: "http://127.0.0.1:1", serviceRoleKey: "down" } })["deck.generate"];
    for (let run = 1; run < MAX_FAILED_RUNS; run++) {
      await expect(handler({ generation_id: id })).rejects.toThrow();
      expect((await generationRow(id)).status).toBe("pending");
    }
    await expect(handler({ generation_id: id })).resolves.toMatchObject({ status: "failed" });
    const g = await generationRow(id);
    expect(g).toMatchObject({ status: "failed", cards_done: 3, images_done: 0, credits_deducted: 3 * PRICES.card, error: { code: "internal_error" } });
    // Each image was drawn once (later runs found the gateway's job by its key); no card twice.
    expect(await countCalls(team.imageKey)).toBe(2);
    expect(await countCalls(team.textKey)).toBe(2 + 3);
    const body = DeckBody.parse((await deckBody(g.document_id)).body);
    expect(body.cards).toHaveLength(3);
    expect(await account(team.orgId)).toMatchObject({ balance: 500 - 3 * PRICES.card, reserved: 0 });
    await expectLedgerConsistent(team.orgId);
    const { rows } = await admin.query(`select count(*)::int as n from notify.events where org_id = $1 and type = 'deck.generation_failed'`, [team.orgId]);
    expect(rows[0].n).toBe(1);
  });
});
