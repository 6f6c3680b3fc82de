// Who is calling, as the real server's JWT hook decides it: the `Authorization: Bearer` token,
// verified with the project secret (or JWKS). The role is the token's `role` claim; `owner_id`
// is its `sub`, and `owner` that same value when it is a uuid. Routes that allow anonymous
// access treat a missing or invalid token as anon; the others refuse it with AccessDenied.
import type http from "node:http";
import type pg from "pg";
import { bearer, TokenError, type TokenVerifier } from "../auth.ts";
import { asCaller, type CallerSettings, transaction } from "../db.ts";
import { ERRORS } from "./errors.ts";
import { isUuid } from "./validate.ts";

export interface Caller {
  /** A valid JWT was presented (of any role, the anon key included). */
  authenticated: boolean;
  role: string;
  claims: Record<string, unknown>;
  token?: string;
  /** The JWT `sub`: stored as `owner_id`. */
  sub?: string;
  /** Why the token was refused, in the JWT library's words (when `authenticated` is false). */
  authError?: string;
}

export const ANON: Caller = { authenticated: false, role: "anon", claims: { role: "anon" } };

export async function resolveCaller(verifier: TokenVerifier, req: http.IncomingMessage): Promise<Caller> {
  const token = bearer(req.headers.authorization);
  if (!token) return { ...ANON, authError: "Invalid Compact JWS" };
  try {
    const verified = await verifier.verify(token);
    const sub = typeof verified.claims.sub === "string" ? verified.claims.sub : undefined;
    return { authenticated: true, role: verified.role, claims: verified.claims as Record<string, unknown>, token, sub };
  } catch (err) {
    // jose's own words for a string that is not a JWS at all, as the real server shows them.
    const message = err instanceof TokenError && err.kind === "malformed" ? "Invalid Compact JWS" : (err as Error).message;
    return { ...ANON, authError: message };
  }
}

/** For routes that need a valid JWT: the real server's hook refuses with AccessDenied (403). */
export function mustBeAuthenticated(caller: Caller): void {
  if (!caller.authenticated) throw ERRORS.AccessDenied(caller.authError ?? "Invalid Compact JWS");
}

/** The deprecated uuid `owner` column: set only when `sub` is a uuid. */
export function ownerUuid(sub: string | undefined): string | null {
  return isUuid(sub) ? sub : null;
}

/** What the real server sets in every transaction it opens for a request. */
export interface RequestScope {
  operation: string;
  method: string;
  path: string;
  headers: http.IncomingHttpHeaders;
}

function scopeSettings(scope: RequestScope): Record<string, string> {
  return { "storage.operation": scope.operation, "storage.allow_delete_query": "true" };
}

function settingsFor(caller: Caller, scope: RequestScope): CallerSettings {
  return {
    role: caller.role,
    claims: caller.claims,
    token: caller.token,
    headers: scope.headers as Record<string, unknown>,
    method: scope.method,
    path: scope.path,
    settings: scopeSettings(scope),
  };
}

// The roles the real server's database user may switch to (it is granted exactly these). Our
// pool is a superuser that could become anyone, so a token naming another role is refused here.
const API_ROLES = new Set(["anon", "authenticated", "service_role"]);

/** One transaction as the caller (role and claims set locally), so that RLS decides. */
export async function withCaller<T>(
  pool: pg.Pool,
  caller: Caller,
  scope: RequestScope,
  fn: (c: pg.PoolClient) => Promise<T>,
  opts: { rollback?: boolean } = {},
): Promise<T> {
  if (!API_ROLES.has(caller.role)) throw ERRORS.AccessDenied(`permission denied to set role "${caller.role}"`);
  return await asCaller(pool, settingsFor(caller, scope), fn, opts);
}

/** One transaction as the database owner, for the steps the real server runs as superuser. */
export function withSuperuser<T>(pool: pg.Pool, scope: RequestScope, fn: (c: pg.PoolClient) => Promise<T>): Promise<T> {
  return transaction(pool, async (c) => {
    const pairs = Object.entries(scopeSettings(scope));
    await c.query(`select ${pairs.map((_, i) => `set_config($${2 * i + 1}, $${2 * i + 2}, true)`).join(", ")}`, pairs.flat());
    return await fn(c);
  });
}

/** Runs fn as the caller and rolls back: the real server's permission dry run. */
export async function dryRun(pool: pg.Pool, caller: Caller, scope: RequestScope, fn: (c: pg.PoolClient) => Promise<void>): Promise<void> {
  await withCaller(pool, caller, scope, fn, { rollback: true });
}
