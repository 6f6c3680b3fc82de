// Runs one synchronous purpose of a job (the main call, moderation, prompt enhancement) through
// the router: pick the next deployment, write the attempt, call, close the attempt, feed the
// outcome to the shared cooldowns, and go on until one succeeds or the route is spent.
// Transactions: one per attempt write and one per health update; none spans a provider call.
import { asService, type Db, type Tx } from "../db/client.ts";
import type { AdapterRegistry } from "./adapters.ts";
import { type AttemptRow, closeFailed, closeSucceeded, loadAttempts, openAttempt, type Purpose } from "./attempts.ts";
import { cooling } from "./health.ts";
import { charge, tokenUnits, type Units } from "./pricing.ts";
import type { Candidate } from "./route.ts";
import { type AttemptRecord, DEFAULT_LIMITS, isRetryable, nextStep, retryDelayMs, type RouterLimits } from "./router.ts";
import { type ProviderAdapter, ProviderError } from "./types.ts";

export interface CallOutcome<T> {
  value: T;
  units: Units;
  /** Price variant (image size/quality, video resolution). */
  variant?: string;
  providerRequestId?: string;
  /** The provider answered but refused on content policy (Stability's CONTENT_FILTERED). */
  refused?: boolean;
  /** An async task was accepted: the attempt stays open ("submitted") until a poll closes it. */
  submitted?: boolean;
}

/** Storing the output failed after the provider succeeded: not the deployment's fault. */
export class OutputStoreError extends Error {
  constructor(message: string, readonly units: Units) {
    super(message);
  }
}

export interface ExecuteDeps {
  db: Db;
  adapters: AdapterRegistry;
  limits?: RouterLimits;
  /** Most time spent waiting on Retry-After and backoff within one run; more means fall back now. */
  retryBudgetMs?: number;
  sleep?: (ms: number) => Promise<void>;
  now?: () => number;
}

/** Every deployment the request could use is cooling down: ask again after `retryAfterMs`. */
export class AllCoolingError extends Error {
  constructor(readonly retryAfterMs: number) {
    super(`every deployment for this request is cooling down; retry in ${Math.ceil(retryAfterMs / 1000)} s`);
  }
}

/** The route is spent: the last provider error, or why nothing could be tried. */
export class RouteFailedError extends Error {
  constructor(
    readonly reason: "exhausted" | "fallback_cap" | "refused" | "no_fit",
    readonly last?: ProviderError,
  ) {
    super(last ? last.message : reason === "no_fit" ? "the input does not fit any model's context window" : "no deployment could serve the request");
  }
  get code(): string {
    return this.last?.errorClass ?? this.reason;
  }
}

export function toProviderError(err: unknown): ProviderError {
  if (err instanceof ProviderError) return err;
  // A bug or an unexpected answer in an adapter: treat as a server error of that deployment.
  return new ProviderError("server", (err as Error)?.message ?? String(err));
}

/** Where a walk along the route stands: the attempts so far and what this run has learned. */
export interface RouteWalk {
  history: AttemptRecord[];
  /** Deployments given up on in this run (waiting for them would blow the retry budget). */
  exhausted: Set<string>;
  retryAfter: Map<string, number | undefined>;
  waitedMs: number;
  last?: ProviderError;
  /** Cooldowns read with the history, for the first step (later steps read them afresh). */
  cooling?: Map<string, Date>;
}

/** The attempts so far and the route's cooldowns, read in one transaction. */
export async function startWalk(db: Db, jobId: string, purpose: Purpose, route: Candidate[]): Promise<RouteWalk> {
  return await asService(db, (tx) => readWalk(tx, jobId, purpose, route));
}

export async function readWalk(tx: Tx, jobId: string, purpose: Purpose, route: Candidate[]): Promise<RouteWalk> {
  const history = await loadAttempts(tx, jobId, purpose);
  const cool = await cooling(tx, route.map((c) => c.deployment_id));
  return { history, exhausted: new Set(), retryAfter: new Map(), waitedMs: 0, cooling: cool };
}

/** The health outcome of a failed call, for closeFailed's transaction. */
export function failureOutcome(route: Candidate[], c: Candidate, e: ProviderError) {
  return {
    deploymentId: c.deployment_id,
    outcome: { ok: false as const, status: e.details.status, errorClass: e.errorClass, retryAfterMs: e.details.retryAfterMs, sole: route.length === 1 },
  };
}

/**
 * The next deployment to call, after waiting out a retry's backoff; throws AllCoolingError when
 * only cooling deployments are left, RouteFailedError when nothing is.
 */
export async function nextCall(
  deps: ExecuteDeps,
  route: Candidate[],
  walk: RouteWalk,
  minContext?: number,
): Promise<{ candidate: Candidate; kind: "initial" | "retry" | "fallback" }> {
  const sleep = deps.sleep ?? ((ms: number) => new Promise((r) => setTimeout(r, ms)));
  const now = deps.now ?? Date.now;
  for (;;) {
    const cool = walk.cooling ?? (await asService(deps.db, (tx) => cooling(tx, route.map((c) => c.deployment_id))));
    walk.cooling = undefined;
    // Every retryable error cools its deployment, which steers other requests away; it must not
    // also cancel this job's own bounded retry of it (after the backoff or Retry-After), or no
    // error would ever be retried. So a cooldown is skipped unless the job's last call there
    // failed retryably (then the cooldown is, most likely, that failure's).
    const ownFailure = new Set<string>();
    for (const a of walk.history) {
      if (isRetryable(a.error_class)) ownFailure.add(a.deployment_id);
      else ownFailure.delete(a.deployment_id);
    }
    const skip = new Set([...walk.exhausted, ...[...cool.keys()].filter((id) => !ownFailure.has(id))]);
    const step = nextStep(route, walk.history, { limits: deps.limits ?? DEFAULT_LIMITS, skip, minContext });
    if ("stop" in step) {
      // Nothing failed for good but some were only cooling: the caller should come back later.
      const blocked = route.filter((c) => cool.has(c.deployment_id));
      if (step.stop === "exhausted" && blocked.length && !walk.last) {
        const earliest = Math.min(...blocked.map((c) => cool.get(c.deployment_id)!.getTime()));
        throw new AllCoolingError(Math.max(0, earliest - now()));
      }
      throw new RouteFailedError(step.stop, walk.last);
    }
    if (step.kind === "retry") {
      const tries = walk.history.filter((a) => a.deployment_id === step.next.deployment_id).length;
      const delay = retryDelayMs(walk.retryAfter.get(step.next.deployment_id), tries);
      if (walk.waitedMs + delay > (deps.retryBudgetMs ?? 30_000)) {
        walk.exhausted.add(step.next.deployment_id); // waiting would cost more than falling back
        continue;
      }
      walk.waitedMs += delay;
      await sleep(delay);
    }
    return { candidate: step.next, kind: step.kind };
  }
}

/** Records a failed call on the walk (its health went with closeFailed). */
export function noteFailure(walk: RouteWalk, attempt: AttemptRow, c: Candidate, e: ProviderError) {
  walk.history.push({ ...attempt, status: "failed", error_class: e.errorClass });
  walk.retryAfter.set(c.deployment_id, e.details.retryAfterMs);
  walk.last = e;
}

export async function executeSync<T>(
  deps: ExecuteDeps,
  job: { id: string; org_id: string },
  purpose: Purpose,
  route: Candidate[],
  call: (adapter: ProviderAdapter, c: Candidate, attempt: AttemptRow) => Promise<CallOutcome<T>>,
  /** unknownOnTimeout: which adapters' calls are async submits, whose timeout leaves the outcome unknown. */
  opts: { minContext?: number; unknownOnTimeout?: (adapter: ProviderAdapter) => boolean; walk?: RouteWalk } = {},
): Promise<{ value?: T; attempt: AttemptRow; candidate: Candidate; unknown?: boolean; resumed?: boolean }> {
  const now = deps.now ?? Date.now;
  const walk = opts.walk ?? (await startWalk(deps.db, job.id, purpose, route));
  // A run resumed after its worker died once this call had succeeded: the result stands, and
  // the provider is not called (nor the org charged) again.
  const before = (walk.history as AttemptRow[]).findLast((a) => a.status === "succeeded" && a.result != null);
  const beforeAt = before && route.find((c) => c.deployment_id === before.deployment_id);
  if (before && beforeAt) return { value: before.result as T, attempt: before, candidate: beforeAt, resumed: true };
  for (;;) {
    const { candidate: c, kind } = await nextCall(deps, route, walk, opts.minContext);
    const attempt = await openAttempt(deps.db, job, purpose, kind, c);
    const started = now();
    let adapter: ProviderAdapter | undefined;
    try {
      adapter = await deps.adapters.get(c.provider_id);
      const out = await call(adapter, c, attempt);
      const latencyMs = now() - started;
      if (out.refused) {
        const refusal = new ProviderError("content_policy", "the provider filtered the output on content policy", { providerRequestId: out.providerRequestId });
        // Filtered outputs are billed by some providers (Stability): record the cost, charge nothing.
        await closeFailed(deps.db, attempt.id, { status: "refused", error: refusal, billedUnits: out.units, costMicros: charge(out.units, c.prices, out.variant).costMicros, latencyMs });
        walk.history.push({ ...attempt, status: "refused", error_class: "content_policy" });
        walk.last = refusal;
        continue;
      }
      const { credits, costMicros } = out.submitted ? { credits: 0, costMicros: 0 } : charge(out.units, c.prices, out.variant);
      await closeSucceeded(deps.db, attempt.id, {
        status: out.submitted ? "submitted" : "succeeded", units: out.units, credits, costMicros, providerRequestId: out.providerRequestId,
        result: out.submitted ? undefined : out.value, latencyMs,
      }, c.deployment_id);
      return { value: out.value, attempt, candidate: c };
    } catch (err) {
      const latencyMs = now() - started;
      if (err instanceof OutputStoreError) {
        await closeFailed(deps.db, attempt.id, { status: "failed", error: { errorClass: "server", message: err.message }, billedUnits: err.units, latencyMs });
        throw err;
      }
      const e = toProviderError(err);
      if (e.errorClass === "timeout" && adapter && opts.unknownOnTimeout?.(adapter)) {
        // The submit may have reached the provider: never submit again blindly; a poll reads
        // the provider by our key (the attempt id) and settles what really happened.
        await closeFailed(deps.db, attempt.id, { status: "unknown", error: e, latencyMs });
        return { attempt, candidate: c, unknown: true };
      }
      const billed = e.details.billedUsage;
      const billedUnits: Units | undefined = billed ? tokenUnits(billed) : undefined;
      await closeFailed(deps.db, attempt.id, {
        status: e.errorClass === "content_policy" ? "refused" : "failed",
        error: e,
        billedUnits,
        costMicros: billedUnits ? charge(billedUnits, c.prices).costMicros : 0,
        latencyMs,
      }, failureOutcome(route, c, e));
      noteFailure(walk, attempt, c, e);
    }
  }
}
