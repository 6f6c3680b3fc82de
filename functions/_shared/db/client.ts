// Database access for functions and the worker: kysely over a pg pool, with the two ways
// in that DESIGN.md allows. asUser runs as PostgREST would, so RLS decides; asService is
// for webhooks and the worker only.
import { Kysely, PostgresDialect, sql, type Transaction } from "kysely";
import pg from "pg";
import type { DB } from "./schema.ts";

export type Db = Kysely<DB>;
export type Tx = Transaction<DB>;

// Match PostgREST's JSON: timestamps as ISO 8601 strings, bigint as number.
const isoTimestamp = (v: string) => v.replace(" ", "T").replace(/([+-]\d\d)$/, "$1:00");
const types = {
  getTypeParser(oid: number, format?: "text" | "binary") {
    if (oid === 1184 || oid === 1114) return isoTimestamp;
    if (oid === 1082) return (v: string) => v;
    if (oid === 20) return (v: string) => Number(v);
    return pg.types.getTypeParser(oid, format);
  },
};

export function createDb(connectionString: string, max = 5): { db: Db; pool: pg.Pool } {
  const pool = new pg.Pool({ connectionString, max, types, idleTimeoutMillis: 10_000 });
  // A dropped connection must not crash the process: idle ones are replaced by the pool, and
  // a checked-out one fails its query (which rejects) and also emits "error" on the client.
  pool.on("error", () => {});
  pool.on("connect", (client) => client.on("error", () => {}));
  return { db: new Kysely<DB>({ dialect: new PostgresDialect({ pool }) }), pool };
}

/** JWT claims as GoTrue issues them (or as the api function builds them for an API key). */
export interface Claims {
  role: "authenticated" | "anon";
  sub?: string;
  [claim: string]: unknown;
}

/** Who made an api request, for the audit log and the outbox (plinth.request). */
export interface RequestMeta {
  id: string;
  ip?: string;
  user_agent?: string;
}

/** One transaction with the caller's claims and role set, exactly as PostgREST does it. */
export function asUser<T>(db: Db, claims: Claims, fn: (tx: Tx) => Promise<T>, request?: RequestMeta): Promise<T> {
  if (claims.role !== "authenticated" && claims.role !== "anon") {
    throw new Error(`asUser: refusing role ${String(claims.role)}`);
  }
  return db.transaction().execute(async (tx) => {
    await sql`select set_config('request.jwt.claims', ${JSON.stringify(claims)}, true),
                     set_config('plinth.request', ${request ? JSON.stringify(request) : ""}, true),
                     set_config('role', ${claims.role}, true)`.execute(tx);
    return fn(tx);
  });
}

/**
 * One transaction as service_role: RLS is bypassed, so callers check tenancy themselves.
 * `asyncCommit` commits without waiting for the WAL flush: only for writes whose loss in a
 * database crash is harmless (a later durable commit flushes them anyway).
 */
export function asService<T>(db: Db, fn: (tx: Tx) => Promise<T>, opts: { asyncCommit?: boolean } = {}): Promise<T> {
  return db.transaction().execute(async (tx) => {
    await sql`select set_config('request.jwt.claims', '{"role":"service_role"}', true),
                     set_config('role', 'service_role', true),
                     set_config('synchronous_commit', case when ${opts.asyncCommit ?? false} then 'off'
                                                           else current_setting('synchronous_commit') end, true)`.execute(tx);
    return fn(tx);
  });
}
