// What a bench run may conclude, and how npm run bench exits.
//
//   * Each bench declares its documented scale: the values the README's bench table states
//     (orgs, rows, requests, rounds...). Environment overrides (BENCH_ORGS, BENCH_ITERATIONS...)
//     change them for a quicker look; a run at any other scale prints its numbers but gives
//     "no verdict": it is neither met nor missed.
//   * A bench whose sides did unequal work, or whose invariants broke (a failure), reports an
//     error and no verdict, whatever its ratios.
//   * Otherwise every gate (a median ratio, a p95...) must hold: met, or MISSED.
// Exit codes of npm run bench: 0 when every bench met its targets or gave no verdict (reduced
// scale); 1 when a bench missed a target at its documented scale, failed a check (unequal work,
// an invariant) or threw; 2 for an unknown bench name (nothing runs).

export interface ScaleParam {
  /** What it counts, for the printout ("orgs", "requests a side"). */
  name: string;
  /** The environment variable that overrides it. */
  env: string;
  value: number;
  documented: number;
}

/** A scale parameter: the documented value, or a positive integer from `env[variable]`. */
export function scaleParam(name: string, variable: string, documented: number, env: Record<string, string | undefined> = process.env): ScaleParam {
  const raw = env[variable];
  const value = raw === undefined || raw === "" ? documented : Number(raw);
  if (!Number.isInteger(value) || value < 1) throw new Error(`${variable} must be a positive integer, not "${raw}"`);
  return { name, env: variable, value, documented };
}

/** The parameters not at their documented value; none means the run is at the documented scale. */
export function offScale(scale: ScaleParam[]): ScaleParam[] {
  return scale.filter((p) => p.value !== p.documented);
}

export interface Gate {
  label: string;
  value: number;
  op: ">=" | "<=" | "<";
  target: number;
}

export function gateMet(g: Gate): boolean {
  if (!Number.isFinite(g.value)) return false;
  return g.op === ">=" ? g.value >= g.target : g.op === "<=" ? g.value <= g.target : g.value < g.target;
}

export interface BenchResult {
  name: string;
  scale: ScaleParam[];
  gates: Gate[];
  /** Failed checks: unequal work between the sides, broken invariants, a bench that threw. */
  failures: string[];
}

export type Status = "met" | "missed" | "no verdict" | "error";

export function verdict(r: BenchResult): { status: Status; text: string } {
  if (r.failures.length) {
    const more = r.failures.length > 3 ? ` (and ${r.failures.length - 3} more)` : "";
    return { status: "error", text: `ERROR, no verdict: ${r.failures.slice(0, 3).join("; ")}${more}` };
  }
  if (r.gates.length === 0) return { status: "error", text: "ERROR, no verdict: the bench reported no gate" };
  const off = offScale(r.scale);
  if (off.length) {
    const reduced = off.some((p) => p.value < p.documented);
    const what = off.map((p) => `${p.env}=${p.value}, documented ${p.documented}`).join("; ");
    return { status: "no verdict", text: `no verdict (${reduced ? "reduced scale" : "not the documented scale"}: ${what})` };
  }
  const missed = r.gates.filter((g) => !gateMet(g));
  return missed.length
    ? { status: "missed", text: `MISSED: ${missed.map((g) => g.label).join(", ")}` }
    : { status: "met", text: "met" };
}

export function exitCode(statuses: Status[]): 0 | 1 {
  return statuses.some((s) => s === "missed" || s === "error") ? 1 : 0;
}

/** A gate's value as printed: three decimals for ratios, one for milliseconds. */
export const gateValue = (g: Gate) => (Math.abs(g.value) >= 10 ? g.value.toFixed(1) : g.value.toFixed(3));

/** A gate as printed: `p50 ratio 1.097 (target <= 1.15): within target`. The bench's verdict is verdict()'s. */
export function gateLine(g: Gate): string {
  return `${g.label} ${gateValue(g)} (target ${g.op} ${g.target}): ${gateMet(g) ? "within" : "outside"} target`;
}

/** Resolves the bench named on the command line; undefined when there is no such bench. */
export function selectBenches<T extends { name: string }>(benches: T[], only: string | undefined): T[] | undefined {
  if (!only) return benches;
  const b = benches.filter((x) => x.name === only);
  return b.length ? b : undefined;
}
