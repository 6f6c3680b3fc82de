// Authentication for api routes: a Supabase user JWT or an org API key.
import type { Context } from "hono";
import { createMiddleware } from "hono/factory";
import type { RequestMeta } from "../_shared/db/client.ts";
import { credentialFrom, resolvePrincipal } from "../_shared/auth/principal.ts";
import { ApiError } from "../_shared/http/errors.ts";
import type { ApiEnv } from "./context.ts";

export const requireAuth = createMiddleware<ApiEnv>(async (c, next) => {
  const credential = credentialFrom(c.req.raw.headers);
  if (!credential) throw new ApiError(401, "unauthorized", "send a user access token or an org API key");
  const { db, verifyJwt } = c.get("deps");
  c.set("principal", await resolvePrincipal(db, verifyJwt, credential));
  await next();
});

/** For routes that act on behalf of a person (invitations carry the inviter's name, for one). */
export const requireUser = createMiddleware<ApiEnv>(async (c, next) => {
  if (c.get("principal").kind !== "user") {
    throw new ApiError(403, "user_required", "this action needs a signed-in user, not an API key");
  }
  await next();
});

/** The signed-in user's id, on routes behind requireUser. */
export function userIdOf(c: Context<ApiEnv>): string {
  const principal = c.get("principal");
  if (principal.kind !== "user") throw new ApiError(403, "user_required", "this action needs a signed-in user, not an API key");
  return principal.userId;
}

/**
 * The client IP the hosted platform vouches for. Every hosted Supabase project is reached through
 * Cloudflare, which sets CF-Connecting-IP to the address it accepted the connection from and
 * overwrites any value a client sends; the local gateway does the same. X-Forwarded-For and
 * X-Real-IP are not read: their first entries are whatever the client wrote.
 */
export const CLIENT_IP_HEADER = "cf-connecting-ip";

/** The trusted client IP, when the header holds one that looks like an address. */
export function clientIp(headers: Headers): string | undefined {
  const ip = headers.get(CLIENT_IP_HEADER)?.trim();
  return ip && ip.length <= 45 && /^[0-9a-fA-F:.]+$/.test(ip) ? ip : undefined;
}

/** The request's id, client IP and user agent, recorded with the events and audit rows it causes. */
export function requestMeta(c: Context<ApiEnv>): RequestMeta {
  return {
    id: c.get("requestId"),
    ip: clientIp(c.req.raw.headers),
    user_agent: c.req.header("user-agent")?.slice(0, 512),
  };
}
