// Property-based: random sequences of grant, reserve, settle, void and expire (with a clock
// that moves forward) keep every ledger invariant, and match a simple model of availability.
import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { createTeam } from "../helpers/db.ts";
import { account, expectLedgerConsistent, op } from "../helpers/credits.ts";

type Cmd =
  | { kind: "grant"; amount: number; category: "subscription" | "pack" | "promotional" | "manual"; expiresInMin: number | null }
  | { kind: "reserve"; amount: number; ttlMin: number }
  | { kind: "settle"; pick: number; fraction: number }
  | { kind: "void"; pick: number }
  | { kind: "expire"; advanceMin: number }
  | { kind: "clawback"; amount: number };

const cmd: fc.Arbitrary<Cmd> = fc.oneof(
  fc.record({
    kind: fc.constant("grant" as const),
    amount: fc.integer({ min: 1, max: 50 }),
    category: fc.constantFrom("subscription" as const, "pack" as const, "promotional" as const, "manual" as const),
    expiresInMin: fc.option(fc.integer({ min: 1, max: 30 }), { nil: null }),
  }),
  fc.record({ kind: fc.constant("reserve" as const), amount: fc.integer({ min: 1, max: 30 }), ttlMin: fc.integer({ min: 1, max: 30 }) }),
  fc.record({ kind: fc.constant("settle" as const), pick: fc.nat(), fraction: fc.double({ min: 0, max: 1, noNaN: true }) }),
  fc.record({ kind: fc.constant("void" as const), pick: fc.nat() }),
  fc.record({ kind: fc.constant("expire" as const), advanceMin: fc.integer({ min: 0, max: 15 }) }),
  fc.record({ kind: fc.constant("clawback" as const), amount: fc.integer({ min: 1, max: 40 }) }),
);

describe("credits ledger properties", () => {
  it("random operation sequences keep every invariant", async () => {
    await fc.assert(
      fc.asyncProperty(fc.array(cmd, { minLength: 5, maxLength: 25 }), async (cmds) => {
        const { orgId } = await createTeam("Prop");
        const start = Date.now();
        let clock = 0; // minutes past start, only moves forward
        const reservations: { id: string; amount: number }[] = [];
        for (const c of cmds) {
          const k = crypto.randomUUID();
          try {
            if (c.kind === "grant") {
              // Expiry relative to the moving clock, so grants outlive it when they are made.
              const expires = c.expiresInMin === null ? null : new Date(start + (clock + c.expiresInMin) * 60_000 + 5_000).toISOString();
              await op("grant_credits", { p_org_id: orgId, p_category: c.category, p_amount: c.amount, p_idempotency_key: k, p_expires_at: expires });
            } else if (c.kind === "reserve") {
              const before = await account(orgId);
              const avail = before.balance - before.reserved;
              try {
                const [r] = await op<{ id: string }>("reserve_credits", {
                  p_org_id: orgId, p_amount: c.amount, p_idempotency_key: k, p_ttl: `${clock + c.ttlMin} minutes`,
                });
                expect(c.amount).toBeLessThanOrEqual(avail);
                reservations.push({ id: r.id, amount: c.amount });
              } catch (err) {
                expect((err as { code: string }).code).toBe("PT402");
                expect(c.amount).toBeGreaterThan(avail);
              }
            } else if ((c.kind === "settle" || c.kind === "void") && reservations.length) {
              const r = reservations[c.pick % reservations.length];
              if (c.kind === "settle") {
                await op("settle_credits", { p_reservation_id: r.id, p_amount: Math.floor(r.amount * c.fraction) });
              } else {
                await op("void_credits", { p_reservation_id: r.id });
              }
            } else if (c.kind === "expire") {
              clock += c.advanceMin;
              await op("expire_credits", { p_now: new Date(start + clock * 60_000).toISOString(), p_org_id: orgId });
            } else if (c.kind === "clawback") {
              await op("claw_back_credits", { p_org_id: orgId, p_amount: c.amount, p_idempotency_key: k });
            }
          } catch (err) {
            // Resolving an already-resolved reservation is refused (22023): that is the point.
            if ((err as { code?: string }).code !== "22023") throw err;
          }
          const a = await account(orgId);
          expect(a.balance).toBeGreaterThanOrEqual(a.reserved);
          expect(a.reserved).toBeGreaterThanOrEqual(0);
          expect(a.debt).toBeGreaterThanOrEqual(0);
        }
        await expectLedgerConsistent(orgId);
      }),
      { numRuns: 25 },
    );
  });
});
