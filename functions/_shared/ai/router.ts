// The router's decision, as a pure function of the route and the attempts made so far: which
// deployment to call next and why (initial, retry, fallback), or why to stop. (An async task a
// provider refused ends its job before this is asked: see async.ts.) Keeping it pure
// and derived from the attempt rows makes it resumable: a worker that died mid-job, or an
// async job woken by a poll, continues exactly where the last one left off.
import type { Candidate } from "./route.ts";
import type { ErrorClass } from "./types.ts";

export interface AttemptRecord {
  deployment_id: string;
  status: "pending" | "submitted" | "unknown" | "succeeded" | "failed" | "refused" | "canceled" | "abandoned";
  error_class: ErrorClass | null;
}

export interface RouterLimits {
  /** Calls per deployment before falling back (1 = no retry). */
  triesPerDeployment: number;
  /** Deployments tried after the first. */
  maxFallbacks: number;
}

export const DEFAULT_LIMITS: RouterLimits = { triesPerDeployment: 2, maxFallbacks: 3 };

const RETRYABLE: ReadonlySet<ErrorClass> = new Set(["rate_limit", "overloaded", "server", "timeout"]);

export type Step =
  | { next: Candidate; index: number; kind: "initial" | "retry" | "fallback" }
  | { stop: "exhausted" | "fallback_cap" | "no_fit" };

export function isRetryable(c: ErrorClass | null): boolean {
  return c !== null && RETRYABLE.has(c);
}

/**
 * The next call. `skip` names deployments to pass over this time (cooling down); they are not
 * counted as tried. `minContext` is the tokens the request needs (input estimate + max output).
 */
export function nextStep(
  route: Candidate[],
  history: AttemptRecord[],
  opts: { limits?: RouterLimits; skip?: ReadonlySet<string>; minContext?: number } = {},
): Step {
  const limits = opts.limits ?? DEFAULT_LIMITS;
  let minContext = opts.minContext ?? 0;
  let policyRefused = false;
  const tries = new Map<string, number>();
  const done = new Set<string>();
  for (const a of history) {
    tries.set(a.deployment_id, (tries.get(a.deployment_id) ?? 0) + 1);
    if (a.status === "succeeded") done.add(a.deployment_id);
    if (a.error_class === "content_policy") policyRefused = true;
    if (a.error_class === "context_window") {
      const window = route.find((c) => c.deployment_id === a.deployment_id)?.context_window;
      if (window) minContext = Math.max(minContext, window + 1);
    }
    // Terminal for this deployment: the same call would fail the same way.
    if (a.error_class && !isRetryable(a.error_class)) done.add(a.deployment_id);
  }
  const used = route.filter((c) => tries.has(c.deployment_id)).length;
  let anyFit = false;
  for (let i = 0; i < route.length; i++) {
    const c = route[i];
    if (c.context_window !== null && minContext > c.context_window) continue;
    anyFit = true;
    if (done.has(c.deployment_id)) continue;
    if (policyRefused && !c.policy_alternative) continue;
    const n = tries.get(c.deployment_id) ?? 0;
    if (n >= limits.triesPerDeployment) continue;
    if (opts.skip?.has(c.deployment_id)) continue;
    if (n > 0) return { next: c, index: i, kind: "retry" };
    if (history.length === 0) return { next: c, index: i, kind: "initial" };
    if (used > limits.maxFallbacks) return { stop: "fallback_cap" };
    return { next: c, index: i, kind: "fallback" };
  }
  return { stop: anyFit ? "exhausted" : "no_fit" };
}

/** Backoff before retrying the same deployment: the provider's Retry-After, else 250 ms doubling. */
export function retryDelayMs(retryAfterMs: number | undefined, tryNo: number): number {
  if (retryAfterMs !== undefined) return retryAfterMs;
  return Math.min(250 * 2 ** Math.max(0, tryNo - 1), 4000);
}
