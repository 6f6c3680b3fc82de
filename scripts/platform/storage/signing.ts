// Signed URL tokens, as the real server makes them: HS256 JWTs signed with the project secret
// (the default URL-signing key), claims `url` = `<bucket>/<key>` and `scope`. A download token
// carries nothing else; an upload token also carries `owner` (the signer's sub) and `upsert`.
import { errors, jwtVerify, SignJWT, type JWTPayload } from "jose";
import { ERRORS } from "./errors.ts";

export type Scope = "download" | "upload";

export interface SignedPayload extends JWTPayload {
  url: string;
  scope?: Scope;
  owner?: string;
  upsert?: boolean;
}

export class UrlSigner {
  private readonly key: Uint8Array;

  constructor(secret: string) {
    this.key = new TextEncoder().encode(secret);
  }

  async sign(claims: { url: string; scope: Scope; owner?: string; upsert?: boolean }, expiresIn: number): Promise<string> {
    const iat = Math.floor(Date.now() / 1000);
    return await new SignJWT({ ...claims })
      .setProtectedHeader({ alg: "HS256", typ: "JWT" })
      .setIssuedAt(iat)
      .setExpirationTime(iat + expiresIn)
      .sign(this.key);
  }

  /**
   * Verifies a token for `<bucket>/<key>` and the scope of the endpoint: the signature first
   * (InvalidJWT with the library's words), expiry (ExpiredToken), then scope and path
   * (InvalidSignature).
   */
  async verify(token: string, url: string, scope: Scope): Promise<SignedPayload> {
    let payload: SignedPayload;
    try {
      payload = (await jwtVerify(token, this.key, { algorithms: ["HS256", "HS384", "HS512"] })).payload as SignedPayload;
    } catch (err) {
      if (err instanceof errors.JWTExpired) throw ERRORS.ExpiredSignature();
      throw ERRORS.InvalidJWT((err as Error).message);
    }
    // Legacy tokens without `scope` are upload tokens when they carry `upsert`.
    const tokenScope: Scope = payload.scope ?? (payload.upsert !== undefined ? "upload" : "download");
    if (tokenScope !== scope) throw ERRORS.InvalidSignature(`Token is not scoped for ${scope}`);
    if (payload.url !== url) throw ERRORS.InvalidSignature();
    if (typeof payload.exp === "number" && payload.exp * 1000 < Date.now()) throw ERRORS.ExpiredSignature();
    return payload;
  }
}
