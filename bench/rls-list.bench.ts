// Benchmark: a member lists one org's rows through RLS, at 10,000 orgs and 1,000,000 rows,
// against the same query as service_role with an explicit org_id filter, in the same run.
// Both run the PostgREST request shape: one round trip of begin, claims and role, query, commit.
// Target: RLS p50 / baseline p50 <= 1.3.
import pg from "pg";
import { gotrueClaims } from "../scripts/lib/keys.ts";
import { ms, summarize } from "./lib/stats.ts";

const ORGS = Number(process.env.BENCH_ORGS ?? 10_000);
const ROWS_PER_ORG = Number(process.env.BENCH_ROWS_PER_ORG ?? 100);
const MEMBER_OF = 25; // the bench user belongs to this many orgs, so RLS has a real set to check
const ITERATIONS = Number(process.env.BENCH_ITERATIONS ?? 2_000);

const USER_ID = "dddddddd-0000-4000-8000-000000000001";

export async function seed(c: pg.Client) {
  await c.query(`insert into auth.users (id, aud, role, email, email_confirmed_at, raw_app_meta_data, raw_user_meta_data, created_at, updated_at)
                 values ($1, 'authenticated', 'authenticated', 'bench@bench.test', now(), '{}', '{}', now(), now())`, [USER_ID]);
  await c.query(`insert into public.orgs (id, slug, name, kind)
                 select ('00000000-0000-4000-8000-' || lpad(to_hex(i), 12, '0'))::uuid, 'org-' || i, 'Org ' || i, 'team'
                 from generate_series(1, $1) i`, [ORGS]);
  // Every org has an owner and two members of its own (so org_members looks like production),
  // and the bench user owns MEMBER_OF orgs besides.
  await c.query(`insert into auth.users (id, aud, role, email, email_confirmed_at, raw_app_meta_data, raw_user_meta_data, created_at, updated_at)
                 select ('eeeeeeee-0000-4000-8000-' || lpad(to_hex(i), 12, '0'))::uuid, 'authenticated', 'authenticated',
                        'user' || i || '@bench.test', now(), '{}', '{}', now(), now()
                 from generate_series(1, $1 * 3) i`, [ORGS]);
  await c.query(`insert into public.org_members (org_id, user_id, role)
                 select ('00000000-0000-4000-8000-' || lpad(to_hex(o), 12, '0'))::uuid,
                        ('eeeeeeee-0000-4000-8000-' || lpad(to_hex((o - 1) * 3 + k), 12, '0'))::uuid,
                        (array['owner', 'admin', 'member'])[k]
                 from generate_series(1, $1) o, generate_series(1, 3) k`, [ORGS]);
  await c.query(`insert into public.org_members (org_id, user_id, role)
                 select ('00000000-0000-4000-8000-' || lpad(to_hex(i), 12, '0'))::uuid, $1, 'owner'
                 from generate_series(1, $2) i`, [USER_ID, MEMBER_OF]);
  await c.query(`insert into public.invitations (org_id, email, role, token_hash, expires_at, created_at)
                 select ('00000000-0000-4000-8000-' || lpad(to_hex(o), 12, '0'))::uuid,
                        'invitee' || r || '@org' || o || '.test', 'member',
                        sha256(convert_to(o || ':' || r, 'UTF8')), now() + interval '7 days',
                        now() - (r || ' minutes')::interval
                 from generate_series(1, $1) o, generate_series(1, $2) r`, [ORGS, ROWS_PER_ORG]);
  await c.query("vacuum analyze");
}

function request(role: string, claims: object, query: string): string {
  const lit = (s: string) => `'${s.replace(/'/g, "''")}'`;
  return `begin; select set_config('request.jwt.claims', ${lit(JSON.stringify(claims))}, true), set_config('role', ${lit(role)}, true); ${query}; commit;`;
}

export async function run(url: string) {
  const c = new pg.Client({ connectionString: url });
  await c.connect();
  const started = performance.now();
  await seed(c);
  const seedSeconds = (performance.now() - started) / 1000;

  const target = "00000000-0000-4000-8000-" + (7).toString(16).padStart(12, "0"); // one of the user's orgs
  const columns = "id, email, role, expires_at, created_at";
  const asMember = request("authenticated", gotrueClaims({ id: USER_ID, email: "bench@bench.test" }),
    `select ${columns} from public.invitations where org_id = '${target}' order by created_at desc`);
  const asService = request("service_role", { role: "service_role" },
    `select ${columns} from public.invitations where org_id = '${target}' order by created_at desc`);

  // Same answer both ways, or the comparison means nothing.
  const count = async (sql: string) => {
    const res = (await c.query(sql)) as unknown as pg.QueryResult[];
    return res.find((r) => r.command === "SELECT" && r.fields.some((f) => f.name === "email"))!.rowCount;
  };
  const [a, b] = [await count(asMember), await count(asService)];
  if (a !== ROWS_PER_ORG || b !== ROWS_PER_ORG) throw new Error(`row counts differ: member ${a}, service ${b}`);

  const member: number[] = [];
  const service: number[] = [];
  for (let i = 0; i < 200; i++) await c.query(i % 2 ? asMember : asService); // warm-up
  for (let i = 0; i < ITERATIONS; i++) {
    // Interleaved, so drift on a shared machine hits both sides alike.
    for (const [sql, out] of (i % 2 ? [[asMember, member], [asService, service]] : [[asService, service], [asMember, member]]) as [string, number[]][]) {
      const t0 = performance.now();
      await c.query(sql);
      out.push(performance.now() - t0);
    }
  }
  await c.end();

  const m = summarize(member);
  const s = summarize(service);
  const ratio = m.p50 / s.p50;
  console.log(`\nRLS list: ${ORGS.toLocaleString()} orgs, ${(ORGS * ROWS_PER_ORG).toLocaleString()} rows (seeded in ${seedSeconds.toFixed(1)} s), ${ITERATIONS} requests each`);
  console.log(`  member through RLS      p50 ${ms(m.p50)}  p95 ${ms(m.p95)}`);
  console.log(`  service_role + org_id   p50 ${ms(s.p50)}  p95 ${ms(s.p95)}`);
  console.log(`  ratio p50 ${ratio.toFixed(3)}  p95 ${(m.p95 / s.p95).toFixed(3)}  (target <= 1.3: ${ratio <= 1.3 ? "met" : "MISSED"})`);
  return { name: "rls-list", ratio, target: 1.3, met: ratio <= 1.3 };
}
