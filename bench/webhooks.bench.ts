// Benchmark: events -> signed webhook deliveries per second through our own code in-process
// (outbox dispatch with the webhooks consumer's batched fan-out; batched claims, signed POSTs
// with the SSRF check, batched result records), against a bare loop that signs and POSTs the
// same payloads to the same local sink, in the same run. Higher is better.
// Target: pipeline / baseline >= 0.5, with no delivery duplicated or missing.
//
// The concurrency budget is the same on both sides: the bare loop keeps CONCURRENCY POSTs in
// flight, and the pipeline never has more than CONCURRENCY POSTs in flight either (one limiter
// shared by its delivery loops). The pipeline's database work (dispatch, claims, records) runs
// beside its POSTs, as in the worker, where a dispatched batch's jobs start while the next is
// dispatched. Rounds alternate which side goes first; the ratio reported is the median.
import http from "node:http";
import type { AddressInfo } from "node:net";
import pg from "pg";
import { createDb } from "../functions/_shared/db/client.ts";
import { envelope, type OutboxEvent } from "../functions/_shared/events/catalog.ts";
import { DISPATCH_BATCH, dispatchBatch, OUTBOX_PARTITIONS } from "../functions/_shared/events/dispatcher.ts";
import { JOBS } from "../functions/_shared/jobs/catalog.ts";
import { createWebhooksConsumer } from "../functions/_shared/webhooks/consumer.ts";
import { type DeliveryDeps, deliverMessages, limiter } from "../functions/_shared/webhooks/delivery.ts";
import { webhookHeaders } from "../functions/_shared/webhooks/signature.ts";

const EVENTS = Number(process.env.BENCH_WEBHOOK_EVENTS ?? 2_000);
const CONCURRENCY = Number(process.env.BENCH_WEBHOOK_CONCURRENCY ?? 8);
const ROUNDS = Number(process.env.BENCH_WEBHOOK_ROUNDS ?? 3);
const WARM_UP = 500;
/** Messages per claim, and batches in flight at once: the worker's webhook.deliver settings. */
const BATCH = JOBS["webhook.deliver"].batch;
const LOOPS = Number(process.env.BENCH_WEBHOOK_LOOPS ?? JOBS["webhook.deliver"].workers);
const ORG = "0b000000-0000-4000-8000-000000000001";
const TARGET = 0.5;

async function pool<T>(items: T[], n: number, fn: (item: T) => Promise<unknown>) {
  let next = 0;
  await Promise.all(Array.from({ length: n }, async () => {
    while (next < items.length) await fn(items[next++]);
  }));
}

const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)];

export async function run(url: string) {
  // The sink counts deliveries per webhook-id, so duplicates and losses show.
  const seen = new Map<string, number>();
  const sink = http.createServer((req, res) => {
    const id = String(req.headers["webhook-id"]);
    req.resume();
    req.on("end", () => {
      seen.set(id, (seen.get(id) ?? 0) + 1);
      res.writeHead(204).end();
    });
  });
  await new Promise<void>((r) => sink.listen(0, "127.0.0.1", r));
  const sinkUrl = `http://127.0.0.1:${(sink.address() as AddressInfo).port}/hooks`;

  const c = new pg.Client({ connectionString: url });
  c.on("error", () => {}); // the database stops under it if the run fails; the run's error is the one to see
  await c.connect();
  await c.query(`insert into public.orgs (id, slug, name, kind) values ($1, 'bench-hooks', 'Bench hooks', 'team')`, [ORG]);
  await c.query(`update notify.events set dispatched_at = now() where dispatched_at is null`);
  const { rows: [ep] } = await c.query(
    `insert into notify.webhook_endpoints (org_id, url) values ($1, $2) returning id`, [ORG, sinkUrl]);
  const { rows: [sec] } = await c.query(
    `insert into notify.webhook_secrets (org_id, endpoint_id, secret) values ($1, $2, private.new_webhook_secret()) returning secret`,
    [ORG, ep.id]);
  const emit = (n: number) => c.query(
    `select private.emit_event($1, 'webhook.test', 'webhook_endpoint', $2, jsonb_build_object('endpoint_id', $2::text, 'message', 'bench ' || g))
     from generate_series(1, $3) g`, [ORG, ep.id, n]);

  const { db, pool: dbPool } = createDb(url, LOOPS + 3);
  // Messages become claimable when their dispatch batch commits, as jobs become visible then:
  // each partition's dispatcher stages its own batch's messages until its transaction is over.
  const ready: string[] = [];
  const deps: DeliveryDeps = { db, policy: { allowLoopback: true }, schedule: async () => {} };
  const posts = limiter(CONCURRENCY);

  /** Outbox (already written) -> dispatched -> every message delivered and recorded. */
  async function pipeline(n: number): Promise<{ seconds: number; dispatchSeconds: number; ids: string[] }> {
    const ids: string[] = [];
    let dispatching = true;
    let delivered = 0;
    const t0 = performance.now();
    let dispatchSeconds = 0;
    const dispatcher = (async () => {
      try {
        await Promise.all(Array.from({ length: OUTBOX_PARTITIONS }, async (_, partition) => {
          let staged: string[] = [];
          const consumer = createWebhooksConsumer(async (_tx, id) => void staged.push(id));
          for (;;) {
            const r = await dispatchBatch(db, [consumer], { partition });
            ready.push(...staged);
            ids.push(...staged);
            staged = [];
            if (r.events < DISPATCH_BATCH) break;
          }
        }));
      } finally {
        dispatchSeconds = (performance.now() - t0) / 1000;
        dispatching = false;
      }
    })();
    const deliverer = async () => {
      while (dispatching || ready.length) {
        const batch = ready.splice(0, BATCH);
        if (batch.length === 0) {
          await new Promise((r) => setTimeout(r, 1));
          continue;
        }
        const out = await deliverMessages(deps, batch, { concurrency: BATCH, limit: posts });
        for (const [id, o] of out) {
          if (o.status !== "succeeded") throw new Error(`delivery ${id}: ${JSON.stringify(o)}`);
          delivered++;
        }
      }
    };
    await Promise.all([dispatcher, ...Array.from({ length: LOOPS }, deliverer)]);
    const seconds = (performance.now() - t0) / 1000;
    if (ids.length !== n || delivered !== n) throw new Error(`expected ${n} deliveries, got ${ids.length} messages / ${delivered} delivered`);
    return { seconds, dispatchSeconds, ids };
  }

  /** The same signed envelopes, POSTed from a bare loop. */
  async function baseline(ids: string[]): Promise<number> {
    const { rows: events } = await c.query<OutboxEvent & { message_id: string }>(
      `select m.id as message_id, ev.* from notify.webhook_messages m join notify.events ev on ev.id = m.event_id where m.id = any($1)`, [ids]);
    const t0 = performance.now();
    await pool(events, CONCURRENCY, async (e) => {
      const body = JSON.stringify(envelope(e));
      const res = await fetch(sinkUrl, { method: "POST", headers: await webhookHeaders([sec.secret], e.message_id, new Date(), body), body, redirect: "manual" });
      await res.arrayBuffer();
    });
    return (performance.now() - t0) / 1000;
  }

  const tally = (ids: string[]) => {
    let duplicates = 0;
    let missing = 0;
    for (const id of ids) {
      const n = seen.get(id) ?? 0;
      if (n === 0) missing++;
      else duplicates += n - 1;
    }
    return { duplicates, missing };
  };

  // Warm-up both paths (connections, JIT, keep-alive).
  await emit(WARM_UP);
  const warm = await pipeline(WARM_UP);
  await baseline(warm.ids);

  const rounds: { pipeline: number; baseline: number; dispatch: number; ratio: number; duplicates: number; missing: number }[] = [];
  let previous: string[] = [];
  for (let i = 0; i < ROUNDS; i++) {
    await emit(EVENTS);
    let b = 0;
    // Odd rounds measure the bare loop first, on the previous round's envelopes (same sizes).
    if (i % 2 === 1) b = await baseline(previous);
    seen.clear();
    const p = await pipeline(EVENTS);
    const effects = tally(p.ids);
    if (i % 2 === 0) b = await baseline(p.ids);
    previous = p.ids;
    const pipelineRate = EVENTS / p.seconds;
    const baselineRate = EVENTS / b;
    rounds.push({ pipeline: pipelineRate, baseline: baselineRate, dispatch: p.dispatchSeconds, ratio: pipelineRate / baselineRate, ...effects });
  }

  await dbPool.end();
  await c.end();
  sink.closeAllConnections();
  await new Promise((r) => sink.close(r));

  const ratio = median(rounds.map((r) => r.ratio));
  const duplicates = rounds.reduce((s, r) => s + r.duplicates, 0);
  const missing = rounds.reduce((s, r) => s + r.missing, 0);
  const met = ratio >= TARGET && duplicates === 0 && missing === 0;
  console.log(`\nWebhooks: ${EVENTS} events per round, ${ROUNDS} rounds (alternating which side goes first), local sink`);
  console.log(`  concurrency budget: ${CONCURRENCY} POSTs in flight on both sides; pipeline claims ${BATCH} per batch, ${LOOPS} batches at once`);
  for (const [i, r] of rounds.entries()) {
    console.log(`  round ${i + 1}: pipeline ${r.pipeline.toFixed(0)} deliveries/s (dispatch + fan-out done after ${r.dispatch.toFixed(2)} s), ` +
      `bare loop ${r.baseline.toFixed(0)} posts/s, ratio ${r.ratio.toFixed(3)}, duplicates ${r.duplicates}, missing ${r.missing}`);
  }
  console.log(`  median ratio ${ratio.toFixed(3)}  duplicates ${duplicates}  missing ${missing}  (target >= ${TARGET}, none duplicated or missing: ${met ? "met" : "MISSED"})`);
  return { name: "webhooks", ratio, target: TARGET, met, higherIsBetter: true };
}
