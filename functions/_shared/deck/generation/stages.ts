// deck.generate: one generation from its stored request to a written deck. Resumable: every stage
// stores its artefact before the next starts (the outline on the generation, each card's layout,
// content and image on its card row), and every AI call is keyed by (generation, stage, card), so
// a run that dies (pg-boss retries the job) skips what is stored and finds in the gateway the
// calls already made: no stage is paid for twice and no provider is asked twice for one thing.
//
//   outline  (held at outline_ready when asked; POST .../outline approves and queues the job again)
//   structure: a layout and an image prompt per card (a template's layouts are kept)
//   cards: every card's content and every image, in parallel, at most `concurrency` AI calls at
//          once (the gateway's rate limits also apply: a full bucket waits, see calls.ts)
//   done: the deck's body written once (one version, "Generated"), both stages settled, the
//         export requested when exportAs asked for one
//
// A provider failure never fails a card: an invalid answer gets one repair call, then the card is
// built from its outline (and not charged); a failed image leaves the card without one (and is
// not charged). Only an outline that cannot be made fails the generation (nothing is charged).
// Cancel (the api) settles what was finished and queues this job once more, which writes the
// finished cards into the deck and stops.
import { limiter } from "../../limiter.ts";
import { sql } from "kysely";
import type { AiWorkerDeps } from "../../ai/failure.ts";
import type { Submitter } from "../../ai/submit.ts";
import type { StorageAccess } from "../../content/storage.ts";
import { discardAsset } from "../../content/assets.ts";
import { readCurrent, writeBody } from "../../content/documents.ts";
import { asService, type Db } from "../../db/client.ts";
import { ApiError, fromPostgresError } from "../../http/errors.ts";
import type { JobSender } from "../../jobs/queue.ts";
import type { Card } from "../kind.ts";
import { cardTitle, type Layout } from "../layouts.ts";
import { GenerationRequest } from "../params.ts";
import { aiCall, type CallResult } from "./calls.ts";
import { imageToAsset, type OutputFile } from "./images.ts";
import { IMAGE_AI_TIER, TEXT_AI_TIER } from "./plan.ts";
import {
  contentCall, fallbackCard, fallbackLayout, fallbackOutline, type Outline, type OutlineCard, outlineCall, type Read, readCard,
  readOutline, readStructure, repairCall, structureCall, type TextCall,
} from "./prompts.ts";
import {
  cardHasAsset, type CardRow, finishGeneration, type GenerationRow, loadCards, loadGeneration, setStage, statusOf, storeCard, storeImage,
  storeOutline, storeStructure,
} from "./store.ts";
import { requestExport } from "../exports/request.ts";

export interface GenerationDeps {
  db: Db;
  storage: StorageAccess;
  jobs: JobSender;
  ai: Omit<AiWorkerDeps, "db">;
  /** AI calls in flight at once per generation (default 8). */
  concurrency?: number;
  sleep?: (ms: number) => Promise<void>;
}

type Ask = (req: { modality: "text" | "image"; tier: "economy" | "balanced" | "premium"; input: unknown; idempotencyKey: string }) => Promise<CallResult>;

type TextOutcome<T> = { value: T; repaired: boolean } | { failed: CallResult & { ok: false } } | { invalid: string };

/** One text stage call, read by `reader`; one repair call when the answer is invalid. */
async function askText<T>(ask: Ask, key: string, req: TextCall, reader: (text: string) => Read<T>): Promise<TextOutcome<T>> {
  const first = await ask({ modality: "text", tier: TEXT_AI_TIER, input: req, idempotencyKey: key });
  if (!first.ok) return { failed: first };
  const text = String(first.output.text ?? "");
  const r1 = reader(text);
  if (r1.ok) return { value: r1.value, repaired: false };
  const second = await ask({ modality: "text", tier: TEXT_AI_TIER, input: repairCall(req, text, r1.problem), idempotencyKey: `${key}:repair` });
  if (!second.ok) return { invalid: r1.problem };
  const r2 = reader(String(second.output.text ?? ""));
  return r2.ok ? { value: r2.value, repaired: true } : { invalid: r2.problem };
}

/** A template's cards as copied at admission (the worker never reads the template itself). */
async function templateCards(db: Db, g: GenerationRow): Promise<Card[] | undefined> {
  if (!g.template_id) return undefined;
  const { rows } = await asService(db, (tx) =>
    sql<{ example: { layout: Layout; data: unknown } | null }>`
      select example from deck.generation_cards where generation_id = ${g.id}::uuid order by position`.execute(tx));
  if (rows.some((r) => !r.example)) return undefined;
  return rows.map((r, i) => ({ id: `t${i}`, layout: r.example!.layout, data: r.example!.data, image: null, notes: "" }) as Card);
}

export async function runGeneration(deps: GenerationDeps, id: string): Promise<Record<string, unknown>> {
  let g = await loadGeneration(deps.db, id);
  if (!g) return { skipped: "no such generation" };
  if (g.status === "canceled") {
    await writeDeck(deps, g, "Generation canceled");
    return { skipped: "canceled; finished cards written" };
  }
  if (g.status !== "pending") return { skipped: `already ${g.status}` };
  const params = GenerationRequest.parse(g.params);
  const who: Submitter = { orgId: g.org_id, userId: g.user_id, apiKeyId: g.api_key_id };
  const ask: Ask = (req) => aiCall({ ai: { db: deps.db, ...deps.ai }, sleep: deps.sleep }, who, req);
  const template = g.source === "template" ? await templateCards(deps.db, g) : undefined;

  // ---- outline
  if (!g.outline) {
    await setStage(deps.db, id, "outline");
    const r = await askText(ask, `deck:${id}:outline`, outlineCall(params, g.num_cards, template?.map((c) => cardTitle(c) || c.layout)),
      (t) => readOutline(t, g!.num_cards));
    let outline: Outline;
    if ("value" in r) outline = r.value;
    else if ("invalid" in r) outline = fallbackOutline(params.inputText, g.num_cards, params.title);
    else {
      await finishGeneration(deps.db, id, "failed", { code: "outline_failed", message: `the outline could not be made: ${r.failed.message}` });
      return { status: "failed", stage: "outline" };
    }
    if (params.title) outline = { ...outline, title: params.title };
    g = await storeOutline(deps.db, id, outline);
  }
  if (g.status !== "pending") return { skipped: `now ${g.status}` };
  if (g.stage === "outline_ready") return { held: "outline_ready" };
  const outline = g.outline!;
  const outlineOf = (pos: number): OutlineCard => outline.cards[pos] ?? { title: outline.title, points: [outline.title] };

  // ---- structure
  let cards = await loadCards(deps.db, id);
  if (cards.some((c) => c.layout === null || (c.wants_image && c.image_prompt === null))) {
    let chosen: { layout: Layout; image_prompt: string }[] | undefined;
    if (cards.some((c) => c.layout === null)) {
      await setStage(deps.db, id, "structure");
      const r = await askText(ask, `deck:${id}:structure`, structureCall(outline, params.imageOptions.style), (t) => readStructure(t, g!.num_cards));
      if ("value" in r) chosen = r.value;
    }
    const style = params.imageOptions.style ? `, ${params.imageOptions.style}` : "";
    await storeStructure(deps.db, id, cards.map((c) => {
      const o = outlineOf(c.position);
      const layout = c.layout ?? chosen?.[c.position]?.layout ?? fallbackLayout(c.position, cards.length, c.wants_image);
      const prompt = c.image_prompt ?? (chosen?.[c.position]?.image_prompt?.trim() || `${o.title}: ${o.points.slice(0, 2).join(", ")}`);
      return { layout, image_prompt: `${prompt}${style}`.slice(0, 1000) };
    }));
    cards = await loadCards(deps.db, id);
  }

  // ---- cards and images, in parallel
  const limit = limiter(deps.concurrency ?? 8);
  // A deck deleted meanwhile ends the run (its finished cards charged, the rest released): no
  // provider is asked for a card or picture nobody can see.
  const stillPending = async () => {
    const now = await statusOf(deps.db, id);
    if (now?.status === "pending" && now.document_id === null) {
      await finishGeneration(deps.db, id, "failed", { code: "deck_deleted", message: "the deck was deleted while it was generated; what was finished is charged, the rest released" });
      return false;
    }
    return now?.status === "pending";
  };
  const contentTask = async (c: CardRow) => {
    if (!(await stillPending())) return;
    const layout = c.layout!;
    const req = contentCall(params, {
      deckTitle: outline.title, position: c.position, total: cards.length, outline: outlineOf(c.position), layout,
      example: template?.[c.position]?.data,
    });
    const r = await askText(ask, `deck:${id}:card:${c.position}`, req, (t) => readCard(layout, t));
    if ("value" in r) await storeCard(deps.db, id, c.position, r.value, r.repaired ? "repaired" : "model");
    else await storeCard(deps.db, id, c.position, fallbackCard(layout, outlineOf(c.position)), "fallback");
  };
  const imageTask = async (c: CardRow) => {
    if (!(await stillPending())) return;
    const r = await ask({
      modality: "image", tier: IMAGE_AI_TIER[g!.image_tier ?? "basic"], input: { prompt: (c.image_prompt ?? outline.title).slice(0, 4000) },
      idempotencyKey: `deck:${id}:image:${c.position}`,
    });
    if (!r.ok) return void (await storeImage(deps.db, id, c.position, { error: `${r.code}: ${r.message}` }));
    // Canceled while the provider worked: the picture is not made a deck asset (nor charged).
    if (!(await stillPending())) return;
    const file = (r.output.files as OutputFile[] | undefined)?.[0];
    if (!file || !g!.document_id) return void (await storeImage(deps.db, id, c.position, { error: "no image file was produced" }));
    let stored: { assetId: string } | { refused: string };
    try {
      stored = await imageToAsset(deps, g!.document_id, file, `${c.card_id}-${id.slice(0, 8)}.${file.mime_type.split("/")[1] ?? "png"}`);
    } catch (err) {
      // The deck is gone or its org is out of storage: a failed image, not a failed run.
      const known = err instanceof ApiError ? err : fromPostgresError(err);
      if (!known || known.status >= 500 || known.status === 429) throw err;
      stored = { refused: known.message };
    }
    const alt = outlineOf(c.position).title.slice(0, 300);
    const kept = await storeImage(deps.db, id, c.position, "assetId" in stored ? { assetId: stored.assetId, alt } : { error: `not stored: ${stored.refused}` });
    // Canceled (or the deck deleted) while the picture was copied: it is not the deck's.
    if (!kept && "assetId" in stored && !(await cardHasAsset(deps.db, id, stored.assetId))) await discardAsset(deps.db, stored.assetId);
  };
  const tasks = [
    ...cards.filter((c) => c.content === null).map((c) => limit(() => contentTask(c))),
    ...cards.filter((c) => c.image_status === "pending").map((c) => limit(() => imageTask(c))),
  ];
  const settled = await Promise.allSettled(tasks);
  const crashed = settled.find((s): s is PromiseRejectedResult => s.status === "rejected");
  if (crashed) throw crashed.reason;

  // ---- done
  g = (await loadGeneration(deps.db, id))!;
  if (g.status === "canceled") {
    await writeDeck(deps, g, "Generation canceled");
    return { skipped: "canceled; finished cards written" };
  }
  if (g.status !== "pending") return { skipped: `now ${g.status}` };
  if (!(await stillPending())) return { skipped: "the deck was deleted" };
  await writeDeck(deps, g, "Generated");
  // A cancel may land between the write and the finish: only a completed generation is exported.
  const ended = await finishGeneration(deps.db, id, "completed");
  if (ended.status === "completed" && g.export_format && g.document_id) await requestTheExport(deps, g);
  return { status: "completed", cards: g.cards_done, images: g.images_done, images_failed: g.images_failed };
}

/** Writes the finished cards into the deck (merged by card id with what is there), one version. */
export async function writeDeck(deps: GenerationDeps, g: GenerationRow, message: string): Promise<void> {
  if (!g.document_id) return;
  const cards = (await loadCards(deps.db, g.id)).filter((c) => c.content !== null && c.layout !== null);
  if (cards.length === 0) return;
  const generated = cards.map((c) => ({
    id: c.card_id, layout: c.layout, data: c.content, notes: "",
    image: c.asset_id ? { asset_id: c.asset_id, alt: c.image_alt ?? "" } : null,
  }));
  const params = GenerationRequest.safeParse(g.params);
  await asService(deps.db, async (tx) => {
    let cur;
    try {
      cur = await readCurrent(tx, g.document_id!, { lock: true });
    } catch (err) {
      if (err instanceof ApiError && err.status === 404) return; // the deck was deleted meanwhile
      throw err;
    }
    const body = cur.body as { cards?: { id: string }[] };
    const ours = new Set(generated.map((c) => c.id));
    const kept = (body.cards ?? []).filter((c) => !ours.has(c.id));
    const title = cur.row.title || (params.success ? params.data.title : undefined) || g.outline?.title || "Untitled deck";
    await writeBody(tx, g.document_id!, { base_revision: cur.revision, body: { ...cur.body, cards: [...generated, ...kept] }, title, message });
  });
}

async function requestTheExport(deps: GenerationDeps, g: GenerationRow): Promise<void> {
  try {
    await asService(deps.db, async (tx) => {
      const r = await requestExport(tx, deps.jobs, {
        orgId: g.org_id, documentId: g.document_id!, format: g.export_format!, userId: g.user_id, apiKeyId: g.api_key_id,
      });
      await sql`update deck.generations set export_id = ${r.exportId}::uuid where id = ${g.id}::uuid`.execute(tx);
    });
  } catch (err) {
    // The deck is done; a refused export leaves exportUrl null (the client can ask for one).
    console.warn(`deck generation ${g.id}: the export could not be requested: ${(err as Error).message}`);
  }
}
