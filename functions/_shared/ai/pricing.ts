// Credits and provider cost from units and the job's admitted prices, and the worst case that
// admission reserves. Rates are per `per_units`; a job's charge is rounded up once per attempt.
import type { Candidate, PriceRow, PriceUnit } from "./route.ts";
import type { Modality, TokenUsage } from "./types.ts";

/** What one attempt consumed, keyed by price unit (tokens split as the provider reported them). */
export type Units = Partial<Record<PriceUnit, number>>;

/** The row for a unit: the exact variant if priced, else the catch-all (''). */
export function priceFor(prices: PriceRow[], unit: PriceUnit, variant = ""): PriceRow | undefined {
  return prices.find((p) => p.unit === unit && p.variant === variant) ?? prices.find((p) => p.unit === unit && p.variant === "");
}

const rate = (p: PriceRow | undefined, field: "credits" | "provider_cost_micros") => (p ? p[field] / p.per_units : 0);

/**
 * Exact (unrounded) credits and provider cost of some units. Cached input and reasoning
 * output are parts of input and output: billed at their own rate when one is priced, else at
 * the input or output rate, never twice.
 */
export function costOf(units: Units, prices: PriceRow[], variant = ""): { credits: number; costMicros: number } {
  let credits = 0;
  let cost = 0;
  const add = (unit: PriceUnit, n: number | undefined, fallback?: PriceUnit) => {
    if (!n) return;
    const p = priceFor(prices, unit, variant) ?? (fallback ? priceFor(prices, fallback, variant) : undefined);
    credits += n * rate(p, "credits");
    cost += n * rate(p, "provider_cost_micros");
  };
  const cached = Math.min(units.cached_input_token ?? 0, units.input_token ?? 0);
  const reasoning = Math.min(units.reasoning_token ?? 0, units.output_token ?? 0);
  add("input_token", (units.input_token ?? 0) - cached);
  add("cached_input_token", cached, "input_token");
  add("output_token", (units.output_token ?? 0) - reasoning);
  add("reasoning_token", reasoning, "output_token");
  for (const unit of ["image", "video_second", "audio_second", "character", "call"] as const) add(unit, units[unit]);
  return { credits, costMicros: cost };
}

/** Rounds up, ignoring floating-point noise above an integer (and never giving -0 for nothing). */
const ceil = (x: number) => Math.max(0, Math.ceil(x - 1e-9));

/** Credits (rounded up) and provider cost (micros, rounded up) of an attempt. */
export function charge(units: Units, prices: PriceRow[], variant = ""): { credits: number; costMicros: number } {
  const { credits, costMicros } = costOf(units, prices, variant);
  return { credits: ceil(credits), costMicros: ceil(costMicros) };
}

export function tokenUnits(u: TokenUsage): Units {
  return {
    input_token: u.inputTokens,
    output_token: u.outputTokens,
    ...(u.cachedInputTokens ? { cached_input_token: u.cachedInputTokens } : {}),
    ...(u.reasoningTokens ? { reasoning_token: u.reasoningTokens } : {}),
  };
}

/** What a request could consume at most, per modality; the input's own size bounds its tokens. */
export interface Demand {
  modality: Modality;
  /** UTF-8 bytes of all text input: an upper bound of its tokens for every BPE tokenizer. */
  inputBytes?: number;
  maxOutputTokens?: number;
  images?: number;
  seconds?: number;
  characters?: number;
  /** Price variant (image size/quality, video resolution). */
  variant?: string;
}

/** The most any deployment of the route could charge for the demand (exact credits, unrounded). */
export function worstCase(route: Candidate[], d: Demand): number {
  let worst = 0;
  for (const c of route) {
    const units: Units = {};
    if (d.modality === "text" || d.modality === "embedding") {
      units.input_token = d.inputBytes ?? 0;
      // Reasoning tokens are part of the output, so the higher of the two rates bounds it.
      const out = priceFor(c.prices, "output_token");
      const reasoning = priceFor(c.prices, "reasoning_token");
      const maxOut = Math.min(d.maxOutputTokens ?? 0, c.max_output ?? Number.MAX_SAFE_INTEGER);
      if (reasoning && (!out || rate(reasoning, "credits") > rate(out, "credits"))) {
        units.output_token = maxOut;
        units.reasoning_token = maxOut;
      } else {
        units.output_token = maxOut;
      }
    }
    if (d.images) units.image = d.images;
    if (d.seconds) units.video_second = d.seconds;
    if (d.characters) units.character = d.characters;
    if (d.modality === "moderation" || d.modality === "vision") units.call = 1;
    worst = Math.max(worst, costOf(units, c.prices, d.variant ?? "").credits);
  }
  return worst;
}
