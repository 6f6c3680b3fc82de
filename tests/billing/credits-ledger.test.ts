// The credits ledger: two-phase reservations, draw order, expiry, claw-backs, idempotency,
// concurrency, and who may read what.
import { describe, expect, it } from "vitest";
import { admin, as, createTeam, createUser, expectSqlError, select } from "../helpers/db.ts";
import { account, expectLedgerConsistent, expectOnlyWhatFits, grantsInDrawOrder, op } from "../helpers/credits.ts";

const key = () => crypto.randomUUID();

describe("reserve and settle", () => {
  it("settling less than reserved spends that much and releases the rest", async () => {
    const { orgId } = await createTeam();
    await op("grant_credits", { p_org_id: orgId, p_category: "manual", p_amount: 100, p_idempotency_key: key() });
    const [res] = await op<{ id: string; status: string }>("reserve_credits", { p_org_id: orgId, p_amount: 30, p_idempotency_key: key() });
    expect(await account(orgId)).toEqual({ balance: 100, reserved: 30, debt: 0 });
    const [posted] = await op<{ status: string; settled_amount: string }>("settle_credits", { p_reservation_id: res.id, p_amount: 12 });
    expect(posted).toMatchObject({ status: "posted", settled_amount: "12" });
    expect(await account(orgId)).toEqual({ balance: 88, reserved: 0, debt: 0 });
    await expectLedgerConsistent(orgId);
  });

  it("draws by priority, then earliest expiry", async () => {
    const { orgId } = await createTeam();
    const { pack, promoLater, promoSoon } = await grantsInDrawOrder(orgId);
    const [res] = await op<{ id: string }>("reserve_credits", { p_org_id: orgId, p_amount: 12, p_idempotency_key: key() });
    const { rows } = await admin.query("select grant_id, amount::int from billing.credit_allocations where reservation_id = $1 order by draw_order", [res.id]);
    expect(rows).toEqual([
      { grant_id: promoSoon, amount: 5 },
      { grant_id: promoLater, amount: 5 },
      { grant_id: pack, amount: 2 },
    ]);
    await expectLedgerConsistent(orgId);
  });

  it("too few credits: PT402 (HTTP 402) and nothing changes", async () => {
    const { orgId } = await createTeam();
    await op("grant_credits", { p_org_id: orgId, p_category: "manual", p_amount: 5, p_idempotency_key: key() });
    await expectSqlError(op("reserve_credits", { p_org_id: orgId, p_amount: 6, p_idempotency_key: key() }), "PT402", /insufficient credits/);
    expect(await account(orgId)).toEqual({ balance: 5, reserved: 0, debt: 0 });
  });

  it("bad input is refused with 22023 and changes nothing", async () => {
    const { orgId } = await createTeam();
    await op("grant_credits", { p_org_id: orgId, p_category: "manual", p_amount: 5, p_idempotency_key: key() });
    await expectSqlError(op("grant_credits", { p_org_id: orgId, p_category: "manual", p_amount: 0, p_idempotency_key: key() }), "22023");
    await expectSqlError(op("grant_credits", { p_org_id: orgId, p_category: "gift", p_amount: 5, p_idempotency_key: key() }), "23514");
    await expectSqlError(op("reserve_credits", { p_org_id: orgId, p_amount: -1, p_idempotency_key: key() }), "22023");
    const [res] = await op<{ id: string }>("reserve_credits", { p_org_id: orgId, p_amount: 3, p_idempotency_key: key() });
    await expectSqlError(op("settle_credits", { p_reservation_id: res.id, p_amount: 4 }), "22023");
    await expectSqlError(op("settle_credits", { p_reservation_id: crypto.randomUUID(), p_amount: 1 }), "PT404");
    expect(await account(orgId)).toEqual({ balance: 5, reserved: 3, debt: 0 });
    await expectLedgerConsistent(orgId);
  });
});

describe("idempotency", () => {
  it("the same key applied twice moves credits once, for every operation", async () => {
    const { orgId } = await createTeam();
    const g = key();
    await op("grant_credits", { p_org_id: orgId, p_category: "manual", p_amount: 50, p_idempotency_key: g });
    await op("grant_credits", { p_org_id: orgId, p_category: "manual", p_amount: 50, p_idempotency_key: g });
    const r = key();
    const [a] = await op<{ id: string }>("reserve_credits", { p_org_id: orgId, p_amount: 10, p_idempotency_key: r });
    const [b] = await op<{ id: string }>("reserve_credits", { p_org_id: orgId, p_amount: 10, p_idempotency_key: r });
    expect(b.id).toBe(a.id);
    await op("settle_credits", { p_reservation_id: a.id, p_amount: 4 });
    await op("settle_credits", { p_reservation_id: a.id, p_amount: 4 });
    expect(await account(orgId)).toEqual({ balance: 46, reserved: 0, debt: 0 });
    await expectSqlError(op("reserve_credits", { p_org_id: orgId, p_amount: 11, p_idempotency_key: r }), "22023", /different amount/);
    await expectSqlError(op("void_credits", { p_reservation_id: a.id }), "22023", /already posted/);
    await expectLedgerConsistent(orgId);
  });

  it("a source grants once (an invoice paid twice)", async () => {
    const { orgId } = await createTeam();
    await op("grant_credits", { p_org_id: orgId, p_category: "subscription", p_amount: 1000, p_idempotency_key: key(), p_source_ref: "in_123" });
    await op("grant_credits", { p_org_id: orgId, p_category: "subscription", p_amount: 1000, p_idempotency_key: key(), p_source_ref: "in_123" });
    expect((await account(orgId)).balance).toBe(1000);
  });
});

describe("concurrency", () => {
  it("50 parallel reservations of 1 against a balance of 10: exactly 10 succeed", async () => {
    const { orgId } = await createTeam();
    await op("grant_credits", { p_org_id: orgId, p_category: "manual", p_amount: 10, p_idempotency_key: key() });
    await expectOnlyWhatFits("reserve_credits", orgId, 50, 10);
    expect(await account(orgId)).toEqual({ balance: 10, reserved: 10, debt: 0 });
    await expectLedgerConsistent(orgId);
  });

  it("concurrent settles, voids and duplicate keys never double-spend", async () => {
    const { orgId } = await createTeam();
    await op("grant_credits", { p_org_id: orgId, p_category: "manual", p_amount: 20, p_idempotency_key: key() });
    const reservations = await Promise.all(
      Array.from({ length: 10 }, () => op<{ id: string }>("reserve_credits", { p_org_id: orgId, p_amount: 2, p_idempotency_key: key() })),
    );
    await Promise.allSettled(reservations.flatMap(([r], i) => [
      op("settle_credits", { p_reservation_id: r.id, p_amount: 1 }),
      op(i % 2 ? "void_credits" : "settle_credits", i % 2 ? { p_reservation_id: r.id } : { p_reservation_id: r.id, p_amount: 1 }),
    ]));
    const acct = await account(orgId);
    expect(acct.reserved).toBe(0);
    // Each reservation either settled 1 or was voided: between 5 and 10 credits spent.
    expect(acct.balance).toBeGreaterThanOrEqual(10);
    expect(acct.balance).toBeLessThanOrEqual(15);
    await expectLedgerConsistent(orgId);
  });
});

describe("expiry", () => {
  it("a stale reservation expires and releases its credits, once", async () => {
    const { orgId } = await createTeam();
    await op("grant_credits", { p_org_id: orgId, p_category: "manual", p_amount: 10, p_idempotency_key: key() });
    const [res] = await op<{ id: string }>("reserve_credits", { p_org_id: orgId, p_amount: 4, p_idempotency_key: key(), p_ttl: "1 second" });
    const future = new Date(Date.now() + 60_000).toISOString();
    await op("expire_credits", { p_now: future, p_org_id: orgId });
    await op("expire_credits", { p_now: future, p_org_id: orgId });
    const { rows } = await admin.query("select status from billing.credit_reservations where id = $1", [res.id]);
    expect(rows[0].status).toBe("expired");
    expect(await account(orgId)).toEqual({ balance: 10, reserved: 0, debt: 0 });
    await expectSqlError(op("settle_credits", { p_reservation_id: res.id, p_amount: 1 }), "22023", /already expired/);
    await expectLedgerConsistent(orgId);
  });

  it("an expiring grant loses its unheld credits now and its held ones when they are released", async () => {
    const { orgId } = await createTeam();
    const expires = new Date(Date.now() + 60_000).toISOString();
    await op("grant_credits", { p_org_id: orgId, p_category: "promotional", p_amount: 10, p_idempotency_key: key(), p_expires_at: expires });
    const [res] = await op<{ id: string }>("reserve_credits", { p_org_id: orgId, p_amount: 6, p_idempotency_key: key(), p_ttl: "1 hour" });
    await op("expire_credits", { p_now: new Date(Date.now() + 120_000).toISOString(), p_org_id: orgId });
    expect(await account(orgId)).toEqual({ balance: 6, reserved: 6, debt: 0 });
    await op("settle_credits", { p_reservation_id: res.id, p_amount: 2 });
    expect(await account(orgId)).toEqual({ balance: 0, reserved: 0, debt: 0 });
    await expectLedgerConsistent(orgId);
  });
});

describe("refunds and disputes", () => {
  it("claws back what is unspent and records the rest as debt, repaid from the next grant", async () => {
    const { orgId } = await createTeam();
    const [{ grant_credits: pack }] = await op<{ grant_credits: string }>("grant_credits", { p_org_id: orgId, p_category: "pack", p_amount: 1000, p_idempotency_key: key() });
    const [res] = await op<{ id: string }>("reserve_credits", { p_org_id: orgId, p_amount: 700, p_idempotency_key: key() });
    await op("settle_credits", { p_reservation_id: res.id, p_amount: 700 });
    const refund = key();
    const [r1] = await op<{ clawed_back: string; debt: string }>("claw_back_credits", { p_org_id: orgId, p_amount: 1000, p_idempotency_key: refund, p_grant_id: pack });
    const [r2] = await op<{ clawed_back: string; debt: string }>("claw_back_credits", { p_org_id: orgId, p_amount: 1000, p_idempotency_key: refund, p_grant_id: pack });
    expect(r1).toEqual({ clawed_back: "300", debt: "700" });
    expect(r2).toEqual(r1);
    expect(await account(orgId)).toEqual({ balance: 0, reserved: 0, debt: 700 });
    await op("grant_credits", { p_org_id: orgId, p_category: "subscription", p_amount: 500, p_idempotency_key: key() });
    expect(await account(orgId)).toEqual({ balance: 0, reserved: 0, debt: 200 });
    await op("grant_credits", { p_org_id: orgId, p_category: "subscription", p_amount: 500, p_idempotency_key: key() });
    expect(await account(orgId)).toEqual({ balance: 300, reserved: 0, debt: 0 });
    await expectLedgerConsistent(orgId);
  });
});

describe("claw-back meeting held credits", () => {
  it("debt recorded for held credits is repaid when the hold is released, not left beside spendable credits", async () => {
    const { orgId } = await createTeam();
    const [{ grant_credits: pack }] = await op<{ grant_credits: string }>("grant_credits", { p_org_id: orgId, p_category: "pack", p_amount: 100, p_idempotency_key: key() });
    const [res] = await op<{ id: string }>("reserve_credits", { p_org_id: orgId, p_amount: 60, p_idempotency_key: key() });
    const [r] = await op<{ clawed_back: string; debt: string }>("claw_back_credits", { p_org_id: orgId, p_amount: 100, p_idempotency_key: key(), p_grant_id: pack });
    expect(r).toEqual({ clawed_back: "40", debt: "60" });
    await op("void_credits", { p_reservation_id: res.id });
    expect(await account(orgId)).toEqual({ balance: 0, reserved: 0, debt: 0 });
    await expectLedgerConsistent(orgId);
  });

  it("settling part of such a hold spends that part and repays debt from the rest", async () => {
    const { orgId } = await createTeam();
    await op("grant_credits", { p_org_id: orgId, p_category: "pack", p_amount: 100, p_idempotency_key: key() });
    const [res] = await op<{ id: string }>("reserve_credits", { p_org_id: orgId, p_amount: 60, p_idempotency_key: key() });
    await op("claw_back_credits", { p_org_id: orgId, p_amount: 100, p_idempotency_key: key() });
    await op("settle_credits", { p_reservation_id: res.id, p_amount: 20 });
    // 20 spent, 40 released and used to repay 40 of the 60 debt.
    expect(await account(orgId)).toEqual({ balance: 0, reserved: 0, debt: 20 });
    await expectLedgerConsistent(orgId);
  });
});

describe("access", () => {
  it("members read the balance; billing managers also the grants and ledger; strangers nothing", async () => {
    const team = await createTeam();
    const stranger = await createUser();
    await op("grant_credits", { p_org_id: team.orgId, p_category: "manual", p_amount: 7, p_idempotency_key: key() });
    const bal = "select balance::int from billing.credit_accounts where org_id = $1";
    const entries = "select count(*)::int as n from billing.credit_entries where org_id = $1";
    const grants = "select count(*)::int as n from billing.credit_grants where org_id = $1";
    expect(await select(team.viewer, bal, [team.orgId])).toEqual([{ balance: 7 }]);
    expect(await select(stranger, bal, [team.orgId])).toEqual([]);
    expect((await select(team.admin, entries, [team.orgId]))[0].n).toBe(1);
    expect((await select(team.admin, grants, [team.orgId]))[0].n).toBe(1);
    expect((await select(team.member, entries, [team.orgId]))[0].n).toBe(0);
    expect((await select(team.member, grants, [team.orgId]))[0].n).toBe(0);
  });

  it("no client can call the ledger operations or write its tables", async () => {
    const team = await createTeam();
    await expectSqlError(
      as(team.owner, (c) => c.query("select billing.grant_credits($1, 'manual', 100, 'k')", [team.orgId])),
      "42501",
    );
    await expectSqlError(as(team.owner, (c) => c.query("update billing.credit_accounts set balance = 1000000 where org_id = $1", [team.orgId])), "42501");
    await expectSqlError(as(team.owner, (c) => c.query("insert into billing.credit_accounts (org_id, balance) values ($1, 10)", [team.orgId])), "42501");
  });

  it("the journal is append-only, even for the database owner", async () => {
    const { orgId } = await createTeam();
    await op("grant_credits", { p_org_id: orgId, p_category: "manual", p_amount: 7, p_idempotency_key: key() });
    await expectSqlError(admin.query("update billing.credit_entries set balance_delta = 0 where org_id = $1", [orgId]), "42501");
    await expectSqlError(admin.query("delete from billing.credit_entries where org_id = $1", [orgId]), "42501");
  });
});
