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
// dispatched. After a warm-up of 500 events a side (database pools, plans, JIT, and fetch's
// keep-alive pool, which both sides share), 3 rounds alternate which side goes first
// (bench/lib/rounds.ts); the ratio reported is the median. Each side's work is checked every
// round: every message answered 2xx and received by the sink exactly once, none missing.
// The bare loop posts its own events' envelopes (emitted like the pipeline's, with the same
// payload sizes, and marked dispatched so the pipeline never sees them), each round under fresh
// message ids, so the sink's count tells each side's deliveries apart.
import http from "node:http";
import type { AddressInfo } from "node:net";
import pg from "pg";
import { createDb } from "../functions/_shared/db/client.ts";
import { envelope, type OutboxEvent } from "../functions/_shared/events/catalog.ts";
import { DISPATCH_BATCH, dispatchBatch, OUTBOX_PARTITIONS } from "../functions/_shared/events/dispatcher.ts";
import { JOBS } from "../functions/_shared/jobs/catalog.ts";
import { createWebhooksConsumer } from "../functions/_shared/webhooks/consumer.ts";
import { limiter } from "../functions/_shared/limiter.ts";
import { type DeliveryDeps, deliverMessages } from "../functions/_shared/webhooks/delivery.ts";
import { webhookHeaders } from "../functions/_shared/webhooks/signature.ts";
import { alternatingRounds, type Round, roundLines } from "./lib/rounds.ts";
import { type BenchResult, scaleParam } from "./lib/verdict.ts";

const SCALE = {
  events: scaleParam("events a side per round", "BENCH_WEBHOOK_EVENTS", 2_000),
  rounds: scaleParam("rounds", "BENCH_WEBHOOK_ROUNDS", 3),
  concurrency: scaleParam("POSTs in flight", "BENCH_WEBHOOK_CONCURRENCY", 8),
  /** Batches in flight at once: the worker's webhook.deliver setting. */
  loops: scaleParam("delivery batches at once", "BENCH_WEBHOOK_LOOPS", JOBS["webhook.deliver"].workers),
};
const EVENTS = SCALE.events.value;
const CONCURRENCY = SCALE.concurrency.value;
const LOOPS = SCALE.loops.value;
const WARM_UP = 500;
/** Messages per claim: the worker's webhook.deliver setting. */
const BATCH = JOBS["webhook.deliver"].batch;
const ORG = "0b000000-0000-4000-8000-000000000001";
const TARGET = 0.5;

async function pool<T>(items: T[], n: number, fn: (item: T) => Promise<unknown>) {
  let next = 0;
  await Promise.all(Array.from({ length: n }, async () => {
    while (next < items.length) await fn(items[next++]);
  }));
}

export async function run(url: string): Promise<BenchResult> {
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

  /** What the sink got for these message ids: each exactly once, or duplicated, or missing. */
  const tally = (ids: string[]) => {
    let received = 0;
    let duplicates = 0;
    let missing = 0;
    for (const id of ids) {
      const n = seen.get(id) ?? 0;
      if (n === 0) missing++;
      else received++, duplicates += n - 1;
    }
    return { received, duplicates, missing };
  };

  /** Outbox (already written) -> dispatched -> every message delivered and recorded. */
  async function pipeline(n: number) {
    const ids: string[] = [];
    let dispatching = true;
    let delivered = 0;
    let ok = 0;
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
        for (const [, o] of out) {
          delivered++;
          if (o.status === "succeeded") ok++;
        }
      }
    };
    await Promise.all([dispatcher, ...Array.from({ length: LOOPS }, deliverer)]);
    const seconds = (performance.now() - t0) / 1000;
    return { rate: n / seconds, dispatchSeconds, work: { messages: ids.length, attempted: delivered, ok, ...tally(ids) } };
  }

  // The bare loop's own events: emitted as the pipeline's are, then marked dispatched.
  await emit(Math.max(EVENTS, WARM_UP));
  const { rows: bareEvents } = await c.query<OutboxEvent>(
    `update notify.events set dispatched_at = now() where org_id = $1 and dispatched_at is null returning *`, [ORG]);
  bareEvents.sort((a, b) => (String(a.id) < String(b.id) ? -1 : 1));

  /** n signed envelopes, POSTed from a bare loop, CONCURRENCY at a time, under fresh message ids. */
  async function baseline(n: number) {
    const batch = bareEvents.slice(0, n).map((e) => ({ e, messageId: crypto.randomUUID() }));
    let ok = 0;
    const t0 = performance.now();
    await pool(batch, CONCURRENCY, async ({ e, messageId }) => {
      const body = JSON.stringify(envelope(e));
      const res = await fetch(sinkUrl, { method: "POST", headers: await webhookHeaders([sec.secret], messageId, new Date(), body), body, redirect: "manual" });
      await res.arrayBuffer();
      if (res.status >= 200 && res.status < 300) ok++;
    });
    const seconds = (performance.now() - t0) / 1000;
    return { rate: n / seconds, work: { messages: batch.length, attempted: batch.length, ok, ...tally(batch.map((b) => b.messageId)) } };
  }

  const size = (r: Round) => (r.warmUp ? WARM_UP : EVENTS);
  const r = await alternatingRounds({
    rounds: SCALE.rounds.value,
    pipeline: async (round) => {
      await emit(size(round));
      return await pipeline(size(round));
    },
    baseline: (round) => baseline(size(round)),
    expect: (round) => ({ messages: size(round), attempted: size(round), ok: size(round), received: size(round), duplicates: 0, missing: 0 }),
    compare: (p, b) => ({ ratio: p.rate / b.rate }),
  });

  await dbPool.end();
  await c.end();
  sink.closeAllConnections();
  await new Promise((r) => sink.close(r));

  console.log(`\nWebhooks: ${EVENTS} events a side per round, ${SCALE.rounds.value} alternating rounds after a warm-up of ${WARM_UP} a side, local sink`);
  console.log(`  concurrency budget: ${CONCURRENCY} POSTs in flight on both sides; pipeline claims ${BATCH} per batch, ${LOOPS} batches at once`);
  const effects = (w: Record<string, number | string>) => `${w.ok} 2xx, ${w.received} received, ${w.duplicates} duplicated, ${w.missing} missing`;
  for (const l of roundLines(r, (x) => `pipeline ${x.pipeline.rate.toFixed(0)} deliveries/s (dispatch + fan-out done after ${x.pipeline.dispatchSeconds.toFixed(2)} s; ` +
    `${effects(x.pipeline.work)}), bare loop ${x.baseline.rate.toFixed(0)} posts/s (${effects(x.baseline.work)})`)) console.log(l);
  return {
    name: "webhooks",
    scale: Object.values(SCALE),
    gates: [{ label: "median ratio", value: r.medians.ratio, op: ">=", target: TARGET }],
    failures: r.unequal,
  };
}
