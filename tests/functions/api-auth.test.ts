// The api function's authentication over real HTTP: user JWTs (HS256 and ES256 via JWKS),
// org API keys, and every way a credential can be refused.
import { exportJWK, generateKeyPair, importJWK, SignJWT } from "jose";
import { beforeAll, describe, expect, it } from "vitest";
import { gotrueClaims, signJwt, userToken } from "../../scripts/lib/keys.ts";
import { admin, createTeam, createUser, rpc, stack, type Team } from "../helpers/db.ts";
import { call, expectError } from "../helpers/http.ts";

const b64url = (v: unknown) => Buffer.from(typeof v === "string" ? v : JSON.stringify(v)).toString("base64url");
const nowSec = () => Math.floor(Date.now() / 1000);

async function es256Token(jwk: Record<string, unknown>, kid: string, claims: Record<string, unknown>) {
  const key = await importJWK(jwk as Parameters<typeof importJWK>[0], "ES256");
  return await new SignJWT(claims)
    .setProtectedHeader({ alg: "ES256", kid, typ: "JWT" })
    .setIssuedAt()
    .setExpirationTime("1h")
    .sign(key);
}

describe("GET /api/health", () => {
  it("answers 200 ok without credentials", async () => {
    const res = await call("/api/health");
    expect(res.status).toBe(200);
    expect(res.body).toMatchObject({ status: "ok" });
    expect(typeof res.body.time).toBe("string");
  });
});

describe("GET /api/me as a user", () => {
  let team: Team;
  beforeAll(async () => {
    team = await createTeam("Auth");
  });

  const PERMISSIONS: Record<string, string[]> = {
    owner: ["ai.use", "api_keys.manage", "billing.manage", "content.read", "content.write", "members.manage", "org.manage", "webhooks.manage"],
    member: ["ai.use", "content.read", "content.write"],
  };

  function expectUserMe(body: any, userId: string, orgId: string, role: string) {
    expect(body.kind).toBe("user");
    expect(body.user_id).toBe(userId);
    expect(body.aal).toBe("aal1");
    expect(body.profile).toEqual(expect.objectContaining({
      display_name: expect.any(String),
      locale: expect.any(String),
      timezone: expect.any(String),
      marketing_consent: false,
    }));
    const teamOrg = body.orgs.find((o: any) => o.id === orgId);
    expect(teamOrg, JSON.stringify(body.orgs)).toMatchObject({ kind: "team", role, has_access: true, blocked_reason: null });
    expect([...teamOrg.permissions].sort()).toEqual(PERMISSIONS[role]);
    expect(body.orgs.some((o: any) => o.kind === "personal" && o.role === "owner")).toBe(true);
  }

  it("accepts an HS256 token signed with the project secret", async () => {
    const token = await userToken(stack.jwtSecret, team.owner);
    const res = await call("/api/me", { token });
    expect(res.status, res.raw).toBe(200);
    expectUserMe(res.body, team.owner.id, team.orgId, "owner");
    expect(res.body.orgs.find((o: any) => o.id === team.orgId).permissions).toContain("members.manage");
  });

  it("accepts an ES256 token signed with the project's JWKS key", async () => {
    const jwk = stack.jwksPrivateJwk;
    const token = await es256Token(jwk, String(jwk.kid), gotrueClaims(team.member));
    const res = await call("/api/me", { token });
    expect(res.status, res.raw).toBe(200);
    expectUserMe(res.body, team.member.id, team.orgId, "member");
  });

  it("a validly signed token for a user who no longer exists -> 401, not 5xx", async () => {
    const gone = await createUser();
    const token = await userToken(stack.jwtSecret, gone);
    await admin.query("delete from auth.users where id = $1", [gone.id]);
    const res = await call("/api/me", { token });
    expectError(res, 401, "invalid_token");
    expect(res.body.error.message).toMatch(/no longer exists/);
  });

  it("does not show orgs the user is not in", async () => {
    const stranger = await createUser();
    const res = await call("/api/me", { token: await userToken(stack.jwtSecret, stranger) });
    expect(res.status, res.raw).toBe(200);
    expect(res.body.orgs.map((o: any) => o.id)).not.toContain(team.orgId);
    expect(res.body.orgs).toHaveLength(1);
  });
});

describe("GET /api/me refuses bad credentials with 401", () => {
  let user: { id: string; email: string };
  beforeAll(async () => {
    user = await createUser();
  });

  it("no Authorization header", async () => {
    expectError(await call("/api/me"), 401, "unauthorized");
  });

  it("an Authorization header that is not a bearer token", async () => {
    expectError(await call("/api/me", { headers: { authorization: "Basic dXNlcjpwYXNz" } }), 401, "invalid_token");
  });

  it("a bearer value that is not a JWT", async () => {
    expectError(await call("/api/me", { token: "not-a-jwt" }), 401, "invalid_token");
  });

  it("an expired token", async () => {
    const token = await signJwt(stack.jwtSecret, gotrueClaims(user), nowSec() - 60);
    expectError(await call("/api/me", { token }), 401, "token_expired");
  });

  it("a token signed with a different secret (forged)", async () => {
    const token = await userToken("a-completely-different-secret-of-32-chars-or-more!", user);
    expectError(await call("/api/me", { token }), 401, "invalid_token");
  });

  it("a token for another audience", async () => {
    const token = await userToken(stack.jwtSecret, user, { aud: "other" });
    const res = await call("/api/me", { token });
    expectError(res, 401, "invalid_token");
    expect(res.body.error.message).toMatch(/aud/);
  });

  it("the anon key used as a user token", async () => {
    expectError(await call("/api/me", { token: stack.anonKey }), 401, "invalid_token");
  });

  it("the service-role key used as a user token", async () => {
    expectError(await call("/api/me", { token: stack.serviceRoleKey }), 401, "invalid_token");
  });

  it("a correctly signed token whose claims are not a user's (role anon with aud)", async () => {
    const token = await signJwt(stack.jwtSecret, { ...gotrueClaims(user), role: "anon" });
    expectError(await call("/api/me", { token }), 401, "invalid_token");
  });

  it("an ES256 token signed by a key the project does not publish", async () => {
    const { privateKey } = await generateKeyPair("ES256", { extractable: true });
    const jwk = await exportJWK(privateKey);
    // Same kid as the real key (a key-confusion attempt), and an unknown kid.
    for (const kid of [String(stack.jwksPrivateJwk.kid), "attacker-key"]) {
      const token = await es256Token(jwk as Record<string, unknown>, kid, gotrueClaims(user));
      expectError(await call("/api/me", { token }), 401, "invalid_token");
    }
  });

  it("unsigned tokens (alg none, and HS256 with an empty signature)", async () => {
    const claims = { ...gotrueClaims(user), iat: nowSec(), exp: nowSec() + 3600 };
    const none = `${b64url({ alg: "none", typ: "JWT" })}.${b64url(claims)}.`;
    expectError(await call("/api/me", { token: none }), 401, "invalid_token");
    const empty = `${b64url({ alg: "HS256", typ: "JWT" })}.${b64url(claims)}.`;
    expectError(await call("/api/me", { token: empty }), 401, "invalid_token");
  });

  it("an ES256-claimed token signed with HS256 using the public key is refused (alg confusion)", async () => {
    const { d: _d, ...pub } = stack.jwksPrivateJwk as Record<string, unknown>;
    const claims = { ...gotrueClaims(user), iat: nowSec(), exp: nowSec() + 3600 };
    const header = b64url({ alg: "ES256", kid: String(stack.jwksPrivateJwk.kid), typ: "JWT" });
    const body = b64url(claims);
    const { createHmac } = await import("node:crypto");
    const sig = createHmac("sha256", JSON.stringify(pub)).update(`${header}.${body}`).digest("base64url");
    expectError(await call("/api/me", { token: `${header}.${body}.${sig}` }), 401, "invalid_token");
  });
});

describe("org API keys", () => {
  let team: Team;
  let key: string;
  let keyId: string;
  beforeAll(async () => {
    team = await createTeam("Keys");
    const [row] = await rpc<{ api_key_id: string; key: string }>(team.owner, "create_api_key", {
      p_org_id: team.orgId,
      p_name: "ci",
      p_scopes: ["content.read"],
    });
    key = row.key;
    keyId = row.api_key_id;
  });

  it("authenticates with x-api-key and with Authorization: Bearer", async () => {
    for (const opts of [{ apiKey: key }, { token: key }]) {
      const res = await call("/api/me", opts);
      expect(res.status, res.raw).toBe(200);
      expect(res.body).toEqual({
        kind: "api_key",
        api_key_id: keyId,
        scopes: ["content.read"],
        org: { id: team.orgId, slug: team.slug, name: expect.stringMatching(/^Keys /) },
      });
    }
  });

  it("is refused on a user-only route with 403 user_required, and nothing is created", async () => {
    const email = `keyinvite-${keyId.slice(0, 8)}@test.local`;
    const res = await call(`/api/orgs/${team.orgId}/invitations`, { apiKey: key, json: { email, role: "member" } });
    expectError(res, 403, "user_required");
    const { rows } = await admin.query("select id from public.invitations where email = $1", [email]);
    expect(rows).toEqual([]);
  });

  it("a malformed key is refused", async () => {
    expectError(await call("/api/me", { apiKey: "plk_x" }), 401, "invalid_api_key");
    expectError(await call("/api/me", { token: "plk_x" }), 401, "invalid_api_key");
  });

  it("a well-formed key with a wrong secret is refused", async () => {
    const wrong = key.replace(/_[^_]+$/, "_" + "A".repeat(43));
    expect(wrong).not.toBe(key);
    expectError(await call("/api/me", { apiKey: wrong }), 401, "invalid_api_key");
  });

  it("stops working once revoked", async () => {
    const [row] = await rpc<{ api_key_id: string; key: string }>(team.owner, "create_api_key", {
      p_org_id: team.orgId,
      p_name: "to revoke",
      p_scopes: ["content.read"],
    });
    expect((await call("/api/me", { apiKey: row.key })).status).toBe(200);
    await rpc(team.owner, "revoke_api_key", { p_api_key_id: row.api_key_id });
    expectError(await call("/api/me", { apiKey: row.key }), 401, "invalid_api_key");
    expectError(await call("/api/me", { token: row.key }), 401, "invalid_api_key");
  });
});
