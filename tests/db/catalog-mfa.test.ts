// The MFA walk: for every table and view with org_id in an exposed schema, a member of an org
// that requires MFA, signed in at aal1, reads none of the org's rows (beyond what any signed-in
// stranger reads, such as published public documents) and inserts, updates and deletes none.
// The same member at aal2 does read the org's rows, so the walk can fail. It walks the catalog:
// a new table or view is covered the moment its migration lands, and fails until the seed gives
// acme rows in it.
//
// The walk runs in one transaction that turns on acme's require_mfa and is rolled back at the
// end (each attempt in its own rolled-back savepoint), so no other test ever sees acme blocked.
import { randomUUID } from "node:crypto";
import { beforeAll, describe, expect, it } from "vitest";
import { gotrueClaims } from "../../scripts/lib/keys.ts";
import { PUBLIC_BY_DESIGN, UNSEEDED, commandsFor, isDenied, orgRelations, rowToCopy, walk, type Outcome, type RelationInfo } from "../helpers/catalog.ts";

const ACME = "a0000000-0000-4000-8000-00000000a000";
// alice owns acme: the most privileged member, so anything she cannot do at aal1 is the MFA rule.
const alice = { id: "a0000000-0000-4000-8000-000000000001", email: "alice@acme.test" };
// A signed-in user who belongs to no org: what they read is public by design.
const stranger = { id: randomUUID(), email: "stranger@walk.test" };

/** Rows an aal1 member may still read, by design: a predicate on the relation's rows, and why. */
const AAL1_MAY_READ: Record<string, { where: string; why: string }> = {
  "public.org_members": {
    where: `user_id = '${alice.id}'`,
    why: "their own membership row, so my_orgs can show the org as blocked (docs/tenancy.md, MFA)",
  },
};

interface Result {
  seeded: number;
  strangerRows: Outcome;
  aal1: Record<string, Outcome>;
  aal2: Record<string, Outcome>;
  privileges: Record<string, boolean>;
}

const relations = await orgRelations();
const results = new Map<string, Result>();

// Storage has no org_id: an org's files are the objects whose first folder is the org's id.
const STORAGE = {
  select: `select md5(bucket_id || '/' || name) from storage.objects where split_part(name, '/', 1) = $1::text`,
  insert: `insert into storage.objects (bucket_id, name, owner_id, metadata)
           values ('org-files', $1::text || '/walk-' || gen_random_uuid() || '.txt', null, '{}') returning 1`,
  update: `update storage.objects set user_metadata = user_metadata where split_part(name, '/', 1) = $1::text`,
  // No delete: the platform refuses every direct DELETE on storage tables ("use the Storage API").
};
let storage: { seeded: number; stranger: Outcome; aal1: Record<string, Outcome>; aal2: Record<string, Outcome> };
const name = (r: RelationInfo) => `${r.schema}.${r.table}`;

beforeAll(async () => {
  const aal1 = gotrueClaims(alice, { aal: "aal1" });
  const aal2 = gotrueClaims(alice, { aal: "aal2" });
  const outsider = gotrueClaims(stranger, { aal: "aal2" });
  const plans = new Map<string, { cmds: Awaited<ReturnType<typeof commandsFor>>; copy?: Record<string, unknown> }>();
  for (const rel of relations) {
    const copy = rel.kind === "table" ? await rowToCopy(rel, ACME, ACME) : undefined;
    plans.set(name(rel), { cmds: await commandsFor(rel), copy });
  }
  await walk(async (w) => {
    await w.owner("update public.orgs set require_mfa = true where id = $1", [ACME]);
    for (const rel of relations) {
      const { cmds, copy } = plans.get(name(rel))!;
      const [{ n }] = await w.owner<{ n: number }>(`select count(*)::int as n from ${rel.qualified} where org_id = $1`, [ACME]);
      const [priv] = await w.owner<Record<string, boolean>>(
        `select has_table_privilege('authenticated', $1::regclass, 'insert') as insert,
                has_any_column_privilege('authenticated', $1::regclass, 'update') as update,
                has_table_privilege('authenticated', $1::regclass, 'delete') as delete,
                has_any_column_privilege('authenticated', $1::regclass, 'select') as select`,
        [rel.qualified],
      );
      const exempt = AAL1_MAY_READ[name(rel)];
      const attempts = async (claims: Record<string, unknown>, hidingExempt: boolean) => {
        const out: Record<string, Outcome> = {
          select: await w.as(claims, hidingExempt && exempt ? `${cmds.select} and not (${exempt.where})` : cmds.select, [ACME]),
        };
        if ("insert" in cmds && cmds.insert) {
          out.insert = copy ? await w.as(claims, cmds.insert, [JSON.stringify(copy)]) : { ok: false, code: "no row to copy", message: "" };
          out.update = await w.as(claims, cmds.update, [ACME]);
          out.delete = await w.as(claims, cmds.delete, [ACME]);
        }
        return out;
      };
      results.set(name(rel), {
        seeded: n,
        strangerRows: await w.as(outsider, cmds.select, [ACME]),
        aal1: await attempts(aal1, true),
        aal2: await attempts(aal2, false),
        privileges: priv,
      });
    }
    const storageAttempts = async (claims: Record<string, unknown>) => {
      const out: Record<string, Outcome> = {};
      for (const [cmd, sql] of Object.entries(STORAGE)) out[cmd] = await w.as(claims, sql, [ACME]);
      return out;
    };
    const [{ n }] = await w.owner<{ n: number }>(`select count(*)::int as n from storage.objects where split_part(name, '/', 1) = $1`, [ACME]);
    storage = { seeded: n, stranger: await w.as(outsider, STORAGE.select, [ACME]), aal1: await storageAttempts(aal1), aal2: await storageAttempts(aal2) };
  });
});

const fingerprints = (o: Outcome) => (o.ok ? o.values.map((v) => (v as unknown[])[0] as string) : []);

describe("an aal1 member of an org that requires MFA, on every table and view with org_id", () => {
  it("covers the tenancy tables and views", () => {
    expect(relations.map(name)).toEqual(expect.arrayContaining(["public.org_members", "public.api_keys", "notify.audit_log", "notify.activity"]));
    for (const key of [...Object.keys(AAL1_MAY_READ), ...Object.keys(UNSEEDED)]) expect(relations.map(name)).toContain(key);
  });

  describe.each(relations.map((r) => ({ ...r, key: name(r) })))("$key", (rel) => {
    const r = () => results.get(rel.key)!;

    it("has acme rows, so the checks below are meaningful", () => {
      if (UNSEEDED[rel.key]) expect(r().seeded, `${rel.key} is seeded now: drop it from UNSEEDED`).toBe(0);
      else expect(r().seeded).toBeGreaterThan(0);
    });

    it("a signed-in stranger reads none of the org's rows, unless public by design", () => {
      const o = r().strangerRows;
      if (!o.ok) expect(o.code, o.message).toBe("42501");
      if (!PUBLIC_BY_DESIGN[rel.key]) expect(fingerprints(o)).toEqual([]);
    });

    it("select at aal1: no row of the org beyond what a stranger reads", () => {
      const o = r().aal1.select;
      if (!o.ok) expect(o.code, o.message).toBe("42501");
      const publicRows = new Set(fingerprints(r().strangerRows));
      expect(fingerprints(o).filter((f) => !publicRows.has(f))).toEqual([]);
    });

    it("select at aal2: the same member reads the org's rows (allowed case)", () => {
      if (UNSEEDED[rel.key]) return;
      const o = r().aal2.select;
      if (!r().privileges.select) {
        // Clients may not read this relation at all (an RPC serves it): refused at any aal.
        expect(o.ok ? o.rows : o.code).toBe("42501");
        return;
      }
      expect(o.ok, o.ok ? "" : o.message).toBe(true);
      const publicRows = new Set(fingerprints(r().strangerRows));
      expect(fingerprints(o).filter((f) => !publicRows.has(f)).length).toBeGreaterThan(0);
    });

    if (rel.kind === "table") {
      it.each(["insert", "update", "delete"])("%s at aal1 is refused; at aal2 only the org's own rules decide", (cmd) => {
        const o = r().aal1[cmd];
        expect(isDenied(o), JSON.stringify(o)).toBe(true);
        // Where clients hold the privilege, the aal2 attempt gets past RLS (it may still meet a
        // constraint, say one row per org), so the aal1 denial above is the MFA rule and nothing else.
        if (r().privileges[cmd]) {
          const o2 = r().aal2[cmd];
          expect(o2.ok ? o2.rows : o2.code, JSON.stringify(o2)).not.toEqual(o2.ok ? 0 : "42501");
        }
      });
    }
  });
});

describe("an aal1 member of an org that requires MFA, on the org's files (storage.objects under its folder)", () => {
  it("the org has files, and a stranger reads none of them", () => {
    expect(storage.seeded).toBeGreaterThan(0);
    expect(fingerprints(storage.stranger)).toEqual([]);
  });

  it("select at aal1 returns none of them; at aal2 the same member reads them (allowed case)", () => {
    expect(storage.aal1.select.ok ? fingerprints(storage.aal1.select) : storage.aal1.select.code).toEqual([]);
    expect(fingerprints(storage.aal2.select).length).toBeGreaterThan(0);
  });

  it.each(["insert", "update"])("%s at aal1 is refused; at aal2 it goes through", (cmd) => {
    expect(isDenied(storage.aal1[cmd]), JSON.stringify(storage.aal1[cmd])).toBe(true);
    const o2 = storage.aal2[cmd];
    expect(o2.ok && o2.rows > 0, JSON.stringify(o2)).toBe(true);
  });
});
