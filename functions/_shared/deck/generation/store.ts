// The pipeline's reads and writes of deck.generations and deck.generation_cards, each its own
// short service transaction (no lock is held across a provider call). The invariants (each card
// and image stored once, counters, in-order deck.card broadcasts, settling once) are in the SQL
// functions of the generations migration.
import { sql } from "kysely";
import { asService, type Db } from "../../db/client.ts";
import type { Layout } from "../layouts.ts";
import type { Outline } from "./prompts.ts";

export interface GenerationRow {
  id: string;
  org_id: string;
  user_id: string | null;
  api_key_id: string | null;
  document_id: string | null;
  source: "prompt" | "template";
  template_id: string | null;
  params: Record<string, unknown>;
  idempotency_key: string | null;
  status: "pending" | "completed" | "failed" | "canceled";
  stage: string;
  progress: number;
  num_cards: number;
  image_tier: "basic" | "advanced" | "premium" | null;
  price_card: number;
  price_image: number;
  credits_reserved: number;
  credits_deducted: number;
  cards_total: number;
  cards_done: number;
  cards_fallback: number;
  images_total: number;
  images_done: number;
  images_failed: number;
  outline: Outline | null;
  outline_approved_at: string | null;
  hold_outline: boolean;
  export_format: "pptx" | "pdf" | "html" | null;
  export_id: string | null;
  error: { code: string; message: string } | null;
  created_at: string;
  finished_at: string | null;
}

export interface CardRow {
  position: number;
  card_id: string;
  layout: Layout | null;
  wants_image: boolean;
  image_prompt: string | null;
  content: Record<string, unknown> | null;
  content_source: string | null;
  image_status: "none" | "pending" | "done" | "failed";
  asset_id: string | null;
  image_alt: string | null;
}

export const GENERATION_COLUMNS = sql.raw(`id, org_id, user_id, api_key_id, document_id, source, template_id, params, idempotency_key,
  status, stage, progress, num_cards, image_tier, price_card::float8 as price_card, price_image::float8 as price_image,
  credits_reserved::float8 as credits_reserved, credits_deducted::float8 as credits_deducted, cards_total, cards_done, cards_fallback,
  images_total, images_done, images_failed, outline, outline_approved_at, hold_outline, export_format, export_id, error, created_at, finished_at`);

export async function loadGeneration(db: Db, id: string): Promise<GenerationRow | undefined> {
  return await asService(db, async (tx) =>
    (await sql<GenerationRow>`select ${GENERATION_COLUMNS} from deck.generations where id = ${id}::uuid`.execute(tx)).rows[0]);
}

/** The generation's status and its deck (null once the deck was deleted). */
export async function statusOf(db: Db, id: string): Promise<{ status: string; document_id: string | null } | undefined> {
  return await asService(db, async (tx) =>
    (await sql<{ status: string; document_id: string | null }>`select status, document_id from deck.generations where id = ${id}::uuid`.execute(tx)).rows[0]);
}

export async function loadCards(db: Db, id: string): Promise<CardRow[]> {
  return await asService(db, async (tx) =>
    (await sql<CardRow>`
      select position, card_id, layout, wants_image, image_prompt, content, content_source, image_status, asset_id, image_alt
      from deck.generation_cards where generation_id = ${id}::uuid order by position`.execute(tx)).rows);
}

export async function setStage(db: Db, id: string, stage: string): Promise<void> {
  await asService(db, (tx) => sql`select private.deck_set_stage(${id}::uuid, ${stage})`.execute(tx));
}

export async function storeOutline(db: Db, id: string, outline: Outline): Promise<GenerationRow> {
  await asService(db, (tx) => sql`select private.deck_store_outline(${id}::uuid, ${JSON.stringify(outline)}::jsonb)`.execute(tx));
  return (await loadGeneration(db, id))!;
}

export async function storeStructure(db: Db, id: string, cards: { layout: Layout; image_prompt: string }[]): Promise<void> {
  await asService(db, (tx) => sql`select private.deck_store_structure(${id}::uuid, ${JSON.stringify(cards)}::jsonb)`.execute(tx));
}

export async function storeCard(db: Db, id: string, position: number, content: Record<string, unknown>, source: string): Promise<boolean> {
  return await asService(db, async (tx) =>
    (await sql<{ ok: boolean }>`select private.deck_store_card(${id}::uuid, ${position}::int, ${JSON.stringify(content)}::jsonb, ${source}) as ok`
      .execute(tx)).rows[0].ok);
}

export async function storeImage(db: Db, id: string, position: number, result: { assetId: string; alt: string } | { error: string }): Promise<boolean> {
  const assetId = "assetId" in result ? result.assetId : null;
  const alt = "assetId" in result ? result.alt : null;
  const error = "error" in result ? result.error : null;
  return await asService(db, async (tx) =>
    (await sql<{ ok: boolean }>`select private.deck_store_image(${id}::uuid, ${position}::int, ${assetId}::uuid, ${alt}, ${error}) as ok`
      .execute(tx)).rows[0].ok);
}

/** Whether one of the generation's cards holds this asset (an image recorded by an earlier run). */
export async function cardHasAsset(db: Db, id: string, assetId: string): Promise<boolean> {
  return await asService(db, async (tx) =>
    (await sql<{ ok: boolean }>`select exists (select 1 from deck.generation_cards where generation_id = ${id}::uuid and asset_id = ${assetId}::uuid) as ok`
      .execute(tx)).rows[0].ok);
}

/** Ends the generation (once; an already ended one is returned as it is). */
export async function finishGeneration(db: Db, id: string, status: "completed" | "failed", error?: { code: string; message: string }): Promise<{ status: string }> {
  return await asService(db, async (tx) =>
    (await sql<{ status: string }>`
      select (private.deck_finish_generation(${id}::uuid, ${status}, ${error ? JSON.stringify(error) : null}::jsonb)).status`.execute(tx)).rows[0]);
}

/** Counts a run that ended in an error; how many have. */
export async function noteFailedRun(db: Db, id: string): Promise<number> {
  return await asService(db, async (tx) =>
    (await sql<{ n: number }>`update deck.generations set failed_runs = failed_runs + 1 where id = ${id}::uuid returning failed_runs as n`
      .execute(tx)).rows[0]?.n ?? 0);
}
