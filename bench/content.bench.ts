// Benchmark: the content engine.
//  1. List and search at 1,000,000 documents over 10,000 orgs: a member (owner of 25 orgs, with
//     documents shared from elsewhere, a tenth of the documents private) lists one org's newest
//     documents and searches it, through RLS, against the same queries as service_role with an
//     explicit org_id filter, in the same run. Each request is the PostgREST shape: one round
//     trip of begin, claims and role, query, commit. After a warm-up of 200 requests a side, 1,500
//     requests a side run in 5 alternating rounds of 300 (bench/lib/rounds.ts); every request of
//     both sides must return the same number of rows. Target: the median over the rounds of the p95
//     ratio <= 1.3, for the list and for the search.
//  2. Co-editing: 10 editors (supabase-js clients on the Realtime stand-in) push ~10 batches a
//     second each to one document; update RPC start -> delivery at every other editor, p95.
//  3. Compaction: log batches merged into the stored state per second.
import http from "node:http";
import type { AddressInfo } from "node:net";
import { createClient, type SupabaseClient } from "@supabase/supabase-js";
import pg from "pg";
import WebSocket from "ws";
import * as Y from "yjs";
import { compactDocument } from "../functions/_shared/content/compaction.ts";
import { note } from "../functions/_shared/content/kinds/note.ts";
import { seedState, toBase64 } from "../functions/_shared/content/ydoc.ts";
import { createDb } from "../functions/_shared/db/client.ts";
import { stackConfig } from "../scripts/lib/env.ts";
import { gotrueClaims, projectKeys, userToken } from "../scripts/lib/keys.ts";
import { createTokenVerifier } from "../scripts/platform/auth.ts";
import { createRealtime } from "../scripts/platform/realtime/index.ts";
import { loadWithoutIndexes } from "./lib/bulk.ts";
import { request, resultOf, timedRequests } from "./lib/postgrest.ts";
import { alternatingRounds, type Round, type RoundsResult, roundLines } from "./lib/rounds.ts";
import { ms, summarize } from "./lib/stats.ts";
import { type BenchResult, scaleParam } from "./lib/verdict.ts";

const SCALE = {
  orgs: scaleParam("orgs", "BENCH_ORGS", 10_000),
  docsPerOrg: scaleParam("documents per org", "BENCH_DOCS_PER_ORG", 100),
  /** A side, over all rounds, for the list and again for the search. */
  iterations: scaleParam("requests a side", "BENCH_ITERATIONS", 1_500),
  rounds: scaleParam("rounds", "BENCH_CONTENT_ROUNDS", 5),
};
const ORGS = SCALE.orgs.value;
const DOCS_PER_ORG = SCALE.docsPerOrg.value;
const MEMBER_OF = 25;
const PER_ROUND = Math.ceil(SCALE.iterations.value / SCALE.rounds.value);
const WARM_UP = 200;
const EDITORS = Number(process.env.BENCH_EDITORS ?? 10);
const EDIT_SECONDS = Number(process.env.BENCH_EDIT_SECONDS ?? 10);
const COMPACT_BATCHES = Number(process.env.BENCH_COMPACT_BATCHES ?? 5_000);
const TARGET = 1.3;

const USER = { id: "dddddddd-0000-4000-8000-0000000c0001", email: "content-bench@bench.test" };
const OTHER = { id: "dddddddd-0000-4000-8000-0000000c0002", email: "content-other@bench.test" };
const orgId = (i: number) => `00000000-0000-4000-8000-${i.toString(16).padStart(12, "0")}`;

/** 400 pronounceable made-up words: a vocabulary for titles and text. */
const WORDS = Array.from({ length: 400 }, (_, i) => {
  const s = ["ka", "lo", "mi", "ren", "tu", "sha", "vo", "pel", "dra", "qui", "ne", "zor", "bi", "fen", "gla", "hu", "ix", "jo", "wen", "yal"];
  return s[i % 20] + s[Math.floor(i / 20) % 20] + (i % 3 === 0 ? "ma" : i % 3 === 1 ? "tor" : "lin");
});

// The seed is set-based with triggers off (session_replication_role = replica) and the documents'
// indexes built after the load (bench/lib/bulk.ts), so a million documents take seconds. What
// the bypass skips, and what is written in its place so the measured queries see production data:
//   * handle_new_user on auth.users: each user's profile, personal org and owner membership are
//     inserted below, as after a real signup;
//   * documents_derived: the search vector is computed in the insert with the trigger's own
//     expression (title weight A, left(search_text, 500000) weight B, 'english'); the bodies are
//     400 distinct texts, so their vectors are computed once each and every row gets its own
//     title vector. A sample is checked against the trigger's expression after the load. The
//     timestamps are given explicitly (the trigger only moves updated_at on update);
//   * outbox events and audit rows for orgs and members (emit_*, audit_row): the measured queries
//     read neither;
//   * check_member_role, the org_members_invariants constraint trigger, set_updated_at and the
//     foreign-key triggers: the seed writes only built-in roles, an owner per org, and existing
//     orgs, kinds and profiles.
export async function seedDocuments(c: pg.Client) {
  let t = performance.now();
  const step = (name: string) => {
    if (process.env.BENCH_VERBOSE) console.log(`  seed: ${name} ${((performance.now() - t) / 1000).toFixed(1)} s`);
    t = performance.now();
  };
  // A second session, for the half of the load and of the index builds that runs beside c's.
  const helper = new pg.Client({ host: c.host, port: c.port, user: c.user, password: c.password ?? undefined, database: c.database });
  await helper.connect();
  await c.query("set session_replication_role = replica");
  await helper.query("set session_replication_role = replica");
  try {
    await c.query(`insert into auth.users (id, aud, role, email, email_confirmed_at, raw_app_meta_data, raw_user_meta_data, created_at, updated_at)
                   select u.id, 'authenticated', 'authenticated', u.email, now(), '{}', '{}', now(), now()
                   from unnest($1::uuid[], $2::text[]) u (id, email)`, [[USER.id, OTHER.id], [USER.email, OTHER.email]]);
    // What handle_new_user makes for each of them: a profile, a personal org, its ownership.
    await c.query(`insert into public.profiles (id, display_name, locale, timezone)
                   select u.id, split_part(u.email, '@', 1), 'en', 'UTC' from auth.users u where u.id = any ($1::uuid[])`, [[USER.id, OTHER.id]]);
    await c.query(`insert into public.orgs (slug, name, kind, personal_user_id, created_by)
                   select 'personal-' || replace(u.id::text, '-', ''), split_part(u.email, '@', 1), 'personal', u.id, u.id
                   from auth.users u where u.id = any ($1::uuid[])`, [[USER.id, OTHER.id]]);
    await c.query(`insert into public.org_members (org_id, user_id, role)
                   select o.id, o.personal_user_id, 'owner' from public.orgs o where o.personal_user_id = any ($1::uuid[])`, [[USER.id, OTHER.id]]);
    await c.query(`insert into public.orgs (id, slug, name, kind)
                   select ('00000000-0000-4000-8000-' || lpad(to_hex(i), 12, '0'))::uuid, 'content-' || i, 'Org ' || i, 'team'
                   from generate_series(1, $1::int) i`, [ORGS]);
    await c.query(`insert into public.org_members (org_id, user_id, role)
                   select ('00000000-0000-4000-8000-' || lpad(to_hex(i), 12, '0'))::uuid, $1::uuid, 'owner' from generate_series(1, $2::int) i
                   union all
                   select ('00000000-0000-4000-8000-' || lpad(to_hex(i), 12, '0'))::uuid, $3::uuid, 'owner' from generate_series(1, $4::int) i`,
      [OTHER.id, ORGS, USER.id, MEMBER_OF]);
    step("users, orgs, members");
    // Documents arrive over time across all orgs (one org's rows are spread over the heap); a
    // tenth are private. Body i is the 24 words from (i * 31) % 400 on, title two words, "report"
    // and i. Loaded in two halves on two sessions (two cores), the indexes built after on both.
    const insert = (from: number, to: number) => (s: pg.Client) => s.query(
      `with bodies as (
         select r, b.body, setweight(to_tsvector('english'::regconfig, left(b.body, 500000)), 'B') as vec
         from generate_series(0, 399) r,
              lateral (select array_to_string(array(select ($1::text[])[1 + (r + k * 17) % 400] from generate_series(1, 24) k), ' ') as body) b)
       insert into content.documents (org_id, kind, title, body, search_text, search, visibility, owner_id, updated_at, created_at)
       select ('00000000-0000-4000-8000-' || lpad(to_hex(i % $3::int + 1), 12, '0'))::uuid, 'note', t.title, '{"type": "doc", "content": []}',
              b.body, setweight(to_tsvector('english'::regconfig, t.title), 'A') || b.vec,
              case when i % 10 = 0 then 'private' else 'org' end, $2::uuid, now() - make_interval(secs => i), now() - make_interval(secs => i)
       from generate_series($4::int, $5::int - 1) i
       cross join lateral (select ($1::text[])[1 + (i * 7) % 400] || ' ' || ($1::text[])[1 + (i * 13 + 5) % 400] || ' report ' || i as title) t
       join bodies b on b.r = (i * 31) % 400`,
      [WORDS, OTHER.id, ORGS, from, to],
    );
    const total = ORGS * DOCS_PER_ORG;
    const half = Math.floor(total / 2);
    await loadWithoutIndexes(c, "content.documents", () => Promise.all([insert(0, half)(c), insert(half, total)(helper)]),
      { builders: [helper], progress: step });
    // Shared into the member's view from other orgs: the share half of the policy has work to do.
    await c.query(
      `insert into content.shares (org_id, document_id, grantee_kind, grantee_user_id, level)
       select d.org_id, d.id, 'user', $1, 'view' from content.documents d
       where d.org_id not in (select org_id from public.org_members where user_id = $1) order by d.id limit 200`,
      [USER.id],
    );
  } finally {
    await c.query("reset session_replication_role");
    await helper.end();
  }
  // The search data is what the trigger would have written.
  const { rows: [check] } = await c.query(
    `select count(*)::int as n from (select * from content.documents tablesample system (1) limit 2000) d
     where d.search <> setweight(to_tsvector('english'::regconfig, d.title), 'A')
                       || setweight(to_tsvector('english'::regconfig, left(d.search_text, 500000)), 'B')`);
  if (check.n !== 0) throw new Error(`seed: ${check.n} documents' search vectors differ from the trigger's`);
  step("shares and check");
  await c.query("vacuum analyze");
  step("vacuum analyze");
}

async function listAndSearch(c: pg.Client) {
  const member = gotrueClaims(USER);
  const target = orgId(7);
  const word = WORDS[((7 - 1) * 7) % 400]; // the first title word of documents in org 7 (i = 6 + k * ORGS)
  // The statements PostgREST generates for
  //   supabase.from("documents").select("id,title,kind,status,visibility,tags,updated_at").eq("org_id", X).order("updated_at", { ascending: false }).limit(50)
  //   supabase.rpc("search_documents", { p_query, p_org_id: X })
  const postgrest = (source: string) =>
    `with pgrst_source as (${source}) select null::bigint as total_result_set, pg_catalog.count(_postgrest_t) as page_total,
            coalesce(json_agg(_postgrest_t), '[]') as body from (select * from pgrst_source) _postgrest_t`;
  const list = postgrest(`select "content"."documents"."id", "content"."documents"."title", "content"."documents"."kind",
    "content"."documents"."status", "content"."documents"."visibility", "content"."documents"."tags", "content"."documents"."updated_at"
    from "content"."documents" where "content"."documents"."org_id" = '${target}'
    order by "content"."documents"."updated_at" desc limit 50 offset 0`);
  const search = postgrest(`select "pgrst_call".* from "content"."search_documents"("p_query" := '${word} report', "p_org_id" := '${target}') "pgrst_call"`);
  const rowsOf = async (sql: string) => resultOf(await c.query(sql), "body")!.rows[0].body as unknown[];
  type Side = Awaited<ReturnType<typeof timedRequests>>;
  const results: Record<string, { rounds: RoundsResult<Side, Side>; rows: number }> = {};
  for (const [name, q] of [["list", list], ["search", search]] as const) {
    const asMember = request("authenticated", member, q);
    const asService = request("service_role", { role: "service_role" }, q);
    const [a, b] = [await rowsOf(asMember), await rowsOf(asService)];
    if (JSON.stringify(a) !== JSON.stringify(b) || a.length === 0) throw new Error(`${name}: member and service answers differ (${a.length} vs ${b.length})`);
    const side = (sql: string) => (round: Round) =>
      timedRequests(c, sql, round.warmUp ? WARM_UP : PER_ROUND, (res) => (resultOf(res, "body")?.rows[0].body as unknown[] | undefined)?.length ?? 0);
    const rounds = await alternatingRounds({
      rounds: SCALE.rounds.value,
      pipeline: side(asMember),
      baseline: side(asService),
      expect: (round) => {
        const n = round.warmUp ? WARM_UP : PER_ROUND;
        return { requests: n, rows: n * a.length };
      },
      compare: (m, s) => ({ "p95 ratio": m.p95 / s.p95 }),
    });
    results[name] = { rounds, rows: a.length };
  }
  return results;
}

/** One live document with a seeded state, as the api would make it. */
export async function liveDocument(c: pg.Client, org: string, text: string): Promise<string> {
  const seed = seedState(note, { type: "doc", content: [{ type: "paragraph", content: [{ type: "text", text }] }] });
  const { rows } = await c.query(
    `insert into content.documents (org_id, kind, title, body, owner_id) values ($1, 'note', 'Live', $2, $3) returning id`,
    [org, JSON.stringify(seed.body), USER.id],
  );
  await c.query("insert into content.live_states (document_id, org_id, ystate, ystate_sv) values ($1, $2, $3, $4)",
    [rows[0].id, org, Buffer.from(seed.state), Buffer.from(seed.sv)]);
  return rows[0].id;
}

export async function coEditing(url: string, c: pg.Client) {
  const secret = stackConfig({}).jwtSecret;
  const stops: (() => Promise<unknown>)[] = [];
  try {
    const docId = await liveDocument(c, orgId(1), "start ");
    const pool = new pg.Pool({ connectionString: url, max: 20 });
    stops.push(() => pool.end());
    const realtime = await createRealtime({ pool, dbUrl: url, jwtSecret: secret, verifier: createTokenVerifier({ jwtSecret: secret }), dataDir: "", publicUrl: "", log: (s, l) => console.error(`[${s}] ${l}`) });
    stops.push(() => realtime.close());
    const gateway = http.createServer((req, res) => realtime.handleHttp(req, res));
    gateway.on("upgrade", (req, socket, head) => realtime.handleUpgrade(req, socket, head));
    await new Promise<void>((r) => gateway.listen(0, "127.0.0.1", r));
    stops.push(() => new Promise((r) => (gateway.closeAllConnections(), gateway.close(r))));
    const gatewayUrl = `http://127.0.0.1:${(gateway.address() as AddressInfo).port}`;
    const { anonKey } = await projectKeys(secret);
    const token = await userToken(secret, USER, { expiresIn: "2h" });
    // Arrival times are matched to send times afterwards: a delivery may beat the RPC's own reply.
    const sent = new Map<number, { t0: number; editor: number }>();
    const arrivals: { id: number; editor: number; at: number }[] = [];
    const clients: SupabaseClient[] = [];
    stops.push(() => Promise.all(clients.map((x) => x.removeAllChannels())));
    for (let e = 0; e < EDITORS; e++) {
      const sb = createClient(gatewayUrl, anonKey, { auth: { persistSession: false, autoRefreshToken: false }, realtime: { transport: WebSocket as never }, accessToken: async () => token });
      await sb.realtime.setAuth();
      clients.push(sb);
      await new Promise<void>((resolve, reject) => {
        sb.channel(`doc:${docId}`, { config: { private: true } })
          .on("broadcast", { event: "update" }, ({ payload }) => arrivals.push({ id: payload.update_id, editor: e, at: performance.now() }))
          .subscribe((status, err) => (status === "SUBSCRIBED" ? resolve() : status === "CHANNEL_ERROR" ? reject(err) : undefined));
      });
    }
    // Each editor: its own Y.Doc on the seeded state, one small batch every ~100 ms.
    const writers = new pg.Pool({ connectionString: url, max: EDITORS });
    stops.push(() => writers.end());
    const { rows: [{ ystate }] } = await c.query("select ystate from content.live_states where document_id = $1", [docId]);
    const claims = JSON.stringify(gotrueClaims(USER));
    const deadline = performance.now() + EDIT_SECONDS * 1000;
    let pushes = 0;
    const rpc: number[] = [];
    await Promise.all(Array.from({ length: EDITORS }, async (_, e) => {
      const doc = new Y.Doc();
      Y.applyUpdate(doc, ystate);
      const text = (doc.getXmlFragment("default").get(0) as Y.XmlElement).get(0) as Y.XmlText;
      await new Promise((r) => setTimeout(r, e * 10));
      while (performance.now() < deadline) {
        const sv = Y.encodeStateVector(doc);
        text.insert(0, `e${e} `);
        const update = toBase64(Y.encodeStateAsUpdate(doc, sv));
        const t0 = performance.now();
        const res = (await writers.query(
          `begin; select set_config('request.jwt.claims', $$${claims}$$, true), set_config('role', 'authenticated', true);
           select update_id from content.push_updates('${docId}', array['${update}']); commit;`,
        )) as unknown as pg.QueryResult[];
        const id = Number(res.find((r) => r.command === "SELECT" && r.fields[0]?.name === "update_id")!.rows[0].update_id);
        rpc.push(performance.now() - t0);
        sent.set(id, { t0, editor: e });
        pushes++;
        await new Promise((r) => setTimeout(r, 100));
      }
    }));
    await new Promise((r) => setTimeout(r, 1000));
    const latencies = arrivals.flatMap((a) => {
      const s = sent.get(a.id);
      return s && s.editor !== a.editor ? [a.at - s.t0] : [];
    });
    if (latencies.length < pushes * (EDITORS - 1)) throw new Error(`only ${latencies.length} of ${pushes * (EDITORS - 1)} deliveries arrived`);
    return { pushes, deliveries: latencies.length, stats: summarize(latencies), rpc: summarize(rpc), perSecond: pushes / EDIT_SECONDS, docId };
  } finally {
    for (const stop of stops.reverse()) await stop().catch(() => {});
  }
}

async function compaction(url: string, c: pg.Client) {
  const docId = await liveDocument(c, orgId(2), "");
  const { rows: [{ ystate }] } = await c.query("select ystate from content.live_states where document_id = $1", [docId]);
  const doc = new Y.Doc();
  Y.applyUpdate(doc, ystate);
  const text = (doc.getXmlFragment("default").get(0) as Y.XmlElement);
  const t = new Y.XmlText();
  text.insert(0, [t]);
  const batches: string[] = [];
  let sv = Y.encodeStateVector(doc);
  for (let i = 0; i < COMPACT_BATCHES; i++) {
    t.insert(i % 7 === 0 ? 0 : t.length, `w${i} `);
    if (i % 11 === 10) t.delete(0, 2);
    batches.push(toBase64(Y.encodeStateAsUpdate(doc, sv)));
    sv = Y.encodeStateVector(doc);
  }
  await c.query(`insert into content.doc_updates (document_id, updates) select $1, array[decode(u, 'base64')] from unnest($2::text[]) with ordinality x (u, o) order by o`,
    [docId, batches]);
  const { db, pool } = createDb(url, 2);
  try {
    const t0 = performance.now();
    const result = await compactDocument(db, docId);
    const seconds = (performance.now() - t0) / 1000;
    if (result.merged !== COMPACT_BATCHES) throw new Error(`compaction merged ${result.merged} of ${COMPACT_BATCHES}`);
    return { perSecond: COMPACT_BATCHES / seconds, seconds, bytes: result.bytes };
  } finally {
    await pool.end();
  }
}

export async function run(url: string): Promise<BenchResult> {
  const c = new pg.Client({ connectionString: url });
  await c.connect();
  try {
    const started = performance.now();
    await seedDocuments(c);
    const seedSeconds = (performance.now() - started) / 1000;
    const r = await listAndSearch(c);
    const edit = await coEditing(url, c);
    const comp = await compaction(url, c);

    console.log(`\nContent: ${ORGS.toLocaleString()} orgs, ${(ORGS * DOCS_PER_ORG).toLocaleString()} documents (seeded in ${seedSeconds.toFixed(1)} s), ` +
      `${PER_ROUND * SCALE.rounds.value} requests a side in ${SCALE.rounds.value} alternating rounds (pipeline: member through RLS; baseline: service_role + org_id)`);
    for (const [name, x] of Object.entries(r)) {
      console.log(`  ${name} (${x.rows} rows):`);
      for (const l of roundLines(x.rounds, (y) => `member p50 ${ms(y.pipeline.p50)} p95 ${ms(y.pipeline.p95)}, service p50 ${ms(y.baseline.p50)} p95 ${ms(y.baseline.p95)}`)) console.log(`  ${l}`);
    }
    console.log(`  co-editing: ${EDITORS} editors, ${edit.pushes} batches in ${EDIT_SECONDS} s (${edit.perSecond.toFixed(0)}/s), ${edit.deliveries} deliveries: update RPC -> delivery p50 ${ms(edit.stats.p50)}, p95 ${ms(edit.stats.p95)} (the RPC itself: p50 ${ms(edit.rpc.p50)}, p95 ${ms(edit.rpc.p95)})`);
    console.log(`  compaction: ${COMPACT_BATCHES} batches merged in ${comp.seconds.toFixed(2)} s = ${comp.perSecond.toFixed(0)} updates/s (stored state ${comp.bytes} bytes)`);
    return {
      name: "content",
      scale: Object.values(SCALE),
      gates: Object.entries(r).map(([name, x]) => ({ label: `${name} p95 ratio (median)`, value: x.rounds.medians["p95 ratio"], op: "<=" as const, target: TARGET })),
      failures: Object.entries(r).flatMap(([name, x]) => x.rounds.unequal.map((u) => `${name} ${u}`)),
    };
  } finally {
    await c.end();
  }
}
