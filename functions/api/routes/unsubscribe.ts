// One-click unsubscribe from notification emails, without login: the signed token in the link
// names the user, type and channel. GET shows a confirmation page and changes nothing (mail
// scanners prefetch links); POST with List-Unsubscribe=One-Click (RFC 8058) turns it off.
import { createRoute, type OpenAPIHono, z } from "@hono/zod-openapi";
import type { Context } from "hono";
import { sql } from "kysely";
import { asService } from "../../_shared/db/client.ts";
import { ApiError } from "../../_shared/http/errors.ts";
import { renderUnsubscribedPage, renderUnsubscribePage } from "../../_shared/notifications/templates.ts";
import { type UnsubscribeTarget, verifyUnsubscribeToken } from "../../_shared/notifications/token.ts";
import type { ApiEnv } from "../context.ts";
import { commonErrors } from "../schemas.ts";

const TokenQuery = z.object({ token: z.string().min(16).max(2000) });
const OneClickForm = z.object({ "List-Unsubscribe": z.literal("One-Click") }).openapi("OneClickUnsubscribe");
const Unsubscribed = z.object({
  unsubscribed: z.literal(true),
  type: z.string().nullable(),
  channel: z.string(),
}).openapi("Unsubscribed");

const html = (description: string) => ({ description, content: { "text/html": { schema: z.string() } } });

const pageRoute = createRoute({
  method: "get",
  path: "/unsubscribe",
  summary: "Confirmation page for an email's unsubscribe link (changes nothing)",
  request: { query: TokenQuery },
  responses: { 200: html("The confirmation page"), 400: commonErrors[400] },
});

const oneClickRoute = createRoute({
  method: "post",
  path: "/unsubscribe",
  summary: "RFC 8058 one-click unsubscribe: turns off the channel the token names",
  request: {
    query: TokenQuery,
    body: { required: true, content: { "application/x-www-form-urlencoded": { schema: OneClickForm } } },
  },
  responses: {
    200: {
      description: "Unsubscribed (an HTML page when the caller accepts HTML)",
      content: { "application/json": { schema: Unsubscribed }, "text/html": { schema: z.string() } },
    },
    400: commonErrors[400],
  },
});

const REASONS = {
  malformed: "the unsubscribe link is malformed",
  bad_signature: "the unsubscribe link is not valid",
  expired: "the unsubscribe link has expired; change your settings in the app",
} as const;

async function verified(c: Context<ApiEnv>, token: string): Promise<UnsubscribeTarget> {
  const secret = c.get("deps").cfg.PLINTH_UNSUBSCRIBE_SECRET;
  if (!secret) throw new ApiError(503, "not_configured", "unsubscribe links are not configured on this server");
  const result = await verifyUnsubscribeToken(secret, token);
  if (!result.ok) throw new ApiError(400, "invalid_token", REASONS[result.reason]);
  return result.target;
}

// The token is a credential: keep it out of caches and Referer headers.
function noLeak(c: Context<ApiEnv>) {
  c.header("cache-control", "no-store");
  c.header("referrer-policy", "no-referrer");
}

export function registerUnsubscribe(app: OpenAPIHono<ApiEnv>) {
  app.openapi(pageRoute, async (c) => {
    const { token } = c.req.valid("query");
    const target = await verified(c, token);
    noLeak(c);
    const action = `?token=${encodeURIComponent(token)}`;
    return c.html(renderUnsubscribePage({ type: target.type, channel: target.channel, actionUrl: action }), 200);
  });

  app.openapi(oneClickRoute, async (c) => {
    const { token } = c.req.valid("query");
    c.req.valid("form");
    const t = await verified(c, token);
    await asService(c.get("deps").db, async (tx) => {
      await sql`select private.set_notification_preference_for(${t.userId}, ${t.type}, ${t.channel}, false)`.execute(tx);
    });
    noLeak(c);
    if (/text\/html/.test(c.req.header("accept") ?? "")) {
      return c.html(renderUnsubscribedPage({ type: t.type, channel: t.channel }), 200);
    }
    return c.json({ unsubscribed: true as const, type: t.type, channel: t.channel }, 200);
  });
}
