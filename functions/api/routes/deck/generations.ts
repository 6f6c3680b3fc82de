// Deck generations in the shape of Gamma's public Generate API (POST /generations, GET
// /generations/{id}, POST /generations/from-template), plus Plinth's outline approval and cancel.
// Admission commits the deck, the generation, its credit reservations and its deck.generate job
// in one transaction as the caller (_shared/deck/generation/admission.ts); progress then goes live
// on Realtime (user:<id>, or org:<id> for an API key: events deck.generation and deck.card).
import { createRoute, type OpenAPIHono, z } from "@hono/zod-openapi";
import type { Context } from "hono";
import { sql } from "kysely";
import { asService, asUser } from "../../../_shared/db/client.ts";
import { exportUrl } from "../../../_shared/deck/exports/request.ts";
import { admitFromTemplate, admitGeneration } from "../../../_shared/deck/generation/admission.ts";
import { GENERATION_COLUMNS, type GenerationRow } from "../../../_shared/deck/generation/store.ts";
import { FromTemplateRequest, GenerationRequest } from "../../../_shared/deck/params.ts";
import { ApiError } from "../../../_shared/http/errors.ts";
import { enqueue } from "../../../_shared/jobs/queue.ts";
import { submitterFor } from "../../ai-caller.ts";
import type { ApiEnv } from "../../context.ts";
import { requestMeta, requireAuth } from "../../middleware.ts";
import { commonErrors, ErrorSchema, json, UuidParam } from "../../schemas.ts";

const IdempotencyKey = z.string().min(1).max(200).regex(/^[\x21-\x7e]+$/);
const errors = {
  ...commonErrors,
  402: json(ErrorSchema, "Not enough credits for the whole deck, or a plan limit (nothing was reserved or written)"),
};

const Admitted = z.object({ generationId: z.string().uuid() }).openapi("DeckGenerationAdmitted");

export const GenerationView = z.object({
  generationId: z.string().uuid(),
  status: z.enum(["pending", "completed", "failed", "canceled"]),
  stage: z.string().openapi({ description: "queued, outline, outline_ready, structure, cards, images, done" }),
  progress: z.number().int().min(0).max(100),
  deckId: z.string().uuid().nullable(),
  exportUrl: z.string().nullable().openapi({ description: "A signed URL (one hour) once the exportAs file is stored" }),
  credits: z.object({
    reserved: z.number().int().openapi({ description: "Reserved for the whole deck at admission" }),
    deducted: z.number().int().openapi({ description: "Charged so far (settled stages)" }),
    remaining: z.number().int().openapi({ description: "The org's available credits now" }),
  }),
  error: z.object({ code: z.string(), message: z.string() }).nullable(),
  cards: z.object({ total: z.number().int(), done: z.number().int() }),
  images: z.object({ total: z.number().int(), done: z.number().int(), failed: z.number().int() }),
  outline: z.unknown().nullable().openapi({ description: "{ title, cards: [{ title, points }] } once the outline stage is done" }),
}).openapi("DeckGeneration");

const OutlineBody = z.strictObject({
  title: z.string().trim().min(1).max(300).optional(),
  outline: z.array(z.strictObject({ title: z.string().trim().min(1).max(200), points: z.array(z.string().trim().min(1).max(400)).min(1).max(8) }))
    .min(1).max(200).optional(),
  approve: z.literal(true),
}).openapi("DeckOutlineApproval");

const createRoute_ = createRoute({
  method: "post",
  path: "/deck/generations",
  summary: "Generate a deck from a prompt (Gamma's Generate API). The whole deck is reserved now; 202 with the generation's id.",
  security: [{ bearer: [] }],
  middleware: [requireAuth] as const,
  request: {
    headers: z.object({ "idempotency-key": IdempotencyKey.optional() }),
    body: { required: true, content: { "application/json": { schema: GenerationRequest } } },
  },
  responses: { 202: json(Admitted, "Admitted; deck.generate is queued"), 200: json(Admitted, "The same Idempotency-Key or batchKey again: the first generation"), ...errors },
});

const fromTemplateRoute = createRoute({
  method: "post",
  path: "/deck/generations/from-template",
  summary: "Adapt a deck you can read (a template) to a new prompt: the same card count and layouts, new content.",
  security: [{ bearer: [] }],
  middleware: [requireAuth] as const,
  request: {
    headers: z.object({ "idempotency-key": IdempotencyKey.optional() }),
    body: { required: true, content: { "application/json": { schema: FromTemplateRequest } } },
  },
  responses: { 202: json(Admitted, "Admitted"), 200: json(Admitted, "The same Idempotency-Key again"), ...errors },
});

const getRoute = createRoute({
  method: "get",
  path: "/deck/generations/{generation_id}",
  summary: "A generation's status, stage, progress, deck, export URL and credits (its creator, or the org's billing managers).",
  security: [{ bearer: [] }],
  middleware: [requireAuth] as const,
  request: { params: z.object({ generation_id: UuidParam }) },
  responses: { 200: json(GenerationView, "The generation"), ...commonErrors },
});

const outlineRoute = createRoute({
  method: "post",
  path: "/deck/generations/{generation_id}/outline",
  summary: "Approve a held outline (holdOutline: true), edited or as it is; the generation resumes. 409 unless it waits at outline_ready.",
  security: [{ bearer: [] }],
  middleware: [requireAuth] as const,
  request: {
    params: z.object({ generation_id: UuidParam }),
    body: { required: true, content: { "application/json": { schema: OutlineBody } } },
  },
  responses: { 200: json(GenerationView, "Approved; the generation resumes"), ...commonErrors },
});

const cancelRoute = createRoute({
  method: "post",
  path: "/deck/generations/{generation_id}/cancel",
  summary: "Cancel a pending generation: finished cards are kept (and charged), the rest of the reservation is released.",
  security: [{ bearer: [] }],
  middleware: [requireAuth] as const,
  request: { params: z.object({ generation_id: UuidParam }) },
  responses: { 200: json(GenerationView, "The generation, canceled (or as it ended)"), ...commonErrors },
});

type Ctx = Context<ApiEnv>;

async function view(c: Ctx, g: GenerationRow): Promise<z.infer<typeof GenerationView>> {
  const { db, cfg } = c.get("deps");
  const storage = { url: cfg.SUPABASE_URL, serviceRoleKey: cfg.SUPABASE_SERVICE_ROLE_KEY ?? "" };
  // Read as service once the caller's read (RLS) found the row: the org's balance and the export.
  const { remaining, exp } = await asService(db, async (tx) => ({
    remaining: Number((await sql<{ n: number }>`
      select coalesce((select (balance - reserved)::float8 from billing.credit_accounts where org_id = ${g.org_id}::uuid), 0) as n`.execute(tx))
      .rows[0].n),
    exp: g.export_id
      ? (await sql<{ storage_path: string | null; status: string; expires_at: string | null }>`
          select storage_path, status, expires_at from deck.exports where id = ${g.export_id}::uuid`.execute(tx)).rows[0]
      : undefined,
  }));
  let url: string | null = null;
  if (exp && storage.serviceRoleKey) url = await exportUrl(storage, exp).catch(() => null);
  return {
    generationId: g.id,
    status: g.status,
    stage: g.stage,
    progress: g.progress,
    deckId: g.document_id,
    exportUrl: url,
    credits: { reserved: Number(g.credits_reserved), deducted: Number(g.credits_deducted), remaining: Math.max(0, remaining) },
    error: g.error ? { code: g.error.code, message: g.error.message } : null,
    cards: { total: g.cards_total, done: g.cards_done },
    images: { total: g.images_total, done: g.images_done, failed: g.images_failed },
    outline: g.outline,
  };
}

async function readAsCaller(c: Ctx, id: string): Promise<GenerationRow> {
  const { db } = c.get("deps");
  const g = await asUser(db, c.get("principal").claims, async (tx) =>
    (await sql<GenerationRow>`select ${GENERATION_COLUMNS} from deck.generations where id = ${id}::uuid`.execute(tx)).rows[0]);
  if (!g) throw new ApiError(404, "not_found", "generation not found");
  return g;
}

export function registerDeckGenerations(app: OpenAPIHono<ApiEnv>) {
  app.openapi(createRoute_, async (c) => {
    const body = c.req.valid("json");
    const key = c.req.valid("header")["idempotency-key"];
    const { db, jobs } = c.get("deps");
    const r = await asUser(db, c.get("principal").claims, async (tx) => {
      const who = await submitterFor(c, tx, body.orgId);
      return await admitGeneration(tx, jobs, who, body, key);
    }, requestMeta(c));
    return c.json({ generationId: r.generationId }, r.created ? 202 : 200);
  });

  app.openapi(fromTemplateRoute, async (c) => {
    const body = c.req.valid("json");
    const key = c.req.valid("header")["idempotency-key"];
    const { db, jobs } = c.get("deps");
    const r = await asUser(db, c.get("principal").claims, async (tx) => {
      const who = await submitterFor(c, tx, body.orgId);
      return await admitFromTemplate(tx, jobs, who, body, key);
    }, requestMeta(c));
    return c.json({ generationId: r.generationId }, r.created ? 202 : 200);
  });

  app.openapi(getRoute, async (c) => {
    const g = await readAsCaller(c, c.req.valid("param").generation_id);
    return c.json(await view(c, g), 200);
  });

  app.openapi(outlineRoute, async (c) => {
    const id = c.req.valid("param").generation_id;
    const body = c.req.valid("json");
    const { db, jobs } = c.get("deps");
    await asUser(db, c.get("principal").claims, async (tx) => {
      let outline: unknown = null;
      if (body.outline || body.title) {
        const { rows } = await sql<{ outline: { title: string; cards: unknown[] } | null }>`
          select outline from deck.generations where id = ${id}::uuid`.execute(tx);
        const current = rows[0]?.outline;
        outline = { title: body.title ?? current?.title ?? "Untitled deck", cards: body.outline ?? current?.cards ?? [] };
      }
      await sql`select id from private.deck_approve_outline(${id}::uuid, ${outline === null ? null : JSON.stringify(outline)}::jsonb)`.execute(tx);
      await enqueue(jobs, tx, "deck.generate", { generation_id: id }, { singletonKey: id });
    }, requestMeta(c));
    return c.json(await view(c, await readAsCaller(c, id)), 200);
  });

  app.openapi(cancelRoute, async (c) => {
    const id = c.req.valid("param").generation_id;
    const { db, jobs } = c.get("deps");
    await asUser(db, c.get("principal").claims, async (tx) => {
      const { rows } = await sql<{ status: string }>`select status from private.deck_cancel_generation(${id}::uuid)`.execute(tx);
      // The worker writes the finished cards into the deck and stops (stages.ts).
      if (rows[0]?.status === "canceled") await enqueue(jobs, tx, "deck.generate", { generation_id: id }, { singletonKey: id });
    }, requestMeta(c));
    return c.json(await view(c, await readAsCaller(c, id)), 200);
  });
}
