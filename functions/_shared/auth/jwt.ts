// Verifies Supabase user JWTs: HS256 with the project's legacy secret, or the project's
// asymmetric signing keys through its JWKS endpoint.
import { createRemoteJWKSet, decodeProtectedHeader, errors, jwtVerify, type JWTVerifyGetKey } from "jose";
import { z } from "zod";
import { ApiError } from "../http/errors.ts";

/** The claims GoTrue puts in an access token; extra claims pass through. */
export const UserClaimsSchema = z.looseObject({
  sub: z.string().uuid(),
  role: z.literal("authenticated"),
  aud: z.union([z.string(), z.array(z.string())]),
  exp: z.number(),
  iat: z.number(),
  email: z.string().optional(),
  phone: z.string().optional(),
  aal: z.enum(["aal1", "aal2"]).default("aal1"),
  amr: z.array(z.looseObject({ method: z.string(), timestamp: z.number() })).optional(),
  session_id: z.string().optional(),
  is_anonymous: z.boolean().default(false),
  app_metadata: z.record(z.string(), z.unknown()).default({}),
  user_metadata: z.record(z.string(), z.unknown()).default({}),
});
export type UserClaims = z.infer<typeof UserClaimsSchema>;

export interface JwtVerifierOptions {
  secret?: string;
  jwksUrl?: string;
  audience?: string;
}

export type JwtVerifier = (token: string) => Promise<UserClaims>;

export function createJwtVerifier(opts: JwtVerifierOptions): JwtVerifier {
  const secret = opts.secret ? new TextEncoder().encode(opts.secret) : undefined;
  const jwks: JWTVerifyGetKey | undefined = opts.jwksUrl ? createRemoteJWKSet(new URL(opts.jwksUrl)) : undefined;
  const audience = opts.audience ?? "authenticated";

  return async (token) => {
    let alg: string | undefined;
    try {
      alg = decodeProtectedHeader(token).alg;
    } catch {
      throw new ApiError(401, "invalid_token", "the bearer token is not a JWT");
    }
    try {
      const { payload } = alg === "HS256"
        ? await verifyWith(secret, token, ["HS256"], audience)
        : await verifyWith(jwks, token, ["ES256", "RS256", "EdDSA"], audience);
      const claims = UserClaimsSchema.safeParse(payload);
      if (!claims.success) {
        throw new ApiError(401, "invalid_token", "the token is not a signed-in user's access token");
      }
      return claims.data;
    } catch (err) {
      if (err instanceof ApiError) throw err;
      if (err instanceof errors.JWTExpired) throw new ApiError(401, "token_expired", "the access token has expired");
      if (err instanceof errors.JWTClaimValidationFailed) {
        throw new ApiError(401, "invalid_token", `the token's ${err.claim} claim is not accepted`);
      }
      throw new ApiError(401, "invalid_token", "the token's signature does not verify");
    }
  };
}

function verifyWith(
  key: Uint8Array | JWTVerifyGetKey | undefined,
  token: string,
  algorithms: string[],
  audience: string,
) {
  if (!key) throw new ApiError(401, "invalid_token", "tokens signed this way are not accepted here");
  // jose overloads differ by key kind; both are verified the same way.
  return typeof key === "function"
    ? jwtVerify(token, key, { algorithms, audience })
    : jwtVerify(token, key, { algorithms, audience });
}
