// Ledger helpers for tests: call the billing operations as the service role and read the
// account back, and check every ledger invariant for an org.
import { expect } from "vitest";
import { admin } from "./db.ts";

export async function op<R = Record<string, unknown>>(fn: string, args: Record<string, unknown>): Promise<R[]> {
  const names = Object.keys(args);
  const params = names.map((n, i) => `${n} => $${i + 1}`).join(", ");
  const c = await admin.connect();
  try {
    await c.query("begin");
    await c.query("set local role service_role");
    const { rows } = await c.query(`select * from billing.${fn}(${params})`, names.map((n) => args[n]));
    await c.query("commit");
    return rows as R[];
  } catch (err) {
    await c.query("rollback");
    throw err;
  } finally {
    c.release();
  }
}

/**
 * Races `calls` operations of 1 credit each (reserve or charge, each with its own key) against
 * an org and checks that exactly `fits` succeed and every other one is refused with PT402.
 */
export async function expectOnlyWhatFits(fn: "reserve_credits" | "charge_credits", orgId: string, calls: number, fits: number) {
  const results = await Promise.allSettled(
    Array.from({ length: calls }, () => op(fn, { p_org_id: orgId, p_amount: 1, p_idempotency_key: crypto.randomUUID() })),
  );
  const outcomes = results.map((r) => (r.status === "fulfilled" ? "ok" : `${(r.reason as { code?: string }).code}: ${(r.reason as Error).message}`));
  expect(outcomes.filter((o) => o === "ok")).toHaveLength(fits);
  expect(outcomes.filter((o) => o !== "ok").every((o) => o.startsWith("PT402")), outcomes.join("\n")).toBe(true);
}

/**
 * Three grants that draw in an order different from their creation: a pack of 10 (no expiry, drawn
 * last), then promotional grants of 5 expiring in two hours and of 5 expiring in one (drawn first).
 */
export async function grantsInDrawOrder(orgId: string) {
  const grant = async (category: string, amount: number, expiresInMs?: number) => {
    const [row] = await op<{ grant_credits: string }>("grant_credits", {
      p_org_id: orgId, p_category: category, p_amount: amount, p_idempotency_key: crypto.randomUUID(),
      ...(expiresInMs ? { p_expires_at: new Date(Date.now() + expiresInMs).toISOString() } : {}),
    });
    return row.grant_credits;
  };
  const pack = await grant("pack", 10);
  const promoLater = await grant("promotional", 5, 7200_000);
  const promoSoon = await grant("promotional", 5, 3600_000);
  return { pack, promoLater, promoSoon };
}

export async function account(orgId: string) {
  const { rows } = await admin.query(
    "select balance::int, reserved::int, debt::int from billing.credit_accounts where org_id = $1",
    [orgId],
  );
  return rows[0] ?? { balance: 0, reserved: 0, debt: 0 };
}

/** Every invariant the ledger promises, checked from the tables themselves. */
export async function expectLedgerConsistent(orgId: string) {
  const { rows } = await admin.query(
    `select
       a.balance::bigint::text as balance, a.reserved::bigint::text as reserved, a.debt::bigint::text as debt,
       a.kept_expired::bigint::text as kept_expired,
       (select coalesce(sum(balance_delta), 0)::text from billing.credit_entries where org_id = a.org_id) as entries_balance,
       (select coalesce(sum(reserved_delta), 0)::text from billing.credit_entries where org_id = a.org_id) as entries_reserved,
       (select coalesce(sum(debt_delta), 0)::text from billing.credit_entries where org_id = a.org_id) as entries_debt,
       (select coalesce(sum(remaining), 0)::text from billing.credit_grants where org_id = a.org_id) as grants_remaining,
       (select coalesce(sum(remaining), 0)::text from billing.credit_grants where org_id = a.org_id and expired_at is not null) as expired_remaining,
       (select coalesce(sum(al.amount), 0)::text from billing.credit_allocations al where al.org_id = a.org_id) as pending_allocated,
       (select coalesce(sum(amount), 0)::text from billing.credit_reservations where org_id = a.org_id and status = 'pending') as pending_reserved,
       (select count(*)::int from billing.credit_entries e where e.org_id = a.org_id and e.reservation_id is not null and e.kind in ('settle', 'release')
          group by e.reservation_id, e.kind order by 1 desc limit 1) as max_resolutions,
       (select count(*)::int from billing.credit_entries e where e.org_id = a.org_id
          and (e.balance_after < 0 or e.reserved_after < 0 or e.debt_after < 0 or e.balance_after < e.reserved_after)) as negative_entries
     from billing.credit_accounts a where a.org_id = $1`,
    [orgId],
  );
  const r = rows[0];
  if (!r) {
    // No account: then nothing may have moved either.
    const { rows: [n] } = await admin.query(
      `select (select count(*)::int from billing.credit_entries where org_id = $1) as entries,
              (select count(*)::int from billing.credit_grants where org_id = $1) as grants,
              (select count(*)::int from billing.credit_reservations where org_id = $1) as reservations`,
      [orgId],
    );
    expect(n, "an org without a credits account has no ledger rows").toEqual({ entries: 0, grants: 0, reservations: 0 });
    return;
  }
  expect(r.entries_balance, "sum of balance deltas = balance").toBe(r.balance);
  expect(r.entries_reserved, "sum of reserved deltas = reserved").toBe(r.reserved);
  expect(r.entries_debt, "sum of debt deltas = debt").toBe(r.debt);
  expect(r.grants_remaining, "grants' remaining = balance").toBe(r.balance);
  expect(r.expired_remaining, "expired grants' remaining = kept_expired").toBe(r.kept_expired);
  // Expired credits are kept only while the reservations need them: then nothing is available.
  if (r.kept_expired !== "0") expect(r.balance, "kept expired credits only while balance = reserved").toBe(r.reserved);
  if (r.debt !== "0") expect(r.balance, "debt only while nothing is available").toBe(r.reserved);
  expect(r.pending_allocated, "pending reservations are fully covered by the grants").toBe(r.reserved);
  expect(r.pending_reserved, "pending reservations = reserved").toBe(r.reserved);
  expect(r.max_resolutions ?? 1, "each reservation resolves at most once").toBeLessThanOrEqual(1);
  expect(r.negative_entries, "no entry leaves anything negative").toBe(0);
}
