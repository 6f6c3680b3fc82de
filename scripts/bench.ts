// npm run bench: every benchmark in bench/, each on a throwaway database, printing ratios
// against a baseline measured in the same run. Exits non-zero if a target is missed.
import { benchDatabase } from "../bench/lib/database.ts";
import { run as rlsList } from "../bench/rls-list.bench.ts";

const benches = [{ name: "rls-list", run: rlsList }];
const only = process.argv[2];
const results = [];
for (const b of benches.filter((x) => !only || x.name === only)) {
  const db = await benchDatabase();
  try {
    results.push(await b.run(db.url));
  } finally {
    await db.stop();
  }
}
console.log("\nSummary");
for (const r of results) console.log(`  ${r.name.padEnd(12)} ratio ${r.ratio.toFixed(3)} (target ${r.target})  ${r.met ? "met" : "MISSED"}`);
process.exit(results.every((r) => r.met) ? 0 : 1);
