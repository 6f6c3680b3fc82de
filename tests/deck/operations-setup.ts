// Shared by the AI card operation tests: a team with credits whose "balanced" text tier routes to
// a model of the file's own on the OpenAI fake (so scripts and counts are the file's alone), a
// deck made through the content api, and reads of what the worker did.
import { expect } from "vitest";
import { giveCredits, stack } from "../helpers/ai.ts";
import { orgRoute, textModel } from "../helpers/ai-jobs.ts";
import { admin, createTeam, type Team, type TestUser } from "../helpers/db.ts";
import { fakeCalls } from "../helpers/fake-ai.ts";
import { call } from "../helpers/http.ts";
import { tokenFor } from "../helpers/supabase.ts";
import { waitFor } from "../helpers/wait.ts";

export const CARDS = [
  { id: "c-title", layout: "title", data: { title: "Launch plan", subtitle: "From beta to general availability" }, image: null, notes: "Welcome." },
  { id: "c-why", layout: "bullets", data: { title: "Why now", bullets: ["Teams ship AI weekly", "Backends slow them down"] }, image: null, notes: "" },
  { id: "c-body", layout: "text", data: { title: "The plan", body: "We open the beta to everyone in March." }, image: null, notes: "" },
];
export const DECK = { theme_id: "plinth-light", dimensions: "16x9", cards: CARDS };

export interface OpsTeam extends Team {
  /** The fake's script key for this team's balanced text model. */
  key: string;
  deployment: string;
}

export async function opsTeam(credits = 10_000): Promise<OpsTeam> {
  const team = await createTeam("Decks");
  if (credits > 0) await giveCredits(team.orgId, credits);
  const { deployments: [d] } = await textModel(["openai"]);
  await orgRoute(team.orgId, "text", "balanced", [d.id]);
  return { ...team, key: d.key, deployment: d.id };
}

export async function as(user: TestUser) {
  return await tokenFor(user);
}

export async function createDeck(user: TestUser, orgId: string, body: unknown = DECK): Promise<{ id: string; revision: number }> {
  const res = await call("/api/content/documents", { token: await tokenFor(user), json: { org_id: orgId, kind: "deck", title: "Launch", body } });
  expect(res.status, res.raw).toBe(201);
  return res.body;
}

/** The card's data the model answers with, as the op asks: {"data": …}. */
export const answer = (data: unknown) => JSON.stringify({ data });

export function requestOp(user: TestUser, deckId: string, cardId: string, body: Record<string, unknown>, key?: string) {
  return tokenFor(user).then((token) =>
    call(`/api/deck/decks/${deckId}/cards/${cardId}/ai`, { token, json: body, headers: key ? { "idempotency-key": key } : {} }));
}

export async function operation(id: string) {
  return (await admin.query("select * from deck.operations where id = $1", [id])).rows[0];
}

export async function waitOp(id: string, states: string[]) {
  return await waitFor(`operation ${id} to be ${states.join(" or ")}`, async () => {
    const op = await operation(id);
    return op && states.includes(op.state) ? op : undefined;
  });
}

export async function deckBody(id: string) {
  const res = await admin.query("select revision, body from content.documents where id = $1", [id]);
  return res.rows[0] as { revision: number; body: typeof DECK };
}

export async function currentDeck(user: TestUser, id: string) {
  const res = await call(`/api/content/documents/${id}`, { token: await tokenFor(user) });
  expect(res.status, res.raw).toBe(200);
  return res.body as { revision: number; body: typeof DECK };
}

export async function saveDeck(user: TestUser, id: string, baseRevision: number, body: unknown) {
  return call(`/api/content/documents/${id}`, { method: "PUT", token: await tokenFor(user), json: { base_revision: baseRevision, body } });
}

export async function requests(key: string) {
  return (await fakeCalls(stack.fakeAiUrl, key)).filter((c) => c.method === "POST").length;
}

export async function counts(orgId: string) {
  const { rows } = await admin.query(
    `select (select count(*)::int from deck.operations where org_id = $1) as operations,
            (select count(*)::int from ai.jobs where org_id = $1 and source = 'deck') as ai_jobs`, [orgId]);
  return rows[0] as { operations: number; ai_jobs: number };
}
