// Benchmark: credit reserve+settle pairs per second from 32 concurrent clients, on one hot
// org and spread over 1,000 orgs, against a bare `update … set balance = balance - 1 where
// balance >= 1` with the same clients and spread, in the same run. Each side sends one round
// trip per transaction, as PostgREST would. Target: >= 0.5 of the baseline on the spread case.
import pg from "pg";

const CLIENTS = 32;
const ORGS = 1_000;
const PAIRS = Number(process.env.BENCH_CREDIT_PAIRS ?? 4_000);

async function seed(c: pg.Client) {
  await c.query(`insert into public.orgs (id, slug, name, kind)
                 select ('00000000-0000-4000-9000-' || lpad(to_hex(i), 12, '0'))::uuid, 'credits-' || i, 'Credits ' || i, 'team'
                 from generate_series(1, $1) i`, [ORGS]);
  await c.query(`select billing.grant_credits(('00000000-0000-4000-9000-' || lpad(to_hex(i), 12, '0'))::uuid,
                                              'manual', 1000000000, 'bench-seed-' || i)
                 from generate_series(1, $1) i`, [ORGS]);
  await c.query("create table public.bench_balances (org_id uuid primary key, balance bigint not null)");
  await c.query("insert into public.bench_balances select org_id, balance from billing.credit_accounts");
  await c.query("vacuum analyze");
}

const orgId = (i: number) => `00000000-0000-4000-9000-${(i + 1).toString(16).padStart(12, "0")}`;

async function runClients(total: number, work: (n: number) => Promise<void>): Promise<number> {
  let next = 0;
  const t0 = performance.now();
  await Promise.all(Array.from({ length: CLIENTS }, async () => {
    while (next < total) await work(next++);
  }));
  return total / ((performance.now() - t0) / 1000);
}

async function scenario(pool: pg.Pool, pickOrg: () => string) {
  const pairs = await runClients(PAIRS, async () => {
    const org = pickOrg();
    const key = crypto.randomUUID();
    const res = (await pool.query(
      `begin; set local role service_role;
       select id from billing.reserve_credits('${org}', 1, '${key}'); commit;`,
    )) as unknown as pg.QueryResult[];
    const id = res.find((r) => r.command === "SELECT")!.rows[0].id;
    await pool.query(`begin; set local role service_role; select billing.settle_credits('${id}', 1); commit;`);
  });
  const bare = await runClients(PAIRS, async () => {
    await pool.query(`begin; update public.bench_balances set balance = balance - 1 where org_id = '${pickOrg()}' and balance >= 1; commit;`);
  });
  return { pairs, bare, ratio: pairs / bare };
}

export async function run(url: string) {
  const admin = new pg.Client({ connectionString: url });
  await admin.connect();
  await seed(admin);
  const pool = new pg.Pool({ connectionString: url, max: CLIENTS });
  await scenario(pool, () => orgId(0)); // warm-up: plans, caches
  const hot = await scenario(pool, () => orgId(0));
  const spread = await scenario(pool, () => orgId(Math.floor(Math.random() * ORGS)));
  await pool.end();

  const { rows } = await admin.query(`
    select count(*)::int as violations from billing.credit_accounts a
    where a.balance < a.reserved or a.reserved <> 0
       or a.balance <> (select coalesce(sum(balance_delta), 0) from billing.credit_entries e where e.org_id = a.org_id)
       or a.balance <> (select coalesce(sum(remaining), 0) from billing.credit_grants g where g.org_id = a.org_id)`);
  await admin.end();
  const violations = rows[0].violations as number;
  const fmt = (x: number) => x.toFixed(0).padStart(6);
  console.log(`\nCredits: reserve+settle pairs/s vs bare decrement/s, ${CLIENTS} clients, ${PAIRS} of each per case`);
  console.log(`  hot org        pairs ${fmt(hot.pairs)}/s   bare ${fmt(hot.bare)}/s   ratio ${hot.ratio.toFixed(3)}`);
  console.log(`  1,000 orgs     pairs ${fmt(spread.pairs)}/s   bare ${fmt(spread.bare)}/s   ratio ${spread.ratio.toFixed(3)}  (target >= 0.5: ${spread.ratio >= 0.5 ? "met" : "MISSED"})`);
  console.log(`  invariant violations: ${violations}`);
  return { name: "credits", ratio: spread.ratio, target: 0.5, higherIsBetter: true, met: spread.ratio >= 0.5 && violations === 0 };
}
