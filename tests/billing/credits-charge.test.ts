// billing.charge_credits: one-step charges for work priced up front. Same invariants, draw
// order, idempotency and journal as reserve+settle, with no reservation.
import { describe, expect, it } from "vitest";
import { admin, as, createTeam, expectSqlError } from "../helpers/db.ts";
import { account, expectLedgerConsistent, expectOnlyWhatFits, grantsInDrawOrder, op } from "../helpers/credits.ts";

const key = () => crypto.randomUUID();

interface Entry {
  id: string;
  operation: string;
  kind: string;
  balance_delta: string;
  reserved_delta: string;
  balance_after: string;
  reservation_id: string | null;
  idempotency_key: string;
  ref: string | null;
}

async function ledgerSize(orgId: string) {
  const { rows } = await admin.query(
    `select (select count(*)::int from billing.credit_entries where org_id = $1) as entries,
            (select count(*)::int from billing.credit_reservations where org_id = $1) as reservations`,
    [orgId],
  );
  return rows[0] as { entries: number; reservations: number };
}

async function remaining(grantId: string) {
  const { rows } = await admin.query("select remaining::int from billing.credit_grants where id = $1", [grantId]);
  return (rows[0] as { remaining: number }).remaining;
}

describe("charge_credits", () => {
  it("spends at once: one settle entry (operation charge) with the ref, no reservation", async () => {
    const { orgId } = await createTeam();
    await op("grant_credits", { p_org_id: orgId, p_category: "manual", p_amount: 100, p_idempotency_key: key() });
    const before = await ledgerSize(orgId);
    const k = key();
    const [entry] = await op<Entry>("charge_credits", { p_org_id: orgId, p_amount: 7, p_idempotency_key: k, p_ref: "ai.job:123" });
    expect(entry).toMatchObject({
      operation: "charge", kind: "settle", balance_delta: "-7", reserved_delta: "0", balance_after: "93",
      reservation_id: null, idempotency_key: k, ref: "ai.job:123",
    });
    expect(await account(orgId)).toEqual({ balance: 93, reserved: 0, debt: 0 });
    expect(await ledgerSize(orgId)).toEqual({ entries: before.entries + 1, reservations: before.reservations });
    await expectLedgerConsistent(orgId);
  });

  it("a replay with the same key and amount returns the original entry and charges once", async () => {
    const { orgId } = await createTeam();
    await op("grant_credits", { p_org_id: orgId, p_category: "manual", p_amount: 10, p_idempotency_key: key() });
    const k = key();
    const [first] = await op<Entry>("charge_credits", { p_org_id: orgId, p_amount: 10, p_idempotency_key: k });
    // Even with nothing left to spend, the replay answers with what was done.
    const [again] = await op<Entry>("charge_credits", { p_org_id: orgId, p_amount: 10, p_idempotency_key: k });
    expect(again).toEqual(first);
    expect(await account(orgId)).toEqual({ balance: 0, reserved: 0, debt: 0 });
    // And with credits available again, still once.
    await op("grant_credits", { p_org_id: orgId, p_category: "manual", p_amount: 50, p_idempotency_key: key() });
    const [third] = await op<Entry>("charge_credits", { p_org_id: orgId, p_amount: 10, p_idempotency_key: k });
    expect(third).toEqual(first);
    expect(await account(orgId)).toEqual({ balance: 50, reserved: 0, debt: 0 });
    await expectLedgerConsistent(orgId);
  });

  it("the same key with a different amount is refused with 22023 and changes nothing", async () => {
    const { orgId } = await createTeam();
    await op("grant_credits", { p_org_id: orgId, p_category: "manual", p_amount: 100, p_idempotency_key: key() });
    const k = key();
    await op("charge_credits", { p_org_id: orgId, p_amount: 5, p_idempotency_key: k });
    const before = await ledgerSize(orgId);
    await expectSqlError(op("charge_credits", { p_org_id: orgId, p_amount: 6, p_idempotency_key: k }), "22023", /charge of 5 credits, not 6/);
    expect(await account(orgId)).toEqual({ balance: 95, reserved: 0, debt: 0 });
    expect(await ledgerSize(orgId)).toEqual(before);
    await expectLedgerConsistent(orgId);
  });

  it("a charge key is its own namespace: a reservation or grant with the same key is a different operation", async () => {
    const { orgId } = await createTeam();
    const k = key();
    await op("grant_credits", { p_org_id: orgId, p_category: "manual", p_amount: 100, p_idempotency_key: k });
    await op("reserve_credits", { p_org_id: orgId, p_amount: 10, p_idempotency_key: k });
    await op("charge_credits", { p_org_id: orgId, p_amount: 20, p_idempotency_key: k });
    expect(await account(orgId)).toEqual({ balance: 80, reserved: 10, debt: 0 });
    await expectLedgerConsistent(orgId);
  });

  it("too few available credits (held ones count as taken): PT402 and nothing changes", async () => {
    const { orgId } = await createTeam();
    await op("grant_credits", { p_org_id: orgId, p_category: "manual", p_amount: 10, p_idempotency_key: key() });
    await op("reserve_credits", { p_org_id: orgId, p_amount: 8, p_idempotency_key: key() });
    const before = await ledgerSize(orgId);
    await expectSqlError(op("charge_credits", { p_org_id: orgId, p_amount: 3, p_idempotency_key: key() }), "PT402", /2 available, 3 needed/);
    expect(await account(orgId)).toEqual({ balance: 10, reserved: 8, debt: 0 });
    expect(await ledgerSize(orgId)).toEqual(before);
    // An org that never had credits: PT402 too, and no account appears.
    const other = await createTeam();
    await expectSqlError(op("charge_credits", { p_org_id: other.orgId, p_amount: 1, p_idempotency_key: key() }), "PT402");
    expect((await admin.query("select count(*)::int as n from billing.credit_accounts where org_id = $1", [other.orgId])).rows[0].n).toBe(0);
    await expectLedgerConsistent(orgId);
  });

  it("bad input is refused with 22023 and changes nothing", async () => {
    const { orgId } = await createTeam();
    await op("grant_credits", { p_org_id: orgId, p_category: "manual", p_amount: 10, p_idempotency_key: key() });
    await expectSqlError(op("charge_credits", { p_org_id: orgId, p_amount: 0, p_idempotency_key: key() }), "22023");
    await expectSqlError(op("charge_credits", { p_org_id: orgId, p_amount: -5, p_idempotency_key: key() }), "22023");
    await expectSqlError(op("charge_credits", { p_org_id: orgId, p_amount: null, p_idempotency_key: key() }), "22023");
    await expectSqlError(op("charge_credits", { p_org_id: orgId, p_amount: 1, p_idempotency_key: null }), "22023");
    await expectSqlError(op("charge_credits", { p_org_id: orgId, p_amount: 1, p_idempotency_key: "" }), "22023");
    expect(await account(orgId)).toEqual({ balance: 10, reserved: 0, debt: 0 });
    await expectLedgerConsistent(orgId);
  });

  it("draws in the order settle does: priority, then earliest expiry; a pending reservation pins no grant, only its amount", async () => {
    const { orgId } = await createTeam();
    const { pack, promoLater, promoSoon } = await grantsInDrawOrder(orgId);
    // One that the first grant covers alone.
    await op("charge_credits", { p_org_id: orgId, p_amount: 2, p_idempotency_key: key() });
    expect(await remaining(promoSoon)).toBe(3);
    // A reservation of 2 holds on the account: no grant changes.
    const [res] = await op<{ id: string }>("reserve_credits", { p_org_id: orgId, p_amount: 2, p_idempotency_key: key() });
    expect([await remaining(promoSoon), await remaining(promoLater), await remaining(pack)]).toEqual([3, 5, 10]);
    // One that spans grants, in draw order: 3 from promoSoon, 5 from promoLater, 3 from pack.
    await op("charge_credits", { p_org_id: orgId, p_amount: 11, p_idempotency_key: key() });
    expect([await remaining(promoSoon), await remaining(promoLater), await remaining(pack)]).toEqual([0, 0, 7]);
    expect(await account(orgId)).toEqual({ balance: 7, reserved: 2, debt: 0 });
    // The 2 reserved are not available to a charge: one more than the 5 available is refused.
    await expectSqlError(op("charge_credits", { p_org_id: orgId, p_amount: 6, p_idempotency_key: key() }), "PT402");
    // The reservation still settles in full, from the pack.
    await op("settle_credits", { p_reservation_id: res.id, p_amount: 2 });
    expect(await remaining(pack)).toBe(5);
    expect(await account(orgId)).toEqual({ balance: 5, reserved: 0, debt: 0 });
    await expectLedgerConsistent(orgId);
  });

  it("50 parallel charges of 1 against a balance of 10: exactly 10 succeed", async () => {
    const { orgId } = await createTeam();
    await op("grant_credits", { p_org_id: orgId, p_category: "manual", p_amount: 10, p_idempotency_key: key() });
    await expectOnlyWhatFits("charge_credits", orgId, 50, 10);
    expect(await account(orgId)).toEqual({ balance: 0, reserved: 0, debt: 0 });
    await expectLedgerConsistent(orgId);
  });

  it("the same key raced 20 times charges once and every caller gets the same entry", async () => {
    const { orgId } = await createTeam();
    await op("grant_credits", { p_org_id: orgId, p_category: "manual", p_amount: 100, p_idempotency_key: key() });
    const k = key();
    const results = await Promise.all(
      Array.from({ length: 20 }, () => op<Entry>("charge_credits", { p_org_id: orgId, p_amount: 3, p_idempotency_key: k })),
    );
    expect(new Set(results.map(([e]) => e.id)).size).toBe(1);
    expect(await account(orgId)).toEqual({ balance: 97, reserved: 0, debt: 0 });
    await expectLedgerConsistent(orgId);
  });

  it("only the service role may charge: members, even owners, get 42501 and nothing changes", async () => {
    const team = await createTeam();
    await op("grant_credits", { p_org_id: team.orgId, p_category: "manual", p_amount: 10, p_idempotency_key: key() });
    for (const user of [team.owner, team.member]) {
      await expectSqlError(
        as(user, (c) => c.query("select * from billing.charge_credits($1, 1, $2)", [team.orgId, key()])),
        "42501",
      );
    }
    expect(await account(team.orgId)).toEqual({ balance: 10, reserved: 0, debt: 0 });
    // The service role may (the allowed case, through the same kind of call).
    await op("charge_credits", { p_org_id: team.orgId, p_amount: 1, p_idempotency_key: key() });
    expect(await account(team.orgId)).toEqual({ balance: 9, reserved: 0, debt: 0 });
  });
});
