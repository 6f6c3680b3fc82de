// The database harness: real users inserted the way GoTrue does, and "user X calls the
// API" done exactly as PostgREST does it (claims + role in one transaction).
import { randomUUID } from "node:crypto";
import pg from "pg";
import { afterAll, expect, inject } from "vitest";
import { gotrueClaims } from "../../scripts/lib/keys.ts";

export const stack = inject("stack");
export const admin = new pg.Pool({ connectionString: stack.dbUrl, max: 12 });
afterAll(() => admin.end());

export interface TestUser {
  id: string;
  email: string;
}

export type Caller = TestUser | "anon" | { claims: Record<string, unknown> };

export async function createUser(opts: { email?: string; verified?: boolean; meta?: Record<string, unknown> } = {}) {
  const id = randomUUID();
  const email = opts.email ?? `user-${id.slice(0, 8)}@test.local`;
  await admin.query(
    `insert into auth.users (instance_id, id, aud, role, email, encrypted_password, email_confirmed_at,
                             raw_app_meta_data, raw_user_meta_data, created_at, updated_at, is_anonymous)
     values ('00000000-0000-0000-0000-000000000000', $1, 'authenticated', 'authenticated', $2, '', $3,
             '{"provider": "email", "providers": ["email"]}', $4, now(), now(), false)`,
    [id, email, opts.verified === false ? null : new Date(), opts.meta ?? {}],
  );
  return { id, email } satisfies TestUser;
}

function claimsOf(who: Caller, aal: "aal1" | "aal2"): Record<string, unknown> {
  if (who === "anon") return { role: "anon", iss: "supabase-demo" };
  if ("claims" in who) return who.claims;
  return gotrueClaims(who, { aal });
}

/** Runs fn in one transaction as the caller, like a PostgREST request. Commits on success. */
export async function as<T>(who: Caller, fn: (c: pg.PoolClient) => Promise<T>, opts: { aal?: "aal1" | "aal2" } = {}): Promise<T> {
  const claims = claimsOf(who, opts.aal ?? "aal1");
  const client = await admin.connect();
  try {
    await client.query("begin");
    await client.query("select set_config('request.jwt.claims', $1, true), set_config('role', $2, true)", [
      JSON.stringify(claims),
      claims.role,
    ]);
    const result = await fn(client);
    await client.query("commit");
    return result;
  } catch (err) {
    await client.query("rollback").catch(() => {});
    throw err;
  } finally {
    client.release();
  }
}

/** Calls a public RPC with named arguments as the caller; returns its rows. */
export function rpc<R = Record<string, unknown>>(who: Caller, fn: string, args: Record<string, unknown> = {}, opts: { aal?: "aal1" | "aal2" } = {}) {
  const names = Object.keys(args);
  const params = names.map((n, i) => `${n} => $${i + 1}`).join(", ");
  return as(who, async (c) => (await c.query(`select * from public.${fn}(${params})`, names.map((n) => args[n]))).rows as R[], opts);
}

/** Selects as the caller. */
export function select<R = Record<string, unknown>>(who: Caller, query: string, params: unknown[] = [], opts: { aal?: "aal1" | "aal2" } = {}) {
  return as(who, async (c) => (await c.query(query, params)).rows as R[], opts);
}

/** Asserts that a promise fails with the given SQLSTATE (and message, if given). */
export async function expectSqlError(p: Promise<unknown>, code: string, message?: RegExp) {
  const err = await p.then(
    () => undefined,
    (e: unknown) => e as { code?: string; message: string },
  );
  expect(err, `expected SQLSTATE ${code}, but it succeeded`).toBeDefined();
  expect(err!.code, err!.message).toBe(code);
  if (message) expect(err!.message).toMatch(message);
}

export interface Team {
  orgId: string;
  slug: string;
  owner: TestUser;
  admin: TestUser;
  member: TestUser;
  viewer: TestUser;
}

/**
 * A team org made through create_org, with one member per built-in role. It is on the Team
 * plan (a live subscription row), so seat limits do not get in the way; pass plan: null for
 * an org on the default free plan.
 */
export async function createTeam(name = "Team", opts: { plan?: string | null } = {}): Promise<Team> {
  const [owner, adminUser, member, viewer] = await Promise.all([createUser(), createUser(), createUser(), createUser()]);
  const [org] = await rpc<{ id: string; slug: string }>(owner, "create_org", { p_name: `${name} ${owner.id.slice(0, 6)}` });
  const plan = opts.plan === undefined ? "team" : opts.plan;
  if (plan) {
    await admin.query(
      `insert into billing.subscriptions (id, org_id, stripe_customer_id, status, plan_key, current_period_end)
       values ($1, $2, $3, 'active', $4, now() + interval '30 days')`,
      [`sub_test_${org.id.slice(0, 8)}`, org.id, `cus_test_${org.id.slice(0, 8)}`, plan],
    );
  }
  await addMember(org.id, adminUser, "admin");
  await addMember(org.id, member, "member");
  await addMember(org.id, viewer, "viewer");
  return { orgId: org.id, slug: org.slug, owner, admin: adminUser, member, viewer };
}

/** Adds a member directly (as the database owner), bypassing invitations. */
export async function addMember(orgId: string, user: TestUser, role: string) {
  await admin.query("insert into public.org_members (org_id, user_id, role) values ($1, $2, $3)", [orgId, user.id, role]);
}

export async function roleOf(orgId: string, userId: string): Promise<string | undefined> {
  const { rows } = await admin.query("select role from public.org_members where org_id = $1 and user_id = $2", [orgId, userId]);
  return rows[0]?.role;
}
