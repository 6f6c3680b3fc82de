// AI card operations on decks (rewrite, translate, condense, expand, change tone), the template
// review, and (registered from here) the themes list. An operation is requested against the
// revision the client read and answered 202 at once; the worker runs its AI job and applies the
// result, or records a conflict when a human changed the card meanwhile (follow it on
// user:<id>, event deck.operation, or by GET). See functions/_shared/deck/operations/.
import { createRoute, type OpenAPIHono, z } from "@hono/zod-openapi";
import { sql } from "kysely";
import { setStatus } from "../../../_shared/content/documents.ts";
import { asUser } from "../../../_shared/db/client.ts";
import { applyConflict } from "../../../_shared/deck/operations/apply.ts";
import { AI_TIERS, OPS } from "../../../_shared/deck/operations/card.ts";
import { requestOperation } from "../../../_shared/deck/operations/request.ts";
import type { Operation } from "../../../_shared/deck/operations/store.ts";
import { ApiError } from "../../../_shared/http/errors.ts";
import type { ApiEnv } from "../../context.ts";
import { requestMeta, requireAuth, requireUser, userIdOf } from "../../middleware.ts";
import { commonErrors, errorResponse, json, jsonBody, UuidParam } from "../../schemas.ts";
import { registerDeckThemes } from "./themes.ts";

const moreErrors = {
  402: errorResponse("Not enough credits for the AI call"),
  422: errorResponse("The Idempotency-Key was used for another request"),
  429: errorResponse("Rate limited (see Retry-After)"),
};

const CardId = z.string().regex(/^[A-Za-z0-9_-]{1,64}$/);
const IdempotencyKey = z.string().min(1).max(200).regex(/^[\x21-\x7e]+$/);
const Text = (max: number) => z.string().trim().min(1).max(max).refine((s) => !s.includes("\u0000"), "must not contain NUL characters");

const OperationBody = z.object({
  op: z.enum(OPS),
  base_revision: z.number().int().positive(),
  /** translate: the target language (BCP 47). */
  language: z.string().regex(/^[a-z]{2,3}(-[A-Za-z0-9]{2,8})*$/, "a language tag such as fr or pt-BR").optional(),
  /** tone: the tone to write in. */
  tone: Text(100).optional(),
  instructions: Text(2000).optional(),
  /** The AI gateway tier the call runs at (its price is the gateway's). */
  tier: z.enum(AI_TIERS).default("balanced"),
}).strict().superRefine((b, ctx) => {
  if (b.op === "translate" && !b.language) ctx.addIssue({ code: "custom", path: ["language"], message: "translate needs a language" });
  if (b.op !== "translate" && b.language) ctx.addIssue({ code: "custom", path: ["language"], message: "language is for translate only" });
  if (b.op === "tone" && !b.tone) ctx.addIssue({ code: "custom", path: ["tone"], message: "tone needs a tone" });
  if (b.op !== "tone" && b.tone) ctx.addIssue({ code: "custom", path: ["tone"], message: "tone is for the tone op only" });
}).openapi("DeckOperationRequest");

const Json = z.record(z.string(), z.unknown()).nullable();
const OperationView = z.object({
  id: z.string().uuid(),
  org_id: z.string().uuid(),
  document_id: z.string().uuid(),
  card_id: z.string(),
  op: z.enum(OPS),
  params: z.record(z.string(), z.unknown()),
  base_revision: z.number().int(),
  card_hash: z.string(),
  base_card: z.record(z.string(), z.unknown()),
  idempotency_key: z.string().nullable(),
  request_hash: z.string(),
  state: z.enum(["queued", "running", "applied", "conflict", "failed", "discarded", "canceled"]),
  ai_job_id: z.string().uuid().nullable(),
  result: Json,
  resulting_revision: z.number().int().nullable(),
  actor_id: z.string().uuid().nullable(),
  actor_source: z.enum(["ai", "manual"]),
  resolved_by: z.string().uuid().nullable(),
  error: Json,
  created_at: z.string(),
  updated_at: z.string(),
  finished_at: z.string().nullable(),
}).openapi("DeckOperation");

const OperationEnvelope = z.object({ operation: OperationView }).openapi("DeckOperationEnvelope");
const byId = { params: z.object({ id: UuidParam }) };
const Template = z.object({
  document_id: z.string().uuid(), org_id: z.string().uuid(), category: z.string(), locale: z.string(),
  status: z.enum(["review", "published", "rejected"]), prompt: z.string(), batch_key: z.string().nullable(),
  reviewed_by: z.string().uuid().nullable(), reviewed_at: z.string().nullable(), review_note: z.string().nullable(),
}).passthrough().openapi("DeckTemplate");

const routes = {
  request: createRoute({
    method: "post", path: "/deck/decks/{documentId}/cards/{cardId}/ai", security: [{ bearer: [] }], middleware: [requireAuth, requireUser] as const,
    summary: "Ask the AI to rewrite, translate, condense, expand or change the tone of one card. base_revision must be the deck's current revision (else 409 stale_revision). Applied by the worker if the card is unchanged by then, else a conflict that keeps the proposal. Needs edit access; the AI call is charged at the gateway's prices.",
    request: {
      params: z.object({ documentId: UuidParam, cardId: CardId }),
      headers: z.object({ "idempotency-key": IdempotencyKey.optional() }),
      body: jsonBody(OperationBody),
    },
    responses: { 202: json(OperationEnvelope, "Queued"), 200: json(OperationEnvelope, "The same Idempotency-Key and request again: the first operation"), ...commonErrors, ...moreErrors },
  }),
  list: createRoute({
    method: "get", path: "/deck/decks/{documentId}/operations", security: [{ bearer: [] }], middleware: [requireAuth] as const,
    summary: "A deck's AI card operations, newest first (everyone who can read the deck).",
    request: { params: z.object({ documentId: UuidParam }), query: z.object({ state: OperationView.shape.state.optional(), limit: z.coerce.number().int().min(1).max(100).default(20) }) },
    responses: { 200: json(z.object({ operations: z.array(OperationView) }).openapi("DeckOperationList"), "Operations"), ...commonErrors },
  }),
  get: createRoute({
    method: "get", path: "/deck/operations/{id}", security: [{ bearer: [] }], middleware: [requireAuth] as const,
    summary: "One AI card operation: its state, its proposal (result) and the revision it made.",
    request: byId,
    responses: { 200: json(OperationEnvelope, "The operation"), ...commonErrors },
  }),
  apply: createRoute({
    method: "post", path: "/deck/operations/{id}/apply", security: [{ bearer: [] }], middleware: [requireAuth, requireUser] as const,
    summary: "Apply a conflict's proposal onto the deck at base_revision (its current revision, else 409 stale_revision). A version of the deck is kept first. Editors of the deck.",
    request: { ...byId, body: jsonBody(z.object({ base_revision: z.number().int().positive() }).strict().openapi("DeckOperationApply")) },
    responses: { 200: json(OperationEnvelope, "Applied"), ...commonErrors },
  }),
  discard: createRoute({
    method: "post", path: "/deck/operations/{id}/discard", security: [{ bearer: [] }], middleware: [requireAuth, requireUser] as const,
    summary: "Discard a conflict's proposal, or cancel an operation still running (its AI job's credits are released). Editors of the deck.",
    request: byId,
    responses: { 200: json(OperationEnvelope, "Discarded or canceled"), ...commonErrors },
  }),
  review: createRoute({
    method: "post", path: "/deck/templates/{documentId}/review", security: [{ bearer: [] }], middleware: [requireAuth, requireUser] as const,
    summary: "Publish a template waiting in review into the org's gallery, or reject it (deck.review_template; publishing keeps a version of the merged deck first). content.write and manage access to the deck.",
    request: {
      params: z.object({ documentId: UuidParam }),
      body: jsonBody(z.object({ decision: z.enum(["publish", "reject"]), note: z.string().max(1000).optional() }).strict().openapi("DeckTemplateReview")),
    },
    responses: { 200: json(z.object({ template: Template }).openapi("DeckTemplateEnvelope"), "Reviewed"), ...commonErrors },
  }),
};

type Tx = Parameters<Parameters<typeof asUser>[2]>[0];
const one = async (tx: Tx, id: string) => (await sql<Operation>`select * from deck.operations where id = ${id}::uuid`.execute(tx)).rows[0];

export function registerDeckOperations(app: OpenAPIHono<ApiEnv>) {
  app.openapi(routes.request, async (c) => {
    const { documentId, cardId } = c.req.valid("param");
    const b = c.req.valid("json");
    const key = c.req.valid("header")["idempotency-key"];
    const { db, jobs } = c.get("deps");
    const userId = userIdOf(c);
    const r = await asUser(db, c.get("principal").claims, async (tx) => {
      const { rows: [doc] } = await sql<{ org_id: string }>`select org_id from content.documents where id = ${documentId}::uuid`.execute(tx);
      if (!doc) throw new ApiError(404, "not_found", "deck not found");
      return await requestOperation(tx, jobs, { orgId: doc.org_id, userId, apiKeyId: null }, {
        documentId, cardId, op: b.op, baseRevision: b.base_revision, idempotencyKey: key,
        params: { tier: b.tier, ...(b.language ? { language: b.language } : {}), ...(b.tone ? { tone: b.tone } : {}), ...(b.instructions ? { instructions: b.instructions } : {}) },
      });
    }, requestMeta(c));
    return c.json({ operation: r.operation }, r.created ? 202 : 200);
  });

  app.openapi(routes.list, async (c) => {
    const { documentId } = c.req.valid("param");
    const q = c.req.valid("query");
    const operations = await asUser(c.get("deps").db, c.get("principal").claims, async (tx) => {
      const { rows: [doc] } = await sql<{ id: string }>`select id from content.documents where id = ${documentId}::uuid`.execute(tx);
      if (!doc) throw new ApiError(404, "not_found", "deck not found");
      return (await sql<Operation>`
        select * from deck.operations where document_id = ${documentId}::uuid
          and (${q.state ?? null}::text is null or state = ${q.state ?? null})
        order by created_at desc limit ${q.limit}`.execute(tx)).rows;
    });
    return c.json({ operations }, 200);
  });

  app.openapi(routes.get, async (c) => {
    const { id } = c.req.valid("param");
    const op = await asUser(c.get("deps").db, c.get("principal").claims, (tx) => one(tx, id));
    if (!op) throw new ApiError(404, "not_found", "operation not found");
    return c.json({ operation: op }, 200);
  });

  app.openapi(routes.apply, async (c) => {
    const { id } = c.req.valid("param");
    const { base_revision } = c.req.valid("json");
    const op = await asUser(c.get("deps").db, c.get("principal").claims, (tx) => applyConflict(tx, id, base_revision), requestMeta(c));
    return c.json({ operation: op }, 200);
  });

  app.openapi(routes.discard, async (c) => {
    const { id } = c.req.valid("param");
    const op = await asUser(c.get("deps").db, c.get("principal").claims, async (tx) =>
      (await sql<Operation>`select * from deck.discard_operation(${id}::uuid)`.execute(tx)).rows[0], requestMeta(c));
    return c.json({ operation: op }, 200);
  });

  app.openapi(routes.review, async (c) => {
    const { documentId } = c.req.valid("param");
    const b = c.req.valid("json");
    const template = await asUser(c.get("deps").db, c.get("principal").claims, async (tx) => {
      if (b.decision === "publish") {
        // Only a template in review of a deck the caller sees; the RPC checks the rest, and its
        // refusal rolls the status change back with it.
        const { rows: [t] } = await sql<{ status: string }>`select status from deck.templates where document_id = ${documentId}::uuid`.execute(tx);
        if (!t) throw new ApiError(404, "not_found", "template not found");
        if (t.status === "review") {
          const { rows: [d] } = await sql<{ status: string }>`select status from content.documents where id = ${documentId}::uuid`.execute(tx);
          if (d && d.status !== "published") {
            const { rows: [a] } = await sql<{ a: { can_manage: boolean } }>`select content.my_access(${documentId}::uuid) as a`.execute(tx);
            if (a.a.can_manage) await setStatus(tx, documentId, "published");
          }
        }
      }
      return (await sql<z.infer<typeof Template>>`
        select * from deck.review_template(${documentId}::uuid, ${b.decision}, ${b.note ?? null})`.execute(tx)).rows[0];
    }, requestMeta(c));
    return c.json({ template }, 200);
  });

  registerDeckThemes(app);
}
