// Benchmark: the credits ledger against bare single-row transactions, 32 clients, fsync on, in
// the same run, spread over 1,000 orgs and on one hot org.
//   * reserve+settle pairs/s  vs  a bare pair of two single-row transactions (hold one credit,
//     then spend it: `update … set held = held + 1 …`, then `update … set balance = balance - 1,
//     held = held - 1 …`, each its own transaction);
//   * charge_credits/s        vs  a bare decrement (`update … set balance = balance - 1 where
//     balance >= 1`).
// Each transaction is one round trip on both sides, with the role switch PostgREST makes
// (`set local role service_role`). The sides run in alternating rounds (ledger, then bare, then
// ledger…) after a warm-up of both, and the ratio is the median over the rounds. Target: >= 0.5
// in both cases; on the hot org both sides are serialized by the one row's lock held through
// the commit's fsync, so there the ratio measures the ledger's work inside that lock.
// Afterwards every ledger invariant is checked for every org.
import pg from "pg";
import { pool as inClients } from "./lib/concurrency.ts";
import { alternatingRounds, median, type Round, roundLines } from "./lib/rounds.ts";
import { type BenchResult, scaleParam } from "./lib/verdict.ts";

const CLIENTS = 32;
const ORGS = 1_000;
/** Per side, per round, per case. */
const OPS_PARAM = scaleParam("operations a side per round", "BENCH_CREDIT_OPS", 1_200);
const OPS = OPS_PARAM.value;
const ROUNDS = scaleParam("rounds", "BENCH_CREDIT_ROUNDS", 3);

const orgId = (i: number) => `00000000-0000-4000-9000-${(i + 1).toString(16).padStart(12, "0")}`;

async function seed(c: pg.Client) {
  await c.query(`insert into public.orgs (id, slug, name, kind)
                 select ('00000000-0000-4000-9000-' || lpad(to_hex(i), 12, '0'))::uuid, 'credits-' || i, 'Credits ' || i, 'team'
                 from generate_series(1, $1) i`, [ORGS]);
  await c.query(`select billing.grant_credits(('00000000-0000-4000-9000-' || lpad(to_hex(i), 12, '0'))::uuid,
                                              'manual', 1000000000, 'bench-seed-' || i)
                 from generate_series(1, $1) i`, [ORGS]);
  // The baseline's rows: one per org, a balance and a held count, as small as a row gets.
  await c.query("create table public.bench_balances (org_id uuid primary key, balance bigint not null, held bigint not null default 0)");
  await c.query("grant select, update on public.bench_balances to service_role");
  await c.query("insert into public.bench_balances (org_id, balance) select org_id, balance from billing.credit_accounts");
  // For the record only (no target): a bare pair that also journals each step, as any ledger must.
  await c.query("create table public.bench_journal (id bigserial primary key, org_id uuid not null, delta bigint not null)");
  await c.query("grant insert on public.bench_journal to service_role; grant usage on sequence public.bench_journal_id_seq to service_role");
  await c.query("vacuum analyze");
}

/** Runs `total` operations from CLIENTS clients; counts the ones that did their work. */
async function rate(total: number, work: () => Promise<boolean>): Promise<{ perSecond: number; work: { operations: number } }> {
  let done = 0;
  const t0 = performance.now();
  await inClients(total, CLIENTS, async () => {
    if (await work()) done++;
  });
  return { perSecond: total / ((performance.now() - t0) / 1000), work: { operations: done } };
}

/** One operation; true when it did its work (a ledger call returned, a bare update changed its row). */
type Side = (pool: pg.Pool, org: () => string) => Promise<boolean>;
const updated = (res: unknown) => (res as pg.QueryResult[]).find((r) => r.command === "UPDATE")!.rowCount === 1;

const ledgerPair: Side = async (pool, org) => {
  const res = (await pool.query(
    `begin; set local role service_role;
     select id from billing.reserve_credits('${org()}', 1, '${crypto.randomUUID()}'); commit;`,
  )) as unknown as pg.QueryResult[];
  const id = res.find((r) => r.command === "SELECT")!.rows[0].id;
  await pool.query(`begin; set local role service_role; select from billing.settle_credits('${id}', 1); commit;`);
  return true;
};
const barePair: Side = async (pool, org) => {
  const o = org();
  const held = updated(await pool.query(`begin; set local role service_role;
    update public.bench_balances set held = held + 1 where org_id = '${o}' and balance - held >= 1; commit;`));
  const spent = updated(await pool.query(`begin; set local role service_role;
    update public.bench_balances set balance = balance - 1, held = held - 1 where org_id = '${o}'; commit;`));
  return held && spent;
};
const journaledBarePair: Side = async (pool, org) => {
  const o = org();
  const held = updated(await pool.query(`begin; set local role service_role;
    update public.bench_balances set held = held + 1 where org_id = '${o}' and balance - held >= 1;
    insert into public.bench_journal (org_id, delta) values ('${o}', 0); commit;`));
  const spent = updated(await pool.query(`begin; set local role service_role;
    update public.bench_balances set balance = balance - 1, held = held - 1 where org_id = '${o}';
    insert into public.bench_journal (org_id, delta) values ('${o}', -1); commit;`));
  return held && spent;
};
const ledgerCharge: Side = async (pool, org) => {
  await pool.query(`begin; set local role service_role;
    select from billing.charge_credits('${org()}', 1, '${crypto.randomUUID()}'); commit;`);
  return true;
};
const bareCharge: Side = async (pool, org) => {
  return updated(await pool.query(`begin; set local role service_role;
    update public.bench_balances set balance = balance - 1 where org_id = '${org()}' and balance >= 1; commit;`));
};

/** Warm-up (a quarter round) on both sides, then ROUNDS alternating rounds (bench/lib/rounds.ts). */
async function compare(pool: pg.Pool, ledger: Side, bare: Side, org: () => string) {
  const size = (r: Round) => (r.warmUp ? Math.ceil(OPS / 4) : OPS);
  const r = await alternatingRounds({
    rounds: ROUNDS.value,
    pipeline: (round) => rate(size(round), () => ledger(pool, org)),
    baseline: (round) => rate(size(round), () => bare(pool, org)),
    expect: (round) => ({ operations: size(round) }),
    compare: (l, b) => ({ ratio: l.perSecond / b.perSecond }),
  });
  return {
    ledger: median(r.rounds.map((x) => x.pipeline.perSecond)),
    bare: median(r.rounds.map((x) => x.baseline.perSecond)),
    ratio: r.medians.ratio,
    rounds: r,
  };
}

export async function run(url: string): Promise<BenchResult> {
  const admin = new pg.Client({ connectionString: url });
  await admin.connect();
  await seed(admin);
  const pool = new pg.Pool({ connectionString: url, max: CLIENTS });
  await Promise.all(Array.from({ length: CLIENTS }, () => pool.query("select 1")));
  const hot = () => orgId(0);
  const spread = () => orgId(Math.floor(Math.random() * ORGS));
  const results = {
    pairsSpread: await compare(pool, ledgerPair, barePair, spread),
    chargeSpread: await compare(pool, ledgerCharge, bareCharge, spread),
    pairsHot: await compare(pool, ledgerPair, barePair, hot),
    chargeHot: await compare(pool, ledgerCharge, bareCharge, hot),
  };
  const journaled = await compare(pool, ledgerPair, journaledBarePair, spread);
  await pool.end();

  const { rows } = await admin.query(`
    select count(*)::int as violations from billing.credit_accounts a
    where a.balance < a.reserved or a.reserved <> 0 or a.debt <> 0
       or a.balance <> (select coalesce(sum(balance_delta), 0) from billing.credit_entries e where e.org_id = a.org_id)
       or a.reserved <> (select coalesce(sum(reserved_delta), 0) from billing.credit_entries e where e.org_id = a.org_id)
       or a.balance <> (select coalesce(sum(remaining), 0) from billing.credit_grants g where g.org_id = a.org_id)
       -- Nothing left held on a grant (read through to_jsonb: the same check whether the grants
       -- still have a held column or holds live on the account alone).
       or 0 <> (select coalesce(sum((to_jsonb(g) ->> 'held')::bigint), 0) from billing.credit_grants g where g.org_id = a.org_id)
       or exists (select 1 from billing.credit_reservations r where r.org_id = a.org_id and r.status <> 'posted')
       or 1000000000 - a.balance <> (select count(*) from billing.credit_entries e where e.org_id = a.org_id and e.kind = 'settle')`);
  await admin.end();
  const violations = rows[0].violations as number;

  const fmt = (x: number) => x.toFixed(0).padStart(6);
  const cases = [
    ["reserve+settle pairs, 1,000 orgs", results.pairsSpread],
    ["charge_credits, 1,000 orgs", results.chargeSpread],
    ["reserve+settle pairs, hot org", results.pairsHot],
    ["charge_credits, hot org", results.chargeHot],
  ] as const;
  console.log(`\nCredits: ${CLIENTS} clients, fsync on, ${OPS} of each per round, median of ${ROUNDS.value} alternating rounds`);
  for (const [label, r] of cases) {
    console.log(`  ${label.padEnd(34)} ledger ${fmt(r.ledger)}/s   bare ${fmt(r.bare)}/s   median ratio ${r.ratio.toFixed(3)}  (target >= 0.5)`);
    for (const l of roundLines(r.rounds, (x) => `ledger ${x.pipeline.perSecond.toFixed(0)}/s, bare ${x.baseline.perSecond.toFixed(0)}/s`)) console.log(`  ${l}`);
  }
  console.log(`  for the record (no target): reserve+settle pairs, 1,000 orgs, against a bare pair that also journals each step: ` +
    `ledger ${fmt(journaled.ledger)}/s   bare+journal ${fmt(journaled.bare)}/s   median ratio ${journaled.ratio.toFixed(3)}`);
  console.log(`  invariant violations: ${violations}`);
  return {
    name: "credits",
    scale: [OPS_PARAM, ROUNDS],
    gates: cases.map(([label, r]) => ({ label: `${label}: median ratio`, value: r.ratio, op: ">=" as const, target: 0.5 })),
    failures: [
      ...cases.flatMap(([label, r]) => r.rounds.unequal.map((u) => `${label}, ${u}`)),
      ...journaled.rounds.unequal.map((u) => `pairs against the journaled bare pair, ${u}`),
      ...(violations ? [`${violations} orgs break a ledger invariant`] : []),
    ],
  };
}
