import { createHash, randomBytes, randomUUID } from "node:crypto";
import { describe, expect, it } from "vitest";
import { addMember, admin, as, createTeam, createUser, expectSqlError, rpc, select, type Caller, type TestUser } from "../helpers/db.ts";

interface NewKey {
  api_key_id: string;
  key: string;
  prefix: string;
}

const KEY_FORMAT = /^plk_[a-f0-9]{12}_[A-Za-z0-9_-]{43}$/;
const COLS = "id, org_id, name, prefix, scopes, expires_at, last_used_at, revoked_at, created_by, created_at, updated_at";

async function createKey(who: TestUser, orgId: string, scopes: string[], opts: { name?: string; expiresAt?: Date } = {}) {
  const args: Record<string, unknown> = { p_org_id: orgId, p_name: opts.name ?? "CI key", p_scopes: scopes };
  if (opts.expiresAt) args.p_expires_at = opts.expiresAt;
  const [k] = await rpc<NewKey>(who, "create_api_key", args);
  return k;
}

async function keyRow(id: string) {
  const { rows } = await admin.query("select * from public.api_keys where id = $1", [id]);
  return rows[0];
}

/** Runs private.authenticate_api_key as the service role (what the api function does). */
async function authenticate(key: string) {
  const client = await admin.connect();
  try {
    await client.query("begin");
    await client.query("set local role service_role");
    const { rows } = await client.query("select * from private.authenticate_api_key($1)", [key]);
    await client.query("commit");
    return rows as { key_id: string; org_id: string; scopes: string[] }[];
  } catch (err) {
    await client.query("rollback").catch(() => {});
    throw err;
  } finally {
    client.release();
  }
}

function keyCaller(apiKeyId: string): Caller {
  return { claims: { role: "authenticated", aud: "authenticated", api_key_id: apiKeyId } };
}

function randomSecret() {
  return randomBytes(32).toString("base64url"); // 43 characters, the shape the server issues
}

describe("create_api_key", () => {
  it("an admin creates a key; it is returned once, only its hash is stored", async () => {
    const team = await createTeam();
    const k = await createKey(team.admin, team.orgId, ["content.read"], { name: "  Reporting  " });
    expect(k.key).toMatch(KEY_FORMAT);
    expect(k.prefix).toMatch(/^[a-f0-9]{12}$/);
    expect(k.key.startsWith(`plk_${k.prefix}_`)).toBe(true);
    const row = await keyRow(k.api_key_id);
    expect(row).toMatchObject({
      org_id: team.orgId,
      name: "Reporting",
      prefix: k.prefix,
      scopes: ["content.read"],
      expires_at: null,
      last_used_at: null,
      revoked_at: null,
      created_by: team.admin.id,
    });
    const secret = k.key.slice(`plk_${k.prefix}_`.length);
    expect(Buffer.from(row.secret_hash).equals(createHash("sha256").update(secret).digest())).toBe(true);
  });

  it("two keys get distinct prefixes and secrets; scopes are de-duplicated and sorted", async () => {
    const team = await createTeam();
    const a = await createKey(team.owner, team.orgId, ["content.write", "content.read", "content.write"]);
    const b = await createKey(team.owner, team.orgId, ["content.read"]);
    expect(a.prefix).not.toBe(b.prefix);
    expect(a.key).not.toBe(b.key);
    expect((await keyRow(a.api_key_id)).scopes).toEqual(["content.read", "content.write"]);
  });

  it("accepts a future expiry", async () => {
    const team = await createTeam();
    const expiresAt = new Date(Date.now() + 3600_000);
    const k = await createKey(team.admin, team.orgId, ["content.read"], { expiresAt });
    expect((await keyRow(k.api_key_id)).expires_at.getTime()).toBe(expiresAt.getTime());
  });

  it("refuses scopes the creator lacks (42501)", async () => {
    const team = await createTeam();
    await admin.query(
      `insert into public.org_roles (org_id, key, name, rank, permissions)
       values ($1, 'key_manager', 'Key manager', 25, '{api_keys.manage,content.read}')`,
      [team.orgId],
    );
    const keyManager = await createUser();
    await addMember(team.orgId, keyManager, "key_manager");
    await expectSqlError(createKey(keyManager, team.orgId, ["billing.manage"]), "42501", /scopes its creator lacks/);
    await expectSqlError(createKey(keyManager, team.orgId, ["content.read", "content.write"]), "42501", /scopes its creator lacks/);
    const ok = await createKey(keyManager, team.orgId, ["content.read"]);
    expect((await keyRow(ok.api_key_id)).scopes).toEqual(["content.read"]);
    const { rows } = await admin.query("select count(*)::int as n from public.api_keys where org_id = $1", [team.orgId]);
    expect(rows[0].n).toBe(1);
  });

  it("refuses unknown scopes, no scopes and a past expiry with 22023", async () => {
    const team = await createTeam();
    await expectSqlError(createKey(team.admin, team.orgId, ["content.read", "root.everything"]), "22023", /unknown scope/);
    await expectSqlError(createKey(team.admin, team.orgId, []), "22023", /at least one scope/);
    await expectSqlError(
      rpc(team.admin, "create_api_key", { p_org_id: team.orgId, p_name: "k", p_scopes: null }),
      "22023",
      /at least one scope/,
    );
    await expectSqlError(createKey(team.admin, team.orgId, ["content.read"], { expiresAt: new Date(Date.now() - 1000) }), "22023", /future/);
    const { rows } = await admin.query("select count(*)::int as n from public.api_keys where org_id = $1", [team.orgId]);
    expect(rows[0].n).toBe(0);
  });

  it("members and viewers cannot create keys (42501); strangers get PT404", async () => {
    const team = await createTeam();
    const stranger = await createUser();
    await expectSqlError(createKey(team.member, team.orgId, ["content.read"]), "42501", /api_keys\.manage/);
    await expectSqlError(createKey(team.viewer, team.orgId, ["content.read"]), "42501", /api_keys\.manage/);
    await expectSqlError(createKey(stranger, team.orgId, ["content.read"]), "PT404");
    const { rows } = await admin.query("select count(*)::int as n from public.api_keys where org_id = $1", [team.orgId]);
    expect(rows[0].n).toBe(0);
  });
});

describe("private.authenticate_api_key", () => {
  it("resolves a valid key to its org and scopes and records the use", async () => {
    const team = await createTeam();
    const k = await createKey(team.admin, team.orgId, ["content.write", "content.read"]);
    expect((await keyRow(k.api_key_id)).last_used_at).toBeNull();
    const dbClock = async () => (await admin.query<{ t: Date }>("select clock_timestamp() as t")).rows[0].t.getTime();
    const before = await dbClock();
    const rows = await authenticate(k.key);
    const after = await dbClock();
    expect(rows).toEqual([{ key_id: k.api_key_id, org_id: team.orgId, scopes: ["content.read", "content.write"] }]);
    const used = (await keyRow(k.api_key_id)).last_used_at;
    expect(used).toBeInstanceOf(Date);
    // Stamped by that call: between the database's clock just before and just after it.
    expect(used.getTime()).toBeGreaterThanOrEqual(before);
    expect(used.getTime()).toBeLessThanOrEqual(after);
    // Within the minute, a second use does not write again.
    expect(await authenticate(k.key)).toHaveLength(1);
    expect((await keyRow(k.api_key_id)).last_used_at.getTime()).toBe(used.getTime());
  });

  it("returns no row for a wrong secret or an unknown prefix", async () => {
    const team = await createTeam();
    const k = await createKey(team.admin, team.orgId, ["content.read"]);
    expect(await authenticate(`plk_${k.prefix}_${randomSecret()}`)).toEqual([]);
    // Right secret, other prefix.
    const secret = k.key.slice(`plk_${k.prefix}_`.length);
    expect(await authenticate(`plk_000000000000_${secret}`)).toEqual([]);
    expect((await keyRow(k.api_key_id)).last_used_at).toBeNull();
  });

  it("returns no row for a revoked key", async () => {
    const team = await createTeam();
    const k = await createKey(team.admin, team.orgId, ["content.read"]);
    expect(await authenticate(k.key)).toHaveLength(1);
    await rpc(team.admin, "revoke_api_key", { p_api_key_id: k.api_key_id });
    expect(await authenticate(k.key)).toEqual([]);
  });

  it("returns no row for an expired key", async () => {
    const team = await createTeam();
    const k = await createKey(team.admin, team.orgId, ["content.read"], { expiresAt: new Date(Date.now() + 3600_000) });
    expect(await authenticate(k.key)).toHaveLength(1);
    await admin.query("update public.api_keys set expires_at = now() - interval '1 second' where id = $1", [k.api_key_id]);
    expect(await authenticate(k.key)).toEqual([]);
  });

  it("returns no row for malformed keys", async () => {
    const team = await createTeam();
    const k = await createKey(team.admin, team.orgId, ["content.read"]);
    const secret = k.key.slice(`plk_${k.prefix}_`.length);
    for (const bad of [
      "",
      "plk_",
      k.prefix,
      `${k.key} `,
      ` ${k.key}`,
      `xyz_${k.prefix}_${secret}`,
      `plk_${k.prefix}${secret}`,
      `plk_${k.prefix}_${secret.slice(0, 20)}`,
      `plk_${k.prefix}_${secret}!`,
      "plk_%_%",
      "' or 1=1 --",
    ]) {
      expect(await authenticate(bad), JSON.stringify(bad)).toEqual([]);
    }
    expect(await authenticate(k.key)).toHaveLength(1);
  });

  it("authenticated users cannot execute it (42501)", async () => {
    const team = await createTeam();
    const k = await createKey(team.admin, team.orgId, ["content.read"]);
    await expectSqlError(select(team.admin, "select * from private.authenticate_api_key($1)", [k.key]), "42501", /permission denied/);
    await expectSqlError(select("anon", "select * from private.authenticate_api_key($1)", [k.key]), "42501");
    expect((await keyRow(k.api_key_id)).last_used_at).toBeNull();
  });
});

describe("revoke_api_key", () => {
  it("an admin revokes a key; revoking again fails with 22023", async () => {
    const team = await createTeam();
    const k = await createKey(team.owner, team.orgId, ["content.read"]);
    await rpc(team.admin, "revoke_api_key", { p_api_key_id: k.api_key_id });
    const revokedAt = (await keyRow(k.api_key_id)).revoked_at;
    expect(revokedAt).toBeInstanceOf(Date);
    await expectSqlError(rpc(team.admin, "revoke_api_key", { p_api_key_id: k.api_key_id }), "22023", /already revoked/);
    expect((await keyRow(k.api_key_id)).revoked_at.getTime()).toBe(revokedAt.getTime());
  });

  it("members and viewers cannot revoke (42501); strangers get PT404", async () => {
    const team = await createTeam();
    const stranger = await createUser();
    const k = await createKey(team.admin, team.orgId, ["content.read"]);
    await expectSqlError(rpc(team.member, "revoke_api_key", { p_api_key_id: k.api_key_id }), "42501");
    await expectSqlError(rpc(team.viewer, "revoke_api_key", { p_api_key_id: k.api_key_id }), "42501");
    await expectSqlError(rpc(stranger, "revoke_api_key", { p_api_key_id: k.api_key_id }), "PT404");
    expect((await keyRow(k.api_key_id)).revoked_at).toBeNull();
  });

  it("an unknown id fails with PT404", async () => {
    const team = await createTeam();
    await expectSqlError(rpc(team.admin, "revoke_api_key", { p_api_key_id: randomUUID() }), "PT404", /not found/);
  });
});

describe("api_keys RLS", () => {
  it("key managers read their own org's keys; members, viewers and strangers read none", async () => {
    const team = await createTeam();
    const other = await createTeam("Other");
    const stranger = await createUser();
    const k = await createKey(team.admin, team.orgId, ["content.read"]);
    const otherKey = await createKey(other.admin, other.orgId, ["content.read"]);
    for (const who of [team.admin, team.owner]) {
      const rows = await select<{ id: string; prefix: string }>(who, `select ${COLS} from public.api_keys`);
      expect(rows.map((r) => r.id)).toEqual([k.api_key_id]);
      expect(rows[0].prefix).toBe(k.prefix);
    }
    expect((await select<{ id: string }>(other.admin, `select ${COLS} from public.api_keys`)).map((r) => r.id)).toEqual([otherKey.api_key_id]);
    for (const who of [team.member, team.viewer, stranger]) {
      expect(await select(who, `select ${COLS} from public.api_keys`)).toEqual([]);
    }
  });

  it("secret_hash is not readable by clients (42501)", async () => {
    const team = await createTeam();
    await createKey(team.admin, team.orgId, ["content.read"]);
    await expectSqlError(select(team.admin, "select secret_hash from public.api_keys"), "42501", /permission denied/);
    await expectSqlError(select(team.owner, "select * from public.api_keys"), "42501", /permission denied/);
    await expectSqlError(select(team.owner, "select id from public.api_keys where secret_hash is not null"), "42501", /permission denied/);
  });

  it("clients cannot insert, update or delete keys directly (42501)", async () => {
    const team = await createTeam();
    const k = await createKey(team.admin, team.orgId, ["content.read"]);
    await expectSqlError(
      as(team.owner, (c) =>
        c.query(
          `insert into public.api_keys (org_id, name, prefix, secret_hash, scopes)
           values ($1, 'sneaky', 'abcdefabcdef', '\\x00', '{content.read}')`,
          [team.orgId],
        ),
      ),
      "42501",
    );
    await expectSqlError(
      as(team.owner, (c) => c.query("update public.api_keys set scopes = '{org.manage}' where id = $1", [k.api_key_id])),
      "42501",
    );
    await expectSqlError(
      as(team.owner, (c) => c.query("update public.api_keys set revoked_at = null, expires_at = null where id = $1", [k.api_key_id])),
      "42501",
    );
    await expectSqlError(as(team.owner, (c) => c.query("delete from public.api_keys where id = $1", [k.api_key_id])), "42501");
    const row = await keyRow(k.api_key_id);
    expect(row.scopes).toEqual(["content.read"]);
    const { rows } = await admin.query("select count(*)::int as n from public.api_keys where org_id = $1", [team.orgId]);
    expect(rows[0].n).toBe(1);
  });
});

describe("API-key callers in RLS", () => {
  it("see their key's org, and nothing else; after revocation, nothing", async () => {
    const team = await createTeam();
    const other = await createTeam("Other");
    const k = await createKey(team.admin, team.orgId, ["content.read"]);
    await createKey(other.admin, other.orgId, ["content.read"]);
    const caller = keyCaller(k.api_key_id);
    expect(await select(caller, "select id from public.orgs")).toEqual([{ id: team.orgId }]);
    await rpc(team.admin, "revoke_api_key", { p_api_key_id: k.api_key_id });
    expect(await select(caller, "select id from public.orgs")).toEqual([]);
  });

  it("an expired key sees nothing", async () => {
    const team = await createTeam();
    const k = await createKey(team.admin, team.orgId, ["content.read"]);
    const caller = keyCaller(k.api_key_id);
    expect(await select(caller, "select id from public.orgs")).toEqual([{ id: team.orgId }]);
    await admin.query("update public.api_keys set expires_at = now() - interval '1 second' where id = $1", [k.api_key_id]);
    expect(await select(caller, "select id from public.orgs")).toEqual([]);
    const [p] = await select<{ ok: boolean }>(caller, "select private.has_permission($1, 'content.read') as ok", [team.orgId]);
    expect(p.ok).toBe(false);
  });

  it("an unknown key id sees nothing", async () => {
    await createTeam();
    expect(await select(keyCaller(randomUUID()), "select id from public.orgs")).toEqual([]);
  });

  it("hold exactly the key's scopes in the key's org", async () => {
    const team = await createTeam();
    const other = await createTeam("Other");
    const k = await createKey(team.admin, team.orgId, ["content.read"]);
    const caller = keyCaller(k.api_key_id);
    const q = "select private.has_permission($1, $2) as ok";
    expect((await select<{ ok: boolean }>(caller, q, [team.orgId, "content.read"]))[0].ok).toBe(true);
    expect((await select<{ ok: boolean }>(caller, q, [team.orgId, "members.manage"]))[0].ok).toBe(false);
    expect((await select<{ ok: boolean }>(caller, q, [team.orgId, "content.write"]))[0].ok).toBe(false);
    expect((await select<{ ok: boolean }>(caller, q, [other.orgId, "content.read"]))[0].ok).toBe(false);
    await rpc(team.admin, "revoke_api_key", { p_api_key_id: k.api_key_id });
    expect((await select<{ ok: boolean }>(caller, q, [team.orgId, "content.read"]))[0].ok).toBe(false);
  });

  it("RPCs that need a user refuse an API-key caller (42501)", async () => {
    const team = await createTeam();
    const k = await createKey(team.admin, team.orgId, ["members.manage", "api_keys.manage", "content.read"]);
    const caller = keyCaller(k.api_key_id);
    const email = `keyinvite-${randomUUID().slice(0, 8)}@test.local`;
    await expectSqlError(rpc(caller, "invite_member", { p_org_id: team.orgId, p_email: email }), "42501", /sign in/);
    await expectSqlError(rpc(caller, "create_api_key", { p_org_id: team.orgId, p_name: "x", p_scopes: ["content.read"] }), "42501", /sign in/);
    await expectSqlError(rpc(caller, "revoke_api_key", { p_api_key_id: k.api_key_id }), "42501", /sign in/);
    await expectSqlError(rpc(caller, "set_member_role", { p_org_id: team.orgId, p_user_id: team.member.id, p_role: "viewer" }), "42501");
    await expectSqlError(rpc(caller, "create_org", { p_name: "Key org" }), "42501");
    const { rows } = await admin.query("select count(*)::int as n from public.invitations where org_id = $1", [team.orgId]);
    expect(rows[0].n).toBe(0);
    expect((await keyRow(k.api_key_id)).revoked_at).toBeNull();
  });
});
