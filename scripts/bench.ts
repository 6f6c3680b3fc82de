// npm run bench: every benchmark in bench/, each on a throwaway database, printing ratios
// against a baseline measured in the same run, in alternating rounds (bench/lib/rounds.ts).
// Exit codes (bench/lib/verdict.ts): 0 when every bench met its targets, or ran at a scale
// other than its documented one (no verdict); 1 when a bench missed a target at its documented
// scale, or failed a check (unequal work between the sides, a broken invariant) or threw;
// 2 for an unknown bench name.
import { benchDatabase } from "../bench/lib/database.ts";
import { type BenchResult, exitCode, gateLine, gateValue, selectBenches, type Status, verdict } from "../bench/lib/verdict.ts";
import { run as ai } from "../bench/ai.bench.ts";
import { run as content } from "../bench/content.bench.ts";
import { run as credits } from "../bench/credits.bench.ts";
import { run as deck } from "../bench/deck.bench.ts";
import { run as realtime } from "../bench/realtime.bench.ts";
import { run as rlsList } from "../bench/rls-list.bench.ts";
import { run as video } from "../bench/video.bench.ts";
import { run as webhooks } from "../bench/webhooks.bench.ts";

const benches: { name: string; run: (url: string) => Promise<BenchResult>; durable?: boolean }[] = [
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
  // Commits per card and image on the pipeline side, none on the baseline's: fsync on.
  { name: "deck", run: deck, durable: true },
];
const selected = selectBenches(benches, process.argv[2]);
if (!selected) {
  console.error(`unknown bench "${process.argv[2]}"; known: ${benches.map((b) => b.name).join(", ")}`);
  process.exit(2);
}
// A bench can leave a pooled connection open (a stand-in's pool, a client mid-teardown). Stopping
// its throwaway database then terminates it (57P01), and a pool with no error listener turns that
// into an uncaught exception that would end the whole run. Between a database's stop and the next
// bench's start that is expected: say so and carry on. Anything else still ends the run.
let stopping = false;
process.on("uncaughtException", (err) => {
  if (stopping && ((err as { code?: string }).code === "57P01" || err.message === "Connection terminated unexpectedly")) {
    console.error("  (a connection the bench left open was closed with its database)");
    return;
  }
  console.error(err);
  process.exit(1);
});
const results: { result: BenchResult; status: Status; text: string; seconds: number }[] = [];
const started = performance.now();
for (const b of selected) {
  const t0 = performance.now();
  // A bench that throws (a side timed out, an answer differed) is a failed check, not a crash of
  // the run: its error is printed before its database stops under whatever it left open.
  const failed = (err: unknown): BenchResult => {
    console.error(err);
    return { name: b.name, scale: [], gates: [], failures: [`threw: ${(err as Error).message}`] };
  };
  let result: BenchResult;
  try {
    const db = await benchDatabase({ durable: b.durable });
    stopping = false;
    try {
      result = await b.run(db.url);
    } catch (err) {
      result = failed(err);
    } finally {
      stopping = true;
      await db.stop();
    }
  } catch (err) {
    result = failed(err);
  }
  const seconds = (performance.now() - t0) / 1000;
  const v = verdict(result);
  results.push({ result, ...v, seconds });
  for (const g of result.gates) console.log(`  ${gateLine(g)}`);
  console.log(`  ${b.name}: ${v.text}`);
  console.log(`  (${b.name}: ${seconds.toFixed(1)} s, database start and migrations included)`);
}
console.log("\nSummary");
for (const r of results) {
  const gates = r.result.gates.map((g) => `${g.label} ${gateValue(g)} ${g.op} ${g.target}`).join(", ");
  console.log(`  ${r.result.name.padEnd(10)} ${r.text}${gates ? `  [${gates}]` : ""}  ${r.seconds.toFixed(1)} s`);
}
console.log(`  total ${((performance.now() - started) / 1000).toFixed(1)} s`);
process.exit(exitCode(results.map((r) => r.status)));
