// The API key walk: for every table and view with org_id in an exposed schema, an org API key
// acts only within its org and its scopes.
//   - A key of acme with every scope reads none of globex's rows (beyond what a signed-in
//     stranger reads) and inserts, updates and deletes none of them.
//   - For every scope set (each permission alone, and all but each one), a key reads and writes
//     no more of acme than a member whose custom role holds exactly those permissions: a key
//     without a scope cannot do what the scope guards.
//   - Allowed cases: a key holding the permission a table's SELECT policy names reads its rows.
// The key, the custom role and the membership exist only inside one rolled-back transaction.
import { randomBytes, randomUUID } from "node:crypto";
import { beforeAll, describe, expect, it } from "vitest";
import { gotrueClaims } from "../../scripts/lib/keys.ts";
import { PUBLIC_BY_DESIGN, commandsFor, isDenied, orgRelations, rowToCopy, walk, type Outcome, type RelationInfo } from "../helpers/catalog.ts";
import { admin, createUser } from "../helpers/db.ts";

const ACME = "a0000000-0000-4000-8000-00000000a000";
const GLOBEX = "b0000000-0000-4000-8000-00000000b000";
const alice = "a0000000-0000-4000-8000-000000000001"; // acme's owner: holds every permission, so the key keeps them all

/** Tables whose SELECT policy names a permission that is not enough alone, and why. */
const ONE_SCOPE_IS_NOT_ENOUGH: Record<string, string> = {
  "content.shares": "content.write and the right to manage the document (org.manage, for a key)",
};

const relations = await orgRelations();
const name = (r: RelationInfo) => `${r.schema}.${r.table}`;
const COMMANDS = ["insert", "update", "delete"] as const;

interface Pair {
  key: Record<string, Outcome>;
  member: Record<string, Outcome>;
}
const crossOrg = new Map<string, { key: Record<string, Outcome>; stranger: Outcome }>();
const byScopes = new Map<string, Map<string, Pair>>(); // scope set label -> relation -> outcomes
let permissions: string[] = [];
const policyPermissions = new Map<string, string[]>(); // table -> permissions its SELECT policy names

beforeAll(async () => {
  permissions = (await admin.query<{ key: string }>("select key from public.permissions order by key")).rows.map((r) => r.key);
  const { rows: pols } = await admin.query<{ rel: string; qual: string }>(
    `select schemaname || '.' || tablename as rel, qual from pg_policies where cmd in ('SELECT', 'ALL') and 'authenticated' = any (roles)`,
  );
  for (const p of pols) {
    const named = [...(p.qual ?? "").matchAll(/org_ids_with_permission(?:_array)?\('([a-z_.]+)'::text\)/g)].map((m) => m[1]);
    policyPermissions.set(p.rel, [...(policyPermissions.get(p.rel) ?? []), ...named]);
  }

  const member = await createUser();
  const outsider = gotrueClaims({ id: randomUUID(), email: "stranger@walk.test" });
  const plans = new Map<string, { cmds: Awaited<ReturnType<typeof commandsFor>>; own?: Record<string, unknown>; theirs?: Record<string, unknown> }>();
  const writable = new Map<string, boolean>();
  for (const rel of relations) {
    const table = rel.kind === "table";
    plans.set(name(rel), {
      cmds: await commandsFor(rel),
      own: table ? await rowToCopy(rel, ACME, ACME) : undefined,
      theirs: table ? await rowToCopy(rel, GLOBEX, GLOBEX) : undefined,
    });
    const { rows } = await admin.query<{ w: boolean }>(
      `select has_table_privilege('authenticated', $1::regclass, 'insert') or has_table_privilege('authenticated', $1::regclass, 'delete')
           or has_any_column_privilege('authenticated', $1::regclass, 'update') as w`,
      [rel.qualified],
    );
    writable.set(name(rel), table && rows[0].w);
  }
  const tryAll = async (w: Parameters<Parameters<typeof walk>[0]>[0], claims: Record<string, unknown>, rel: RelationInfo, org: string, writes: boolean) => {
    const { cmds, own, theirs } = plans.get(name(rel))!;
    const copy = org === ACME ? own : theirs;
    const out: Record<string, Outcome> = { select: await w.as(claims, cmds.select, [org]) };
    if (writes && "insert" in cmds && cmds.insert) {
      out.insert = copy ? await w.as(claims, cmds.insert, [JSON.stringify(copy)]) : { ok: false, code: "no row to copy", message: "" };
      out.update = await w.as(claims, cmds.update, [org]);
      out.delete = await w.as(claims, cmds.delete, [org]);
    }
    return out;
  };

  await walk(async (w) => {
    const keyId = randomUUID();
    await w.owner(
      `insert into public.api_keys (id, org_id, name, prefix, secret_hash, scopes, created_by)
       values ($1, $2, 'walk', $3, $4, $5, $6)`,
      [keyId, ACME, randomBytes(6).toString("hex"), randomBytes(32), permissions, alice],
    );
    await w.owner(`insert into public.org_roles (org_id, key, name, rank, permissions) values ($1, 'walk_scopes', 'Walk', 5, '{}')`, [ACME]);
    await w.owner("insert into public.org_members (org_id, user_id, role) values ($1, $2, 'walk_scopes')", [ACME, member.id]);
    const keyClaims = { role: "authenticated", aud: "authenticated", api_key_id: keyId };
    const memberClaims = gotrueClaims(member);

    // Every scope: nothing of globex.
    for (const rel of relations) {
      crossOrg.set(name(rel), {
        key: await tryAll(w, keyClaims, rel, GLOBEX, rel.kind === "table"),
        stranger: await w.as(outsider, plans.get(name(rel))!.cmds.select, [GLOBEX]),
      });
    }

    const sets: [string, string[]][] = [
      ["every scope", permissions],
      ...permissions.map((p) => [`only ${p}`, [p]] as [string, string[]]),
      ...permissions.map((p) => [`all but ${p}`, permissions.filter((x) => x !== p)] as [string, string[]]),
    ];
    for (const [label, scopes] of sets) {
      await w.owner("update public.api_keys set scopes = $1 where id = $2", [scopes, keyId]);
      await w.owner("update public.org_roles set permissions = $1 where org_id = $2 and key = 'walk_scopes'", [scopes, ACME]);
      const m = new Map<string, Pair>();
      for (const rel of relations) {
        const writes = writable.get(name(rel))!;
        m.set(name(rel), {
          key: await tryAll(w, keyClaims, rel, ACME, writes),
          member: await tryAll(w, memberClaims, rel, ACME, writes),
        });
      }
      byScopes.set(label, m);
    }
  });
});

const fingerprints = (o: Outcome) => (o.ok ? o.values.map((v) => (v as unknown[])[0] as string) : []);
const scopeLabels = () => [...byScopes.keys()];

describe("an org API key, on every table and view with org_id", () => {
  it("walks every relation under every scope set", () => {
    expect(crossOrg.size).toBe(relations.length);
    expect(byScopes.size).toBe(1 + 2 * permissions.length);
    expect(permissions).toEqual(expect.arrayContaining(["billing.manage", "content.read", "members.manage"]));
  });

  describe.each(relations.map((r) => ({ ...r, key: name(r) })))("$key", (rel) => {
    it("a key of acme with every scope reads and writes none of globex's rows", () => {
      const { key, stranger } = crossOrg.get(rel.key)!;
      if (!key.select.ok) expect(key.select.code, key.select.message).toBe("42501");
      if (!PUBLIC_BY_DESIGN[rel.key]) expect(fingerprints(stranger), "a stranger reads globex's rows").toEqual([]);
      const publicRows = new Set(fingerprints(stranger));
      expect(fingerprints(key.select).filter((f) => !publicRows.has(f))).toEqual([]);
      for (const cmd of COMMANDS) if (key[cmd]) expect(isDenied(key[cmd]), `${cmd}: ${JSON.stringify(key[cmd])}`).toBe(true);
    });

    it("under every scope set, the key reads and writes no more than a member whose role holds exactly those permissions", () => {
      for (const label of scopeLabels()) {
        const { key, member } = byScopes.get(label)!.get(rel.key)!;
        if (!key.select.ok) expect(key.select.code, `${label}: ${key.select.message}`).toBe("42501");
        const memberRows = new Set(fingerprints(member.select));
        expect(fingerprints(key.select).filter((f) => !memberRows.has(f)), label).toEqual([]);
        for (const cmd of COMMANDS) {
          if (!key[cmd] || isDenied(key[cmd])) continue;
          expect(isDenied(member[cmd]), `${label}: the key may ${cmd} but the member may not`).toBe(false);
        }
      }
    });

    const named = () => [...new Set(policyPermissions.get(rel.key) ?? [])];
    it("a key holding a permission its SELECT policy names reads its rows (allowed case)", () => {
      if (rel.kind === "view" || named().length === 0) return;
      const every = byScopes.get("every scope")!.get(rel.key)!.key.select;
      expect(fingerprints(every).length, `a key with every scope reads ${rel.key}`).toBeGreaterThan(0);
      if (ONE_SCOPE_IS_NOT_ENOUGH[rel.key]) return;
      const readers = named().filter((p) => {
        const { key } = byScopes.get(`only ${p}`)!.get(rel.key)!;
        return fingerprints(key.select).length > 0;
      });
      expect(readers, `a key with one of ${named().join(", ")} reads ${rel.key}`).not.toEqual([]);
    });
  });
});
