// Local JWTs signed with the stack's secret: the anon and service-role keys, and user
// access tokens whose claims match what GoTrue issues.
import { randomUUID } from "node:crypto";
import { SignJWT } from "jose";

export async function signJwt(secret: string, claims: Record<string, unknown>, expiresIn: number | string = "1h") {
  return await new SignJWT(claims)
    .setProtectedHeader({ alg: "HS256", typ: "JWT" })
    .setIssuedAt()
    .setExpirationTime(expiresIn)
    .sign(new TextEncoder().encode(secret));
}

/** Long-lived API keys, as `supabase start` prints them. */
export async function projectKeys(secret: string) {
  const tenYears = 10 * 365 * 24 * 3600;
  const base = { iss: "supabase-demo" };
  return {
    anonKey: await signJwt(secret, { ...base, role: "anon" }, `${tenYears}s`),
    serviceRoleKey: await signJwt(secret, { ...base, role: "service_role" }, `${tenYears}s`),
  };
}

export interface TokenUser {
  id: string;
  email?: string | null;
  phone?: string | null;
  app_metadata?: Record<string, unknown>;
  user_metadata?: Record<string, unknown>;
  is_anonymous?: boolean;
}

/** The claims GoTrue puts in a user's access token (without iat/exp, which signing adds). */
export function gotrueClaims(user: TokenUser, opts: { aal?: "aal1" | "aal2"; aud?: string; issuer?: string } = {}) {
  const now = Math.floor(Date.now() / 1000);
  const amr = [{ method: "password", timestamp: now }];
  if (opts.aal === "aal2") amr.push({ method: "totp", timestamp: now });
  return {
    iss: opts.issuer ?? "http://127.0.0.1:54321/auth/v1",
    sub: user.id,
    aud: opts.aud ?? "authenticated",
    role: "authenticated",
    email: user.email ?? "",
    phone: user.phone ?? "",
    aal: opts.aal ?? "aal1",
    amr,
    session_id: randomUUID(),
    is_anonymous: user.is_anonymous ?? false,
    app_metadata: user.app_metadata ?? { provider: "email", providers: ["email"] },
    user_metadata: user.user_metadata ?? {},
  };
}

/** A user access token with GoTrue's full claim set. */
export async function userToken(
  secret: string,
  user: TokenUser,
  opts: { aal?: "aal1" | "aal2"; expiresIn?: number | string; aud?: string; issuer?: string } = {},
) {
  return await signJwt(secret, gotrueClaims(user, opts), opts.expiresIn ?? "1h");
}
