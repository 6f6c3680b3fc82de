// Who is calling the api function: a signed-in user (Supabase JWT) or an org API key.
// Either way the result carries the claims that asUser() hands to Postgres, so RLS decides.
import { sql } from "kysely";
import type { Claims, Db } from "../db/client.ts";
import { asService } from "../db/client.ts";
import { ApiError } from "../http/errors.ts";
import type { JwtVerifier, UserClaims } from "./jwt.ts";

export type Principal =
  | { kind: "user"; userId: string; claims: UserClaims & Claims }
  | { kind: "api_key"; keyId: string; orgId: string; scopes: string[]; claims: Claims };

const API_KEY_PATTERN = /^plk_[A-Za-z0-9]{12}_[A-Za-z0-9_-]{32,64}$/;

/** Reads `Authorization: Bearer <jwt|api key>` or `x-api-key`. */
export function credentialFrom(headers: Headers): string | undefined {
  const apiKey = headers.get("x-api-key");
  if (apiKey) return apiKey.trim();
  const auth = headers.get("authorization");
  if (!auth) return undefined;
  const match = /^Bearer\s+(\S+)$/i.exec(auth.trim());
  if (!match) throw new ApiError(401, "invalid_token", "use Authorization: Bearer <token>");
  return match[1];
}

export async function resolvePrincipal(db: Db, verify: JwtVerifier, credential: string): Promise<Principal> {
  if (credential.startsWith("plk_")) return resolveApiKey(db, credential);
  const claims = await verify(credential);
  return { kind: "user", userId: claims.sub, claims: claims as UserClaims & Claims };
}

async function resolveApiKey(db: Db, key: string): Promise<Principal> {
  if (!API_KEY_PATTERN.test(key)) throw new ApiError(401, "invalid_api_key", "the API key is malformed");
  const row = await asService(db, async (tx) => {
    const { rows } = await sql<{ key_id: string; org_id: string; scopes: string[] }>`
      select key_id, org_id, scopes from private.authenticate_api_key(${key})`.execute(tx);
    return rows[0];
  });
  if (!row) throw new ApiError(401, "invalid_api_key", "the API key is unknown, revoked or expired");
  return {
    kind: "api_key",
    keyId: row.key_id,
    orgId: row.org_id,
    scopes: row.scopes,
    // private.org_ids_with_permission() reads api_key_id; there is no user, so auth.uid() is null.
    claims: { role: "authenticated", aud: "authenticated", api_key_id: row.key_id, org_id: row.org_id },
  };
}
