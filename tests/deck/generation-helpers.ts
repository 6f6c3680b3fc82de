// Deck generation test helpers: a team whose text and image tiers route to models of the test's
// own on the fake OpenAI (JSON mode answers the schema the pipeline sends; images are PNGs), the
// api calls as the team's member, reading a generation and its cards, and the pipeline run in this
// process with a worker that dies at a chosen query (then everything it would still have done fails).
import { expect } from "vitest";
import { createDb } from "../../functions/_shared/db/client.ts";
import { createAdapterRegistry } from "../../functions/_shared/ai/adapters.ts";
import type { JobSender } from "../../functions/_shared/jobs/queue.ts";
import { Producer } from "../../functions/_shared/jobs/queue.ts";
import { type GenerationDeps } from "../../functions/_shared/deck/generation/stages.ts";
import { createModel, giveCredits, stack } from "../helpers/ai.ts";
import { orgRoute } from "../helpers/ai-jobs.ts";
import { fakeProviderEnv } from "../helpers/ai-worker.ts";
import { admin, createTeam, type Team } from "../helpers/db.ts";
import { fakeCalls } from "../helpers/fake-ai.ts";
import { call, type JsonResponse } from "../helpers/http.ts";
import { tokenFor } from "../helpers/supabase.ts";
import { waitFor } from "../helpers/wait.ts";

export const PRICES = { card: 3, basic: 2, advanced: 10, premium: 20 };

export interface DeckTeam extends Team {
  token: string;
  textKey: string;
  imageKey: string;
  textDeployment: string;
  imageDeployment: string;
}

/** A team (Team plan) with credits, its text (balanced) and image (all tiers) routes on its own fake models. */
export async function deckTeam(credits: number, opts: { plan?: string | null } = {}): Promise<DeckTeam> {
  const team = await createTeam("Decks", opts);
  if (credits > 0) await giveCredits(team.orgId, credits);
  const text = await createModel({ modality: "text", deployments: [{ provider: "openai" }], maxOutput: 16_000 });
  const image = await createModel({ modality: "image", deployments: [{ provider: "openai" }] });
  await orgRoute(team.orgId, "text", "balanced", [text.deployments[0].id]);
  for (const tier of ["economy", "balanced", "premium"]) await orgRoute(team.orgId, "image", tier, [image.deployments[0].id]);
  return {
    ...team,
    token: await tokenFor(team.member),
    textKey: text.deployments[0].key,
    imageKey: image.deployments[0].key,
    textDeployment: text.deployments[0].id,
    imageDeployment: image.deployments[0].id,
  };
}

export function generate(auth: { token?: string; apiKey?: string }, body: Record<string, unknown>, headers: Record<string, string> = {}): Promise<JsonResponse> {
  return call("/api/deck/generations", { ...auth, json: body, headers });
}

export function getGeneration(auth: { token?: string; apiKey?: string }, id: string): Promise<JsonResponse> {
  return call(`/api/deck/generations/${id}`, auth);
}

/** Waits until GET says the generation is in one of `statuses` (or at `stage`). */
export async function waitForGeneration(token: string, id: string, until: { statuses?: string[]; stage?: string } = {}, timeoutMs = 60_000) {
  const statuses = until.statuses ?? ["completed", "failed", "canceled"];
  return await waitFor(`generation ${id} ${until.stage ?? statuses.join("|")}`, async () => {
    const res = await getGeneration({ token }, id);
    expect(res.status, res.raw).toBe(200);
    if (until.stage ? res.body.stage === until.stage : statuses.includes(res.body.status)) return res.body;
    return undefined;
  }, timeoutMs);
}

export async function generationRow(id: string) {
  const { rows } = await admin.query(
    `select id, org_id, user_id, api_key_id, document_id, status, stage, progress, cards_total, cards_done, cards_fallback, images_total,
            images_done, images_failed, credits_reserved::int, credits_deducted::int, cards_reservation_id, images_reservation_id, outline, error
     from deck.generations where id = $1`, [id]);
  return rows[0];
}

export async function cardRows(id: string) {
  const { rows } = await admin.query(
    `select position, card_id, layout, content, content_source, image_status, asset_id, broadcast_at from deck.generation_cards
     where generation_id = $1 order by position`, [id]);
  return rows;
}

export async function deckBody(documentId: string) {
  const { rows } = await admin.query(`select title, body, revision from content.documents where id = $1`, [documentId]);
  return rows[0];
}

export async function countCalls(key: string): Promise<number> {
  return (await fakeCalls(stack.fakeAiUrl, key)).length;
}

export async function countRows(sqlText: string, params: unknown[]): Promise<number> {
  return (await admin.query(sqlText, params)).rows[0].n as number;
}

/** A JobSender that queues nothing (admission in this process, the run in this process too). */
export const noJobs: JobSender = {
  ready: async () => ({ send: async () => null }) as never,
};

/**
 * The pipeline's deps in this process. With `dieAt`, the `nth` query matching it fails as if the
 * process had been killed just before it, and so does every query after it (a dead process does
 * nothing more). close() ends the pool.
 */
export function inProcessDeps(opts: { dieAt?: RegExp; nth?: number; concurrency?: number } = {}): GenerationDeps & { close(): Promise<void>; dead(): boolean } {
  const { db, pool } = createDb(stack.dbUrl, 6);
  let seen = 0;
  let dead = false;
  pool.on("connect", (client) => {
    const query = client.query.bind(client) as (...args: unknown[]) => unknown;
    (client as unknown as { query: (...args: unknown[]) => unknown }).query = (text: unknown, ...rest: unknown[]) => {
      if (dead) return Promise.reject(new Error("the worker was killed"));
      if (opts.dieAt && typeof text === "string" && opts.dieAt.test(text) && ++seen >= (opts.nth ?? 1)) {
        dead = true;
        return Promise.reject(new Error("the worker was killed"));
      }
      return query(text, ...rest);
    };
  });
  return {
    db,
    storage: { url: stack.supabaseUrl, serviceRoleKey: stack.serviceRoleKey },
    jobs: noJobs,
    ai: {
      adapters: createAdapterRegistry(db, fakeProviderEnv()),
      storage: { url: stack.supabaseUrl, serviceRoleKey: stack.serviceRoleKey },
      schedule: async () => {},
      pollMs: 50,
    },
    concurrency: opts.concurrency,
    close: () => pool.end(),
    dead: () => dead,
  };
}

/** Queues deck.generate for the stack's worker, as pg-boss's retry of a dead run would. */
export async function handToWorker(generationId: string): Promise<void> {
  const producer = new Producer(stack.dbUrl);
  try {
    const boss = await producer.ready();
    await boss.send("deck.generate", { generation_id: generationId }, { singletonKey: generationId });
  } finally {
    await producer.stop();
  }
}
