// Token verification as the hosted Storage and Realtime servers do it: HS256 with the project
// secret, or an asymmetric key from the project's JWKS (by `kid`). The caller's role is the
// token's `role` claim; the servers never trust anything else for it.
import { createRemoteJWKSet, decodeProtectedHeader, errors, jwtVerify, type JWTPayload } from "jose";

export interface VerifiedToken {
  token: string;
  claims: JWTPayload & { role?: string; sub?: string };
  role: string;
}

export interface TokenVerifier {
  /** Verifies a JWT; throws a `TokenError` whose message is what the real servers say. */
  verify(token: string): Promise<VerifiedToken>;
}

export class TokenError extends Error {
  constructor(
    message: string,
    /** `expired`, `malformed` or `signature`: lets each server word it its own way. */
    readonly kind: "expired" | "malformed" | "signature" | "claims",
    /** Seconds since expiry, for Realtime's "Token has expired N seconds ago". */
    readonly expiredFor = 0,
  ) {
    super(message);
  }
}

export function createTokenVerifier(opts: { jwtSecret: string; jwksUrl?: string }): TokenVerifier {
  const secret = new TextEncoder().encode(opts.jwtSecret);
  const jwks = opts.jwksUrl ? createRemoteJWKSet(new URL(opts.jwksUrl)) : undefined;
  return {
    async verify(token) {
      let alg: string | undefined;
      try {
        alg = decodeProtectedHeader(token).alg;
      } catch {
        throw new TokenError("The token provided is not a valid JWT", "malformed");
      }
      try {
        const { payload } = alg?.startsWith("HS") || !jwks
          ? await jwtVerify(token, secret, { algorithms: ["HS256", "HS384", "HS512"] })
          : await jwtVerify(token, jwks);
        const role = typeof payload.role === "string" ? payload.role : "anon";
        return { token, claims: payload as VerifiedToken["claims"], role };
      } catch (err) {
        if (err instanceof errors.JWTExpired) {
          const exp = Number((err.payload as JWTPayload).exp ?? 0);
          const ago = Math.max(0, Math.floor(Date.now() / 1000) - exp);
          throw new TokenError(err.message, "expired", ago);
        }
        if (err instanceof errors.JWSSignatureVerificationFailed || err instanceof errors.JWKSNoMatchingKey) {
          throw new TokenError(err.message, "signature");
        }
        if (err instanceof errors.JWTClaimValidationFailed) throw new TokenError(err.message, "claims");
        throw new TokenError((err as Error).message, "malformed");
      }
    },
  };
}

/** The Bearer token of an `Authorization` header, if any. */
export function bearer(header: string | string[] | undefined): string | undefined {
  const value = Array.isArray(header) ? header[0] : header;
  const m = value ? /^Bearer\s+(\S+)$/i.exec(value) : null;
  return m?.[1];
}
