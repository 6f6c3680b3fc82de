// Small drivers the benchmarks share: run n tasks with a fixed number of clients, and wait
// (bounded) for a condition the pipeline under test makes true.
export async function pool(n: number, concurrency: number, fn: (i: number) => Promise<unknown>): Promise<void> {
  let next = 0;
  await Promise.all(Array.from({ length: concurrency }, async () => {
    while (next < n) await fn(next++);
  }));
}

export async function waitUntil(check: () => Promise<boolean>, timeoutMs = 180_000, everyMs = 5): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!(await check())) {
    if (Date.now() > deadline) throw new Error("timed out");
    await new Promise((r) => setTimeout(r, everyMs));
  }
}

/** What a tally says of a side's jobs: how many have finished (well or not), how many well. */
export type JobTally = (ids: string[]) => Promise<{ finished: number; ok: number }>;

/** A tally by `sql`, which counts `finished` and `ok` among the ids in $1. */
export function tallyBy(c: { query(sql: string, values: unknown[]): Promise<{ rows: Record<string, unknown>[] }> }, sql: string): JobTally {
  return async (ids) => {
    const { rows: [r] } = await c.query(sql, [ids]);
    return { finished: Number(r.finished), ok: Number(r.ok) };
  };
}

/**
 * One side's round of jobs: n started by `concurrency` clients, timed until every one of them has
 * finished, well or not (bounded). Its work: the jobs it started, and how many succeeded.
 */
export async function timedJobs(n: number, concurrency: number, start: (i: number) => Promise<string>, tally: JobTally) {
  const ids: string[] = [];
  const t0 = performance.now();
  await pool(n, concurrency, async (i) => void ids.push(await start(i)));
  let last = { finished: 0, ok: 0 };
  await waitUntil(async () => (last = await tally(ids)).finished >= n);
  return { rate: n / ((performance.now() - t0) / 1000), work: { jobs: ids.length, succeeded: last.ok } };
}
