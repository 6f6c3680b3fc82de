// Benchmark: events -> signed webhook deliveries per second through our own code in-process
// (outbox dispatch, the webhooks consumer, claim / SSRF check / POST / record per message),
// against a bare loop that signs and POSTs the same payloads to the same local sink, at the same
// concurrency, in the same run. Higher is better. Target: pipeline / baseline >= 0.5.
import http from "node:http";
import type { AddressInfo } from "node:net";
import pg from "pg";
import { createDb } from "../functions/_shared/db/client.ts";
import { envelope, type OutboxEvent } from "../functions/_shared/events/catalog.ts";
import { dispatchPending } from "../functions/_shared/events/dispatcher.ts";
import { createWebhooksConsumer } from "../functions/_shared/webhooks/consumer.ts";
import { deliverMessage } from "../functions/_shared/webhooks/delivery.ts";
import { webhookHeaders } from "../functions/_shared/webhooks/signature.ts";

const EVENTS = Number(process.env.BENCH_WEBHOOK_EVENTS ?? 2_000);
const CONCURRENCY = Number(process.env.BENCH_WEBHOOK_CONCURRENCY ?? 8);
const ORG = "0b000000-0000-4000-8000-000000000001";
const TARGET = 0.5;

async function pool<T>(items: T[], n: number, fn: (item: T) => Promise<unknown>) {
  let next = 0;
  await Promise.all(Array.from({ length: n }, async () => {
    while (next < items.length) await fn(items[next++]);
  }));
}

export async function run(url: string) {
  let received = 0;
  const sink = http.createServer((req, res) => {
    req.resume();
    req.on("end", () => {
      received++;
      res.writeHead(204).end();
    });
  });
  await new Promise<void>((r) => sink.listen(0, "127.0.0.1", r));
  const sinkUrl = `http://127.0.0.1:${(sink.address() as AddressInfo).port}/hooks`;

  const c = new pg.Client({ connectionString: url });
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

  const { db, pool: dbPool } = createDb(url, CONCURRENCY + 2);
  const queued: string[] = [];
  const consumer = createWebhooksConsumer(async (_tx, id) => void queued.push(id));
  const deps = { db, policy: { allowLoopback: true }, schedule: async () => {} };

  // Warm-up both paths (connections, JIT, keep-alive).
  await emit(50);
  await dispatchPending(db, [consumer]);
  await pool(queued.splice(0), CONCURRENCY, (id) => deliverMessage(deps, id));

  // Pipeline: events already in the outbox -> dispatched -> delivered.
  await emit(EVENTS);
  received = 0;
  let t0 = performance.now();
  await dispatchPending(db, [consumer], 600_000);
  const dispatchS = (performance.now() - t0) / 1000;
  const ids = queued.splice(0);
  await pool(ids, CONCURRENCY, async (id) => {
    const out = await deliverMessage(deps, id);
    if (out.status !== "succeeded") throw new Error(`delivery ${id}: ${JSON.stringify(out)}`);
  });
  const pipelineS = (performance.now() - t0) / 1000;
  if (ids.length !== EVENTS || received !== EVENTS) throw new Error(`expected ${EVENTS} deliveries, got ${ids.length} / ${received}`);

  // Baseline: the same signed envelopes, POSTed from a bare loop.
  const { rows: events } = await c.query<OutboxEvent>(
    `select m.id as message_id, ev.* from notify.webhook_messages m join notify.events ev on ev.id = m.event_id where m.id = any($1)`, [ids]);
  received = 0;
  t0 = performance.now();
  await pool(events as (OutboxEvent & { message_id: string })[], CONCURRENCY, async (e) => {
    const body = JSON.stringify(envelope(e));
    const res = await fetch(sinkUrl, { method: "POST", headers: await webhookHeaders([sec.secret], e.message_id, new Date(), body), body, redirect: "manual" });
    await res.arrayBuffer();
  });
  const baselineS = (performance.now() - t0) / 1000;

  await dbPool.end();
  await c.end();
  sink.closeAllConnections();
  await new Promise((r) => sink.close(r));

  const pipeline = EVENTS / pipelineS;
  const baseline = EVENTS / baselineS;
  const ratio = pipeline / baseline;
  console.log(`\nWebhooks: ${EVENTS} events, concurrency ${CONCURRENCY}, local sink`);
  console.log(`  outbox -> consumer -> signed delivery   ${pipeline.toFixed(0)} deliveries/s`);
  console.log(`    of which outbox dispatch + fan-out     ${dispatchS.toFixed(2)} s of ${pipelineS.toFixed(2)} s`);
  console.log(`  bare signed POST loop (baseline)        ${baseline.toFixed(0)} posts/s`);
  console.log(`  ratio ${ratio.toFixed(3)}  (target >= ${TARGET}: ${ratio >= TARGET ? "met" : "MISSED"})`);
  return { name: "webhooks", ratio, target: TARGET, met: ratio >= TARGET, higherIsBetter: true };
}
