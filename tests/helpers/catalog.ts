// Reads the schema's own catalog, so tests cover new tables without anyone touching them.
import fs from "node:fs";
import path from "node:path";
import type pg from "pg";
import { admin } from "./db.ts";

/** The schemas clients reach, from supabase/config.toml ([api] schemas). */
export function exposedSchemas(): string[] {
  const toml = fs.readFileSync(path.resolve(import.meta.dirname, "../../supabase/config.toml"), "utf8");
  const line = /^schemas\s*=\s*\[([^\]]*)\]/m.exec(toml)!;
  return [...line[1].matchAll(/"([^"]+)"/g)].map((m) => m[1]).filter((s) => s !== "graphql_public");
}

export interface TableInfo {
  schema: string;
  table: string;
  qualified: string;
}

/** Every ordinary table in the exposed schemas (plus private ones, when asked). */
export async function tables(opts: { withOrgId?: boolean } = {}): Promise<TableInfo[]> {
  const { rows } = await admin.query<{ schema: string; table: string }>(
    `select n.nspname as schema, c.relname as table
     from pg_class c join pg_namespace n on n.oid = c.relnamespace
     where c.relkind in ('r', 'p') and n.nspname = any($1)
       and (not $2 or exists (select 1 from pg_attribute a
                              where a.attrelid = c.oid and a.attname = 'org_id' and not a.attisdropped))
     order by 1, 2`,
    [exposedSchemas(), opts.withOrgId ?? false],
  );
  return rows.map((r) => ({ ...r, qualified: `"${r.schema}"."${r.table}"` }));
}

export interface RelationInfo extends TableInfo {
  kind: "table" | "view";
}

/** Every table and view with an org_id column in the exposed schemas: what the generic walks cover. */
export async function orgRelations(): Promise<RelationInfo[]> {
  const { rows } = await admin.query<{ schema: string; table: string; kind: "table" | "view" }>(
    `select n.nspname as schema, c.relname as table, case when c.relkind = 'v' then 'view' else 'table' end as kind
     from pg_class c join pg_namespace n on n.oid = c.relnamespace
     where c.relkind in ('r', 'p', 'v', 'm') and n.nspname = any($1)
       and exists (select 1 from pg_attribute a where a.attrelid = c.oid and a.attname = 'org_id' and not a.attisdropped)
     order by 1, 2`,
    [exposedSchemas()],
  );
  return rows.map((r) => ({ ...r, qualified: `"${r.schema}"."${r.table}"` }));
}

export interface RpcInfo {
  /** schema.name, the key of the walks' maps. */
  name: string;
  /** The regprocedure, e.g. public.update_org(uuid,text,text,jsonb,boolean). */
  signature: string;
}

/** Every function in an exposed schema that `authenticated` may execute (ours, not an extension's). */
export async function authenticatedRpcs(): Promise<RpcInfo[]> {
  const { rows } = await admin.query<RpcInfo>(
    `select n.nspname || '.' || p.proname as name, p.oid::regprocedure::text as signature
     from pg_proc p join pg_namespace n on n.oid = p.pronamespace
     where n.nspname = any($1) and has_function_privilege('authenticated', p.oid, 'execute')
       and not exists (select 1 from pg_depend d where d.objid = p.oid and d.deptype = 'e')
     order by 1, 2`,
    [exposedSchemas()],
  );
  return rows;
}

/** What one attempt came to: the rows it returned or touched, or the SQLSTATE that refused it. */
export type Outcome = { ok: true; rows: number; values: unknown[] } | { ok: false; code: string; message: string };

/**
 * One transaction that is always rolled back, for walks that try many writes: each attempt runs
 * as a caller (claims + role, as PostgREST sets them) inside a savepoint that is rolled back too,
 * so no attempt sees another's effects and nothing survives the walk.
 */
export class Walk {
  constructor(readonly c: pg.PoolClient) {}

  /**
   * Runs sql as the caller in a savepoint that is always rolled back. A deadlock with the
   * stack's own workers (the dispatcher, say, while delete_org cascades) is retried: it says
   * nothing about the caller's rights.
   */
  async as(claims: Record<string, unknown>, sql: string, params: unknown[] = []): Promise<Outcome> {
    for (let attempt = 1; ; attempt++) {
      const o = await this.once(claims, sql, params);
      if (o.ok || o.code !== "40P01" || attempt === 5) return o;
    }
  }

  private async once(claims: Record<string, unknown>, sql: string, params: unknown[]): Promise<Outcome> {
    await this.c.query("savepoint walk_attempt");
    try {
      await this.c.query("select set_config('request.jwt.claims', $1, true), set_config('role', $2, true)", [
        JSON.stringify(claims),
        claims.role,
      ]);
      const r = await this.c.query({ text: sql, values: params, rowMode: "array" });
      return { ok: true, rows: r.rowCount ?? r.rows.length, values: r.rows };
    } catch (err) {
      const e = err as { code?: string; message: string };
      return { ok: false, code: e.code ?? "?", message: e.message };
    } finally {
      await this.c.query("rollback to savepoint walk_attempt");
    }
  }

  /** Runs sql as the database owner, inside the walk's transaction (rolled back at its end). */
  async owner<R extends pg.QueryResultRow = Record<string, unknown>>(sql: string, params: unknown[] = []): Promise<R[]> {
    return (await this.c.query<R>(sql, params)).rows;
  }
}

/**
 * Runs fn in one transaction that is rolled back whatever happens. Walks take turns (a
 * transaction-scoped advisory lock): each holds locks on the seeded orgs' rows for its whole
 * run (turning on acme's MFA rule, say), and two at once could wait on each other.
 */
export async function walk<T>(fn: (w: Walk) => Promise<T>): Promise<T> {
  const c = await admin.connect();
  try {
    await c.query("begin");
    await c.query("select pg_advisory_xact_lock(hashtext('plinth.tests.catalog-walk'))");
    return await fn(new Walk(c));
  } finally {
    await c.query("rollback").catch(() => {});
    c.release();
  }
}

/** The columns of a relation that `authenticated` may select (a client's view of a row). */
export async function selectableColumns(rel: TableInfo): Promise<string[]> {
  const { rows } = await admin.query<{ name: string }>(
    `select quote_ident(column_name) as name from information_schema.column_privileges
     where grantee = 'authenticated' and privilege_type = 'SELECT' and table_schema = $1 and table_name = $2
     order by column_name`,
    [rel.schema, rel.table],
  );
  return rows.map((r) => r.name);
}

/**
 * The SQL of the four commands a walk tries on a relation's rows of one org ($1), as a caller.
 * select returns one fingerprint per visible row (its primary key, or for a view every column a
 * client may read); insert
 * copies a row (given as jsonb in $1) with fresh unique keys; update sets a column
 * the client may update at all (so RLS, not a missing grant, must refuse); delete deletes.
 */
/** The columns an insert may give (quoted): all but identity-always and generated ones. */
export async function insertableColumns(qualified: string): Promise<string[]> {
  const { rows } = await admin.query<{ name: string }>(
    `select quote_ident(attname) as name from pg_attribute
     where attrelid = $1::regclass and attnum > 0 and not attisdropped and attidentity <> 'a' and attgenerated = ''
     order by attnum`,
    [qualified],
  );
  return rows.map((c) => c.name);
}

export async function commandsFor(rel: RelationInfo) {
  // A table's rows are told apart by their primary key (so a column the worker changes meanwhile,
  // such as a status, does not make the same row look like another); a view's by every column.
  const cols = await selectableColumns(rel);
  const { rows: pk } = await admin.query<{ name: string }>(
    `select quote_ident(a.attname) as name from pg_index i
     join pg_attribute a on a.attrelid = i.indrelid and a.attnum = any (i.indkey)
     where i.indrelid = $1::regclass and i.indisprimary order by a.attnum`,
    [rel.qualified],
  );
  const key = pk.length && pk.every((c) => cols.includes(c.name)) ? pk.map((c) => c.name) : cols;
  const fingerprint = key.length ? `md5(row(${key.join(", ")})::text)` : "null";
  const select = `select ${fingerprint} from ${rel.qualified} where org_id = $1`;
  if (rel.kind === "view") return { select };
  const list = (await insertableColumns(rel.qualified)).join(", ");
  const { rows: upd } = await admin.query<{ column_name: string }>(
    `select column_name from information_schema.column_privileges
     where grantee = 'authenticated' and privilege_type = 'UPDATE' and table_schema = $1 and table_name = $2
     order by column_name limit 1`,
    [rel.schema, rel.table],
  );
  const col = `"${upd[0]?.column_name ?? "org_id"}"`;
  return {
    select,
    insert: `insert into ${rel.qualified} (${list}) select ${list} from jsonb_populate_record(null::${rel.qualified}, $1) returning 1`,
    update: `update ${rel.qualified} set ${col} = ${col} where org_id = $1`,
    delete: `delete from ${rel.qualified} where org_id = $1`,
  };
}

/** One row of the org as jsonb, with fresh values for keys that must be unique and org_id set to `into`. */
export async function rowToCopy(rel: TableInfo, from: string, into: string): Promise<Record<string, unknown> | undefined> {
  const { rows } = await admin.query(`select to_jsonb(x) as row from ${rel.qualified} x where org_id = $1 limit 1`, [from]);
  const row = rows[0]?.row as Record<string, unknown> | undefined;
  if (!row) return undefined;
  const tag = `${Date.now().toString(36)}${Math.random().toString(36).slice(2, 6)}`;
  if ("id" in row && typeof row.id === "string") row.id = crypto.randomUUID();
  if ("prefix" in row) row.prefix = `x${tag}`.slice(0, 12);
  if ("token_hash" in row) row.token_hash = null;
  if ("key" in row && rel.table === "org_roles") row.key = `k${tag}`;
  row.org_id = into;
  return row;
}

/** A denial: no row touched or returned, or Postgres refused with 42501 (no grant, or RLS WITH CHECK). */
export function isDenied(o: Outcome): boolean {
  return o.ok ? o.rows === 0 : o.code === "42501";
}

/** The schemas we own: public, and every schema a migration creates (private, notify, billing, …). */
export function ownSchemas(): string[] {
  const dir = path.resolve(import.meta.dirname, "../../supabase/migrations");
  const names = new Set(["public"]);
  for (const f of fs.readdirSync(dir).filter((f) => f.endsWith(".sql"))) {
    for (const m of fs.readFileSync(path.join(dir, f), "utf8").matchAll(/create\s+schema\s+(?:if\s+not\s+exists\s+)?"?([a-z_][a-z0-9_]*)"?/gi)) {
      names.add(m[1].toLowerCase());
    }
  }
  return [...names].sort();
}

/**
 * Relations where a signed-in stranger (a user of no org) reads some of a seeded org's rows by
 * design (published public documents, say), and why. The walks compare callers with that
 * stranger; everywhere else the stranger must read nothing, so the baseline hides nothing.
 */
export const PUBLIC_BY_DESIGN: Record<string, string> = {};

/**
 * Relations with org_id that the seed leaves empty for the seeded orgs, and why (views over rows
 * the seed does not make). The walks skip their allowed-read checks, and fail once they are seeded.
 */
export const UNSEEDED: Record<string, string> = {
  "content.template_gallery": "the gallery lists published templates; the seed publishes none",
};
