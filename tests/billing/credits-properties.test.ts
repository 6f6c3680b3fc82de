// Property-based: random sequences of grant, reserve, settle, void, charge, claw-back, expiry
// (with a clock that moves forward) and replays of earlier keys, checked step by step against an
// independent model: plain TypeScript that keeps the grants, reservations, reserved and debt by
// the documented rules (docs/credits.md), never reading the database to decide what to expect.
// After every step the account, every grant and every reservation must equal the model's, and
// every refusal must be the one the model predicts (PT402 when too few are available, 22023 for a
// resolved reservation or a key reused with another amount); at the end every ledger invariant holds.
import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { admin, createTeam } from "../helpers/db.ts";
import { expectLedgerConsistent, op } from "../helpers/credits.ts";

type Category = "subscription" | "pack" | "promotional" | "manual";
type Cmd =
  | { kind: "grant"; amount: number; category: Category; expiresInMin: number | null; priority: number | null }
  | { kind: "reserve"; amount: number; ttlMin: number }
  | { kind: "settle"; pick: number; fraction: number }
  | { kind: "void"; pick: number }
  | { kind: "charge"; amount: number }
  | { kind: "expire"; advanceMin: number }
  | { kind: "clawback"; amount: number; pick: number | null }
  | { kind: "replay"; pick: number; otherAmount: boolean };

// Weighted so that the interesting states come up often: reservations pending while their
// grants expire (expired credits kept for them), and debt from claw-backs meeting reservations.
const cmd: fc.Arbitrary<Cmd> = fc.oneof(
  { weight: 3, arbitrary: fc.record({
    kind: fc.constant("grant" as const),
    amount: fc.integer({ min: 1, max: 50 }),
    category: fc.constantFrom<Category>("subscription", "pack", "promotional", "manual"),
    expiresInMin: fc.option(fc.integer({ min: 1, max: 8 }), { nil: null, freq: 4 }),
    priority: fc.option(fc.constantFrom(5, 10, 20, 30, 40, 50), { nil: null, freq: 3 }),
  }) },
  { weight: 4, arbitrary: fc.record({ kind: fc.constant("reserve" as const), amount: fc.integer({ min: 1, max: 30 }), ttlMin: fc.integer({ min: 1, max: 40 }) }) },
  { weight: 2, arbitrary: fc.record({ kind: fc.constant("settle" as const), pick: fc.nat(), fraction: fc.double({ min: 0, max: 1, noNaN: true }) }) },
  { weight: 1, arbitrary: fc.record({ kind: fc.constant("void" as const), pick: fc.nat() }) },
  { weight: 1, arbitrary: fc.record({ kind: fc.constant("charge" as const), amount: fc.integer({ min: 1, max: 20 }) }) },
  { weight: 3, arbitrary: fc.record({ kind: fc.constant("expire" as const), advanceMin: fc.integer({ min: 0, max: 6 }) }) },
  { weight: 1, arbitrary: fc.record({ kind: fc.constant("clawback" as const), amount: fc.integer({ min: 1, max: 40 }), pick: fc.option(fc.nat(), { nil: null }) }) },
  { weight: 1, arbitrary: fc.record({ kind: fc.constant("replay" as const), pick: fc.nat(), otherAmount: fc.boolean() }) },
);

// ---------------------------------------------------------------------------------------------
// The model
// ---------------------------------------------------------------------------------------------

const DEFAULT_PRIORITY: Record<Category, number> = { promotional: 10, subscription: 20, pack: 30, manual: 40 };

interface MGrant {
  id: string; seq: number; priority: number; amount: number; remaining: number;
  expiresAt: number | null; // clock minute after which it expires (null: never)
  expiredAt: number | null; // clock minute the expiry job expired it
}
interface MRes { id: string; seq: number; amount: number; expiresAt: number; status: "pending" | "posted" | "voided" | "expired"; settled: number | null }

/** Raised by the model where the database must refuse with this SQLSTATE. */
class Refusal { constructor(readonly code: string) {} }

class Model {
  grants: MGrant[] = [];
  reservations: MRes[] = [];
  reserved = 0;
  debt = 0;
  private seq = 0;

  get balance() { return this.grants.reduce((s, g) => s + g.remaining, 0); }
  get kept() { return this.grants.filter((g) => g.expiredAt !== null).reduce((s, g) => s + g.remaining, 0); }
  get available() { return this.balance - this.reserved; }

  /** Live grants in draw order: priority, then earliest expiry (none last), then age. */
  private live() {
    return this.grants.filter((g) => g.expiredAt === null && g.remaining > 0).sort((a, b) =>
      a.priority - b.priority || (a.expiresAt ?? Infinity) - (b.expiresAt ?? Infinity) || a.seq - b.seq);
  }
  /** Expired grants that still keep credits for reservations, oldest expiry first. */
  private keptGrants() {
    return this.grants.filter((g) => g.expiredAt !== null && g.remaining > 0).sort((a, b) =>
      a.expiredAt! - b.expiredAt! || a.priority - b.priority || (a.expiresAt ?? Infinity) - (b.expiresAt ?? Infinity) || a.seq - b.seq);
  }
  private take(from: MGrant[], amount: number) {
    let left = amount;
    for (const g of from) {
      const t = Math.min(g.remaining, left);
      g.remaining -= t;
      left -= t;
    }
    if (left > 0) throw new Error(`model: ${left} credits short`);
  }
  /** Expired credits the reservations no longer need expire. */
  private shed() {
    const x = Math.min(this.kept, this.available);
    if (x > 0) this.take(this.keptGrants(), x);
  }

  grant(id: string, amount: number, category: Category, priority: number | null, expiresAt: number | null) {
    const repay = Math.min(this.debt, amount);
    this.debt -= repay;
    this.grants.push({ id, seq: this.seq++, priority: priority ?? DEFAULT_PRIORITY[category], amount, remaining: amount - repay, expiresAt, expiredAt: null });
    this.shed();
  }
  reserve(id: string, amount: number, expiresAt: number) {
    this.reserved += amount;
    this.reservations.push({ id, seq: this.seq++, amount, expiresAt, status: "pending", settled: null });
  }
  canReserve(amount: number) { return amount <= this.available; }
  resolve(r: MRes, status: "posted" | "voided" | "expired", consume: number) {
    if (r.status !== "pending") {
      if (r.status === status && (status !== "posted" || r.settled === consume)) return; // a replay
      throw new Refusal("22023");
    }
    // Spend: kept expired credits first, then live grants in draw order.
    const fromKept = Math.min(this.kept, consume);
    this.take(this.keptGrants(), fromKept);
    this.take(this.live(), consume - fromKept);
    this.reserved -= r.amount;
    r.status = status;
    r.settled = status === "posted" ? consume : null;
    // Released credits: first expire what no reservation needs to keep, then repay debt.
    this.shed();
    const repay = Math.min(this.debt, this.available);
    this.take(this.live(), repay);
    this.debt -= repay;
  }
  charge(amount: number) {
    if (amount > this.available) throw new Refusal("PT402");
    this.take(this.live(), amount);
  }
  clawBack(amount: number, grantId: string | null): { clawed_back: string; debt: string } {
    const taken = Math.min(amount, this.available);
    const order = this.live().sort((a, b) => Number(b.id === grantId) - Number(a.id === grantId));
    this.take(order, taken);
    this.debt += amount - taken;
    return { clawed_back: String(taken), debt: String(amount - taken) };
  }
  /** The expiry job at clock minute `now`: reservations first, then grants (by id), never below what is reserved. */
  expire(now: number) {
    for (const r of this.reservations.filter((x) => x.status === "pending" && x.expiresAt <= now).sort((a, b) => a.expiresAt - b.expiresAt || a.seq - b.seq)) {
      this.resolve(r, "expired", 0);
    }
    for (const g of this.grants.filter((x) => x.expiredAt === null && x.expiresAt !== null && x.expiresAt <= now).sort((a, b) => (a.id < b.id ? -1 : 1))) {
      const x = Math.min(g.remaining, this.available);
      g.remaining -= x;
      g.expiredAt = now;
    }
  }
}

// ---------------------------------------------------------------------------------------------
// The database, compared with the model
// ---------------------------------------------------------------------------------------------

async function expectMatchesModel(orgId: string, m: Model, step: string) {
  const { rows: [acct] } = await admin.query(
    "select balance::int, reserved::int, debt::int, kept_expired::int from billing.credit_accounts where org_id = $1", [orgId]);
  expect(acct ?? { balance: 0, reserved: 0, debt: 0, kept_expired: 0 }, `account after ${step}`)
    .toEqual({ balance: m.balance, reserved: m.reserved, debt: m.debt, kept_expired: m.kept });
  const { rows: grants } = await admin.query(
    "select id, remaining::int, expired_at is not null as expired from billing.credit_grants where org_id = $1 order by id", [orgId]);
  expect(grants, `grants after ${step}`).toEqual(
    [...m.grants].sort((a, b) => (a.id < b.id ? -1 : 1)).map((g) => ({ id: g.id, remaining: g.remaining, expired: g.expiredAt !== null })));
  const { rows: res } = await admin.query(
    "select id, status, settled_amount::int as settled from billing.credit_reservations where org_id = $1 order by id", [orgId]);
  expect(res, `reservations after ${step}`).toEqual(
    [...m.reservations].sort((a, b) => (a.id < b.id ? -1 : 1)).map((r) => ({ id: r.id, status: r.status, settled: r.settled })));
}

/** Runs a database call the model says must be refused with `code` (or must succeed when null). */
async function expectOutcome<T>(call: Promise<T>, code: string | null, step: string): Promise<T | undefined> {
  const out = await call.then((v) => ({ ok: true as const, v }), (e: { code?: string; message: string }) => ({ ok: false as const, e }));
  if (code === null) {
    expect(out.ok ? null : `${out.e.code}: ${out.e.message}`, `${step} should succeed`).toBeNull();
    return out.ok ? out.v : undefined;
  }
  expect(out.ok ? "succeeded" : out.e.code, `${step} should be refused with ${code}`).toBe(code);
  return undefined;
}

type Keyed =
  | { fn: "grant_credits"; args: Record<string, unknown>; amount: number; result: unknown }
  | { fn: "reserve_credits" | "charge_credits" | "claw_back_credits"; args: Record<string, unknown>; amount: number; result: unknown };

describe("credits ledger properties", () => {
  it("random operation sequences match an independent model, step by step", async () => {
    await fc.assert(
      fc.asyncProperty(fc.array(cmd, { minLength: 10, maxLength: 40 }), async (cmds) => {
        const { orgId } = await createTeam("Prop");
        const m = new Model();
        // The simulated clock starts 30 minutes from now, so however slow the run, every grant and
        // reservation is made before its expiry. Clock minute c is start + c minutes + 30 s; grants
        // and reservations made to expire at minute X expire at start + X minutes + 5 s, so the job
        // at minute c expires them iff X <= c.
        const start = Date.now() + 30 * 60_000;
        const at = (minute: number, seconds: number) => new Date(start + minute * 60_000 + seconds * 1000);
        let clock = 0;
        const keyed: Keyed[] = [];
        for (const [i, c] of cmds.entries()) {
          const step = `#${i} ${JSON.stringify(c)}`;
          const k = crypto.randomUUID();
          if (c.kind === "grant") {
            const expiresAt = c.expiresInMin === null ? null : clock + c.expiresInMin;
            const args = {
              p_org_id: orgId, p_category: c.category, p_amount: c.amount, p_idempotency_key: k,
              p_priority: c.priority, p_expires_at: expiresAt === null ? null : at(expiresAt, 5).toISOString(),
            };
            const rows = await expectOutcome(op<{ grant_credits: string }>("grant_credits", args), null, step);
            const id = rows![0].grant_credits;
            m.grant(id, c.amount, c.category, c.priority, expiresAt);
            keyed.push({ fn: "grant_credits", args, amount: c.amount, result: id });
          } else if (c.kind === "reserve") {
            const expiresAt = clock + c.ttlMin;
            // The ttl that lands on minute expiresAt (+5 s) from the database's now.
            const ttl = `${Math.round((at(expiresAt, 5).getTime() - Date.now()) / 1000)} seconds`;
            const args = { p_org_id: orgId, p_amount: c.amount, p_idempotency_key: k, p_ttl: ttl };
            const fits = m.canReserve(c.amount);
            const rows = await expectOutcome(op<{ id: string }>("reserve_credits", args), fits ? null : "PT402", step);
            if (fits) {
              m.reserve(rows![0].id, c.amount, expiresAt);
              keyed.push({ fn: "reserve_credits", args, amount: c.amount, result: rows![0].id });
            }
          } else if (c.kind === "settle" || c.kind === "void") {
            if (!m.reservations.length) continue;
            const r = m.reservations[c.pick % m.reservations.length];
            const consume = c.kind === "settle" ? Math.floor(r.amount * c.fraction) : 0;
            let refusal: string | null = null;
            try {
              m.resolve(r, c.kind === "settle" ? "posted" : "voided", consume);
            } catch (e) {
              if (!(e instanceof Refusal)) throw e;
              refusal = e.code;
            }
            await expectOutcome(
              c.kind === "settle" ? op("settle_credits", { p_reservation_id: r.id, p_amount: consume }) : op("void_credits", { p_reservation_id: r.id }),
              refusal, step);
          } else if (c.kind === "charge") {
            const fits = c.amount <= m.available;
            const args = { p_org_id: orgId, p_amount: c.amount, p_idempotency_key: k };
            const rows = await expectOutcome(op<{ id: string }>("charge_credits", args), fits ? null : "PT402", step);
            if (fits) {
              m.charge(c.amount);
              keyed.push({ fn: "charge_credits", args, amount: c.amount, result: rows![0].id });
            }
          } else if (c.kind === "expire") {
            clock += c.advanceMin;
            await expectOutcome(op("expire_credits", { p_now: at(clock, 30).toISOString(), p_org_id: orgId }), null, step);
            m.expire(clock);
          } else if (c.kind === "clawback") {
            const grantId = c.pick === null || !m.grants.length ? null : m.grants[c.pick % m.grants.length].id;
            const args = { p_org_id: orgId, p_amount: c.amount, p_idempotency_key: k, p_grant_id: grantId };
            const rows = await expectOutcome(op("claw_back_credits", args), null, step);
            const expected = m.clawBack(c.amount, grantId);
            expect(rows![0], step).toEqual(expected);
            keyed.push({ fn: "claw_back_credits", args, amount: c.amount, result: expected });
          } else if (c.kind === "replay") {
            // An earlier keyed call again: the same amount answers the original and moves
            // nothing; another amount is refused with 22023 and moves nothing.
            if (!keyed.length) continue;
            const prev = keyed[c.pick % keyed.length];
            const args = { ...prev.args, p_amount: c.otherAmount ? prev.amount + 1 : prev.amount };
            const rows = await expectOutcome(op<Record<string, unknown>>(prev.fn, args), c.otherAmount ? "22023" : null, step);
            if (rows) {
              const answer = prev.fn === "grant_credits" ? rows[0].grant_credits : prev.fn === "claw_back_credits" ? rows[0] : rows[0].id;
              expect(answer, `${step}: a replay answers the original`).toEqual(prev.result);
            }
          }
          await expectMatchesModel(orgId, m, step);
        }
        await expectLedgerConsistent(orgId);
      }),
      { numRuns: 40 },
    );
  });
});
