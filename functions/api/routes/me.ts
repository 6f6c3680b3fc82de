import { createRoute, type OpenAPIHono, z } from "@hono/zod-openapi";
import { sql } from "kysely";
import { asUser } from "../../_shared/db/client.ts";
import { ApiError } from "../../_shared/http/errors.ts";
import type { ApiEnv } from "../context.ts";
import { requireAuth } from "../middleware.ts";
import { commonErrors } from "../schemas.ts";

const OrgSchema = z.object({
  id: z.string().uuid(),
  slug: z.string(),
  name: z.string(),
  kind: z.enum(["personal", "team"]),
  role: z.string(),
  permissions: z.array(z.string()),
  has_access: z.boolean(),
  blocked_reason: z.string().nullable(),
});

const UserMeSchema = z
  .object({
    kind: z.literal("user"),
    user_id: z.string().uuid(),
    aal: z.string(),
    profile: z.object({
      display_name: z.string().nullable(),
      avatar_url: z.string().nullable(),
      locale: z.string(),
      timezone: z.string(),
      marketing_consent: z.boolean(),
    }),
    orgs: z.array(OrgSchema),
  })
  .openapi("UserMe");

const ApiKeyMeSchema = z
  .object({
    kind: z.literal("api_key"),
    api_key_id: z.string().uuid(),
    scopes: z.array(z.string()),
    org: z.object({ id: z.string().uuid(), slug: z.string(), name: z.string() }),
  })
  .openapi("ApiKeyMe");

const route = createRoute({
  method: "get",
  path: "/me",
  summary: "The caller: a user's profile and orgs, or an API key's org and scopes",
  security: [{ bearer: [] }],
  middleware: [requireAuth] as const,
  responses: {
    200: {
      description: "The caller",
      content: { "application/json": { schema: z.union([UserMeSchema, ApiKeyMeSchema]) } },
    },
    401: commonErrors[401],
  },
});

export function registerMe(app: OpenAPIHono<ApiEnv>) {
  app.openapi(route, async (c) => {
    const p = c.get("principal");
    const { db } = c.get("deps");
    if (p.kind === "api_key") {
      const org = await asUser(db, p.claims, (tx) =>
        tx.selectFrom("orgs").select(["id", "slug", "name"]).where("id", "=", p.orgId).executeTakeFirstOrThrow());
      return c.json({ kind: "api_key" as const, api_key_id: p.keyId, scopes: p.scopes, org }, 200);
    }
    const { profile, orgs } = await asUser(db, p.claims, async (tx) => ({
      // my_profile(): consent is not selectable from the table, even one's own row.
      profile: (await sql<{ display_name: string | null; avatar_url: string | null; locale: string; timezone: string; marketing_consent: boolean }>`
        select display_name, avatar_url, locale, timezone, marketing_consent from public.my_profile() where id is not null`
        .execute(tx)).rows[0],
      orgs: await tx.selectFrom("my_orgs")
        .select(["id", "slug", "name", "kind", "role", "permissions", "has_access", "blocked_reason"])
        .orderBy("kind", "desc").orderBy("name").execute(),
    }));
    // A token outlives its user by up to its expiry; a deleted user is no longer anyone.
    if (!profile) throw new ApiError(401, "invalid_token", "the token's user no longer exists");
    return c.json({
      kind: "user" as const,
      user_id: p.userId,
      aal: p.claims.aal,
      profile,
      orgs: orgs.map((o) => ({ ...o, kind: o.kind as "personal" | "team" })) as z.infer<typeof OrgSchema>[],
    }, 200);
  });
}
