// Pricing (functions/_shared/ai/pricing.ts): credits and provider cost from units at the job's
// admitted prices (cached and reasoning tokens at their own rates, never twice; variants;
// rounding once per attempt), and the worst case admission reserves.
import { describe, expect, it } from "vitest";
import { charge, costOf, priceFor, tokenUnits, worstCase } from "../../functions/_shared/ai/pricing.ts";
import type { Candidate, PriceRow, PriceUnit } from "../../functions/_shared/ai/route.ts";

const price = (unit: PriceUnit, credits: number, per_units = 1, provider_cost_micros = 0, variant = ""): PriceRow => ({
  unit, variant, per_units, provider_cost_micros, currency: "USD", credits,
});

const M = 1_000_000;
/** 1000 credits / 1M input, 250 / 1M cached input, 2000 / 1M output, 8000 / 1M reasoning. */
const tokenPrices = [
  price("input_token", 1000, M, 500_000),
  price("cached_input_token", 250, M, 125_000),
  price("output_token", 2000, M, 1_000_000),
  price("reasoning_token", 8000, M, 4_000_000),
];

function cand(id: string, prices: PriceRow[], max_output: number | null = 4096): Candidate {
  return {
    deployment_id: id, model_id: id, provider_id: "openai", provider_kind: "openai", provider_model: id,
    context_window: 100_000, max_output, policy_alternative: false, prices,
  };
}

describe("costOf", () => {
  it("prices plain input and output tokens per per_units", () => {
    expect(costOf({ input_token: 3000, output_token: 1500 }, tokenPrices)).toEqual({ credits: 3 + 3, costMicros: 1500 + 1500 });
  });

  it("bills cached input at its own rate and only the rest at the input rate", () => {
    // 10,000 input of which 4,000 cached: 6,000 x 1000/1M + 4,000 x 250/1M = 6 + 1.
    expect(costOf({ input_token: 10_000, cached_input_token: 4000 }, tokenPrices)).toEqual({ credits: 7, costMicros: 3000 + 500 });
  });

  it("bills reasoning tokens at their own rate and only the rest of the output at the output rate", () => {
    // 5,000 output of which 2,000 reasoning: 3,000 x 2000/1M + 2,000 x 8000/1M = 6 + 16.
    expect(costOf({ output_token: 5000, reasoning_token: 2000 }, tokenPrices)).toEqual({ credits: 22, costMicros: 3000 + 8000 });
  });

  it("falls back to the input and output rates when cached or reasoning tokens have no price (never twice)", () => {
    const plain = [price("input_token", 1000, M), price("output_token", 2000, M)];
    expect(costOf({ input_token: 10_000, cached_input_token: 4000, output_token: 5000, reasoning_token: 2000 }, plain).credits).toBe(10 + 10);
  });

  it("never counts more cached or reasoning tokens than the input or output they are part of", () => {
    // A provider reporting cached > input (or reasoning > output) does not get negative plain tokens.
    expect(costOf({ input_token: 1000, cached_input_token: 5000 }, tokenPrices).credits).toBeCloseTo(0.25, 10);
    expect(costOf({ output_token: 1000, reasoning_token: 5000 }, tokenPrices).credits).toBeCloseTo(8, 10);
  });

  it("prices images, video seconds, characters and calls by variant, falling back to the catch-all", () => {
    const prices = [
      price("image", 5, 1, 20_000),
      price("image", 9, 1, 42_000, "1024x1024/hd"),
      price("video_second", 3, 1, 50_000),
      price("video_second", 7, 1, 90_000, "1080p"),
      price("character", 3000, M),
      price("call", 2),
    ];
    expect(costOf({ image: 2 }, prices, "1024x1024/hd")).toEqual({ credits: 18, costMicros: 84_000 });
    expect(costOf({ image: 2 }, prices, "512x512")).toEqual({ credits: 10, costMicros: 40_000 });
    expect(costOf({ video_second: 4.5 }, prices, "1080p")).toEqual({ credits: 31.5, costMicros: 405_000 });
    expect(costOf({ video_second: 4.5 }, prices, "720p")).toEqual({ credits: 13.5, costMicros: 225_000 });
    expect(costOf({ character: 1000 }, prices).credits).toBeCloseTo(3, 10);
    expect(costOf({ call: 1 }, prices).credits).toBe(2);
  });

  it("charges nothing for units the deployment has no price for, and for zero units", () => {
    expect(costOf({ image: 3 }, tokenPrices)).toEqual({ credits: 0, costMicros: 0 });
    expect(costOf({ input_token: 0, output_token: 0 }, tokenPrices)).toEqual({ credits: 0, costMicros: 0 });
  });

  it("priceFor picks the exact variant, else the catch-all, else nothing", () => {
    const rows = [price("image", 5), price("image", 9, 1, 0, "hd")];
    expect(priceFor(rows, "image", "hd")?.credits).toBe(9);
    expect(priceFor(rows, "image", "sd")?.credits).toBe(5);
    expect(priceFor(rows, "video_second", "hd")).toBeUndefined();
  });
});

describe("charge", () => {
  it("rounds credits and provider cost up once per attempt", () => {
    // 1 token at 1000/1M = 0.001 credits: still 1 credit; 0.5 micros: 1 micro.
    expect(charge({ input_token: 1 }, tokenPrices)).toEqual({ credits: 1, costMicros: 1 });
    expect(charge({ input_token: 1001, output_token: 1 }, tokenPrices)).toEqual({ credits: 2, costMicros: 502 });
  });

  it("does not round an exact integer up because of floating-point noise", () => {
    // 100 x (7/100) is 7.000000000000001 in floating point: 7 credits, not 8.
    expect(100 * (7 / 100)).toBeGreaterThan(7);
    expect(charge({ call: 100 }, [price("call", 7, 100, 700)])).toEqual({ credits: 7, costMicros: 700 });
    expect(charge({ input_token: 3000, output_token: 1500 }, tokenPrices)).toEqual({ credits: 6, costMicros: 3000 });
  });

  it("charges zero for nothing", () => {
    expect(charge({}, tokenPrices)).toEqual({ credits: 0, costMicros: 0 });
  });
});

describe("tokenUnits", () => {
  it("keeps cached and reasoning counts only when reported", () => {
    expect(tokenUnits({ inputTokens: 10, outputTokens: 5 })).toEqual({ input_token: 10, output_token: 5 });
    expect(tokenUnits({ inputTokens: 10, outputTokens: 5, cachedInputTokens: 4, reasoningTokens: 2 })).toEqual({
      input_token: 10, output_token: 5, cached_input_token: 4, reasoning_token: 2,
    });
  });
});

describe("worstCase", () => {
  it("text: input bytes at the input rate plus max output at the output rate, maximised over the route", () => {
    const cheap = cand("cheap", [price("input_token", 1000, M), price("output_token", 2000, M)]);
    const dear = cand("dear", [price("input_token", 3000, M), price("output_token", 15_000, M)]);
    // dear: 10,000 x 3000/1M + 2,000 x 15,000/1M = 30 + 30 = 60; cheap: 10 + 4 = 14.
    expect(worstCase([cheap, dear], { modality: "text", inputBytes: 10_000, maxOutputTokens: 2000 })).toBe(60);
    expect(worstCase([cheap], { modality: "text", inputBytes: 10_000, maxOutputTokens: 2000 })).toBe(14);
  });

  it("text: never reserves cached input at the cheaper cached rate", () => {
    expect(worstCase([cand("d", tokenPrices)], { modality: "text", inputBytes: 10_000, maxOutputTokens: 0 })).toBe(10);
  });

  it("text: caps max output at the model's max_output", () => {
    const d = cand("d", [price("input_token", 0, M), price("output_token", 2000, M)], 1000);
    expect(worstCase([d], { modality: "text", inputBytes: 0, maxOutputTokens: 50_000 })).toBe(2);
    const uncapped = cand("u", [price("input_token", 0, M), price("output_token", 2000, M)], null);
    expect(worstCase([uncapped], { modality: "text", inputBytes: 0, maxOutputTokens: 50_000 })).toBe(100);
  });

  it("text: bounds the output by the higher of the output and reasoning rates", () => {
    // Reasoning 8000/1M above output 2000/1M: 1,000 output tokens could all be reasoning = 8.
    expect(worstCase([cand("d", tokenPrices)], { modality: "text", inputBytes: 0, maxOutputTokens: 1000 })).toBe(8);
    const cheapReasoning = cand("r", [price("input_token", 0, M), price("output_token", 2000, M), price("reasoning_token", 500, M)]);
    expect(worstCase([cheapReasoning], { modality: "text", inputBytes: 0, maxOutputTokens: 1000 })).toBe(2);
  });

  it("images: n x the price of the variant; video: seconds x the price at the resolution", () => {
    const img = cand("img", [price("image", 5), price("image", 9, 1, 0, "1024x1024/hd")], null);
    expect(worstCase([img], { modality: "image", images: 3, variant: "1024x1024/hd" })).toBe(27);
    expect(worstCase([img], { modality: "image", images: 3, variant: "512x512" })).toBe(15);
    const vid = cand("vid", [price("video_second", 3), price("video_second", 7, 1, 0, "1080p")], null);
    const other = cand("vid2", [price("video_second", 4)], null);
    expect(worstCase([vid, other], { modality: "video", seconds: 5, variant: "1080p" })).toBe(35);
    expect(worstCase([vid, other], { modality: "video", seconds: 5, variant: "720p" })).toBe(20);
  });

  it("moderation: one call; audio: characters", () => {
    expect(worstCase([cand("m", [price("call", 2)], null)], { modality: "moderation" })).toBe(2);
    expect(worstCase([cand("a", [price("character", 3000, M)], null)], { modality: "audio", characters: 2000 })).toBeCloseTo(6, 10);
  });

  it("is never below what any deployment of the route charges for usage within the demand", () => {
    const route = [
      cand("a", tokenPrices),
      cand("b", [price("input_token", 1500, M), price("output_token", 6000, M)]),
    ];
    const demand = { modality: "text" as const, inputBytes: 4000, maxOutputTokens: 3000 };
    const worst = worstCase(route, demand);
    for (const c of route) {
      for (const usage of [
        { input_token: 4000, output_token: 3000 },
        { input_token: 4000, cached_input_token: 4000, output_token: 3000, reasoning_token: 3000 },
        { input_token: 4000, output_token: 3000, reasoning_token: 1000 },
      ]) {
        expect(charge(usage, c.prices).credits).toBeLessThanOrEqual(Math.ceil(worst - 1e-9));
      }
    }
  });
});
