// GET /api/deck/themes in the shape of Gamma's List Themes: the global gallery (type standard)
// then the caller's orgs' own themes (type custom), cursor-paginated. RLS decides what the
// caller sees (global themes: anyone signed in; an org's: its members with content.read). An
// org's themes are written with PostgREST on deck.themes (writers: content.write).
import { createRoute, type OpenAPIHono, z } from "@hono/zod-openapi";
import { sql } from "kysely";
import { asUser } from "../../../_shared/db/client.ts";
import { ApiError } from "../../../_shared/http/errors.ts";
import type { ApiEnv } from "../../context.ts";
import { requireAuth } from "../../middleware.ts";
import { commonErrors } from "../../schemas.ts";

const Theme = z.object({
  id: z.string(),
  name: z.string(),
  type: z.enum(["standard", "custom"]),
  orgId: z.string().uuid().nullable(),
  colorKeywords: z.array(z.string()),
  toneKeywords: z.array(z.string()),
  tokens: z.record(z.string(), z.unknown()),
}).openapi("DeckTheme");

const ThemePage = z.object({ data: z.array(Theme), hasMore: z.boolean(), nextCursor: z.string().nullable() }).openapi("DeckThemePage");

/** The cursor is the last row's sort key: [0 standard | 1 custom, name, id], base64url JSON. */
const Cursor = z.tuple([z.union([z.literal(0), z.literal(1)]), z.string(), z.string()]);

function decodeCursor(s: string): z.infer<typeof Cursor> {
  try {
    const bin = atob(s.replace(/-/g, "+").replace(/_/g, "/"));
    const r = Cursor.safeParse(JSON.parse(new TextDecoder().decode(Uint8Array.from(bin, (ch) => ch.charCodeAt(0)))));
    if (r.success) return r.data;
  } catch { /* falls through */ }
  throw new ApiError(400, "invalid_request", "after is not a cursor this list returned", [{ path: "after", message: "invalid cursor" }]);
}

function encodeCursor(key: z.infer<typeof Cursor>): string {
  const bytes = new TextEncoder().encode(JSON.stringify(key));
  return btoa(String.fromCharCode(...bytes)).replace(/\+/g, "-").replace(/\//g, "_").replace(/=+$/, "");
}

const listRoute = createRoute({
  method: "get", path: "/deck/themes", security: [{ bearer: [] }], middleware: [requireAuth] as const,
  summary: "Themes a deck can use (Gamma's List Themes): the global ones (standard) then your orgs' own (custom), by name; page with after=nextCursor.",
  request: {
    query: z.object({
      limit: z.coerce.number().int().min(1).max(50).default(50),
      after: z.string().max(500).optional(),
      /** Only this org's custom themes (the standard ones are always listed). */
      orgId: z.string().uuid().optional(),
      /** A word to find in the name or keywords. */
      query: z.string().trim().min(1).max(100).optional(),
    }),
  },
  responses: { 200: { description: "A page of themes", content: { "application/json": { schema: ThemePage } } }, ...commonErrors },
});

export function registerDeckThemes(app: OpenAPIHono<ApiEnv>) {
  app.openapi(listRoute, async (c) => {
    const q = c.req.valid("query");
    const after = q.after ? decodeCursor(q.after) : null;
    const like = q.query ? `%${q.query.toLowerCase().replace(/[\\%_]/g, (m) => `\\${m}`)}%` : null;
    const rows = await asUser(c.get("deps").db, c.get("principal").claims, async (tx) =>
      (await sql<z.infer<typeof Theme> & { rank: 0 | 1 }>`
        select * from (
          select 0 as rank, id, name, 'standard' as type, null::uuid as "orgId", color_keywords as "colorKeywords",
                 tone_keywords as "toneKeywords", tokens
          from deck.global_themes
          union all
          select 1, id, name, 'custom', org_id, color_keywords, tone_keywords, tokens
          from deck.themes where ${q.orgId ?? null}::uuid is null or org_id = ${q.orgId ?? null}::uuid
        ) t
        where (${after === null} or (t.rank, t.name, t.id) > (${after?.[0] ?? 0}::int, ${after?.[1] ?? ""}::text collate "C", ${after?.[2] ?? ""}::text collate "C"))
          and (${like}::text is null or lower(t.name) like ${like} or exists (
                 select 1 from unnest(t."colorKeywords" || t."toneKeywords") k where lower(k) like ${like}))
        order by t.rank, t.name collate "C", t.id collate "C"
        limit ${q.limit + 1}`.execute(tx)).rows);
    const page = rows.slice(0, q.limit);
    const last = page[page.length - 1];
    const hasMore = rows.length > q.limit;
    return c.json({
      data: page.map(({ rank: _rank, ...t }) => t),
      hasMore,
      nextCursor: hasMore && last ? encodeCursor([last.rank, last.name, last.id]) : null,
    }, 200);
  });
}
