// The retry schedule: attempt 1 is immediate, then 5 s, 5 min, 30 min, 2 h, 5 h, 10 h, 10 h,
// each with ±10% jitter so a recovering receiver is not hit by every retry at once. A
// Retry-After that asks for longer wins (capped at a day).

const S = 1000;
const M = 60 * S;
const H = 60 * M;

/** Delay after failed attempt n (index n-1). After the last one the message fails. */
export const RETRY_DELAYS_MS = [5 * S, 5 * M, 30 * M, 2 * H, 5 * H, 10 * H, 10 * H] as const;
export const MAX_ATTEMPTS = RETRY_DELAYS_MS.length + 1;
export const JITTER = 0.1;
const MAX_RETRY_AFTER_MS = 24 * H;

/** The time source for deliveries, injectable so tests can drive the schedule. */
export interface Clock {
  now(): Date;
}
export const systemClock: Clock = { now: () => new Date() };

/** Milliseconds a Retry-After header asks for (delta-seconds or HTTP date), or undefined. */
export function parseRetryAfter(value: string | null | undefined, now: Date): number | undefined {
  if (!value) return undefined;
  const v = value.trim();
  if (/^\d+$/.test(v)) return Math.min(Number(v) * S, MAX_RETRY_AFTER_MS);
  const at = Date.parse(v);
  if (Number.isNaN(at)) return undefined;
  return Math.min(Math.max(0, at - now.getTime()), MAX_RETRY_AFTER_MS);
}

/**
 * When to try again after failed attempt `attempt` (1-based), or undefined when retries are
 * exhausted. `random` is in [0, 1).
 */
export function nextAttemptAt(attempt: number, now: Date, opts: { retryAfterMs?: number; random?: () => number } = {}): Date | undefined {
  const base = RETRY_DELAYS_MS[attempt - 1];
  if (base === undefined) return undefined;
  const jittered = base * (1 + JITTER * (2 * (opts.random ?? Math.random)() - 1));
  const delay = Math.max(jittered, opts.retryAfterMs ?? 0);
  return new Date(now.getTime() + Math.round(delay));
}
