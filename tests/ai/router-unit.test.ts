// The router's decision as a pure function (functions/_shared/ai/router.ts): which deployment
// next and why (initial, retry, fallback), or why to stop, from the route and the attempts so
// far; and the backoff before a retry.
import { describe, expect, it } from "vitest";
import type { Candidate } from "../../functions/_shared/ai/route.ts";
import { type AttemptRecord, DEFAULT_LIMITS, isRetryable, nextStep, retryDelayMs } from "../../functions/_shared/ai/router.ts";
import type { ErrorClass } from "../../functions/_shared/ai/types.ts";

function dep(id: string, opts: { window?: number | null; alt?: boolean } = {}): Candidate {
  return {
    deployment_id: id,
    model_id: `m-${id}`,
    provider_id: "openai",
    provider_kind: "openai",
    provider_model: id,
    context_window: opts.window === undefined ? 100_000 : opts.window,
    max_output: 4096,
    policy_alternative: opts.alt ?? false,
    prices: [],
  };
}

const failed = (id: string, error_class: ErrorClass): AttemptRecord => ({ deployment_id: id, status: "failed", error_class });
const refused = (id: string): AttemptRecord => ({ deployment_id: id, status: "refused", error_class: "content_policy" });
const abandoned = (id: string): AttemptRecord => ({ deployment_id: id, status: "abandoned", error_class: null });

/** The deployment and kind of a step, or its stop reason. */
function step(route: Candidate[], history: AttemptRecord[], opts: Parameters<typeof nextStep>[2] = {}) {
  const s = nextStep(route, history, opts);
  return "stop" in s ? { stop: s.stop } : { id: s.next.deployment_id, kind: s.kind, index: s.index };
}

describe("nextStep", () => {
  const route = [dep("a"), dep("b"), dep("c")];

  it("starts with the first deployment of the route", () => {
    expect(step(route, [])).toEqual({ id: "a", kind: "initial", index: 0 });
  });

  it.each(["rate_limit", "overloaded", "server", "timeout"] as const)("retries the same deployment once after %s, then falls back in route order", (cls) => {
    expect(step(route, [failed("a", cls)])).toEqual({ id: "a", kind: "retry", index: 0 });
    expect(step(route, [failed("a", cls), failed("a", cls)])).toEqual({ id: "b", kind: "fallback", index: 1 });
    expect(step(route, [failed("a", cls), failed("a", cls), failed("b", cls)])).toEqual({ id: "b", kind: "retry", index: 1 });
    expect(step(route, [failed("a", cls), failed("a", cls), failed("b", cls), failed("b", cls)])).toEqual({ id: "c", kind: "fallback", index: 2 });
  });

  it("counts tries per deployment from the limits", () => {
    const limits = { triesPerDeployment: 3, maxFallbacks: 3 };
    expect(step(route, [failed("a", "server"), failed("a", "server")], { limits })).toEqual({ id: "a", kind: "retry", index: 0 });
    expect(step(route, [failed("a", "server")], { limits: { triesPerDeployment: 1, maxFallbacks: 3 } })).toEqual({ id: "b", kind: "fallback", index: 1 });
  });

  it.each(["auth", "bad_request", "not_found"] as const)("never retries a deployment that failed with %s", (cls) => {
    expect(step(route, [failed("a", cls)])).toEqual({ id: "b", kind: "fallback", index: 1 });
    expect(step(route, [failed("a", cls), failed("b", cls), failed("c", cls)])).toEqual({ stop: "exhausted" });
  });

  it("counts an abandoned call (a dead worker's) as a try, and retries it", () => {
    expect(step(route, [abandoned("a")])).toEqual({ id: "a", kind: "retry", index: 0 });
    expect(step(route, [abandoned("a"), abandoned("a")])).toEqual({ id: "b", kind: "fallback", index: 1 });
  });

  it("caps the number of fallbacks (deployments tried after the first)", () => {
    const five = ["a", "b", "c", "d", "e"].map((id) => dep(id));
    const bad = (ids: string[]) => ids.map((id) => failed(id, "bad_request"));
    expect(DEFAULT_LIMITS.maxFallbacks).toBe(3);
    expect(step(five, bad(["a", "b", "c"]))).toEqual({ id: "d", kind: "fallback", index: 3 });
    expect(step(five, bad(["a", "b", "c", "d"]))).toEqual({ stop: "fallback_cap" });
    expect(step(five, bad(["a"]), { limits: { triesPerDeployment: 2, maxFallbacks: 1 } })).toEqual({ id: "b", kind: "fallback", index: 1 });
    expect(step(five, bad(["a", "b"]), { limits: { triesPerDeployment: 2, maxFallbacks: 1 } })).toEqual({ stop: "fallback_cap" });
    // The cap stops new deployments only: a retry of the last one is still allowed.
    expect(step(five, [...bad(["a", "b", "c"]), failed("d", "server")])).toEqual({ id: "d", kind: "retry", index: 3 });
  });

  it("after a context-window error skips to deployments with a larger window", () => {
    const r = [dep("small", { window: 8000 }), dep("same", { window: 8000 }), dep("smaller", { window: 4000 }), dep("big", { window: 128_000 })];
    expect(step(r, [failed("small", "context_window")])).toEqual({ id: "big", kind: "fallback", index: 3 });
    // A deployment with no declared window is not skipped.
    const open = [dep("small", { window: 8000 }), dep("unknown", { window: null })];
    expect(step(open, [failed("small", "context_window")])).toEqual({ id: "unknown", kind: "fallback", index: 1 });
    // Nothing larger: no deployment fits.
    expect(step([dep("small", { window: 8000 }), dep("same", { window: 8000 })], [failed("small", "context_window")])).toEqual({ stop: "no_fit" });
  });

  it("skips deployments whose window is below the request's need from the start", () => {
    const r = [dep("small", { window: 1000 }), dep("big", { window: 50_000 })];
    expect(step(r, [], { minContext: 1001 })).toEqual({ id: "big", kind: "initial", index: 1 });
    expect(step(r, [], { minContext: 1000 })).toEqual({ id: "small", kind: "initial", index: 0 });
    expect(step(r, [], { minContext: 60_000 })).toEqual({ stop: "no_fit" });
  });

  it("never retries a content-policy refusal and falls back only to policy alternatives", () => {
    const r = [dep("a"), dep("plain"), dep("alt", { alt: true }), dep("plain2")];
    expect(step(r, [refused("a")])).toEqual({ id: "alt", kind: "fallback", index: 2 });
    // The alternative fails for another reason: still only alternatives (none left).
    expect(step(r, [refused("a"), failed("alt", "server"), failed("alt", "server")])).toEqual({ stop: "exhausted" });
    // A refusal by the alternative itself ends it too.
    expect(step(r, [refused("a"), refused("alt")])).toEqual({ stop: "exhausted" });
    // An error class content_policy on a plain failed attempt (a 400) behaves the same.
    expect(step(r, [failed("a", "content_policy")])).toEqual({ id: "alt", kind: "fallback", index: 2 });
    expect(step([dep("a"), dep("b")], [refused("a")])).toEqual({ stop: "exhausted" });
  });

  it("passes over skipped (cooling) deployments without counting them as tried", () => {
    expect(step(route, [], { skip: new Set(["a"]) })).toEqual({ id: "b", kind: "initial", index: 1 });
    expect(step(route, [failed("a", "server")], { skip: new Set(["a"]) })).toEqual({ id: "b", kind: "fallback", index: 1 });
    expect(step(route, [], { skip: new Set(["a", "b", "c"]) })).toEqual({ stop: "exhausted" });
    // Skipped deployments do not use up the fallback cap.
    const five = ["a", "b", "c", "d", "e"].map((id) => dep(id));
    const hist = ["a", "c", "d"].map((id) => failed(id, "auth"));
    expect(step(five, hist, { skip: new Set(["b"]) })).toEqual({ id: "e", kind: "fallback", index: 4 });
  });

  it("does not call a deployment again after it succeeded", () => {
    expect(step([dep("a")], [{ deployment_id: "a", status: "succeeded", error_class: null }])).toEqual({ stop: "exhausted" });
  });

  it("classes retryable errors", () => {
    expect(["rate_limit", "overloaded", "server", "timeout"].every((c) => isRetryable(c as ErrorClass))).toBe(true);
    expect(["context_window", "content_policy", "auth", "bad_request", "not_found"].some((c) => isRetryable(c as ErrorClass))).toBe(false);
    expect(isRetryable(null)).toBe(false);
  });
});

describe("retryDelayMs", () => {
  it("honours the provider's Retry-After exactly, even 0 or above the backoff cap", () => {
    expect(retryDelayMs(1500, 1)).toBe(1500);
    expect(retryDelayMs(0, 3)).toBe(0);
    expect(retryDelayMs(45_000, 1)).toBe(45_000);
  });

  it("otherwise backs off from 250 ms, doubling per try, capped at 4 s", () => {
    expect([0, 1, 2, 3, 4, 5, 6, 10].map((n) => retryDelayMs(undefined, n))).toEqual([250, 250, 500, 1000, 2000, 4000, 4000, 4000]);
  });
});
