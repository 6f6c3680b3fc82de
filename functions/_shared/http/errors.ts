// One error shape for every response: { "error": { "code", "message", "details"? } }.
import type { ContentfulStatusCode } from "hono/utils/http-status";

export class ApiError extends Error {
  constructor(
    readonly status: ContentfulStatusCode,
    readonly code: string,
    message: string,
    readonly details?: unknown,
  ) {
    super(message);
  }
}

export function errorBody(code: string, message: string, details?: unknown) {
  return { error: details === undefined ? { code, message } : { code, message, details } };
}

/** SQLSTATEs our RPCs raise on purpose, and the HTTP answer each deserves. */
const SQLSTATE_TO_HTTP: Record<string, [ContentfulStatusCode, string]> = {
  "42501": [403, "forbidden"],
  PT402: [402, "payment_required"],
  PT404: [404, "not_found"],
  PT409: [409, "conflict"],
  PT429: [429, "rate_limited"],
  "22023": [400, "invalid_request"],
  "22P02": [400, "invalid_request"],
  "22001": [400, "invalid_request"],
  "22007": [400, "invalid_request"],
  "22008": [400, "invalid_request"],
  "23502": [400, "invalid_request"],
  "23514": [409, "conflict"],
  "23505": [409, "conflict"],
  "23503": [409, "conflict"],
};

/** Turns a Postgres error raised by our SQL into an ApiError; anything else stays a 500. */
export function fromPostgresError(err: unknown): ApiError | undefined {
  const e = err as { code?: string; message?: string; hint?: string };
  if (typeof e?.code !== "string") return undefined;
  const mapped = SQLSTATE_TO_HTTP[e.code];
  if (!mapped) return undefined;
  // Rate limits say when to come back in their hint ("retry_after=<seconds>"): the api sends it as Retry-After.
  const retryAfter = /^retry_after=(\d+)$/.exec(e.hint ?? "")?.[1];
  if (retryAfter) return new ApiError(mapped[0], mapped[1], e.message ?? "request refused", { retry_after: Number(retryAfter) });
  return new ApiError(mapped[0], mapped[1], e.message ?? "request refused", e.hint ? { hint: e.hint } : undefined);
}

/** Seconds to send as Retry-After for an error that carries one. */
export function retryAfterOf(err: ApiError): number | undefined {
  const d = err.details as { retry_after?: unknown } | undefined;
  return typeof d?.retry_after === "number" ? d.retry_after : undefined;
}
