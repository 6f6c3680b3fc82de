// Admitting a generation, in the POST's transaction as the caller (asUser): the request is
// validated (zod, at the route), its theme resolved (a global theme or the org's own), the
// template checks made (unknown category 400, the same prompt already in the category 409, the
// same batchKey answers the generation that made it), the deck document created (kind deck, empty,
// with its theme and dimensions), and then private.deck_start_generation checks ai.use and
// content.write, prices the whole deck from deck.prices, reserves it (PT402 when the org has too
// few credits, before any row survives, any job is queued or any provider is called: the
// transaction rolls back whole), and records the generation and its cards. deck.generate is queued
// in the same transaction.
import { sql } from "kysely";
import type { Submitter } from "../../ai/submit.ts";
import { createDocument } from "../../content/documents.ts";
import type { Tx } from "../../db/client.ts";
import { ApiError } from "../../http/errors.ts";
import { enqueue, type JobSender } from "../../jobs/queue.ts";
import { DEFAULT_THEME, DeckBody } from "../kind.ts";
import { type FromTemplateRequest, GenerationRequest } from "../params.ts";
import { IMAGE_AI_TIER, type PlannedCard, planFromPrompt, planFromTemplate, promptHash, TEXT_AI_TIER } from "./plan.ts";

export interface Admitted {
  generationId: string;
  /** false: an earlier request's generation (same Idempotency-Key, or same template batchKey). */
  created: boolean;
}

async function themeExists(tx: Tx, orgId: string, themeId: string): Promise<boolean> {
  const { rows } = await sql<{ ok: boolean }>`
    select exists (select 1 from deck.global_themes where id = ${themeId})
        or exists (select 1 from deck.themes where id = ${themeId} and org_id = ${orgId}::uuid) as ok`.execute(tx);
  return rows[0].ok;
}

async function byIdempotencyKey(tx: Tx, who: Submitter, key: string): Promise<string | undefined> {
  // Requests with one key queue here until the first commits, so a repeat finds its generation.
  await sql`select pg_advisory_xact_lock(hashtextextended(${`deck.generation:${who.orgId}:${key}`}, 0))`.execute(tx);
  const { rows } = await sql<{ id: string; user_id: string | null; api_key_id: string | null }>`
    select id, user_id, api_key_id from deck.generations where org_id = ${who.orgId}::uuid and idempotency_key = ${key}`.execute(tx);
  const g = rows[0];
  if (!g) return undefined;
  if (g.user_id !== who.userId || g.api_key_id !== who.apiKeyId) {
    throw new ApiError(409, "conflict", "this Idempotency-Key was already used in this org by someone else; send a fresh one");
  }
  return g.id;
}

interface Start {
  req: GenerationRequest;
  source: "prompt" | "template";
  templateId?: string;
  plan: PlannedCard[];
  idempotencyKey?: string;
}

async function start(tx: Tx, jobs: JobSender, who: Submitter, s: Start): Promise<Admitted> {
  const { req } = s;
  if (s.idempotencyKey) {
    const found = await byIdempotencyKey(tx, who, s.idempotencyKey);
    if (found) return { generationId: found, created: false };
  }
  let template: Record<string, string | null> | null = null;
  if (req.saveAsTemplate) {
    const t = req.saveAsTemplate;
    const { rows: [cat] } = await sql<{ n: number }>`select count(*)::int as n from deck.template_categories where key = ${t.category}`.execute(tx);
    if (!cat.n) throw new ApiError(400, "invalid_request", `no template category "${t.category}"`, [{ path: "saveAsTemplate.category", message: "unknown category" }]);
    if (t.batchKey) {
      // The rights first (the start function checks them again): what a key names is never told
      // to someone who may not generate here.
      const { rows: [may] } = await sql<{ ok: boolean }>`
        select coalesce(auth.role(), 'service_role') = 'service_role'
            or (private.has_permission(${who.orgId}::uuid, 'ai.use') and private.has_permission(${who.orgId}::uuid, 'content.write')) as ok`.execute(tx);
      if (!may.ok) throw new ApiError(403, "forbidden", "you need ai.use and content.write in this org to generate decks");
      // A resumed batch finds what it already made.
      await sql`select pg_advisory_xact_lock(hashtextextended(${`deck.template:${who.orgId}:${t.batchKey}`}, 0))`.execute(tx);
      const { rows } = await sql<{ generation_id: string | null; mine: boolean }>`
        select t.generation_id,
               coalesce(g.user_id is not distinct from ${who.userId}::uuid and g.api_key_id is not distinct from ${who.apiKeyId}::uuid, false) as mine
        from deck.templates t left join deck.generations g on g.id = t.generation_id
        where t.org_id = ${who.orgId}::uuid and t.batch_key = ${t.batchKey}`.execute(tx);
      // Only the batch's own runner (the same member or key) is answered with what it made.
      if (rows[0]?.generation_id && rows[0].mine) return { generationId: rows[0].generation_id, created: false };
      if (rows[0]) throw new ApiError(409, "conflict", `batchKey "${t.batchKey}" already names a template in this org`);
    }
    const hash = await promptHash(req.inputText);
    const { rows: [dup] } = await sql<{ n: number }>`
      select count(*)::int as n from deck.templates
      where org_id = ${who.orgId}::uuid and category = ${t.category} and prompt_hash = ${hash} and status <> 'rejected'`.execute(tx);
    if (dup.n) throw new ApiError(409, "conflict", `a template from the same prompt is already in category "${t.category}"`);
    template = { category: t.category, locale: t.locale, prompt: req.inputText.slice(0, 4000), prompt_hash: hash, batch_key: t.batchKey ?? null };
  }
  const themeId = req.themeId ?? DEFAULT_THEME;
  if (!(await themeExists(tx, who.orgId, themeId))) {
    throw new ApiError(400, "invalid_request", `no theme "${themeId}" (a global theme or one of this org's)`, [{ path: "themeId", message: "unknown theme" }]);
  }
  const images = req.imageOptions.source !== "noImages";
  const deck = await createDocument(tx, {
    org_id: who.orgId,
    kind: "deck",
    title: req.title ?? "",
    body: DeckBody.parse({ theme_id: themeId, dimensions: req.cardOptions.dimensions, cards: [] }),
  });
  const tiers = images ? [TEXT_AI_TIER, IMAGE_AI_TIER[req.imageOptions.tier]] : [TEXT_AI_TIER];
  const { rows: [g] } = await sql<{ id: string }>`
    select id from private.deck_start_generation(
      ${who.orgId}::uuid, ${who.userId}::uuid, ${who.apiKeyId}::uuid, ${deck.id}::uuid, ${s.source}, ${s.templateId ?? null}::uuid,
      ${JSON.stringify(req)}::jsonb, ${JSON.stringify(s.plan)}::jsonb, ${images ? req.imageOptions.tier : null}, ${s.idempotencyKey ?? null},
      ${req.exportAs ?? null}, ${req.holdOutline}, ${tiers}::text[], ${template ? JSON.stringify(template) : null}::jsonb)`.execute(tx);
  await enqueue(jobs, tx, "deck.generate", { generation_id: g.id }, { singletonKey: g.id });
  return { generationId: g.id, created: true };
}

export async function admitGeneration(tx: Tx, jobs: JobSender, who: Submitter, req: GenerationRequest, idempotencyKey?: string): Promise<Admitted> {
  const images = req.imageOptions.source !== "noImages";
  return await start(tx, jobs, who, { req, source: "prompt", plan: planFromPrompt(req.numCards, images), idempotencyKey });
}

/**
 * Gamma's from-template: a deck the caller can read (RLS decides; anything else is 404) and may
 * copy (403 otherwise) adapted to a new prompt, keeping its card count and layouts; its theme and
 * dimensions unless named. Its cards are copied onto the generation now.
 */
export async function admitFromTemplate(tx: Tx, jobs: JobSender, who: Submitter, body: FromTemplateRequest, idempotencyKey?: string): Promise<Admitted> {
  const { rows: [doc] } = await sql<{ org_id: string; kind: string; body: unknown; title: string }>`
    select org_id, kind, body, title from content.documents where id = ${body.templateId}::uuid`.execute(tx);
  if (!doc || doc.kind !== "deck") throw new ApiError(404, "not_found", "template not found");
  // Adapting a deck copies it (its layouts and its words reach the new deck and the prompts): the
  // content engine's copy right decides, as for a fork, not reading alone.
  const { rows: [access] } = await sql<{ access: { can_copy?: boolean } }>`select content.my_access(${body.templateId}::uuid) as access`.execute(tx);
  if (!access?.access?.can_copy) throw new ApiError(403, "copy_not_allowed", "you may read this deck but not copy it, so it cannot be adapted");
  const parsed = DeckBody.safeParse(doc.body);
  if (!parsed.success || parsed.data.cards.length === 0) throw new ApiError(400, "invalid_request", "the template has no valid cards to adapt");
  const cards = parsed.data.cards.slice(0, 60);
  // The template's own theme, when it is one this org may use; else the default.
  const theme = body.themeId ?? ((await themeExists(tx, who.orgId, parsed.data.theme_id)) ? parsed.data.theme_id : DEFAULT_THEME);
  const req = GenerationRequest.parse({
    inputText: body.prompt,
    numCards: cards.length,
    themeId: theme,
    ...(body.imageOptions ? { imageOptions: body.imageOptions } : {}),
    cardOptions: { dimensions: parsed.data.dimensions },
    ...(body.exportAs ? { exportAs: body.exportAs } : {}),
    ...(body.title ? { title: body.title } : {}),
  });
  const images = req.imageOptions.source !== "noImages";
  return await start(tx, jobs, who, { req, source: "template", templateId: body.templateId, plan: planFromTemplate(cards, images), idempotencyKey });
}
