// The bench runner's pure pieces, so that a runner that lies can fail a test: name resolution
// (an unknown name exits 2 and runs nothing), the rounds helper (warm-up on both sides, the
// alternation order, the median, the equal-work check), and the scale and verdict logic (no
// verdict at a reduced scale, no verdict and an error when the sides did unequal work). No
// database: nothing here starts a bench.
import { execFile } from "node:child_process";
import fs from "node:fs";
import path from "node:path";
import { promisify } from "node:util";
import { describe, expect, it } from "vitest";
import { alternatingRounds, median, roundOrder, type Round, unequalWork } from "../../bench/lib/rounds.ts";
import { type BenchResult, exitCode, gateMet, offScale, scaleParam, selectBenches, verdict } from "../../bench/lib/verdict.ts";

const ROOT = path.resolve(import.meta.dirname, "../..");

describe("npm run bench: names", () => {
  it("an unknown name exits 2, names the known benches, and runs nothing", async () => {
    const err = await promisify(execFile)("npx", ["tsx", "scripts/bench.ts", "nosuch"], { cwd: ROOT, env: { ...process.env, BENCH_VERBOSE: "" } })
      .then(() => undefined, (e: { code: number; stdout: string; stderr: string }) => e);
    expect(err, "the runner exited 0 for an unknown bench").toBeDefined();
    expect(err!.code).toBe(2);
    expect(err!.stderr).toContain(`unknown bench "nosuch"`);
    for (const name of ["rls-list", "credits", "webhooks", "ai", "realtime", "content", "video"]) expect(err!.stderr).toContain(name);
    expect(err!.stdout).not.toContain("Summary");
  }, 60_000);

  it("a name selects exactly that bench; none selects all; a typo or a prefix selects nothing", () => {
    const benches = [{ name: "rls-list" }, { name: "credits" }];
    expect(selectBenches(benches, "credits")).toEqual([{ name: "credits" }]);
    expect(selectBenches(benches, undefined)).toEqual(benches);
    expect(selectBenches(benches, "credit")).toBeUndefined();
    expect(selectBenches(benches, "CREDITS")).toBeUndefined();
  });
});

describe("the benches", () => {
  const files = fs.readdirSync(path.join(ROOT, "bench")).filter((f) => f.endsWith(".bench.ts")).sort();
  const source = (f: string) => fs.readFileSync(path.join(ROOT, "bench", f), "utf8");

  it("every bench in bench/ is one the runner knows, and the runner knows no other", () => {
    const runner = fs.readFileSync(path.join(ROOT, "scripts/bench.ts"), "utf8");
    const registered = [...runner.matchAll(/\{ name: "([^"]+)", run: /g)].map((m) => m[1]).sort();
    expect(files.length).toBeGreaterThanOrEqual(7);
    expect(registered).toEqual(files.map((f) => f.replace(/\.bench\.ts$/, "")));
  });

  it("every bench compares through the shared rounds helper, with at least 3 documented rounds, and no median of its own", () => {
    for (const f of files) {
      const s = source(f);
      expect(s, f).toContain("alternatingRounds(");
      const rounds = [...s.matchAll(/scaleParam\("rounds", "(BENCH_[A-Z_]+)", (\d+)\)/g)];
      expect(rounds, `${f} declares its rounds with scaleParam`).toHaveLength(1);
      expect(Number(rounds[0][2]), f).toBeGreaterThanOrEqual(3);
      expect(s, f).not.toMatch(/(const|function) median\b/);
      expect(s, `${f} reads a scale from the environment past scaleParam`).not.toMatch(/Number\(process\.env\.BENCH_(ORGS|ROWS_PER_ORG|ITERATIONS|[A-Z]+_ROUNDS)\b/);
    }
  });
});

describe("bench/lib/rounds.ts", () => {
  it("median: the middle value, the mean of the two middle ones for an even count, NaN for none", () => {
    expect(median([3, 1, 2])).toBe(2);
    expect(median([10, 1, 7, 2, 9])).toBe(7);
    expect(median([4, 1, 3, 2])).toBe(2.5);
    expect(median([5])).toBe(5);
    expect(median([])).toBeNaN();
    const xs = [3, 1, 2];
    median(xs);
    expect(xs, "median sorted its input in place").toEqual([3, 1, 2]);
  });

  it("roundOrder alternates which side goes first, the pipeline first in round 1", () => {
    expect([0, 1, 2, 3].map(roundOrder)).toEqual([
      ["pipeline", "baseline"], ["baseline", "pipeline"], ["pipeline", "baseline"], ["baseline", "pipeline"],
    ]);
  });

  it("runs a warm-up of both sides, then alternating rounds, and reports each round's comparison and their median", async () => {
    const calls: string[] = [];
    const side = (name: string, rate: (i: number) => number) => async (r: Round) => {
      calls.push(`${name}${r.warmUp ? ":warm" : r.index}`);
      return { rate: rate(r.index), work: { n: r.warmUp ? 5 : 10 } };
    };
    const pipelineRates = [50, 90, 60, 40, 80];
    const r = await alternatingRounds({
      rounds: 5,
      pipeline: side("p", (i) => pipelineRates[i]),
      baseline: side("b", () => 100),
      compare: (p, b) => ({ ratio: p.rate / b.rate, diff: p.rate - b.rate }),
      expect: (round) => ({ n: round.warmUp ? 5 : 10 }),
    });
    expect(calls).toEqual(["p:warm", "b:warm", "p0", "b0", "b1", "p1", "p2", "b2", "b3", "p3", "p4", "b4"]);
    expect(r.rounds.map((x) => x.compared.ratio)).toEqual([0.5, 0.9, 0.6, 0.4, 0.8]);
    expect(r.rounds.map((x) => x.order[0])).toEqual(["pipeline", "baseline", "pipeline", "baseline", "pipeline"]);
    expect(r.medians).toEqual({ ratio: 0.6, diff: -40 });
    expect(r.unequal).toEqual([]);
  });

  it("records unequal work: a side that did other than expected, in any round or the warm-up", async () => {
    const r = await alternatingRounds({
      rounds: 3,
      pipeline: async () => ({ work: { received: 10, ok: 10 } }),
      baseline: async (round) => ({ work: { received: round.index === 1 ? 9 : 10, ok: 10 } }),
      compare: () => ({ ratio: 1 }),
      expect: () => ({ received: 10, ok: 10 }),
    });
    expect(r.unequal).toEqual(["round 2: the baseline did received 9, ok 10; expected received 10, ok 10"]);

    // Without an expectation, the sides must agree with each other.
    const w = await alternatingRounds({
      rounds: 3,
      pipeline: async (round) => ({ work: { rows: round.warmUp ? 99 : 100 } }),
      baseline: async () => ({ work: { rows: 100 } }),
      compare: () => ({ ratio: 1 }),
    });
    expect(w.unequal).toEqual(["warm-up: the baseline did rows 100; expected rows 99"]);
  });

  it("unequalWork compares every key, extra and missing keys included", () => {
    expect(unequalWork("x", { a: 1 }, { pipeline: { a: 1 }, baseline: { a: 1 } })).toEqual([]);
    expect(unequalWork("x", { a: 1 }, { baseline: { a: 1, b: 2 } })).toHaveLength(1);
    expect(unequalWork("x", { a: 1, b: 2 }, { baseline: { a: 1 } })).toHaveLength(1);
    expect(unequalWork("x", { status: "204" }, { pipeline: { status: "500" } })).toHaveLength(1);
  });

  it("refuses no rounds", async () => {
    const side = async () => ({ work: {} });
    await expect(alternatingRounds({ rounds: 0, pipeline: side, baseline: side, compare: () => ({}) })).rejects.toThrow(/rounds/);
  });
});

describe("bench/lib/verdict.ts", () => {
  const at = (env: Record<string, string>) => [scaleParam("orgs", "BENCH_ORGS", 10_000, env), scaleParam("rounds", "BENCH_RLS_ROUNDS", 5, env)];
  const result = (over: Partial<BenchResult> = {}): BenchResult => ({
    name: "rls-list",
    scale: at({}),
    gates: [{ label: "p50", value: 1.1, op: "<=", target: 1.15 }, { label: "p95", value: 1.12, op: "<=", target: 1.15 }],
    failures: [],
    ...over,
  });

  it("scaleParam: the documented value, or a positive integer from the environment", () => {
    expect(scaleParam("orgs", "BENCH_ORGS", 10_000, {}).value).toBe(10_000);
    expect(scaleParam("orgs", "BENCH_ORGS", 10_000, { BENCH_ORGS: "" }).value).toBe(10_000);
    expect(scaleParam("orgs", "BENCH_ORGS", 10_000, { BENCH_ORGS: "100" }).value).toBe(100);
    for (const bad of ["0", "-5", "1.5", "many"]) expect(() => scaleParam("orgs", "BENCH_ORGS", 10_000, { BENCH_ORGS: bad })).toThrow(/BENCH_ORGS/);
    expect(offScale(at({}))).toEqual([]);
    expect(offScale(at({ BENCH_RLS_ROUNDS: "3" })).map((p) => p.env)).toEqual(["BENCH_RLS_ROUNDS"]);
  });

  it("gates: >=, <= and < as written; NaN holds no gate", () => {
    expect(gateMet({ label: "", value: 0.5, op: ">=", target: 0.5 })).toBe(true);
    expect(gateMet({ label: "", value: 0.49, op: ">=", target: 0.5 })).toBe(false);
    expect(gateMet({ label: "", value: 1.15, op: "<=", target: 1.15 })).toBe(true);
    expect(gateMet({ label: "", value: 1.16, op: "<=", target: 1.15 })).toBe(false);
    expect(gateMet({ label: "", value: 50, op: "<", target: 50 })).toBe(false);
    expect(gateMet({ label: "", value: 49.9, op: "<", target: 50 })).toBe(true);
    expect(gateMet({ label: "", value: NaN, op: "<=", target: 1 })).toBe(false);
    expect(gateMet({ label: "", value: NaN, op: ">=", target: 1 })).toBe(false);
  });

  it("met at the documented scale when every gate holds; MISSED when one does not", () => {
    expect(verdict(result()).status).toBe("met");
    const missed = verdict(result({ gates: [{ label: "p50", value: 1.1, op: "<=", target: 1.15 }, { label: "p95", value: 1.2, op: "<=", target: 1.15 }] }));
    expect(missed).toEqual({ status: "missed", text: "MISSED: p95" });
  });

  it("no verdict at a reduced scale, whether the gates hold or not", () => {
    for (const gates of [result().gates, [{ label: "p95", value: 9, op: "<=" as const, target: 1.15 }]]) {
      const v = verdict(result({ scale: at({ BENCH_ORGS: "100" }), gates }));
      expect(v.status).toBe("no verdict");
      expect(v.text).toContain("no verdict (reduced scale");
      expect(v.text).toContain("BENCH_ORGS=100, documented 10000");
    }
    expect(verdict(result({ scale: at({ BENCH_ORGS: "20000" }) })).status).toBe("no verdict");
  });

  it("unequal work or a broken invariant is an error and no verdict, at any scale", () => {
    for (const scale of [at({}), at({ BENCH_ORGS: "100" })]) {
      const v = verdict(result({ scale, failures: ["round 2: the baseline did received 9; expected received 10"] }));
      expect(v.status).toBe("error");
      expect(v.text).toContain("no verdict");
      expect(v.text).toContain("received 9");
    }
    expect(verdict(result({ gates: [] })).status).toBe("error");
    const many = verdict(result({ failures: ["a", "b", "c", "d", "e"] }));
    expect(many.text).toBe("ERROR, no verdict: a; b; c (and 2 more)");
  });

  it("exit code: 1 on a miss or an error, 0 when all met or gave no verdict", () => {
    expect(exitCode([])).toBe(0);
    expect(exitCode(["met", "no verdict"])).toBe(0);
    expect(exitCode(["met", "missed"])).toBe(1);
    expect(exitCode(["no verdict", "error"])).toBe(1);
  });
});
