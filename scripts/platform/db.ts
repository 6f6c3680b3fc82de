// Running SQL the way the hosted Storage and Realtime servers do: one transaction in which the
// caller's role, claims and request are set locally, so that RLS decides. The pool itself is a
// superuser, as the real servers' roles are, for the steps they run as superuser.
import type pg from "pg";

export interface CallerSettings {
  role: string;
  claims: Record<string, unknown>;
  /** The raw JWT (`request.jwt`), as Storage sets it. */
  token?: string;
  headers?: Record<string, unknown>;
  method?: string;
  path?: string;
  /** Further `set_config(name, value, true)` pairs, e.g. `storage.operation`, `realtime.topic`. */
  settings?: Record<string, string>;
}

/** Applies a caller's settings to a connection inside an open transaction. */
export async function applyCaller(c: pg.PoolClient, s: CallerSettings): Promise<void> {
  const pairs: [string, string][] = [
    ["request.jwt.claims", JSON.stringify(s.claims)],
    ["request.jwt.claim.sub", typeof s.claims.sub === "string" ? s.claims.sub : ""],
    ["request.jwt.claim.role", s.role],
    ["request.jwt", s.token ?? ""],
    ["request.headers", JSON.stringify(s.headers ?? {})],
    ["request.method", s.method ?? ""],
    ["request.path", s.path ?? ""],
    ...Object.entries(s.settings ?? {}),
    // Last: once the role is switched, the remaining settings would still apply, but keeping
    // it last mirrors the real servers and keeps the role change obvious.
    ["role", s.role],
  ];
  const params = pairs.flat();
  const calls = pairs.map((_, i) => `set_config($${2 * i + 1}, $${2 * i + 2}, true)`).join(", ");
  await c.query(`select ${calls}`, params);
}

/** Runs fn in one transaction; commits on success unless `rollback` is set. */
export async function transaction<T>(pool: pg.Pool, fn: (c: pg.PoolClient) => Promise<T>, opts: { rollback?: boolean } = {}): Promise<T> {
  const c = await pool.connect();
  try {
    await c.query("begin");
    const result = await fn(c);
    await c.query(opts.rollback ? "rollback" : "commit");
    return result;
  } catch (err) {
    await c.query("rollback").catch(() => {});
    throw err;
  } finally {
    c.release();
  }
}

/** Runs fn in one transaction as the caller (role, claims, request settings), like the real servers. */
export function asCaller<T>(pool: pg.Pool, caller: CallerSettings, fn: (c: pg.PoolClient) => Promise<T>, opts: { rollback?: boolean } = {}): Promise<T> {
  return transaction(pool, async (c) => {
    await applyCaller(c, caller);
    return await fn(c);
  }, opts);
}
