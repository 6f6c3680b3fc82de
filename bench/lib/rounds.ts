// Alternating rounds: the one way every bench compares its pipeline with its baseline.
//
//   * a warm-up round first: each side does its warm-up work (the same function, told it is the
//     warm-up) before anything is timed, so both sides' pools, plans and JIT are warm alike;
//   * then `rounds` rounds, each running both sides, alternating which goes first (round 1: the
//     pipeline first, round 2: the baseline first, ...), so neither side always meets the other's
//     leftovers (checkpoints, WAL flushes, autovacuum, a busy neighbour on the machine);
//   * every round, warm-up included, both sides must have done the same work: each side reports
//     what it did (counts, status codes, rows) and that must equal the expected work, or the
//     other side's when no expectation is given. A mismatch is recorded, and a bench that has one
//     reports an error and no verdict (bench/lib/verdict.ts);
//   * each round's comparisons (ratios, differences) are computed from the two sides, and the
//     result is the median over the rounds of each.
import { isDeepStrictEqual } from "node:util";

export type SideName = "pipeline" | "baseline";
export type Work = Record<string, number | string>;

export interface Round {
  /** 0-based; -1 for the warm-up. */
  index: number;
  warmUp: boolean;
}

/** What a side reports back: its measurements, and `work`, what it did. */
export interface Measured {
  work: Work;
}

export interface RoundsOptions<P extends Measured, B extends Measured> {
  rounds: number;
  pipeline: (round: Round) => Promise<P>;
  baseline: (round: Round) => Promise<B>;
  /** The named comparisons of one round (e.g. `{ ratio: p.rate / b.rate }`); medians are taken of each. */
  compare: (pipeline: P, baseline: B) => Record<string, number>;
  /** The work both sides must have done in this round; without it, the two sides must agree. */
  expect?: (round: Round) => Work;
}

export interface RoundResult<P, B> {
  index: number;
  order: [SideName, SideName];
  pipeline: P;
  baseline: B;
  compared: Record<string, number>;
}

export interface RoundsResult<P, B> {
  warmUp: { pipeline: P; baseline: B };
  rounds: RoundResult<P, B>[];
  /** The median over the rounds of each comparison. */
  medians: Record<string, number>;
  /** One line per side and round whose work differed from what was expected. Empty when all was equal. */
  unequal: string[];
}

/** Which side runs first in round `index` (0-based): the pipeline in even rounds, the baseline in odd ones. */
export function roundOrder(index: number): [SideName, SideName] {
  return index % 2 === 0 ? ["pipeline", "baseline"] : ["baseline", "pipeline"];
}

/** The median (the mean of the two middle values for an even count); NaN for none. */
export function median(xs: number[]): number {
  if (xs.length === 0) return NaN;
  const s = [...xs].sort((a, b) => a - b);
  const m = Math.floor(s.length / 2);
  return s.length % 2 ? s[m] : (s[m - 1] + s[m]) / 2;
}

const show = (w: Work) => Object.entries(w).map(([k, v]) => `${k} ${v}`).join(", ");

/** Compares what each side did with what was expected; a line per side that differs. */
export function unequalWork(label: string, expected: Work, sides: Partial<Record<SideName, Work>>): string[] {
  const out: string[] = [];
  for (const [name, work] of Object.entries(sides) as [SideName, Work][]) {
    if (!isDeepStrictEqual(work, expected)) out.push(`${label}: the ${name} did ${show(work)}; expected ${show(expected)}`);
  }
  return out;
}

export async function alternatingRounds<P extends Measured, B extends Measured>(opts: RoundsOptions<P, B>): Promise<RoundsResult<P, B>> {
  if (!Number.isInteger(opts.rounds) || opts.rounds < 1) throw new Error(`rounds must be a positive integer, not ${opts.rounds}`);
  const unequal: string[] = [];
  const check = (round: Round, p: P, b: B) => {
    const label = round.warmUp ? "warm-up" : `round ${round.index + 1}`;
    const expected = opts.expect?.(round);
    if (expected) unequal.push(...unequalWork(label, expected, { pipeline: p.work, baseline: b.work }));
    else unequal.push(...unequalWork(label, p.work, { baseline: b.work }));
  };
  const both = async (round: Round, order: [SideName, SideName]) => {
    let p: P | undefined;
    let b: B | undefined;
    for (const side of order) {
      if (side === "pipeline") p = await opts.pipeline(round);
      else b = await opts.baseline(round);
    }
    check(round, p!, b!);
    return { pipeline: p!, baseline: b! };
  };

  const warmUp = await both({ index: -1, warmUp: true }, ["pipeline", "baseline"]);
  const rounds: RoundResult<P, B>[] = [];
  for (let index = 0; index < opts.rounds; index++) {
    const order = roundOrder(index);
    const { pipeline, baseline } = await both({ index, warmUp: false }, order);
    rounds.push({ index, order, pipeline, baseline, compared: opts.compare(pipeline, baseline) });
  }
  const medians: Record<string, number> = {};
  for (const key of Object.keys(rounds[0].compared)) medians[key] = median(rounds.map((r) => r.compared[key]));
  return { warmUp, rounds, medians, unequal };
}

/** One line per round: which side went first, its comparisons, and what `detail` adds. */
export function roundLines<P, B>(r: RoundsResult<P, B>, detail?: (round: RoundResult<P, B>) => string): string[] {
  const fmt = (c: Record<string, number>) => Object.entries(c).map(([k, v]) => `${k} ${v.toFixed(3)}`).join(", ");
  return [
    ...r.rounds.map((x) => `  round ${x.index + 1} (${x.order[0]} first): ${detail ? `${detail(x)}; ` : ""}${fmt(x.compared)}`),
    `  median of ${r.rounds.length} rounds: ${fmt(r.medians)}`,
  ];
}
