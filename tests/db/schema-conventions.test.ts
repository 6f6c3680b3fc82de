// DESIGN.md's SQL conventions, checked against the live catalog for every table.
import { describe, expect, it } from "vitest";
import { admin } from "../helpers/db.ts";
import { exposedSchemas, ownSchemas, tables } from "../helpers/catalog.ts";

describe("schema conventions", () => {
  it("RLS is on for every table in an exposed schema", async () => {
    const { rows } = await admin.query(
      `select n.nspname || '.' || c.relname as name from pg_class c join pg_namespace n on n.oid = c.relnamespace
       where c.relkind in ('r', 'p') and n.nspname = any($1) and not c.relrowsecurity`,
      [exposedSchemas()],
    );
    expect(rows.map((r) => r.name)).toEqual([]);
  });

  it("every table of ours has a comment for Studio", async () => {
    const { rows } = await admin.query(
      `select n.nspname || '.' || c.relname as name from pg_class c join pg_namespace n on n.oid = c.relnamespace
       where c.relkind in ('r', 'p', 'v') and (n.nspname = any($1) or n.nspname = 'private')
         and obj_description(c.oid, 'pg_class') is null`,
      [exposedSchemas()],
    );
    expect(rows.map((r) => r.name)).toEqual([]);
  });

  it("every tenant table has org_id not null, cascading from orgs, with an index leading on it", async () => {
    for (const t of await tables({ withOrgId: true })) {
      const { rows } = await admin.query(
        `select
           (select attnotnull from pg_attribute where attrelid = $1::regclass and attname = 'org_id') as not_null,
           exists (select 1 from pg_constraint k
                   where k.conrelid = $1::regclass and k.contype = 'f' and k.confrelid = 'public.orgs'::regclass
                     and k.confdeltype = 'c'
                     and k.conkey = array[(select attnum from pg_attribute where attrelid = $1::regclass and attname = 'org_id')]) as cascades,
           exists (select 1 from pg_index i
                   where i.indrelid = $1::regclass
                     and i.indkey[0] = (select attnum from pg_attribute where attrelid = $1::regclass and attname = 'org_id')) as indexed`,
        [t.qualified],
      );
      expect({ table: t.qualified, ...rows[0] }).toEqual({ table: t.qualified, not_null: true, cascades: true, indexed: true });
    }
  });

  it("anon can execute none of our functions in exposed schemas", async () => {
    const { rows } = await admin.query(
      `select p.oid::regprocedure::text as fn from pg_proc p join pg_namespace n on n.oid = p.pronamespace
       where n.nspname = any($1) and has_function_privilege('anon', p.oid, 'execute')
         and not exists (select 1 from pg_depend d where d.objid = p.oid and d.deptype = 'e')`,
      [exposedSchemas()],
    );
    expect(rows.map((r) => r.fn)).toEqual([]);
  });

  it("every function in every schema we own pins search_path to '' (security definer or not)", async () => {
    const schemas = ownSchemas();
    expect(schemas).toEqual(expect.arrayContaining(["public", "private", "notify", "billing", "ai", "content", "video"]));
    const { rows } = await admin.query(
      `select p.oid::regprocedure::text as fn, p.prosecdef as definer from pg_proc p join pg_namespace n on n.oid = p.pronamespace
       where n.nspname = any($1) and p.prokind in ('f', 'p')
         and not exists (select 1 from pg_depend d where d.objid = p.oid and d.deptype = 'e')
         and not coalesce(p.proconfig @> array['search_path=""'], false)`,
      [schemas],
    );
    expect(rows).toEqual([]);
    // The walk above is not vacuous: security definer functions exist in each module's schema.
    const { rows: definers } = await admin.query<{ schema: string }>(
      `select distinct n.nspname as schema from pg_proc p join pg_namespace n on n.oid = p.pronamespace
       where n.nspname = any($1) and p.prosecdef`,
      [schemas],
    );
    expect(definers.map((d) => d.schema)).toEqual(expect.arrayContaining(["public", "private", "notify", "billing", "ai", "content", "video"]));
  });

  it("the private helpers RLS policies call are stable, and security definer when they read a table", async () => {
    const { rows } = await admin.query<{ fn: string; definer: boolean; volatility: string; src: string }>(
      `select distinct p.oid::regprocedure::text as fn, p.prosecdef as definer, p.provolatile as volatility, p.prosrc as src
       from pg_policies pol, pg_proc p join pg_namespace n on n.oid = p.pronamespace
       where n.nspname = 'private'
         and (pol.qual ~ ('private\\.' || p.proname || '\\(') or pol.with_check ~ ('private\\.' || p.proname || '\\('))`,
    );
    expect(rows.map((r) => r.fn)).toEqual(expect.arrayContaining(["private.org_ids_with_permission_array(text)", "private.accessible_org_ids()"]));
    const readsATable = (src: string) => /\b(from|join)\s+(public|private|notify|billing|ai|content|video|storage|auth|realtime)\./i.test(src);
    const wrong = rows
      .filter((r) => r.volatility === "v" || (readsATable(r.src) && !r.definer))
      .map((r) => `${r.fn}: ${r.volatility === "v" ? "volatile" : "reads a table as the invoker"}`);
    expect(wrong).toEqual([]);
  });
});
