// Benchmark: a member lists one org's rows through RLS, at 10,000 orgs and 1,000,000 rows,
// against the same query as service_role with an explicit org_id filter, in the same run.
// Both run the PostgREST request shape: one round trip of begin, claims and role, query, commit.
// After a warm-up of 100 requests a side, the 10,000 requests a side run in 20 alternating rounds
// (bench/lib/rounds.ts: 500 member requests, then 500 service ones, the next round the other way
// round; short rounds, so drift on a shared machine hits both sides alike); each round's p50 and
// p95 ratios are computed, and every request of both sides must return the org's 100 rows. Target: the median over the rounds of RLS / baseline <= 1.15 at p50
// and at p95.
//
// The seed is a handful of set-based statements with triggers off
// (session_replication_role = replica), so one million rows take seconds, not minutes. What
// that bypasses, and what is written in its place so the measured query sees production data:
//   * handle_new_user on auth.users: the profile, personal org and owner membership it would
//     make are inserted set-based below, so every user has them as after a real signup;
//   * outbox events and audit rows for orgs, members and invitations (emit_*, audit_row): the
//     measured query reads neither;
//   * set_updated_at, check_member_role, check_org_membership and the foreign-key triggers: the
//     seed writes only valid built-in roles, existing orgs and users, and an owner per org.
// The million invitations are loaded with the table's indexes off, which are then built once
// from their catalog definitions (bench/lib/bulk.ts).
import pg from "pg";
import { gotrueClaims } from "../scripts/lib/keys.ts";
import { loadWithoutIndexes } from "./lib/bulk.ts";
import { request, resultOf, timedRequests } from "./lib/postgrest.ts";
import { alternatingRounds, type Round, roundLines } from "./lib/rounds.ts";
import { ms } from "./lib/stats.ts";
import { type BenchResult, scaleParam } from "./lib/verdict.ts";

const SCALE = {
  orgs: scaleParam("orgs", "BENCH_ORGS", 10_000),
  rowsPerOrg: scaleParam("rows per org", "BENCH_ROWS_PER_ORG", 100),
  /** A side, over all rounds. */
  iterations: scaleParam("requests a side", "BENCH_ITERATIONS", 10_000),
  rounds: scaleParam("rounds", "BENCH_RLS_ROUNDS", 20),
};
const ORGS = SCALE.orgs.value;
const ROWS_PER_ORG = SCALE.rowsPerOrg.value;
const MEMBER_OF = 25; // the bench user belongs to this many orgs, so RLS has a real set to check
const PER_ROUND = Math.ceil(SCALE.iterations.value / SCALE.rounds.value); // a side, per round: enough for a steady p95
const WARM_UP = 100;
const TARGET = 1.15;

const USER_ID = "dddddddd-0000-4000-8000-000000000001";
const orgId = (i: string) => `('00000000-0000-4000-8000-' || lpad(to_hex(${i}), 12, '0'))::uuid`;
const userId = (i: string) => `('eeeeeeee-0000-4000-8000-' || lpad(to_hex(${i}), 12, '0'))::uuid`;

export async function seed(c: pg.Client) {
  await c.query("set session_replication_role = replica");
  try {
    // The bench user, and three users per org (owner, admin, member), as GoTrue inserts them.
    await c.query(`insert into auth.users (id, aud, role, email, email_confirmed_at, raw_app_meta_data, raw_user_meta_data, created_at, updated_at)
                   select $1::uuid, 'authenticated', 'authenticated', 'bench@bench.test', now(), '{}'::jsonb, '{}'::jsonb, now(), now()
                   union all
                   select ${userId("i")}, 'authenticated', 'authenticated', 'user' || i || '@bench.test', now(), '{}', '{}', now(), now()
                   from generate_series(1, $2::int * 3) i`, [USER_ID, ORGS]);
    // What handle_new_user makes for each of them: a profile, a personal org, its ownership.
    await c.query(`insert into public.profiles (id, display_name, locale, timezone)
                   select u.id, split_part(u.email, '@', 1), 'en', 'UTC' from auth.users u`);
    await c.query(`insert into public.orgs (slug, name, kind, personal_user_id, created_by)
                   select 'personal-' || replace(u.id::text, '-', ''), split_part(u.email, '@', 1), 'personal', u.id, u.id
                   from auth.users u`);
    await c.query(`insert into public.orgs (id, slug, name, kind)
                   select ${orgId("i")}, 'org-' || i, 'Org ' || i, 'team' from generate_series(1, $1::int) i`, [ORGS]);
    // Personal ownerships; every team org's owner, admin and member; and the bench user owns
    // MEMBER_OF team orgs besides (so org_members looks like production).
    await c.query(`insert into public.org_members (org_id, user_id, role)
                   select o.id, o.personal_user_id, 'owner' from public.orgs o where o.kind = 'personal'
                   union all
                   select ${orgId("o")}, ${userId("(o - 1) * 3 + k")}, (array['owner', 'admin', 'member'])[k]
                   from generate_series(1, $1::int) o, generate_series(1, 3) k
                   union all
                   select ${orgId("i")}, $2::uuid, 'owner' from generate_series(1, $3::int) i`, [ORGS, USER_ID, MEMBER_OF]);
    // Invitations arrive over time across all orgs, so one org's rows are spread over the heap.
    // Loaded with its indexes off and built once after (bench/lib/bulk.ts).
    await loadWithoutIndexes(c, "public.invitations", () => c.query(`insert into public.invitations (org_id, email, role, token_hash, invited_by, expires_at, created_at)
                   select ${orgId("o")}, 'invitee' || r || '@org' || o || '.test', 'member',
                          sha256(convert_to(o || ':' || r, 'UTF8')), ${userId("(o - 1) * 3 + 1")},
                          now() + interval '7 days', now() - (r || ' minutes')::interval
                   from generate_series(0, $1::int * $2::int - 1) g, lateral (select g % $1::int + 1 as o, g / $1::int + 1 as r) x`, [ORGS, ROWS_PER_ORG]));
  } finally {
    await c.query("reset session_replication_role");
  }
  await c.query("vacuum analyze");
}

export async function run(url: string): Promise<BenchResult> {
  const c = new pg.Client({ connectionString: url });
  await c.connect();
  try {
    return await measure(c);
  } finally {
    await c.end();
  }
}

async function measure(c: pg.Client): Promise<BenchResult> {
  const started = performance.now();
  await seed(c);
  const seedSeconds = (performance.now() - started) / 1000;

  const target = "00000000-0000-4000-8000-" + (7).toString(16).padStart(12, "0"); // one of the user's orgs
  const columns = "id, email, role, expires_at, created_at";
  const asMember = request("authenticated", gotrueClaims({ id: USER_ID, email: "bench@bench.test" }),
    `select ${columns} from public.invitations where org_id = '${target}' order by created_at desc`);
  const asService = request("service_role", { role: "service_role" },
    `select ${columns} from public.invitations where org_id = '${target}' order by created_at desc`);

  // Same answer both ways (the same rows in the same order), or the comparison means nothing.
  const rows = async (sql: string) => resultOf(await c.query(sql), "email")!.rows;
  const [a, b] = [await rows(asMember), await rows(asService)];
  if (a.length !== ROWS_PER_ORG || JSON.stringify(a) !== JSON.stringify(b)) {
    throw new Error(`the two sides answer differently: member ${a.length} rows, service ${b.length} rows`);
  }

  const side = (sql: string) => (round: Round) =>
    timedRequests(c, sql, round.warmUp ? WARM_UP : PER_ROUND, (res) => resultOf(res, "email")?.rowCount ?? 0);
  const r = await alternatingRounds({
    rounds: SCALE.rounds.value,
    pipeline: side(asMember),
    baseline: side(asService),
    expect: (round) => {
      const n = round.warmUp ? WARM_UP : PER_ROUND;
      return { requests: n, rows: n * ROWS_PER_ORG };
    },
    compare: (m, s) => ({ p50: m.p50 / s.p50, p95: m.p95 / s.p95 }),
  });

  console.log(`\nRLS list: ${ORGS.toLocaleString()} orgs, ${(ORGS * ROWS_PER_ORG).toLocaleString()} rows (seeded in ${seedSeconds.toFixed(1)} s), ` +
    `${PER_ROUND * SCALE.rounds.value} requests a side in ${SCALE.rounds.value} alternating rounds (pipeline: member through RLS; baseline: service_role + org_id)`);
  for (const l of roundLines(r, (x) => `member p50 ${ms(x.pipeline.p50)} p95 ${ms(x.pipeline.p95)}, service p50 ${ms(x.baseline.p50)} p95 ${ms(x.baseline.p95)}`)) console.log(l);
  return {
    name: "rls-list",
    scale: Object.values(SCALE),
    gates: [
      { label: "p50 ratio (median)", value: r.medians.p50, op: "<=", target: TARGET },
      { label: "p95 ratio (median)", value: r.medians.p95, op: "<=", target: TARGET },
    ],
    failures: r.unequal,
  };
}
