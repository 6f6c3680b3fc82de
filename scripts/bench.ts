// npm run bench: every benchmark in bench/, each on a throwaway database, printing ratios
// against a baseline measured in the same run. Exits non-zero if a target is missed.
import { benchDatabase } from "../bench/lib/database.ts";
import { run as ai } from "../bench/ai.bench.ts";
import { run as content } from "../bench/content.bench.ts";
import { run as credits } from "../bench/credits.bench.ts";
import { run as realtime } from "../bench/realtime.bench.ts";
import { run as rlsList } from "../bench/rls-list.bench.ts";
import { run as video } from "../bench/video.bench.ts";
import { run as webhooks } from "../bench/webhooks.bench.ts";

const benches = [
  { name: "rls-list", run: rlsList },
  // Commit-heavy on both sides: measured with fsync on, as a real database runs.
  { name: "credits", run: credits, durable: true },
  // Three commits per delivery against none in the bare loop: also measured with fsync on.
  { name: "webhooks", run: webhooks, durable: true },
  // Both sides commit per job (admission vs a bare send): measured with fsync on.
  { name: "ai", run: ai, durable: true },
  // Delivery, not commit durability, is measured: one small commit per message against none.
  { name: "realtime", run: realtime },
  // Read latency through RLS against the service role (no commits on either side measured).
  { name: "content", run: content },
  // Both sides commit per job (a video's validation, admission and runs vs a bare video job): fsync on.
  { name: "video", run: video, durable: true },
];
const only = process.argv[2];
if (only && !benches.some((b) => b.name === only)) {
  console.error(`unknown bench "${only}"; known: ${benches.map((b) => b.name).join(", ")}`);
  process.exit(2);
}
// A bench can leave a pooled connection open (a stand-in's pool, a client mid-teardown). Stopping
// its throwaway database then terminates it (57P01), and a pool with no error listener turns that
// into an uncaught exception that would end the whole run. Between a database's stop and the next
// bench's start that is expected: say so and carry on. Anything else still ends the run.
let stopping = false;
process.on("uncaughtException", (err) => {
  if (stopping && (err as { code?: string }).code === "57P01") {
    console.error("  (a connection the bench left open was closed with its database)");
    return;
  }
  console.error(err);
  process.exit(1);
});
const results: { name: string; ratio: number; target: number; met: boolean; higherIsBetter?: boolean; note?: string; seconds: number }[] = [];
const started = performance.now();
for (const b of benches.filter((x) => !only || x.name === only)) {
  const t0 = performance.now();
  const db = await benchDatabase({ durable: "durable" in b && b.durable });
  stopping = false;
  let result: Awaited<ReturnType<(typeof b)["run"]>> & { note?: string };
  try {
    result = await b.run(db.url);
  } finally {
    stopping = true;
    await db.stop();
  }
  const seconds = (performance.now() - t0) / 1000;
  results.push({ ...result, seconds });
  console.log(`  (${b.name}: ${seconds.toFixed(1)} s, database start and migrations included)`);
}
console.log("\nSummary");
for (const r of results) {
  const target = `${r.higherIsBetter ? ">=" : "<="} ${r.target}`;
  const note = r.note ? `, ${r.note}` : "";
  console.log(`  ${r.name.padEnd(12)} ratio ${r.ratio.toFixed(3)} (target ${target}${note})  ${r.met ? "met" : "MISSED"}  ${r.seconds.toFixed(1)} s`);
}
console.log(`  total ${((performance.now() - started) / 1000).toFixed(1)} s`);
process.exit(results.every((r) => r.met) ? 0 : 1);
