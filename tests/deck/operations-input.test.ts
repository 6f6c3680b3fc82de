// Asking for AI card operations: who may (editors; a viewer 403, another org's member 404),
// idempotency (the same key and request → one operation and one AI job; another request under
// the key → 422), the revision the client read (stale → 409 with the current one), bad input
// (400/404, nothing written: no operation, no AI job, no reservation), 402 without credits, and
// RLS on deck.operations (the deck's readers; not another org, not a private deck's outsiders).
import { beforeAll, describe, expect, it } from "vitest";
import { account } from "../helpers/credits.ts";
import { admin, createTeam, select } from "../helpers/db.ts";
import { scriptFake } from "../helpers/fake-ai.ts";
import { call, expectError } from "../helpers/http.ts";
import { stack } from "../helpers/ai.ts";
import { tokenFor } from "../helpers/supabase.ts";
import { answer, counts, createDeck, opsTeam, type OpsTeam, requestOp, requests, waitOp } from "./operations-setup.ts";

let team: OpsTeam;
let deck: { id: string; revision: number };
beforeAll(async () => {
  team = await opsTeam();
  deck = await createDeck(team.member, team.orgId);
});

/** Runs `fn` and checks it wrote nothing: no operation, no AI job, no reservation, no provider call. */
async function writesNothing(fn: () => Promise<void>, t: OpsTeam = team) {
  const before = { ...(await counts(t.orgId)), account: await account(t.orgId), calls: await requests(t.key) };
  await fn();
  expect(await counts(t.orgId)).toEqual({ operations: before.operations, ai_jobs: before.ai_jobs });
  expect(await account(t.orgId)).toEqual(before.account);
  expect(await requests(t.key)).toBe(before.calls);
}

describe("bad input is refused before anything is written", () => {
  it("an unknown op, a translate without a language, a tone without a tone, stray fields: 400 naming the field", async () => {
    await writesNothing(async () => {
      for (const [body, field] of [
        [{ op: "summarize", base_revision: deck.revision }, "op"],
        [{ op: "translate", base_revision: deck.revision }, "language"],
        [{ op: "translate", language: "French!", base_revision: deck.revision }, "language"],
        [{ op: "tone", base_revision: deck.revision }, "tone"],
        [{ op: "rewrite", language: "fr", base_revision: deck.revision }, "language"],
        [{ op: "rewrite", base_revision: 0 }, "base_revision"],
        [{ op: "rewrite" }, "base_revision"],
        [{ op: "rewrite", base_revision: deck.revision, tier: "ultra" }, "tier"],
        [{ op: "rewrite", base_revision: deck.revision, extra: 1 }, ""],
        [{ op: "rewrite", base_revision: deck.revision, instructions: "x".repeat(2001) }, "instructions"],
      ] as const) {
        const res = await requestOp(team.member, deck.id, "c-why", body);
        expectError(res, 400, "invalid_request");
        expect(JSON.stringify(res.body.error.details), JSON.stringify(body)).toContain(field);
      }
    });
  });

  it("a card that is not in the deck: 404 card_not_found; a bad card id: 400; a document that is not a deck: 404", async () => {
    await writesNothing(async () => {
      expectError(await requestOp(team.member, deck.id, "c-nope", { op: "rewrite", base_revision: deck.revision }), 404, "card_not_found");
      expectError(await requestOp(team.member, deck.id, "bad id!", { op: "rewrite", base_revision: deck.revision }), 400, "invalid_request");
      const note = await call("/api/content/documents", { token: await tokenFor(team.member), json: { org_id: team.orgId, kind: "note", title: "n" } });
      expectError(await requestOp(team.member, note.body.id, "c-why", { op: "rewrite", base_revision: note.body.revision }), 404, "not_found");
    });
  });

  it("a stale base revision: 409 stale_revision with the current revision (the client re-reads first)", async () => {
    const d = await createDeck(team.member, team.orgId);
    const save = await call(`/api/content/documents/${d.id}`, {
      method: "PUT", token: await tokenFor(team.member),
      json: { base_revision: d.revision, body: { theme_id: "midnight", dimensions: "16x9", cards: [{ id: "c-why", layout: "text", data: { title: "t", body: "b" }, image: null, notes: "" }] } },
    });
    expect(save.status, save.raw).toBe(200);
    await writesNothing(async () => {
      const res = await requestOp(team.member, d.id, "c-why", { op: "rewrite", base_revision: d.revision });
      expectError(res, 409, "stale_revision");
      expect(res.body.error.details.revision).toBe(save.body.revision);
    });
  });

  it("without credits: 402 before any operation or provider call", async () => {
    const poor = await opsTeam(0);
    const d = await createDeck(poor.member, poor.orgId);
    await writesNothing(async () => {
      expectError(await requestOp(poor.member, d.id, "c-why", { op: "rewrite", base_revision: d.revision }), 402, "payment_required");
    }, poor);
  });
});

describe("who may ask", () => {
  it("a viewer gets 403, another org's member 404, no token 401; nothing is written", async () => {
    const other = await createTeam("Other");
    await writesNothing(async () => {
      expectError(await requestOp(team.viewer, deck.id, "c-why", { op: "rewrite", base_revision: deck.revision }), 403, "forbidden");
      expectError(await requestOp(other.owner, deck.id, "c-why", { op: "rewrite", base_revision: deck.revision }), 404, "not_found");
      const anon = await call(`/api/deck/decks/${deck.id}/cards/c-why/ai`, { json: { op: "rewrite", base_revision: deck.revision } });
      expect(anon.status).toBe(401);
    });
  });

  it("the member who wrote the deck, an admin and the owner may (edit access)", async () => {
    await scriptFake(stack.fakeAiUrl, team.key, [0, 1, 2].map(() => ({ mode: "ok", text: answer({ title: "Why now", bullets: ["a", "b"] }) })));
    for (const u of [team.member, team.admin, team.owner]) {
      const d = await createDeck(team.member, team.orgId);
      const res = await requestOp(u, d.id, "c-why", { op: "rewrite", base_revision: d.revision });
      expect(res.status, res.raw).toBe(202);
      expect(res.body.operation.actor_id).toBe(u.id);
      await waitOp(res.body.operation.id, ["applied", "failed"]);
    }
  });
});

describe("idempotency", () => {
  it("the same key and request twice: one operation and one AI job (202, then 200); another request under the key: 422", async () => {
    const d = await createDeck(team.member, team.orgId);
    await scriptFake(stack.fakeAiUrl, team.key, { mode: "ok", text: answer({ title: "T", body: "B" }) });
    const before = await counts(team.orgId);
    const body = { op: "condense", base_revision: d.revision };
    const [a, b] = await Promise.all([requestOp(team.member, d.id, "c-body", body, "key-1"), requestOp(team.member, d.id, "c-body", body, "key-1")]);
    expect([a.status, b.status].sort()).toEqual([200, 202]);
    expect(a.body.operation.id).toBe(b.body.operation.id);
    const again = await requestOp(team.member, d.id, "c-body", body, "key-1");
    expect(again.status).toBe(200);
    expect(again.body.operation.id).toBe(a.body.operation.id);
    expect(await counts(team.orgId)).toEqual({ operations: before.operations + 1, ai_jobs: before.ai_jobs + 1 });
    await waitOp(a.body.operation.id, ["applied", "failed"]);
    // After it finished, the same request under the key still answers the same operation.
    expect((await requestOp(team.member, d.id, "c-body", body, "key-1")).body.operation.id).toBe(a.body.operation.id);

    await writesNothing(async () => {
      const other = await requestOp(team.member, d.id, "c-body", { op: "expand", base_revision: d.revision }, "key-1");
      expectError(other, 422, "idempotency_key_reused");
      // Another user reusing the key on this deck is another request too.
      expectError(await requestOp(team.admin, d.id, "c-body", body, "key-1"), 422, "idempotency_key_reused");
    });
    // A key is per deck: the same key on another deck is a new operation.
    const d2 = await createDeck(team.member, team.orgId);
    await scriptFake(stack.fakeAiUrl, team.key, { mode: "ok", text: answer({ title: "T", body: "B" }) });
    const fresh = await requestOp(team.member, d2.id, "c-body", { ...body, base_revision: d2.revision }, "key-1");
    expect(fresh.status).toBe(202);
    await waitOp(fresh.body.operation.id, ["applied", "failed"]);
  });
});

describe("RLS on deck.operations", () => {
  it("readers of the deck read its operations (the viewer included); another org's member reads none; nobody writes them", async () => {
    const d = await createDeck(team.member, team.orgId);
    await scriptFake(stack.fakeAiUrl, team.key, { mode: "ok", text: answer({ title: "T", body: "B" }) });
    const res = await requestOp(team.member, d.id, "c-body", { op: "rewrite", base_revision: d.revision });
    const id = res.body.operation.id;
    await waitOp(id, ["applied", "failed"]);
    const q = "select id from deck.operations where id = $1";
    expect(await select(team.viewer, q, [id])).toHaveLength(1);
    expect(await select(team.owner, q, [id])).toHaveLength(1);
    const other = await createTeam("Other");
    expect(await select(other.owner, q, [id])).toHaveLength(0);
    expectError(await call(`/api/deck/operations/${id}`, { token: await tokenFor(other.owner) }), 404, "not_found");
    expectError(await call(`/api/deck/decks/${d.id}/operations`, { token: await tokenFor(other.owner) }), 404, "not_found");
    // Writes go through the api and the RPCs only.
    for (const sql of ["update deck.operations set state = 'applied' where id = $1", "delete from deck.operations where id = $1"]) {
      await expect(select(team.owner, sql, [id])).rejects.toMatchObject({ code: "42501" });
    }
    // Another org's member cannot discard it (PT404), a viewer of the org cannot (42501).
    await expect(select(other.owner, "select * from deck.discard_operation($1)", [id])).rejects.toMatchObject({ code: "PT404" });
    await expect(select(team.viewer, "select * from deck.discard_operation($1)", [id])).rejects.toMatchObject({ code: "42501" });
  });

  it("a private deck's operations are its readers' only: another member of the org reads none", async () => {
    const d = await createDeck(team.member, team.orgId);
    await scriptFake(stack.fakeAiUrl, team.key, { mode: "ok", text: answer({ title: "T", body: "B" }) });
    const res = await requestOp(team.member, d.id, "c-body", { op: "rewrite", base_revision: d.revision });
    await waitOp(res.body.operation.id, ["applied", "failed"]);
    await admin.query("update content.documents set visibility = 'private' where id = $1", [d.id]);
    const q = "select id from deck.operations where id = $1";
    expect(await select(team.member, q, [res.body.operation.id])).toHaveLength(1); // the owner of the deck
    expect(await select(team.viewer, q, [res.body.operation.id])).toHaveLength(0);
  });
});

describe("the OpenAPI spec", () => {
  it("describes the operations, review and themes routes with their request schemas", async () => {
    const res = await call("/api/openapi.json");
    expect(res.status, res.raw).toBe(200);
    expect(Object.keys(res.body.paths)).toEqual(expect.arrayContaining([
      "/api/deck/decks/{documentId}/cards/{cardId}/ai", "/api/deck/decks/{documentId}/operations", "/api/deck/operations/{id}",
      "/api/deck/operations/{id}/apply", "/api/deck/operations/{id}/discard", "/api/deck/templates/{documentId}/review", "/api/deck/themes",
    ]));
    expect(Object.keys(res.body.components.schemas.DeckOperationRequest.properties)).toEqual(
      expect.arrayContaining(["op", "base_revision", "language", "tone", "instructions", "tier"]));
    expect(res.body.components.schemas.DeckThemePage).toBeDefined();
  });
});
