// A concurrency cap: at most `n` tasks run at once, the rest wait their turn in order. Shared by
// webhook delivery (POSTs in flight per process) and deck generation (AI calls per generation).

/** Runs a task under a shared limit. */
export type Limiter = <T>(task: () => Promise<T>) => Promise<T>;

/** A Limiter allowing `n` tasks at once. */
export function limiter(n: number): Limiter {
  let active = 0;
  const waiting: (() => void)[] = [];
  return async (task) => {
    if (active >= n) await new Promise<void>((r) => waiting.push(r));
    active++;
    try {
      return await task();
    } finally {
      active--;
      waiting.shift()?.();
    }
  };
}
