// The request shape the read benches (rls-list, content) time on both sides: what PostgREST
// sends, one round trip of begin, the caller's claims and role, the query, commit.
import type pg from "pg";
import { type Summary, summarize } from "./stats.ts";

export function request(role: string, claims: object, query: string): string {
  const lit = (s: string) => `'${s.replace(/'/g, "''")}'`;
  return `begin; select set_config('request.jwt.claims', ${lit(JSON.stringify(claims))}, true), set_config('role', ${lit(role)}, true); ${query}; commit;`;
}

/** The query's own result among a request's results: the SELECT that has `column`. */
export function resultOf(res: unknown, column: string): pg.QueryResult | undefined {
  return (res as pg.QueryResult[]).find((r) => r.command === "SELECT" && r.fields.some((f) => f.name === column));
}

/** One side of a read bench's round: n requests one after another, their latencies, and the rows they returned (its work). */
export async function timedRequests(c: pg.Client, sql: string, n: number, rowsOf: (res: unknown) => number): Promise<Summary & { work: { requests: number; rows: number } }> {
  const samples: number[] = [];
  let rows = 0;
  for (let i = 0; i < n; i++) {
    const t0 = performance.now();
    const res = await c.query(sql);
    samples.push(performance.now() - t0);
    rows += rowsOf(res);
  }
  return { ...summarize(samples), work: { requests: n, rows } };
}
