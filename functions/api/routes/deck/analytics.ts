// Deck analytics: start a view (a signed-in reader, or anyone through a share link), send card
// beacons in batches, ask for a deck's rollup now, and read a deck's rollups. Reads of the raw
// tables are PostgREST (schema deck; RLS: readers of the deck in its org).
import { createRoute, type OpenAPIHono, z } from "@hono/zod-openapi";
import type { Context } from "hono";
import { sql } from "kysely";
import { credentialFrom, type Principal, resolvePrincipal } from "../../../_shared/auth/principal.ts";
import { Beacon, MAX_BATCH, recordBeacons } from "../../../_shared/deck/analytics/beacons.ts";
import { startLinkView, startMemberView, VIEWER_KEY } from "../../../_shared/deck/analytics/views.ts";
import { asUser } from "../../../_shared/db/client.ts";
import { ApiError } from "../../../_shared/http/errors.ts";
import { enqueue } from "../../../_shared/jobs/queue.ts";
import type { ApiEnv } from "../../context.ts";
import { requireAuth } from "../../middleware.ts";
import { commonErrors, errorResponse, json, jsonBody, UuidParam } from "../../schemas.ts";
import { LINK_REFUSALS } from "../content/schemas.ts";

const linkErrors = {
  410: errorResponse("The link expired or was revoked, or the view is over a day old"),
  429: errorResponse("The link is locked after wrong passwords, or the view is full"),
};

// The content links' refusals, word for word, and one of the deck's own.
const LINK_REFUSALS_DECK: Record<string, [401 | 403 | 404 | 410 | 429, string, string]> = {
  ...LINK_REFUSALS,
  not_a_deck: [404, "not_found", "this link is not to a deck"],
};

const ViewerKey = z.string().regex(VIEWER_KEY).openapi({ description: "The key a link viewer's client keeps (16 to 128 of A-Z a-z 0-9 _ -); the server makes one when none is sent" });

const StartView = z.strictObject({
  deckId: z.string().uuid().optional().openapi({ description: "Signed in: the deck to view (needs read access)" }),
  token: z.string().min(1).max(200).optional().openapi({ description: "Anyone: a share link's token" }),
  password: z.string().min(1).max(72).optional(),
  viewerKey: ViewerKey.optional(),
  referrer: z.string().max(2000).optional().openapi({ description: "document.referrer, if the client wants it kept: only its origin is stored" }),
}).refine((b) => (b.deckId === undefined) !== (b.token === undefined), { message: "send deckId (signed in) or token (a share link), not both" })
  .refine((b) => b.token !== undefined || (b.password === undefined && b.viewerKey === undefined), { message: "password and viewerKey go with a token" })
  .openapi("DeckViewStart");

const StartedView = z.object({
  viewId: z.string().uuid(),
  viewerKey: z.string().nullable().openapi({ description: "A link view's key: keep it (localStorage) and send it with every beacon batch. Null for a signed-in reader's view." }),
  deckId: z.string().uuid(),
  revision: z.number().int().openapi({ description: "The revision this view is pinned to; beacons name it" }),
  cardIds: z.array(z.string()),
}).openapi("DeckView");

const startViewRoute = createRoute({
  method: "post",
  path: "/deck/views",
  summary: "Start a view of a deck: signed in with deckId (read access), or anyone with a share link's token (and password). The User-Agent decides the bot flag.",
  request: { body: jsonBody(StartView) },
  responses: { 201: json(StartedView, "The view"), ...commonErrors, ...linkErrors },
});

const BeaconBatch = z.strictObject({
  viewId: z.string().uuid(),
  viewerKey: ViewerKey.optional().openapi({ description: "Required for a view started through a link" }),
  events: z.array(Beacon).min(1).max(MAX_BATCH),
}).openapi("DeckBeaconBatch");

const beaconsRoute = createRoute({
  method: "post",
  path: "/deck/beacons",
  summary: `Card beacons for a view, 1 to ${MAX_BATCH} per batch, all or nothing; a resent event (same seq, or same card and ts) counts once.`,
  request: { body: jsonBody(BeaconBatch) },
  responses: {
    200: json(z.object({ accepted: z.number().int(), duplicates: z.number().int() }).openapi("DeckBeaconsRecorded"), "Recorded"),
    ...commonErrors,
    ...linkErrors,
  },
});

const refreshRoute = createRoute({
  method: "post",
  path: "/deck/{deckId}/analytics/refresh",
  summary: "Recompute a deck's rollups now (the schedule does it every 5 minutes). Readers of the deck in its org.",
  security: [{ bearer: [] }],
  middleware: [requireAuth] as const,
  request: { params: z.object({ deckId: UuidParam }) },
  responses: { 202: json(z.object({ jobId: z.string().nullable() }).openapi("DeckAnalyticsRefresh"), "Queued (null: one is already queued)"), ...commonErrors },
});

const CardRollup = z.object({
  card_id: z.string(), position: z.number().int(), card_title: z.string(), card_hash: z.string(),
  views: z.number().int(), unique_viewers: z.number().int(), median_ms: z.number().int(), p90_ms: z.number().int(),
  total_ms: z.number().int(), drop_off: z.number(),
});
const RevisionRollup = z.object({
  revision: z.number().int(), card_count: z.number().int(), views: z.number().int(), unique_viewers: z.number().int(),
  bot_views: z.number().int(), completion: z.number(), completed_views: z.number().int(), median_total_ms: z.number().int(),
  first_view_at: z.string().nullable(), last_view_at: z.string().nullable(), computed_at: z.string(), cards: z.array(CardRollup),
});

const readRoute = createRoute({
  method: "get",
  path: "/deck/{deckId}/analytics",
  summary: "A deck's rollups, newest revision first, each with its cards in order. Readers of the deck in its org; others get an empty list.",
  security: [{ bearer: [] }],
  middleware: [requireAuth] as const,
  request: { params: z.object({ deckId: UuidParam }) },
  responses: { 200: json(z.object({ deckId: z.string().uuid(), revisions: z.array(RevisionRollup) }).openapi("DeckAnalytics"), "The rollups"), ...commonErrors },
});

/** The signed-in user behind the request, if any; an anon key or a bad token counts as no one. */
async function optionalPrincipal(c: Context<ApiEnv>): Promise<Principal | null> {
  const credential = credentialFrom(c.req.raw.headers);
  if (!credential) return null;
  const { db, verifyJwt } = c.get("deps");
  return await resolvePrincipal(db, verifyJwt, credential).catch((err) => {
    if (err instanceof ApiError && err.status === 401) return null;
    throw err;
  });
}

/**
 * Only the origin of where the viewer came from is kept: a full URL can carry a share link's token
 * (or other secrets in its query), and every reader of the org's analytics reads this column. The
 * request's own Referer is never used (it is the viewer page, which holds the link).
 */
function originOf(referrer: string | undefined): string | null {
  if (!referrer) return null;
  try {
    const url = new URL(referrer);
    return url.protocol === "http:" || url.protocol === "https:" ? url.origin : null;
  } catch {
    return null;
  }
}

function refuseLink(status: string): never {
  const [http, code, message] = LINK_REFUSALS_DECK[status] ?? LINK_REFUSALS.not_found;
  throw new ApiError(http, code, message, http === 429 ? { retry_after: 900 } : undefined);
}

export function registerDeckAnalytics(app: OpenAPIHono<ApiEnv>) {
  app.openapi(startViewRoute, async (c) => {
    const input = c.req.valid("json");
    const ctx = { userAgent: c.req.header("user-agent"), referrer: originOf(input.referrer) };
    const { db } = c.get("deps");
    if (input.token !== undefined) {
      const started = await startLinkView(db, { token: input.token, password: input.password }, input.viewerKey, ctx);
      if ("refused" in started) refuseLink(started.refused);
      return c.json(started, 201);
    }
    const principal = await optionalPrincipal(c);
    if (!principal) throw new ApiError(401, "unauthorized", "a view by deckId needs a signed-in user's access token (anyone else views through a link)");
    if (principal.kind !== "user") throw new ApiError(403, "user_required", "a view is a person's: API keys cannot start one");
    return c.json(await startMemberView(db, principal.claims, principal.userId, input.deckId!, ctx), 201);
  });

  app.openapi(beaconsRoute, async (c) => {
    const { viewId, viewerKey, events } = c.req.valid("json");
    const principal = viewerKey === undefined ? await optionalPrincipal(c) : null;
    const result = await recordBeacons(c.get("deps").db, viewId, {
      userId: principal?.kind === "user" ? principal.userId : null,
      viewerKey: viewerKey ?? null,
    }, events);
    return c.json(result, 200);
  });

  app.openapi(refreshRoute, async (c) => {
    const { deckId } = c.req.valid("param");
    const { db, jobs } = c.get("deps");
    const jobId = await asUser(db, c.get("principal").claims, async (tx) => {
      // A reader of the deck in its org (content.documents' policy as the caller, and membership).
      const { rows: deck } = await sql<{ id: string }>`
        select id from content.documents where id = ${deckId}::uuid and kind = 'deck'
          and org_id = any (private.org_ids_with_permission_array('content.read'))`.execute(tx);
      if (deck.length === 0) throw new ApiError(404, "not_found", "deck not found");
      return await enqueue(jobs, tx, "deck.analytics_rollup", { document_id: deckId }, { singletonKey: deckId });
    });
    return c.json({ jobId }, 202);
  });

  app.openapi(readRoute, async (c) => {
    const { deckId } = c.req.valid("param");
    const revisions = await asUser(c.get("deps").db, c.get("principal").claims, async (tx) =>
      (await sql<z.infer<typeof RevisionRollup>>`
        select r.revision, r.card_count, r.views, r.unique_viewers, r.bot_views, r.completion::float8 as completion, r.completed_views,
               r.median_total_ms, r.first_view_at, r.last_view_at, r.computed_at,
               coalesce((select jsonb_agg(jsonb_build_object('card_id', k.card_id, 'position', k.position, 'card_title', k.card_title,
                           'card_hash', k.card_hash, 'views', k.views, 'unique_viewers', k.unique_viewers, 'median_ms', k.median_ms,
                           'p90_ms', k.p90_ms, 'total_ms', k.total_ms, 'drop_off', k.drop_off::float8) order by k.position)
                         from deck.card_rollups k where k.document_id = r.document_id and k.revision = r.revision), '[]'::jsonb) as cards
        from deck.revision_rollups r where r.document_id = ${deckId}::uuid
        order by r.revision desc limit 100`.execute(tx)).rows);
    return c.json({ deckId, revisions }, 200);
  });
}
