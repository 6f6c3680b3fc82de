// The worker edge function: only the service-role key may make it drain the queues.
import { describe, expect, inject, it } from "vitest";
import { signJwt } from "../../scripts/lib/keys.ts";
import { call, expectError } from "../helpers/http.ts";

const stack = inject("stack");
const drain = (headers: Record<string, string> = {}) => call("/worker/drain?budget_ms=2000", { method: "POST", headers });

describe("POST /worker/drain", () => {
  it("refuses a call without credentials", async () => {
    expectError(await drain(), 401, "unauthorized");
  });

  it("refuses the anon key", async () => {
    expectError(await drain({ authorization: `Bearer ${stack.anonKey}` }), 401, "unauthorized");
  });

  it("refuses a different token that claims service_role", async () => {
    const forged = await signJwt(stack.jwtSecret, { iss: "supabase-demo", role: "service_role" });
    expectError(await drain({ authorization: `Bearer ${forged}` }), 401, "unauthorized");
  });

  it("refuses the service-role key in the wrong header", async () => {
    expectError(await drain({ "x-api-key": stack.serviceRoleKey }), 401, "unauthorized");
    expectError(await drain({ authorization: stack.serviceRoleKey }), 401, "unauthorized");
  });

  it("drains with the service-role key and reports counts", async () => {
    const res = await drain({ authorization: `Bearer ${stack.serviceRoleKey}` });
    expect(res.status, res.raw).toBe(200);
    expect(res.body).toEqual({ completed: expect.any(Number), failed: expect.any(Number) });
    expect(res.body.completed).toBeGreaterThanOrEqual(0);
    expect(res.body.failed).toBeGreaterThanOrEqual(0);
  });

  it("answers unknown worker routes with 404 JSON", async () => {
    expectError(await call("/worker/nope", { method: "POST" }), 404, "not_found");
  });
});
