// Refuses, before any route runs, a NUL character (U+0000) anywhere Postgres would be handed it:
// the path, a query parameter, a JSON key or string at any depth, a form field. Postgres cannot
// store it in text or jsonb (22021 / 22P05), so this is the one place every route's strings pass.
import { createMiddleware } from "hono/factory";
import { errorBody } from "../_shared/http/errors.ts";
import { nulInBody, nulInUrl } from "../_shared/http/input.ts";
import type { ApiEnv } from "./context.ts";

/** Bodies read as text here; anything else (an upload's bytes) is left alone. */
const TEXT_BODY = /json|^text\/|x-www-form-urlencoded/i;

export const refuseNul = createMiddleware<ApiEnv>(async (c, next) => {
  let where = nulInUrl(new URL(c.req.url));
  const contentType = c.req.header("content-type") ?? "";
  if (!where && c.req.raw.body && (contentType === "" || TEXT_BODY.test(contentType))) {
    // Hono keeps the text: the route's validator (or c.req.json()) reads the same bytes again.
    const text = await c.req.text().catch(() => undefined);
    // An unreadable body is the route's to refuse, exactly as it would without this check.
    if (text !== undefined) where = nulInBody(text, contentType);
  }
  if (!where) return next();
  const message = `${where} contains a NUL character (\\u0000), which text cannot hold; remove it`;
  // The OpenAI-compatible endpoint answers in OpenAI's error shape, so its SDKs read it.
  return c.req.path.startsWith("/api/ai/v1/")
    ? c.json({ error: { message, type: "invalid_request_error", param: where, code: "invalid_request" } }, 400)
    : c.json(errorBody("invalid_request", message, [{ path: where, message: "contains a NUL character" }]), 400);
});
