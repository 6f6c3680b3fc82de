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

/**
 * SQLSTATEs our RPCs raise on purpose, and the HTTP answer each deserves. Codes not listed here
 * fall to the class rules in httpForSqlstate; tests/static/errcodes.test.ts walks every errcode
 * the migrations raise and fails on one that would answer 500.
 */
export const SQLSTATE_TO_HTTP: Record<string, [ContentfulStatusCode, string]> = {
  "42501": [403, "forbidden"],
  // PostgREST's convention: PT + the HTTP status.
  PT400: [400, "invalid_request"],
  PT401: [401, "unauthorized"],
  PT402: [402, "payment_required"],
  PT403: [403, "forbidden"],
  PT404: [404, "not_found"],
  PT409: [409, "conflict"],
  PT410: [410, "gone"],
  PT413: [413, "payload_too_large"],
  PT422: [422, "invalid_request"],
  PT429: [429, "rate_limited"],
  // A not-null violation is a missing field, not a clash with existing data.
  "23502": [400, "invalid_request"],
  // A limit hit by an oversized value (an index row or a tsvector too big for Postgres).
  "54000": [400, "invalid_request"],
};

/**
 * Whole classes, for codes not listed above:
 * - 22 data exception (bad text, number, date, NUL byte 22021, ...): the input is wrong, 400;
 * - 23 integrity constraint violation (unique, foreign key, check): 409;
 * - 40 transaction rollback (serialization failure, deadlock): 409, the caller may try again;
 * - 55 object not in prerequisite state (a versioned row, a lock not available): 409.
 * Everything else (our own bugs, XX000 "ledger out of balance", P0001 raised without an errcode)
 * stays a 500 on purpose.
 */
const SQLSTATE_CLASS_TO_HTTP: Record<string, [ContentfulStatusCode, string]> = {
  "22": [400, "invalid_request"],
  "23": [409, "conflict"],
  "40": [409, "conflict"],
  "55": [409, "conflict"],
};

/** The HTTP status and error code for a SQLSTATE, or undefined for one that is a server fault. */
export function httpForSqlstate(sqlstate: string): [ContentfulStatusCode, string] | undefined {
  const code = sqlstate.toUpperCase();
  return SQLSTATE_TO_HTTP[code] ?? (/^[0-9A-Z]{5}$/.test(code) ? SQLSTATE_CLASS_TO_HTTP[code.slice(0, 2)] : undefined);
}

/** Turns a Postgres error raised by our SQL into an ApiError; anything else stays a 500. */
export function fromPostgresError(err: unknown): ApiError | undefined {
  const e = err as { code?: string; message?: string; hint?: string };
  if (typeof e?.code !== "string") return undefined;
  const mapped = httpForSqlstate(e.code);
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
