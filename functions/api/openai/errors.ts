// OpenAI's error shape ({"error": {"message", "type", "param", "code"}}) for everything under
// /ai/v1, so that the openai SDK raises its own error classes (RateLimitError, ...) for ours.
import type { Context } from "hono";
import { NoResultError } from "kysely";
import { AllCoolingError, RouteFailedError } from "../../_shared/ai/execute.ts";
import { ApiError, fromPostgresError, retryAfterOf } from "../../_shared/http/errors.ts";

type Status = 400 | 401 | 402 | 403 | 404 | 409 | 413 | 429 | 500 | 502 | 503;

export function openaiError(c: Context, status: Status, message: string, type: string, code: string | null, headers: Record<string, string> = {}) {
  for (const [k, v] of Object.entries(headers)) c.header(k, v);
  return c.json({ error: { message, type, param: null, code } }, status);
}

const TYPE_BY_STATUS: Record<number, string> = {
  400: "invalid_request_error", 401: "authentication_error", 402: "insufficient_quota", 403: "permission_error",
  404: "invalid_request_error", 409: "invalid_request_error", 413: "invalid_request_error", 429: "rate_limit_exceeded",
};

/** Why the route failed, as the status an OpenAI client expects. */
function routeFailure(c: Context, err: RouteFailedError) {
  switch (err.last?.errorClass) {
    case "content_policy":
      return openaiError(c, 400, err.message, "invalid_request_error", "content_policy_violation");
    case "context_window":
      return openaiError(c, 400, err.message, "invalid_request_error", "context_length_exceeded");
    case "rate_limit":
      return openaiError(c, 429, err.message, "rate_limit_exceeded", "provider_rate_limited");
    default:
      return err.reason === "no_fit"
        ? openaiError(c, 400, err.message, "invalid_request_error", "context_length_exceeded")
        : openaiError(c, 502, `no provider could answer: ${err.message}`, "server_error", err.code);
  }
}

export function onOpenAiError(err: Error, c: Context) {
  if (err instanceof AllCoolingError) {
    return openaiError(c, 429, err.message, "rate_limit_exceeded", "all_providers_cooling", { "retry-after": String(Math.max(1, Math.ceil(err.retryAfterMs / 1000))) });
  }
  if (err instanceof RouteFailedError) return routeFailure(c, err);
  const known = err instanceof ApiError ? err : err instanceof NoResultError ? new ApiError(404, "not_found", "not found") : fromPostgresError(err);
  if (known && known.status < 500) {
    const retryAfter = retryAfterOf(known);
    const code = known.status === 402 ? "insufficient_credits" : known.code;
    return openaiError(c, known.status as Status, known.message, TYPE_BY_STATUS[known.status] ?? "invalid_request_error", code,
      retryAfter !== undefined ? { "retry-after": String(retryAfter) } : {});
  }
  if (known) return openaiError(c, known.status as Status, known.message, "server_error", known.code);
  console.error(JSON.stringify({ msg: "openai endpoint error", error: err.message }));
  return openaiError(c, 500, "something went wrong on our side", "server_error", null);
}
