// Token checks as Realtime words them. Realtime needs `role` and `exp` in every JWT (the
// shared verifier defaults a missing role to anon, which Realtime does not).
import { TokenError, type TokenVerifier, type VerifiedToken } from "../auth.ts";

export type TokenCheck =
  | { ok: true; token: VerifiedToken; exp: number }
  | { ok: false; code: string; message: string };

export async function checkToken(verifier: TokenVerifier, token: string): Promise<TokenCheck> {
  try {
    const verified = await verifier.verify(token);
    const { role, exp } = verified.claims;
    if (typeof role !== "string" || typeof exp !== "number") {
      return { ok: false, code: "InvalidJWTToken", message: "Fields `role` and `exp` are required in JWT" };
    }
    return { ok: true, token: verified, exp };
  } catch (err) {
    if (!(err instanceof TokenError)) throw err;
    switch (err.kind) {
      case "expired":
        return { ok: false, code: "InvalidJWTToken", message: `Token has expired ${err.expiredFor} seconds ago` };
      case "signature":
        return { ok: false, code: "JwtSignatureError", message: "Failed to validate JWT signature" };
      case "malformed":
        return { ok: false, code: "MalformedJWT", message: "The token provided is not a valid JWT" };
      case "claims":
        return { ok: false, code: "InvalidJWTToken", message: err.message };
    }
  }
}

/** Opaque API keys (`sb_publishable_…`, `sb_secret_…`) mean "the key the socket connected with". */
export const isOpaqueKey = (token: unknown) => typeof token === "string" && token.startsWith("sb_");
