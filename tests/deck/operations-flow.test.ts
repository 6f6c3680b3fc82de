// AI card operations end to end over the api and the stack's worker, with the OpenAI fake
// answering as the model: a rewrite applied onto the current deck (a version kept first, a
// concurrent edit of another card kept, live on user:<id>), an AI result racing a human save of
// the same card (a conflict: the human's text stays, the proposal waits, applying it later
// works, discarding works), and provider failures (nothing changed, nothing charged).
//
// The races are forced, not timed: the test holds the operation's row lock (the worker's
// settle takes it first) while the AI call finishes and the human saves, then lets go.
import { afterAll, beforeAll, beforeEach, describe, expect, it } from "vitest";
import { EVENT_PAYLOADS } from "../../functions/_shared/events/catalog.ts";
import { account, expectLedgerConsistent } from "../helpers/credits.ts";
import { admin } from "../helpers/db.ts";
import { resetFake, scriptFake } from "../helpers/fake-ai.ts";
import { call, expectError } from "../helpers/http.ts";
import * as Y from "yjs";
import { deck as deck_, deckCardMap } from "../../functions/_shared/deck/kind.ts";
import { LiveEditor } from "../helpers/content.ts";
import { stack } from "../helpers/ai.ts";
import { createDb } from "../../functions/_shared/db/client.ts";
import type { DeckJobDeps } from "../../functions/_shared/deck/jobs.ts";
import { runOperation, sweepOperations } from "../../functions/_shared/deck/operations/jobs.ts";
import { orgRoute } from "../helpers/ai-jobs.ts";
import { broadcasts, rtClient, subscribe } from "../helpers/realtime.ts";
import { tokenFor } from "../helpers/supabase.ts";
import { waitFor } from "../helpers/wait.ts";
import { answer, CARDS, createDeck, currentDeck, DECK, operation, opsTeam, type OpsTeam, requestOp, requests, saveDeck, waitOp } from "./operations-setup.ts";

let team: OpsTeam;
beforeAll(async () => {
  team = await opsTeam();
});
// Each test scripts the fake afresh (a failed call may leave steps unused).
beforeEach(async () => {
  if (team) await resetFake(stack.fakeAiUrl, team.key);
});

/** Holds the operation's row lock from the moment it runs until `release` (the settle waits behind it). */
async function holdOperation(id: string) {
  await waitOp(id, ["running"]);
  const client = await admin.connect();
  await client.query("begin");
  const { rows: [op] } = await client.query("select state from deck.operations where id = $1 for update", [id]);
  // The fake answers slowly, so the settle cannot have happened yet: the race is really forced.
  expect(op.state).toBe("running");
  return {
    aiDone: (aiJobId: string) => waitFor("the AI job to succeed", async () =>
      (await admin.query("select status from ai.jobs where id = $1 and status = 'succeeded'", [aiJobId])).rows[0]),
    release: async () => {
      await client.query("commit");
      client.release();
    },
  };
}

describe("an operation applied", () => {
  const cleanup: (() => Promise<unknown>)[] = [];
  afterAll(async () => {
    for (const f of cleanup) await f();
  });

  it("rewrites the card onto the current deck, keeps a version first and another card's concurrent edit, and goes live", async () => {
    const sb = await rtClient({ token: await tokenFor(team.member) });
    const ch = sb.channel(`user:${team.member.id}`, { config: { private: true } });
    const inbox = broadcasts(ch);
    await subscribe(ch);
    cleanup.push(() => sb.removeAllChannels());

    const deck = await createDeck(team.member, team.orgId);
    const rewritten = { title: "Why now", bullets: ["AI features ship every week", "The backend is what slows teams"] };
    await scriptFake(stack.fakeAiUrl, team.key, { mode: "slow", delayMs: 1500, text: answer(rewritten) });
    const res = await requestOp(team.member, deck.id, "c-why", { op: "rewrite", base_revision: deck.revision });
    expect(res.status, res.raw).toBe(202);
    const op = res.body.operation;
    expect(op).toMatchObject({ state: "queued", card_id: "c-why", op: "rewrite", base_revision: deck.revision, actor_id: team.member.id });

    // While the AI works, someone edits another card.
    const hold = await holdOperation(op.id);
    await hold.aiDone(op.ai_job_id);
    const edited = structuredClone(DECK);
    edited.cards[2].data.body = "We open the beta to everyone in April.";
    const save = await saveDeck(team.admin, deck.id, deck.revision, edited);
    expect(save.status, save.raw).toBe(200);
    await hold.release();

    const done = await waitOp(op.id, ["applied", "conflict", "failed"]);
    expect(done.state).toBe("applied");
    const now = await currentDeck(team.member, deck.id);
    expect(done.resulting_revision).toBe(now.revision);
    expect(now.body.cards.find((c) => c.id === "c-why")).toEqual({ ...CARDS[1], data: rewritten });
    expect(now.body.cards.find((c) => c.id === "c-body")!.data).toEqual({ title: "The plan", body: "We open the beta to everyone in April." });
    expect(now.body.cards.find((c) => c.id === "c-title")).toEqual(CARDS[0]);
    // The content engine kept what the AI replaced: a version of the revision just before it.
    const { rows: versions } = await admin.query(
      "select reason, revision, body from content.versions where document_id = $1 and reason = 'before_ai_rewrite'", [deck.id]);
    expect(versions).toHaveLength(1);
    expect(versions[0].revision).toBe(now.revision - 1);
    expect(versions[0].body.cards[1]).toEqual(CARDS[1]);
    expect(versions[0].body.cards[2].data.body).toBe("We open the beta to everyone in April.");

    await inbox.waitFor((m) => m.event === "deck.operation" && m.payload.operation_id === op.id && m.payload.state === "applied", 20_000, "applied");
    const states = inbox.items.filter((m) => m.event === "deck.operation" && m.payload.operation_id === op.id).map((m) => m.payload.state);
    expect(states).toEqual(["queued", "running", "applied"]);
    expect(inbox.items.find((m) => m.payload.state === "applied")!.payload).toMatchObject({ document_id: deck.id, card_id: "c-why", resulting_revision: now.revision });
    // The outbox has the outcome, with the payload its catalog schema describes.
    const { rows: events } = await admin.query(`select type, payload from notify.events where subject_id = $1 and type like 'deck.%'`, [op.id]);
    expect(events.map((e) => e.type)).toEqual(["deck.operation_applied"]);
    expect(EVENT_PAYLOADS["deck.operation_applied"].parse(events[0].payload)).toMatchObject({ card_id: "c-why", op: "rewrite", resulting_revision: now.revision });
    // The gateway charged the AI call at its own prices, once.
    const { rows: [job] } = await admin.query("select status, reserved_credits::int, settled_credits::int from ai.jobs where id = $1", [op.ai_job_id]);
    expect(job.status).toBe("succeeded");
    expect(job.settled_credits).toBeGreaterThan(0);
    await expectLedgerConsistent(team.orgId);
  });

  it("translates with the language in the prompt, and reads back through GET and the list", async () => {
    const deck = await createDeck(team.member, team.orgId);
    await scriptFake(stack.fakeAiUrl, team.key, { mode: "ok", text: answer({ title: "Le plan", body: "Nous ouvrons la bêta en mars." }) });
    const res = await requestOp(team.member, deck.id, "c-body", { op: "translate", language: "fr", base_revision: deck.revision });
    expect(res.status, res.raw).toBe(202);
    const done = await waitOp(res.body.operation.id, ["applied", "conflict", "failed"]);
    expect(done.state).toBe("applied");
    expect((await currentDeck(team.member, deck.id)).body.cards[2].data).toEqual({ title: "Le plan", body: "Nous ouvrons la bêta en mars." });
    const token = await tokenFor(team.viewer);
    const got = await call(`/api/deck/operations/${done.id}`, { token });
    expect(got.status, got.raw).toBe(200);
    expect(got.body.operation).toMatchObject({ state: "applied", params: { language: "fr", tier: "balanced" }, result: { id: "c-body", layout: "text" } });
    const list = await call(`/api/deck/decks/${deck.id}/operations`, { token });
    expect(list.body.operations.map((o: { id: string }) => o.id)).toEqual([done.id]);
  });
});

describe("the keyless local provider", () => {
  it("answers an operation with a valid card (the prompt carries the answer's JSON Schema), applied like any other", async () => {
    const local = await opsTeam();
    await admin.query("delete from ai.org_routes where org_id = $1", [local.orgId]);
    await orgRoute(local.orgId, "text", "balanced", ["local/text"]);
    const deck = await createDeck(local.member, local.orgId);
    for (const [cardId, op] of [["c-why", "expand"], ["c-body", "rewrite"], ["c-title", "condense"]] as const) {
      const now = await currentDeck(local.member, deck.id);
      const res = await requestOp(local.member, deck.id, cardId, { op, base_revision: now.revision });
      expect(res.status, res.raw).toBe(202);
      const done = await waitOp(res.body.operation.id, ["applied", "conflict", "failed"]);
      expect(done.state, JSON.stringify(done.error)).toBe("applied");
      expect(done.result.layout).toBe(CARDS.find((c) => c.id === cardId)!.layout);
    }
  });
});

describe("an AI result racing a human save of the same card", () => {
  it("is a conflict: the human's text stays, the proposal waits, and applying it later works", async () => {
    const deck = await createDeck(team.member, team.orgId);
    const proposal = { title: "The plan", body: "Beta for all in March: sign-ups open now." };
    await scriptFake(stack.fakeAiUrl, team.key, { mode: "slow", delayMs: 1500, text: answer(proposal) });
    const res = await requestOp(team.member, deck.id, "c-body", { op: "condense", base_revision: deck.revision });
    expect(res.status, res.raw).toBe(202);
    const op = res.body.operation;
    const hold = await holdOperation(op.id);
    await hold.aiDone(op.ai_job_id);
    const human = structuredClone(DECK);
    human.cards[2].data.body = "Human words: the beta opens in May.";
    const save = await saveDeck(team.admin, deck.id, deck.revision, human);
    expect(save.status, save.raw).toBe(200);
    await hold.release();

    const done = await waitOp(op.id, ["applied", "conflict", "failed"]);
    expect(done.state).toBe("conflict");
    expect(done.error).toMatchObject({ code: "card_changed" });
    expect(done.result).toEqual({ ...CARDS[2], data: proposal });
    expect(done.resulting_revision).toBeNull();
    // No edit is lost: the human's text is the deck's, and nothing was written after it.
    const after = await currentDeck(team.member, deck.id);
    expect(after.revision).toBe(save.body.revision);
    expect(after.body.cards[2].data.body).toBe("Human words: the beta opens in May.");
    expect((await admin.query("select count(*)::int as n from content.versions where document_id = $1 and reason = 'before_ai_rewrite'", [deck.id])).rows[0].n).toBe(0);

    // Applying needs the revision the user is looking at.
    const token = await tokenFor(team.member);
    const stale = await call(`/api/deck/operations/${op.id}/apply`, { token, json: { base_revision: deck.revision } });
    expectError(stale, 409, "stale_revision");
    expect(stale.body.error.details.revision).toBe(after.revision);
    const viewer = await call(`/api/deck/operations/${op.id}/apply`, { token: await tokenFor(team.viewer), json: { base_revision: after.revision } });
    expectError(viewer, 403, "forbidden");
    const applied = await call(`/api/deck/operations/${op.id}/apply`, { token, json: { base_revision: after.revision } });
    expect(applied.status, applied.raw).toBe(200);
    expect(applied.body.operation).toMatchObject({ state: "applied", resolved_by: team.member.id });
    const final = await currentDeck(team.member, deck.id);
    expect(applied.body.operation.resulting_revision).toBe(final.revision);
    expect(final.body.cards[2].data).toEqual(proposal);
    // The human's version of the card is kept in history, before the AI change.
    const { rows: [v] } = await admin.query(
      "select body from content.versions where document_id = $1 and reason = 'before_ai_rewrite' order by number desc limit 1", [deck.id]);
    expect(v.body.cards[2].data.body).toBe("Human words: the beta opens in May.");
    // Applied once only.
    expectError(await call(`/api/deck/operations/${op.id}/apply`, { token, json: { base_revision: final.revision } }), 409, "not_in_conflict");
  });

  it("a conflict can be discarded instead; the deck stays as the human left it", async () => {
    const deck = await createDeck(team.member, team.orgId);
    await scriptFake(stack.fakeAiUrl, team.key, { mode: "slow", delayMs: 1500, text: answer({ title: "Launch!", subtitle: "Now" }) });
    const res = await requestOp(team.member, deck.id, "c-title", { op: "tone", tone: "playful", base_revision: deck.revision });
    const op = res.body.operation;
    const hold = await holdOperation(op.id);
    await hold.aiDone(op.ai_job_id);
    const human = structuredClone(DECK);
    human.cards.splice(0, 1); // the card is removed meanwhile
    expect((await saveDeck(team.admin, deck.id, deck.revision, human)).status).toBe(200);
    await hold.release();
    const done = await waitOp(op.id, ["applied", "conflict", "failed"]);
    expect(done).toMatchObject({ state: "conflict", error: { code: "card_removed" } });
    const token = await tokenFor(team.member);
    const now = await currentDeck(team.member, deck.id);
    expectError(await call(`/api/deck/operations/${op.id}/apply`, { token, json: { base_revision: now.revision } }), 409, "card_removed");
    const discarded = await call(`/api/deck/operations/${op.id}/discard`, { token, method: "POST" });
    expect(discarded.status, discarded.raw).toBe(200);
    expect(discarded.body.operation).toMatchObject({ state: "discarded", resolved_by: team.member.id });
    expect((await currentDeck(team.member, deck.id)).body.cards.map((c) => c.id)).toEqual(["c-why", "c-body"]);
    expectError(await call(`/api/deck/operations/${op.id}/discard`, { token, method: "POST" }), 409, "conflict");
  });
});

describe("a live deck (people editing it through Yjs while the AI works)", () => {
  const field = (doc: Y.Doc, cardId: string, key: string) => (deckCardMap(doc, cardId)!.get("data") as Y.Map<unknown>).get(key) as Y.Text;

  it("typing into the same card makes the AI's result a conflict; typing elsewhere is kept, and the editor receives the AI change live", async () => {
    const deck = await createDeck(team.member, team.orgId);
    const editor = new LiveEditor(team.admin, deck.id);
    await editor.join();
    try {
      // Same card: a conflict, and the typed words stay.
      await scriptFake(stack.fakeAiUrl, team.key, { mode: "slow", delayMs: 1500, text: answer({ title: "The plan", body: "AI text." }) });
      const a = (await requestOp(team.member, deck.id, "c-body", { op: "rewrite", base_revision: deck.revision })).body.operation;
      let hold = await holdOperation(a.id);
      await hold.aiDone(a.ai_job_id);
      field(editor.doc, "c-body", "body").insert(0, "Typed live: ");
      await editor.flush();
      expect(editor.errors).toEqual([]);
      await hold.release();
      expect((await waitOp(a.id, ["applied", "conflict", "failed"])).state).toBe("conflict");
      const afterA = await currentDeck(team.member, deck.id);
      expect(afterA.body.cards[2].data.body).toBe("Typed live: We open the beta to everyone in March.");

      // Another card: applied on top, the typing kept, and the editor's doc gets the AI's change.
      await scriptFake(stack.fakeAiUrl, team.key, { mode: "slow", delayMs: 1500, text: answer({ title: "Why now", bullets: ["AI everywhere", "Backends lag"] }) });
      const b = (await requestOp(team.member, deck.id, "c-why", { op: "rewrite", base_revision: afterA.revision })).body.operation;
      hold = await holdOperation(b.id);
      await hold.aiDone(b.ai_job_id);
      field(editor.doc, "c-title", "title").insert(0, "Our ");
      await editor.flush();
      await hold.release();
      expect((await waitOp(b.id, ["applied", "conflict", "failed"])).state).toBe("applied");
      await waitFor("the AI change to reach the live editor", async () =>
        ((deckCardMap(editor.doc, "c-why")!.get("data") as Y.Map<unknown>).get("bullets") as Y.Array<Y.Text>).toArray().map(String).join("|") === "AI everywhere|Backends lag" || undefined);
      const now = await currentDeck(team.member, deck.id);
      expect(now.body.cards.map((c) => c.data)).toEqual([
        { title: "Our Launch plan", subtitle: "From beta to general availability" },
        { title: "Why now", bullets: ["AI everywhere", "Backends lag"] },
        { title: "The plan", body: "Typed live: We open the beta to everyone in March." },
      ]);
      expect(deck_.fromYDoc(editor.doc)).toEqual(now.body);
    } finally {
      await editor.leave();
    }
  });
});

describe("failures", () => {
  it("a provider failure fails the operation: the deck is unchanged and nothing is charged", async () => {
    // A team and model of its own: the failures put its deployment in cooldown.
    const team = await opsTeam();
    const deck = await createDeck(team.member, team.orgId);
    await scriptFake(stack.fakeAiUrl, team.key, Array.from({ length: 8 }, () => ({ mode: "server_error" })));
    const before = await account(team.orgId);
    const calls = await requests(team.key);
    const res = await requestOp(team.member, deck.id, "c-why", { op: "expand", base_revision: deck.revision });
    expect(res.status, res.raw).toBe(202);
    const done = await waitOp(res.body.operation.id, ["applied", "conflict", "failed"]);
    expect(done.state).toBe("failed");
    expect(done.result).toBeNull();
    expect(await requests(team.key)).toBeGreaterThan(calls);
    const now = await currentDeck(team.member, deck.id);
    expect(now.revision).toBe(deck.revision);
    expect(now.body).toEqual(DECK);
    const { rows: [job] } = await admin.query("select status, settled_credits from ai.jobs where id = $1", [done.ai_job_id]);
    expect(job.status).toBe("failed");
    expect(Number(job.settled_credits ?? 0)).toBe(0);
    expect(await account(team.orgId)).toMatchObject({ balance: before.balance, reserved: 0 });
    await expectLedgerConsistent(team.orgId);
  });

  it("an answer that is not a valid card fails the operation and changes nothing (the gateway still settles the call)", async () => {
    const deck = await createDeck(team.member, team.orgId);
    await scriptFake(stack.fakeAiUrl, team.key, { mode: "ok", text: answer({ title: "Why now", bullets: [] }) });
    const res = await requestOp(team.member, deck.id, "c-why", { op: "condense", base_revision: deck.revision });
    const done = await waitOp(res.body.operation.id, ["applied", "conflict", "failed"]);
    expect(done).toMatchObject({ state: "failed", error: { code: "invalid_output" } });
    expect(done.error.message).toMatch(/data\.bullets/);
    expect((await currentDeck(team.member, deck.id)).body).toEqual(DECK);
    const { rows: [job] } = await admin.query("select status from ai.jobs where id = $1", [done.ai_job_id]);
    expect(job.status).toBe("succeeded");
  });

  it("a queued operation can be discarded: its AI job is canceled and its credits released", async () => {
    const deck = await createDeck(team.member, team.orgId);
    await scriptFake(stack.fakeAiUrl, team.key, { mode: "slow", delayMs: 3000, text: answer({ title: "x", bullets: ["y"] }) });
    const res = await requestOp(team.member, deck.id, "c-why", { op: "rewrite", base_revision: deck.revision });
    const op = res.body.operation;
    const discarded = await call(`/api/deck/operations/${op.id}/discard`, { token: await tokenFor(team.member), method: "POST" });
    expect(discarded.status, discarded.raw).toBe(200);
    expect(discarded.body.operation.state).toBe("canceled");
    const { rows: [job] } = await admin.query("select status from ai.jobs where id = $1", [op.ai_job_id]);
    expect(job.status).toBe("canceled");
    // Whatever the worker does with the call, the operation stays canceled and the deck unchanged.
    await waitFor("the operation's worker job to end", async () =>
      (await admin.query("select 1 from pgboss.job where name = 'deck.card_op' and data->>'operation_id' = $1 and state in ('completed', 'failed')", [op.id])).rows[0]);
    expect((await operation(op.id)).state).toBe("canceled");
    expect((await currentDeck(team.member, deck.id)).body).toEqual(DECK);
    expect(await account(team.orgId)).toMatchObject({ reserved: 0 });
  });
});

describe("the worker's safety net", () => {
  it("when every provider is cooling, the run comes back as deck.card_op (never a bare ai.run), then applies", async () => {
    const t = await opsTeam();
    const deck = await createDeck(t.member, t.orgId);
    await scriptFake(stack.fakeAiUrl, t.key, { mode: "ok", text: answer({ title: "Why now", bullets: ["Later, but applied"] }) });
    await admin.query(
      `insert into ai.deployment_health (deployment_id, cooldown_until, cooldown_reason) values ($1, now() + interval '2 seconds', 'test')
       on conflict (deployment_id) do update set cooldown_until = excluded.cooldown_until, cooldown_reason = excluded.cooldown_reason`, [t.deployment]);
    const res = await requestOp(t.member, deck.id, "c-why", { op: "rewrite", base_revision: deck.revision });
    expect(res.status, res.raw).toBe(202);
    const op = res.body.operation;
    const done = await waitOp(op.id, ["applied", "conflict", "failed"]);
    expect(done.state).toBe("applied");
    const { rows } = await admin.query(
      `select name, count(*)::int as n from pgboss.job
       where (name = 'deck.card_op' and data->>'operation_id' = $1) or (name = 'ai.run' and data->>'job_id' = $2) group by name`, [op.id, op.ai_job_id]);
    expect(Object.fromEntries(rows.map((r) => [r.name, r.n]))).toEqual({ "deck.card_op": 2 });
    expect(await requests(t.key)).toBe(1);
  });


  it("the sweep queues again only operations left open and untouched; an operation without its AI job fails and changes nothing", async () => {
    const deck = await createDeck(team.member, team.orgId);
    const insert = async (state: string, age: string) => (await admin.query(
      `insert into deck.operations (org_id, document_id, card_id, op, base_revision, card_hash, base_card, request_hash, state, actor_id, updated_at,
                                    result, resulting_revision)
       values ($1, $2, 'c-why', 'rewrite', $3, repeat('a', 64), $4, repeat('b', 64), $5, $6, now() - $7::interval,
               case when $5 = 'applied' then $4::jsonb end, case when $5 = 'applied' then $3::int end) returning id`,
      [team.orgId, deck.id, deck.revision, JSON.stringify(CARDS[1]), state, team.member.id, age])).rows[0].id as string;
    const stale = await insert("running", "5 minutes");
    const staleQueued = await insert("queued", "10 minutes");
    const fresh = await insert("running", "0 seconds");
    const ended = await insert("applied", "1 hour");
    const sent: { name: string; data: { operation_id: string } }[] = [];
    const jobs = { ready: async () => ({ send: async (name: string, data: { operation_id: string }) => (sent.push({ name, data }), "job") }) };
    const { db } = createDb(stack.dbUrl, 2);
    const deps = { db, jobs, storage: { url: "", serviceRoleKey: "" }, ai: {} } as unknown as DeckJobDeps;
    await sweepOperations(deps);
    const mine = sent.filter((x) => [stale, staleQueued, fresh, ended].includes(x.data.operation_id));
    expect(mine.map((x) => x.data.operation_id).sort()).toEqual([stale, staleQueued].sort());
    expect(mine.every((x) => x.name === "deck.card_op")).toBe(true);

    expect(await runOperation(deps, stale)).toMatchObject({ state: "failed" });
    expect(await operation(stale)).toMatchObject({ state: "failed", error: { code: "ai_job_missing" } });
    expect(await runOperation(deps, ended)).toEqual({ skipped: "operation is applied" });
    expect((await currentDeck(team.member, deck.id)).revision).toBe(deck.revision);
    await db.destroy();
  });
});

