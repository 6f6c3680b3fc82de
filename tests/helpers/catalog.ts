// Reads the schema's own catalog, so tests cover new tables without anyone touching them.
import fs from "node:fs";
import path from "node:path";
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
