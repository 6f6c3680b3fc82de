// Idempotency keys are per operation (finding 4), a reused key with another amount is refused,
// and the expiry job isolates one item's failure from the rest.
import { describe, expect, it } from "vitest";
import { admin, createTeam, expectSqlError } from "../helpers/db.ts";
import { account, expectLedgerConsistent, op } from "../helpers/credits.ts";

const key = () => crypto.randomUUID();

describe("keys are namespaced by operation", () => {
  it("a reservation keyed 'job-42:grant' does not swallow a later grant keyed 'reserve:job-42'", async () => {
    const { orgId } = await createTeam();
    await op("grant_credits", { p_org_id: orgId, p_category: "manual", p_amount: 100, p_idempotency_key: key() });
    await op("reserve_credits", { p_org_id: orgId, p_amount: 10, p_idempotency_key: "job-42:grant" });
    const [{ grant_credits: grantId }] = await op<{ grant_credits: string | null }>("grant_credits", {
      p_org_id: orgId, p_category: "manual", p_amount: 50, p_idempotency_key: "reserve:job-42",
    });
    expect(grantId).toMatch(/^[0-9a-f-]{36}$/);
    expect(await account(orgId)).toEqual({ balance: 150, reserved: 10, debt: 0 });
    await expectLedgerConsistent(orgId);
  });

  it("a grant keyed like a reservation's journal entries does not break settling it", async () => {
    const { orgId } = await createTeam();
    await op("grant_credits", { p_org_id: orgId, p_category: "pack", p_amount: 100, p_idempotency_key: key() });
    const [res] = await op<{ id: string }>("reserve_credits", { p_org_id: orgId, p_amount: 60, p_idempotency_key: key() });
    // A refund meets the held credits: 40 taken back, 60 owed.
    await op("claw_back_credits", { p_org_id: orgId, p_amount: 100, p_idempotency_key: key() });
    // A grant whose key is "res:<reservation id>" repays 10 of the debt. Its journal key used to be
    // the very key that releasing the reservation writes when it repays debt.
    await op("grant_credits", { p_org_id: orgId, p_category: "manual", p_amount: 10, p_idempotency_key: `res:${res.id}` });
    expect(await account(orgId)).toEqual({ balance: 60, reserved: 60, debt: 50 });
    const [voided] = await op<{ status: string }>("void_credits", { p_reservation_id: res.id });
    expect(voided.status).toBe("voided");
    expect(await account(orgId)).toEqual({ balance: 10, reserved: 0, debt: 0 });
    await expectLedgerConsistent(orgId);
  });
});

describe("a reused key with a different amount is an error", () => {
  it("grant_credits: same key and amount is a no-op; another amount is refused with 22023, nothing changed", async () => {
    const { orgId } = await createTeam();
    const k = key();
    const [{ grant_credits: first }] = await op<{ grant_credits: string }>("grant_credits", { p_org_id: orgId, p_category: "manual", p_amount: 30, p_idempotency_key: k });
    const [{ grant_credits: again }] = await op<{ grant_credits: string }>("grant_credits", { p_org_id: orgId, p_category: "manual", p_amount: 30, p_idempotency_key: k });
    expect(again).toBe(first);
    await expectSqlError(
      op("grant_credits", { p_org_id: orgId, p_category: "manual", p_amount: 31, p_idempotency_key: k }),
      "22023", /grant of 30 credits, not 31/,
    );
    expect(await account(orgId)).toEqual({ balance: 30, reserved: 0, debt: 0 });
    await expectLedgerConsistent(orgId);
  });

  it("claw_back_credits: same key and amount answers the same; another amount is refused with 22023, nothing changed", async () => {
    const { orgId } = await createTeam();
    await op("grant_credits", { p_org_id: orgId, p_category: "pack", p_amount: 100, p_idempotency_key: key() });
    const k = key();
    const [r1] = await op<{ clawed_back: string; debt: string }>("claw_back_credits", { p_org_id: orgId, p_amount: 40, p_idempotency_key: k });
    const [r2] = await op<{ clawed_back: string; debt: string }>("claw_back_credits", { p_org_id: orgId, p_amount: 40, p_idempotency_key: k });
    expect(r1).toEqual({ clawed_back: "40", debt: "0" });
    expect(r2).toEqual(r1);
    await expectSqlError(op("claw_back_credits", { p_org_id: orgId, p_amount: 90, p_idempotency_key: k }), "22023", /claw-back of 40 credits, not 90/);
    expect(await account(orgId)).toEqual({ balance: 60, reserved: 0, debt: 0 });
    await expectLedgerConsistent(orgId);
  });
});

describe("expire_credits isolates each item", () => {
  it("one reservation that fails to expire is counted and the others still expire", async () => {
    const { orgId } = await createTeam();
    await op("grant_credits", { p_org_id: orgId, p_category: "manual", p_amount: 100, p_idempotency_key: key() });
    const reserve = async (amount: number) =>
      (await op<{ id: string }>("reserve_credits", { p_org_id: orgId, p_amount: amount, p_idempotency_key: key(), p_ttl: "1 second" }))[0].id;
    const [a, broken, b] = [await reserve(3), await reserve(4), await reserve(5)];
    // Make exactly one item fail, the way an unexpected error would (not 22023).
    const fn = `test_fail_${broken.replaceAll("-", "")}`;
    await admin.query(`create function private.${fn}() returns trigger language plpgsql set search_path = '' as $$
      begin raise exception 'injected failure' using errcode = '23505'; end $$`);
    await admin.query(`create trigger ${fn} before update on billing.credit_reservations for each row
      when (old.id = '${broken}') execute function private.${fn}()`);
    try {
      const future = new Date(Date.now() + 60_000).toISOString();
      const [run] = await op<{ reservations: number; grants: number; failures: number }>("expire_credits", { p_now: future, p_org_id: orgId });
      expect(run).toEqual({ reservations: 2, grants: 0, failures: 1 });
      const { rows } = await admin.query("select id, status from billing.credit_reservations where org_id = $1", [orgId]);
      const status = Object.fromEntries(rows.map((r) => [r.id, r.status]));
      expect(status).toEqual({ [a]: "expired", [broken]: "pending", [b]: "expired" });
      expect(await account(orgId)).toEqual({ balance: 100, reserved: 4, debt: 0 });
      await expectLedgerConsistent(orgId);
    } finally {
      await admin.query(`drop trigger ${fn} on billing.credit_reservations`);
      await admin.query(`drop function private.${fn}()`);
    }
    // The next run picks up the one that failed.
    const [next] = await op<{ reservations: number; failures: number }>("expire_credits", { p_now: new Date(Date.now() + 60_000).toISOString(), p_org_id: orgId });
    expect(next).toMatchObject({ reservations: 1, failures: 0 });
    expect(await account(orgId)).toEqual({ balance: 100, reserved: 0, debt: 0 });
    await expectLedgerConsistent(orgId);
  });

  it("one grant that fails to expire is counted and the others still expire", async () => {
    const { orgId } = await createTeam();
    const soon = new Date(Date.now() + 30_000).toISOString();
    const grant = async (amount: number) =>
      (await op<{ grant_credits: string }>("grant_credits", { p_org_id: orgId, p_category: "promotional", p_amount: amount, p_idempotency_key: key(), p_expires_at: soon }))[0].grant_credits;
    const [g1, broken, g2] = [await grant(1), await grant(2), await grant(4)];
    const fn = `test_fail_${broken.replaceAll("-", "")}`;
    await admin.query(`create function private.${fn}() returns trigger language plpgsql set search_path = '' as $$
      begin raise exception 'injected failure' using errcode = 'XX000'; end $$`);
    await admin.query(`create trigger ${fn} before update on billing.credit_grants for each row
      when (old.id = '${broken}') execute function private.${fn}()`);
    try {
      const [run] = await op<{ reservations: number; grants: number; failures: number }>("expire_credits", {
        p_now: new Date(Date.now() + 60_000).toISOString(), p_org_id: orgId,
      });
      expect(run).toEqual({ reservations: 0, grants: 2, failures: 1 });
      const { rows } = await admin.query("select id, expired_at is not null as expired from billing.credit_grants where org_id = $1", [orgId]);
      expect(Object.fromEntries(rows.map((r) => [r.id, r.expired]))).toEqual({ [g1]: true, [broken]: false, [g2]: true });
      expect(await account(orgId)).toEqual({ balance: 2, reserved: 0, debt: 0 });
      await expectLedgerConsistent(orgId);
    } finally {
      await admin.query(`drop trigger ${fn} on billing.credit_grants`);
      await admin.query(`drop function private.${fn}()`);
    }
  });

  it("finds pending reservations by the account's bound, raises it after each run, and still expires the later ones", async () => {
    const { orgId } = await createTeam();
    await op("grant_credits", { p_org_id: orgId, p_category: "manual", p_amount: 100, p_idempotency_key: key() });
    const [soon] = await op<{ id: string; expires_at: Date }>("reserve_credits", { p_org_id: orgId, p_amount: 3, p_idempotency_key: key(), p_ttl: "1 second" });
    const [later] = await op<{ id: string; expires_at: Date }>("reserve_credits", { p_org_id: orgId, p_amount: 4, p_idempotency_key: key(), p_ttl: "1 hour" });
    const bound = async () => (await admin.query("select pending_expires_from from billing.credit_accounts where org_id = $1", [orgId])).rows[0].pending_expires_from as Date | null;
    expect(await bound()).toEqual(soon.expires_at);
    const t1 = new Date(Date.now() + 60_000);
    expect((await op("expire_credits", { p_now: t1.toISOString(), p_org_id: orgId }))[0]).toMatchObject({ reservations: 1, failures: 0 });
    // Raised past what the run resolved (so the next run does not scan it again), never past what is pending.
    expect((await bound())!.getTime()).toBe(t1.getTime());
    expect((await bound())!.getTime()).toBeLessThanOrEqual(later.expires_at.getTime());
    expect(await account(orgId)).toEqual({ balance: 100, reserved: 4, debt: 0 });
    // A new reservation expiring before the bound lowers it again.
    const [early] = await op<{ id: string; expires_at: Date }>("reserve_credits", { p_org_id: orgId, p_amount: 2, p_idempotency_key: key(), p_ttl: "2 seconds" });
    expect(await bound()).toEqual(early.expires_at);
    const t2 = new Date(Date.now() + 2 * 3600_000);
    expect((await op("expire_credits", { p_now: t2.toISOString(), p_org_id: orgId }))[0]).toMatchObject({ reservations: 2, failures: 0 });
    expect(await bound()).toBeNull();
    expect(await account(orgId)).toEqual({ balance: 100, reserved: 0, debt: 0 });
    await expectLedgerConsistent(orgId);
  });
});
