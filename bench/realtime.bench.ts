// Benchmark: Broadcast from the database to 200 subscribers of one private org topic, through
// the Realtime stand-in: 2,000 messages written with realtime.send (one transaction each, from 4
// connections) -> logical replication -> authorization-aware fan-out -> kind-4 frames -> 200
// supabase-js clients (each its own RealtimeClient and WebSocket, vsn 2.0.0). Baseline in the
// same run: a bare `ws` server, no database, pushing the same kind-4 frames to 200 clients built
// the same way. After a warm-up of 100 messages a side, every round runs both sides (in
// alternating order, so drift on a shared machine hits both: bench/lib/rounds.ts); each side
// must deliver every message to every client; the ratio is the median of the per-round ratios
// of deliveries/s. Target: >= 0.5. Paced runs (one message every 10 ms) then measure latency
// without queueing: insert -> client for the pipeline (p95 target 50 ms), push -> client for
// the bare server, for comparison.
import http from "node:http";
import type { AddressInfo } from "node:net";
import { createClient, type RealtimeChannel, type SupabaseClient } from "@supabase/supabase-js";
import pg from "pg";
import WebSocket, { WebSocketServer } from "ws";
import { stackConfig } from "../scripts/lib/env.ts";
import { projectKeys, userToken } from "../scripts/lib/keys.ts";
import { createTokenVerifier } from "../scripts/platform/auth.ts";
import { createRealtime } from "../scripts/platform/realtime/index.ts";
import { encodeUserBroadcast, JSON_ENCODING } from "../scripts/platform/realtime/serializer.ts";
import { alternatingRounds, type Round, roundLines } from "./lib/rounds.ts";
import { ms, summarize } from "./lib/stats.ts";
import { type BenchResult, scaleParam } from "./lib/verdict.ts";

const SCALE = {
  clients: scaleParam("subscribers", "BENCH_RT_CLIENTS", 200),
  messages: scaleParam("messages a side per round", "BENCH_RT_MESSAGES", 2_000),
  rounds: scaleParam("rounds", "BENCH_RT_ROUNDS", 5),
};
const CLIENTS = SCALE.clients.value;
const MESSAGES = SCALE.messages.value;
const WARM_UP = 100;
const WRITERS = 4;
const PACED = 200;
const PACE_MS = 10;
const TARGET = 0.5;
const LATENCY_TARGET_MS = 50;

const ORG = "0c000000-0000-4000-8000-000000000001";
const USER = { id: "0c000000-0000-4000-8000-0000000000aa", email: "rt-bench@bench.test" };
const TOPIC = `org:${ORG}`;
const EVENT = "bench.event";

/** An outbox-sized envelope, stamped with the send time (same process, same clock). */
const envelope = (seq: number) => ({
  type: EVENT,
  org_id: ORG,
  actor: { kind: "user", id: USER.id },
  data: { seq, title: "Quarterly plan updated", note: "x".repeat(120) },
  t: performance.now(),
});

/** Counts deliveries across all clients and resolves once every client has every message. */
class Tally {
  count = 0;
  latencies: number[] = [];
  private done: (() => void) | undefined;
  private target = 0;

  expect(n: number): Promise<void> {
    this.count = 0;
    this.latencies = [];
    this.target = n;
    return new Promise((resolve) => (this.done = resolve));
  }

  hit = (m: { payload?: { t?: number } }) => {
    this.count++;
    if (typeof m.payload?.t === "number") this.latencies.push(performance.now() - m.payload.t);
    if (this.count === this.target) this.done?.();
  };
}

async function withTimeout<T>(p: Promise<T>, what: string, tally: Tally, timeoutMs = 120_000): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`${what}: timed out with ${tally.count} deliveries`)), timeoutMs);
  });
  try {
    return await Promise.race([p, timeout]);
  } finally {
    clearTimeout(timer);
  }
}

/** CLIENTS supabase-js clients, each subscribed to the org topic on its own socket. */
async function subscribers(url: string, anonKey: string, token: string, tally: Tally): Promise<SupabaseClient[]> {
  const clients: SupabaseClient[] = [];
  for (let i = 0; i < CLIENTS; i++) {
    const sb = createClient(url, anonKey, {
      auth: { persistSession: false, autoRefreshToken: false },
      realtime: { transport: WebSocket as never },
      accessToken: async () => token,
    });
    await sb.realtime.setAuth();
    clients.push(sb);
  }
  await Promise.all(
    clients.map(
      (sb) =>
        new Promise<void>((resolve, reject) => {
          const ch: RealtimeChannel = sb.channel(TOPIC, { config: { private: true } });
          let subscribed = false;
          ch.on("broadcast", { event: EVENT }, tally.hit).subscribe((status, err) => {
            if (status === "SUBSCRIBED") {
              subscribed = true;
              resolve();
            } else if (!subscribed) reject(new Error(`subscribe: ${status} ${err?.message ?? ""}`));
            else if (status !== "CLOSED") console.error(`a subscriber's channel went ${status}: ${err?.message ?? ""}`);
          });
        }),
    ),
  );
  return clients;
}

/** The bare baseline: just enough Phoenix for realtime-js to join, then pre-encoded frames. */
async function bareServer() {
  const joined = new Set<WebSocket>();
  const wss = new WebSocketServer({ host: "127.0.0.1", port: 0, perMessageDeflate: false });
  wss.on("connection", (ws) => {
    ws.on("message", (data: Buffer, isBinary: boolean) => {
      if (isBinary) return;
      const [joinRef, ref, topic, event] = JSON.parse(data.toString()) as [string | null, string | null, string, string];
      const reply = (response: unknown) => ws.send(JSON.stringify([joinRef, ref, topic, "phx_reply", { status: "ok", response }]));
      if (event === "phx_join") {
        reply({ postgres_changes: [] });
        joined.add(ws);
      } else if (event === "heartbeat" || event === "phx_leave") reply({});
    });
    ws.on("close", () => joined.delete(ws));
  });
  await new Promise<void>((r) => wss.once("listening", () => r()));
  return {
    url: `http://127.0.0.1:${(wss.address() as AddressInfo).port}`,
    /** The same payload and framing the stand-in sends for a realtime.send row. */
    async push(n: number, paceMs = 0) {
      for (let i = 0; i < n; i++) {
        const id = crypto.randomUUID();
        const body = Buffer.from(JSON.stringify({ ...envelope(i), id }));
        const frame = encodeUserBroadcast(`realtime:${TOPIC}`, EVENT, JSON.stringify({ id }), JSON_ENCODING, body)!;
        for (const ws of joined) ws.send(frame);
        // Let the clients (same process) read between messages, as they do between inserts.
        if (paceMs) await new Promise((r) => setTimeout(r, paceMs));
        else if (i % 20 === 19) await new Promise((r) => setImmediate(r));
      }
    },
    close: () => new Promise<void>((r) => wss.close(() => r())),
  };
}

async function seed(c: pg.Client) {
  await c.query(
    `insert into auth.users (id, aud, role, email, email_confirmed_at, raw_app_meta_data, raw_user_meta_data, created_at, updated_at)
     values ($1, 'authenticated', 'authenticated', $2, now(), '{}', '{}', now(), now())`,
    [USER.id, USER.email],
  );
  await c.query(`insert into public.orgs (id, slug, name, kind) values ($1, 'rt-bench', 'Realtime bench', 'team')`, [ORG]);
  await c.query(`insert into public.org_members (org_id, user_id, role) values ($1, $2, 'owner')`, [ORG, USER.id]);
}

/** MESSAGES inserts through realtime.send, one transaction each, from WRITERS connections. */
async function insert(pool: pg.Pool, n: number, paceMs = 0) {
  let next = 0;
  const writers = paceMs ? 1 : WRITERS;
  await Promise.all(
    Array.from({ length: writers }, async () => {
      while (next < n) {
        const seq = next++;
        await pool.query("select realtime.send($1::jsonb, $2, $3)", [JSON.stringify(envelope(seq)), EVENT, TOPIC]);
        if (paceMs) await new Promise((r) => setTimeout(r, paceMs));
      }
    }),
  );
}

export async function run(url: string): Promise<BenchResult> {
  const secret = stackConfig({}).jwtSecret;
  // The stand-in logs only its start and what goes wrong: worth seeing in a bench run.
  const log = (s: string, l: string) => console.error(`[${s}] ${l}`);
  const stops: (() => Promise<unknown>)[] = [];
  try {
    const admin = new pg.Client({ connectionString: url });
    await admin.connect();
    stops.push(() => admin.end());
    await seed(admin);
    const { anonKey } = await projectKeys(secret);
    const token = await userToken(secret, USER, { expiresIn: "2h" });

    const pool = new pg.Pool({ connectionString: url, max: 20 });
    stops.push(() => pool.end());
    const realtime = await createRealtime({
      pool,
      dbUrl: url,
      jwtSecret: secret,
      verifier: createTokenVerifier({ jwtSecret: secret }),
      dataDir: "",
      publicUrl: "",
      log,
    });
    stops.push(() => realtime.close());
    const gateway = http.createServer((req, res) => realtime.handleHttp(req, res));
    gateway.on("upgrade", (req, socket, head) => realtime.handleUpgrade(req, socket, head));
    await new Promise<void>((r) => gateway.listen(0, "127.0.0.1", r));
    stops.push(() => new Promise((r) => (gateway.closeAllConnections(), gateway.close(r))));
    const gatewayUrl = `http://127.0.0.1:${(gateway.address() as AddressInfo).port}`;
    const bare = await bareServer();
    stops.push(() => bare.close());
    const writerPool = new pg.Pool({ connectionString: url, max: WRITERS });
    stops.push(() => writerPool.end());

    const pipeTally = new Tally();
    const bareTally = new Tally();
    const clients: SupabaseClient[] = [];
    stops.push(() => Promise.all(clients.map((c) => c.removeAllChannels())));
    clients.push(...(await subscribers(gatewayUrl, anonKey, token, pipeTally)));
    clients.push(...(await subscribers(bare.url, anonKey, token, bareTally)));

    const pipelineRound = async (n: number) => {
      const all = pipeTally.expect(n * CLIENTS);
      const t0 = performance.now();
      await insert(writerPool, n);
      await withTimeout(all, "pipeline", pipeTally);
      return { perSecond: pipeTally.count / ((performance.now() - t0) / 1000), work: { deliveries: pipeTally.count }, p95: summarize(pipeTally.latencies).p95 };
    };
    const baselineRound = async (n: number) => {
      const all = bareTally.expect(n * CLIENTS);
      const t0 = performance.now();
      await bare.push(n);
      await withTimeout(all, "baseline", bareTally);
      return { perSecond: bareTally.count / ((performance.now() - t0) / 1000), work: { deliveries: bareTally.count } };
    };

    // The warm-up round warms JIT, socket buffers, plans and the replication stream on both sides.
    const size = (round: Round) => (round.warmUp ? WARM_UP : MESSAGES);
    const r = await alternatingRounds({
      rounds: SCALE.rounds.value,
      pipeline: (round) => pipelineRound(size(round)),
      baseline: (round) => baselineRound(size(round)),
      expect: (round) => ({ deliveries: size(round) * CLIENTS }),
      compare: (p, b) => ({ ratio: p.perSecond / b.perSecond }),
    });
    const paced = pipeTally.expect(PACED * CLIENTS);
    await insert(writerPool, PACED, PACE_MS);
    await withTimeout(paced, "paced", pipeTally);
    const latency = summarize(pipeTally.latencies);
    const barePaced = bareTally.expect(PACED * CLIENTS);
    await bare.push(PACED, PACE_MS);
    await withTimeout(barePaced, "bare paced", bareTally);
    const bareLatency = summarize(bareTally.latencies);

    console.log(`\nRealtime: ${MESSAGES} realtime.send rows a round -> ${CLIENTS} supabase-js subscribers of one private org topic, ${SCALE.rounds.value} alternating rounds`);
    for (const l of roundLines(r, (x) => `pipeline ${x.pipeline.perSecond.toFixed(0)} deliveries/s (p95 under load ${ms(x.pipeline.p95)}), bare ws ${x.baseline.perSecond.toFixed(0)} deliveries/s`)) console.log(l);
    console.log(`  each side delivered ${MESSAGES * CLIENTS} messages per round (checked)`);
    console.log(`  paced (1 insert / ${PACE_MS} ms): insert -> client p50 ${ms(latency.p50)}, p95 ${ms(latency.p95)}`);
    console.log(`  paced bare ws (1 push / ${PACE_MS} ms): push -> client p50 ${ms(bareLatency.p50)}, p95 ${ms(bareLatency.p95)}`);
    return {
      name: "realtime",
      scale: Object.values(SCALE),
      gates: [
        { label: "median ratio", value: r.medians.ratio, op: ">=", target: TARGET },
        { label: "paced p95 ms", value: latency.p95, op: "<", target: LATENCY_TARGET_MS },
      ],
      failures: r.unequal,
    };
  } finally {
    for (const stop of stops.reverse()) await stop().catch(() => {});
  }
}
