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

  it("draws across all four categories by default priority (promotional, subscription, pack, manual); p_priority overrides it", async () => {
    const { orgId } = await createTeam();
    const grant = async (category: string, amount: number, priority?: number) =>
      (await op<{ grant_credits: string }>("grant_credits", {
        p_org_id: orgId, p_category: category, p_amount: amount, p_idempotency_key: key(), ...(priority ? { p_priority: priority } : {}),
      }))[0].grant_credits;
    // Made in the reverse of their draw order, none expiring.
    const manual = await grant("manual", 5);
    const pack = await grant("pack", 5);
    const sub = await grant("subscription", 5);
    const promo = await grant("promotional", 5);
    const [res] = await op<{ id: string }>("reserve_credits", { p_org_id: orgId, p_amount: 18, p_idempotency_key: key() });
    const { rows } = await admin.query("select grant_id, amount::int, draw_order from billing.credit_allocations where reservation_id = $1 order by draw_order", [res.id]);
    expect(rows).toEqual([
      { grant_id: promo, amount: 5, draw_order: 1 },
      { grant_id: sub, amount: 5, draw_order: 2 },
      { grant_id: pack, amount: 5, draw_order: 3 },
      { grant_id: manual, amount: 3, draw_order: 4 },
    ]);
    // Settling 12 spends them in that order.
    await op("settle_credits", { p_reservation_id: res.id, p_amount: 12 });
    const left = async (id: string) => (await admin.query("select remaining::int from billing.credit_grants where id = $1", [id])).rows[0].remaining;
    expect([await left(promo), await left(sub), await left(pack), await left(manual)]).toEqual([0, 0, 3, 5]);
    // A manual grant with p_priority 1 goes before everything, a promotional one with 90 after.
    const first = await grant("manual", 4, 1);
    const last = await grant("promotional", 4, 90);
    await op("charge_credits", { p_org_id: orgId, p_amount: 6, p_idempotency_key: key() });
    expect([await left(first), await left(pack), await left(manual), await left(last)]).toEqual([0, 1, 5, 4]);
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
    // Ten keys, each raced three times at once: one reservation per key, every caller gets it.
    const keys = Array.from({ length: 10 }, key);
    const raced = await Promise.all(keys.flatMap((k) => [1, 2, 3].map(async () =>
      ({ k, id: (await op<{ id: string }>("reserve_credits", { p_org_id: orgId, p_amount: 2, p_idempotency_key: k }))[0].id }))));
    const idOf = new Map<string, string>();
    for (const { k, id } of raced) {
      if (!idOf.has(k)) idOf.set(k, id);
      expect(id, `every caller of key ${k} gets the one reservation`).toBe(idOf.get(k));
    }
    expect(new Set(idOf.values()).size).toBe(10);
    expect(await account(orgId)).toEqual({ balance: 20, reserved: 20, debt: 0 });
    // Each reservation settled (1 credit) twice at once; the odd ones also voided at the same time.
    const ids = [...idOf.values()];
    const outcomes = await Promise.allSettled(ids.flatMap((id, i) => [
      op("settle_credits", { p_reservation_id: id, p_amount: 1 }),
      op("settle_credits", { p_reservation_id: id, p_amount: 1 }),
      ...(i % 2 ? [op("void_credits", { p_reservation_id: id })] : []),
    ]));
    // The only refusal is the loser of a settle/void race: 22023.
    for (const o of outcomes) if (o.status === "rejected") expect((o.reason as { code: string }).code).toBe("22023");
    const { rows } = await admin.query("select status, count(*)::int as n from billing.credit_reservations where org_id = $1 group by status", [orgId]);
    const n = Object.fromEntries(rows.map((r) => [r.status, r.n]));
    expect((n.posted ?? 0) + (n.voided ?? 0)).toBe(10);
    expect(n.posted).toBeGreaterThanOrEqual(5); // the even ones had no void racing them
    // Exactly one credit per posted reservation was spent, whatever the interleaving.
    expect(await account(orgId)).toEqual({ balance: 20 - n.posted, reserved: 0, debt: 0 });
    const { rows: [e] } = await admin.query("select count(*)::int as n from billing.credit_entries where org_id = $1 and operation = 'reserve'", [orgId]);
    expect(e.n, "one reserve entry per key").toBe(10);
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

  it("an expiring grant never takes credits below what is reserved: it keeps what the reservation needs until it resolves", async () => {
    const { orgId } = await createTeam();
    const expires = new Date(Date.now() + 60_000).toISOString();
    const [{ grant_credits: promo }] = await op<{ grant_credits: string }>("grant_credits", { p_org_id: orgId, p_category: "promotional", p_amount: 10, p_idempotency_key: key(), p_expires_at: expires });
    const [res] = await op<{ id: string }>("reserve_credits", { p_org_id: orgId, p_amount: 6, p_idempotency_key: key(), p_ttl: "1 hour" });
    await op("expire_credits", { p_now: new Date(Date.now() + 120_000).toISOString(), p_org_id: orgId });
    // 4 expired; 6 kept on the expired grant for the reservation, and none of it is available.
    expect(await account(orgId)).toEqual({ balance: 6, reserved: 6, debt: 0 });
    const { rows: [g] } = await admin.query("select remaining::int, expired_at is not null as expired from billing.credit_grants where id = $1", [promo]);
    expect(g).toEqual({ remaining: 6, expired: true });
    expect((await admin.query("select kept_expired::int from billing.credit_accounts where org_id = $1", [orgId])).rows[0].kept_expired).toBe(6);
    await expectSqlError(op("charge_credits", { p_org_id: orgId, p_amount: 1, p_idempotency_key: key() }), "PT402");
    await expectLedgerConsistent(orgId);
    // Settling 2 spends them from the expired grant; the 4 released expire at once.
    await op("settle_credits", { p_reservation_id: res.id, p_amount: 2 });
    expect(await account(orgId)).toEqual({ balance: 0, reserved: 0, debt: 0 });
    const { rows: entries } = await admin.query(
      "select kind, balance_delta::int, reserved_delta::int from billing.credit_entries where org_id = $1 and reservation_id = $2 and operation = 'resolve' order by id",
      [orgId, res.id]);
    expect(entries).toEqual([
      { kind: "settle", balance_delta: -2, reserved_delta: -2 },
      { kind: "release", balance_delta: 0, reserved_delta: -4 },
      { kind: "expire", balance_delta: -4, reserved_delta: 0 },
    ]);
    await expectLedgerConsistent(orgId);
  });

  it("expired credits kept for a reservation expire as soon as a new grant covers it, and are never spendable", async () => {
    const { orgId } = await createTeam();
    const expires = new Date(Date.now() + 60_000).toISOString();
    await op("grant_credits", { p_org_id: orgId, p_category: "promotional", p_amount: 10, p_idempotency_key: key(), p_expires_at: expires });
    const [res] = await op<{ id: string }>("reserve_credits", { p_org_id: orgId, p_amount: 6, p_idempotency_key: key(), p_ttl: "1 hour" });
    await op("expire_credits", { p_now: new Date(Date.now() + 120_000).toISOString(), p_org_id: orgId });
    expect(await account(orgId)).toEqual({ balance: 6, reserved: 6, debt: 0 });
    // A pack of 100 now covers the reservation: the 6 expired credits go, and 94 are available.
    const g = key();
    await op("grant_credits", { p_org_id: orgId, p_category: "pack", p_amount: 100, p_idempotency_key: g });
    expect(await account(orgId)).toEqual({ balance: 100, reserved: 6, debt: 0 });
    const { rows: [shed] } = await admin.query(
      "select kind, balance_delta::int from billing.credit_entries where org_id = $1 and operation = 'grant' and idempotency_key = $2 and kind = 'expire'", [orgId, g]);
    expect(shed).toEqual({ kind: "expire", balance_delta: -6 });
    // Only the 94 can be charged; the reservation still settles in full from the pack.
    await expectSqlError(op("charge_credits", { p_org_id: orgId, p_amount: 95, p_idempotency_key: key() }), "PT402");
    await op("charge_credits", { p_org_id: orgId, p_amount: 94, p_idempotency_key: key() });
    await op("settle_credits", { p_reservation_id: res.id, p_amount: 6 });
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
  it("members read the balance; billing managers also the grants, reservations, allocations and ledger; strangers nothing", async () => {
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
    // Reservations and the allocations view: billing managers read their org's; a member without
    // billing.manage and a stranger read nothing.
    const [res] = await op<{ id: string }>("reserve_credits", { p_org_id: team.orgId, p_amount: 3, p_idempotency_key: key() });
    const reservations = "select id from billing.credit_reservations where org_id = $1";
    const allocations = "select reservation_id, amount::int from billing.credit_allocations where org_id = $1";
    expect(await select(team.admin, reservations, [team.orgId])).toEqual([{ id: res.id }]);
    expect(await select(team.owner, allocations, [team.orgId])).toEqual([{ reservation_id: res.id, amount: 3 }]);
    for (const who of [team.member, team.viewer, stranger]) {
      expect(await select(who, reservations, [team.orgId])).toEqual([]);
      expect(await select(who, allocations, [team.orgId])).toEqual([]);
    }
  });

  it("no client can call any ledger operation: authenticated (even the owner) and anon get 42501, and nothing changes", async () => {
    const team = await createTeam();
    const [{ grant_credits: grantId }] = await op<{ grant_credits: string }>("grant_credits", { p_org_id: team.orgId, p_category: "pack", p_amount: 100, p_idempotency_key: key() });
    const [res] = await op<{ id: string }>("reserve_credits", { p_org_id: team.orgId, p_amount: 10, p_idempotency_key: key(), p_ttl: "1 second" });
    const before = await ledgerSnapshot(team.orgId);
    const future = new Date(Date.now() + 3600_000).toISOString();
    // Every operation, with arguments that would change the ledger if it ran.
    const calls: [string, Record<string, unknown>][] = [
      ["grant_credits", { p_org_id: team.orgId, p_category: "manual", p_amount: 100, p_idempotency_key: key() }],
      ["reserve_credits", { p_org_id: team.orgId, p_amount: 1, p_idempotency_key: key() }],
      ["settle_credits", { p_reservation_id: res.id, p_amount: 10 }],
      ["void_credits", { p_reservation_id: res.id }],
      ["charge_credits", { p_org_id: team.orgId, p_amount: 1, p_idempotency_key: key() }],
      ["expire_credits", { p_now: future, p_org_id: team.orgId }],
      ["claw_back_credits", { p_org_id: team.orgId, p_amount: 50, p_idempotency_key: key(), p_grant_id: grantId }],
    ];
    // As PostgREST calls them (docs/testing.md): the caller's role and claims in one transaction.
    for (const [fn, args] of calls) {
      for (const who of [team.owner, team.admin, "anon" as const]) {
        const names = Object.keys(args);
        await expectSqlError(
          as(who, (c) => c.query(`select * from billing.${fn}(${names.map((n, i) => `${n} => $${i + 1}`).join(", ")})`, names.map((n) => args[n]))),
          // anon cannot even use the schema; members reach it but not the function.
          "42501", who === "anon" ? /permission denied for schema billing/ : new RegExp(`permission denied for function ${fn}`),
        );
      }
    }
    expect(await ledgerSnapshot(team.orgId)).toEqual(before);
    // The allowed case, the same call as the service role: it moves credits.
    await op("settle_credits", { p_reservation_id: res.id, p_amount: 10 });
    expect(await account(team.orgId)).toEqual({ balance: 90, reserved: 0, debt: 0 });
  });

  it("no client can write any ledger table: insert, update, delete (and truncate of the journal) are refused for members and anon, and nothing changes", async () => {
    const team = await createTeam();
    const [{ grant_credits: grantId }] = await op<{ grant_credits: string }>("grant_credits", { p_org_id: team.orgId, p_category: "pack", p_amount: 100, p_idempotency_key: key() });
    const [res] = await op<{ id: string }>("reserve_credits", { p_org_id: team.orgId, p_amount: 10, p_idempotency_key: key() });
    const before = await ledgerSnapshot(team.orgId);
    // One write of each kind per table (and the allocations view), each naming a real row.
    const writes: Record<string, [string, unknown[]][]> = {
      credit_accounts: [
        ["insert into billing.credit_accounts (org_id, balance) values ($1, 10)", [crypto.randomUUID()]],
        ["update billing.credit_accounts set balance = 1000000 where org_id = $1", [team.orgId]],
        ["delete from billing.credit_accounts where org_id = $1", [team.orgId]],
      ],
      credit_grants: [
        ["insert into billing.credit_grants (org_id, category, amount, remaining) values ($1, 'manual', 10, 10)", [team.orgId]],
        ["update billing.credit_grants set remaining = 1 where id = $1", [grantId]],
        ["delete from billing.credit_grants where id = $1", [grantId]],
      ],
      credit_reservations: [
        ["insert into billing.credit_reservations (org_id, amount, idempotency_key, expires_at) values ($1, 1, 'k', now())", [team.orgId]],
        ["update billing.credit_reservations set status = 'voided', resolved_at = now() where id = $1", [res.id]],
        ["delete from billing.credit_reservations where id = $1", [res.id]],
      ],
      credit_allocations: [
        ["insert into billing.credit_allocations (reservation_id, grant_id, org_id, amount, draw_order) values ($1, $2, $3, 1, 1)", [res.id, grantId, team.orgId]],
        ["update billing.credit_allocations set amount = 1 where reservation_id = $1", [res.id]],
        ["delete from billing.credit_allocations where reservation_id = $1", [res.id]],
      ],
      credit_entries: [
        [`insert into billing.credit_entries (org_id, operation, kind, balance_delta, reserved_delta, debt_delta, balance_after, reserved_after, debt_after, idempotency_key)
          values ($1, 'grant', 'grant', 10, 0, 0, 110, 10, 0, 'k')`, [team.orgId]],
        ["update billing.credit_entries set balance_delta = 0 where org_id = $1", [team.orgId]],
        ["delete from billing.credit_entries where org_id = $1", [team.orgId]],
        ["truncate billing.credit_entries", []],
      ],
    };
    for (const [table, list] of Object.entries(writes)) {
      for (const [sql, params] of list) {
        for (const who of [team.owner, team.admin, "anon" as const]) {
          if (who === "anon") {
            await expectSqlError(as(who, (c) => c.query(sql, params)), "42501", /permission denied for schema billing/);
          } else if (table === "credit_allocations") {
            // A computed view is writable by no role: Postgres refuses before the grant is checked.
            await expectSqlError(as(who, (c) => c.query(sql, params)), "55000", /cannot (insert into|update|delete from) view "credit_allocations"/);
          } else {
            await expectSqlError(as(who, (c) => c.query(sql, params)), "42501", new RegExp(`permission denied for table ${table}`));
          }
        }
      }
    }
    expect(await ledgerSnapshot(team.orgId)).toEqual(before);
    // The allowed case for a client: reading, as a billing manager, what was refused to write.
    expect(await select(team.admin, "select grant_id, amount::int from billing.credit_allocations where reservation_id = $1", [res.id]))
      .toEqual([{ grant_id: grantId, amount: 10 }]);
  });

  it("the journal refuses update, delete and truncate from every role while its triggers are enabled, the database owner included (42501)", async () => {
    const { orgId } = await createTeam();
    await op("grant_credits", { p_org_id: orgId, p_category: "manual", p_amount: 7, p_idempotency_key: key() });
    const before = await ledgerSnapshot(orgId);
    // The test's connection is the database owner (postgres), the role migrations run as.
    const { rows: [me] } = await admin.query("select current_user as role, (select tableowner from pg_tables where schemaname = 'billing' and tablename = 'credit_entries') as owner");
    expect(me.role).toBe(me.owner);
    await expectSqlError(admin.query("update billing.credit_entries set balance_delta = 0 where org_id = $1", [orgId]), "42501", /append-only/);
    await expectSqlError(admin.query("delete from billing.credit_entries where org_id = $1", [orgId]), "42501", /append-only/);
    await expectSqlError(admin.query("truncate billing.credit_entries"), "42501", /append-only/);
    // service_role, the role the operations are granted to, is refused the same way.
    for (const sql of ["update billing.credit_entries set balance_delta = 0 where org_id = $1", "delete from billing.credit_entries where org_id = $1"]) {
      await expectSqlError(asServiceRole((c) => c.query(sql, [orgId])), "42501");
    }
    await expectSqlError(asServiceRole((c) => c.query("truncate billing.credit_entries")), "42501");
    expect(await ledgerSnapshot(orgId)).toEqual(before);
    // What does not hold: the owner can disable the triggers (shown here, rolled back). The
    // journal is append-only against every role the API uses, not against the table's owner.
    const c = await admin.connect();
    try {
      await c.query("begin");
      await c.query("alter table billing.credit_entries disable trigger credit_entries_append_only");
      const del = await c.query("delete from billing.credit_entries where org_id = $1", [orgId]);
      expect(del.rowCount).toBe(1);
    } finally {
      await c.query("rollback");
      c.release();
    }
    expect(await ledgerSnapshot(orgId)).toEqual(before);
  });
});

/** Every ledger row of an org, to show that a refused call changed nothing. */
async function ledgerSnapshot(orgId: string) {
  const q = async (sql: string) => (await admin.query(sql, [orgId])).rows;
  return {
    account: await q("select balance::text, reserved::text, debt::text, kept_expired::text, updated_at from billing.credit_accounts where org_id = $1"),
    grants: await q("select id, remaining::text, expired_at from billing.credit_grants where org_id = $1 order by id"),
    reservations: await q("select id, status, settled_amount::text, resolved_at from billing.credit_reservations where org_id = $1 order by id"),
    entries: await q("select id::text, kind, balance_delta::text from billing.credit_entries where org_id = $1 order by id"),
  };
}

/** Runs fn in one transaction as service_role (what a server with the service-role key is). */
async function asServiceRole<T>(fn: (c: import("pg").PoolClient) => Promise<T>): Promise<T> {
  const c = await admin.connect();
  try {
    await c.query("begin");
    await c.query("set local role service_role");
    return await fn(c);
  } finally {
    await c.query("rollback");
    c.release();
  }
}
