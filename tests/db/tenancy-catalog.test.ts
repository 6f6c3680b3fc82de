// The generic cross-tenant test: for every table and view with org_id in an exposed schema,
// the owner of one seeded org (acme) can neither read nor write the other's (globex) rows.
// It walks the catalog, so a new table is covered the moment its migration lands; the
// seed must give both orgs rows in every such table (and view, unless listed in UNSEEDED).
// Sibling walks: catalog-mfa (aal1 sessions), catalog-viewer (the lowest role), catalog-api-key
// (keys and their scopes) and rpc-walk (every RPC).
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { admin, as, type TestUser } from "../helpers/db.ts";
import { insertableColumns, UNSEEDED, orgRelations, type TableInfo } from "../helpers/catalog.ts";

const ACME = "a0000000-0000-4000-8000-00000000a000";
const GLOBEX = "b0000000-0000-4000-8000-00000000b000";
// alice owns acme: the most privileged member there, so any denial is tenancy, not role.
const alice: TestUser = { id: "a0000000-0000-4000-8000-000000000001", email: "alice@acme.test" };

const tenantTables = await orgRelations();

/** globex's rows of a table, by primary key (the whole row where there is none). */
async function rowKeys(t: TableInfo, org: string): Promise<string[]> {
  const { rows: pk } = await admin.query<{ name: string }>(
    `select quote_ident(a.attname) as name from pg_index i join pg_attribute a on a.attrelid = i.indrelid and a.attnum = any (i.indkey)
     where i.indrelid = $1::regclass and i.indisprimary order by a.attnum`,
    [t.qualified],
  );
  const key = pk.length ? `row(${pk.map((c) => c.name).join(", ")})::text` : "x::text";
  const { rows } = await admin.query(`select ${key} as k from ${t.qualified} x where org_id = $1`, [org]);
  return rows.map((r) => r.k as string);
}

async function countIn(t: TableInfo, org: string): Promise<number> {
  const { rows } = await admin.query(`select count(*)::int as n from ${t.qualified} where org_id = $1`, [org]);
  return rows[0].n;
}

/** Runs a write as alice and returns the rows it touched, or 0 when Postgres refuses it. */
async function attempt(sql: string, params: unknown[]): Promise<number> {
  try {
    return (await as(alice, (c) => c.query(sql, params))).rowCount ?? 0;
  } catch (err) {
    const code = (err as { code?: string }).code;
    // 42501: no grant or RLS WITH CHECK refused. Anything else would be a different failure.
    expect(code, (err as Error).message).toBe("42501");
    return 0;
  }
}

describe("cross-tenant isolation, for every table with org_id", () => {
  it("finds the tenancy tables", () => {
    expect(tenantTables.map((t) => t.table)).toEqual(expect.arrayContaining(["org_members", "invitations", "api_keys", "org_roles"]));
  });

  describe.each(tenantTables)("$schema.$table", (t) => {
    const unseeded = UNSEEDED[`${t.schema}.${t.table}`];
    let before: number;
    let keysBefore: string[] = [];
    beforeAll(async () => {
      before = await countIn(t, GLOBEX);
      if (t.kind === "table") keysBefore = await rowKeys(t, GLOBEX);
    });
    afterAll(async () => {
      // Whatever was attempted, globex's rows are all still there. (The stack's worker may add
      // rows of its own meanwhile, a delivery attempt say, so this compares keys, not counts.)
      if (t.kind !== "table") return;
      const after = new Set(await rowKeys(t, GLOBEX));
      expect(keysBefore.filter((k) => !after.has(k))).toEqual([]);
    });

    it("is seeded for both orgs, so the checks below are meaningful", async () => {
      if (unseeded) {
        expect(await countIn(t, ACME), `${t.qualified} is seeded now: drop it from UNSEEDED`).toBe(0);
        return;
      }
      expect(await countIn(t, ACME)).toBeGreaterThan(0);
      expect(before).toBeGreaterThan(0);
    });

    it("select: another org's rows are invisible", async () => {
      const n = await as(alice, async (c) => {
        try {
          return (await c.query(`select count(*)::int as n from ${t.qualified} where org_id = $1`, [GLOBEX])).rows[0].n;
        } catch (err) {
          expect((err as { code?: string }).code).toBe("42501");
          return 0;
        }
      });
      expect(n).toBe(0);
    });

    if (t.kind === "view") return; // a view is read only; its tables are walked themselves

    it("insert: a copy of another org's row is refused", async () => {
      const { rows } = await admin.query(`select to_jsonb(x) as row from ${t.qualified} x where org_id = $1 limit 1`, [GLOBEX]);
      const row = rows[0].row as Record<string, unknown>;
      // Fresh values for keys that must be unique, so only tenancy can refuse the row.
      if ("id" in row) row.id = crypto.randomUUID();
      if ("prefix" in row) row.prefix = `x${Date.now().toString(36)}`.slice(0, 12);
      if ("token_hash" in row) row.token_hash = null;
      if ("key" in row && t.table === "org_roles") row.key = `k${Date.now().toString(36)}`;
      // Identity-always and generated columns cannot be given; every other column is copied.
      const list = (await insertableColumns(t.qualified)).join(", ");
      const inserted = await attempt(
        `insert into ${t.qualified} (${list}) select ${list} from jsonb_populate_record(null::${t.qualified}, $1)`,
        [JSON.stringify(row)],
      );
      expect(inserted).toBe(0);
    });

    it("update: another org's rows cannot be changed, nor can own rows be moved into it", async () => {
      // Update a column the client may update at all, so RLS (not a missing grant) must refuse.
      const { rows } = await admin.query<{ column_name: string }>(
        `select column_name from information_schema.column_privileges
         where grantee = 'authenticated' and privilege_type = 'UPDATE' and table_schema = $1 and table_name = $2
         order by column_name limit 1`,
        [t.schema, t.table],
      );
      const col = rows[0]?.column_name ?? "org_id";
      expect(await attempt(`update ${t.qualified} set "${col}" = "${col}" where org_id = $1`, [GLOBEX])).toBe(0);
      expect(await attempt(`update ${t.qualified} set org_id = $1 where org_id = $2`, [GLOBEX, ACME])).toBe(0);
    });

    it("delete: another org's rows cannot be deleted", async () => {
      expect(await attempt(`delete from ${t.qualified} where org_id = $1`, [GLOBEX])).toBe(0);
    });
  });
});
