// The real openai SDK pointed at Plinth's OpenAI-compatible endpoint, and what a test needs to
// prove that a refused request changed nothing in an org's credits and jobs.
import OpenAI from "openai";
import { expect } from "vitest";
import { admin, createTeam, rpc, stack, type TestUser } from "./db.ts";
import { account } from "./credits.ts";
import { giveCredits } from "./ai.ts";
import { tokenFor } from "./supabase.ts";

export const OPENAI_BASE = `${stack.functionsUrl}/api/ai/v1`;

/** An SDK client as an app builds it: a user access token or a plk_ key, optionally an org. */
export function openai(apiKey: string, orgId?: string): OpenAI {
  return new OpenAI({
    baseURL: OPENAI_BASE,
    apiKey,
    maxRetries: 0,
    timeout: 30_000,
    ...(orgId ? { defaultHeaders: { "x-plinth-org": orgId } } : {}),
  });
}

/** A fresh team with `credits` on its account, and the SDK as its member uses it. */
export async function fundedMember(credits: number) {
  const team = await createTeam();
  await giveCredits(team.orgId, credits);
  return { team, client: openai(await tokenFor(team.member), team.orgId) };
}

export interface OrgState {
  jobs: number;
  reservations: number;
  pendingReservations: number;
  balance: number;
  reserved: number;
}

/** Counts of the org's AI jobs and credit reservations, and its account. */
export async function orgState(orgId: string): Promise<OrgState> {
  const { rows } = await admin.query(
    `select (select count(*)::int from ai.jobs where org_id = $1) as jobs,
            (select count(*)::int from billing.credit_reservations where org_id = $1) as reservations,
            (select count(*)::int from billing.credit_reservations where org_id = $1 and status = 'pending') as pending`,
    [orgId],
  );
  const a = await account(orgId);
  return { jobs: rows[0].jobs, reservations: rows[0].reservations, pendingReservations: rows[0].pending, balance: a.balance, reserved: a.reserved };
}

/** Asserts the org is exactly as it was: no job, no reservation, the same balance. */
export async function expectUnchanged(orgId: string, before: OrgState) {
  expect(await orgState(orgId)).toEqual(before);
}

/** The one job the request made, read from the x-plinth-job-id header the endpoint sends. */
export async function jobOf(headers: Headers | { get(name: string): string | null }) {
  const id = headers.get("x-plinth-job-id");
  expect(id, "x-plinth-job-id header").toMatch(/^[0-9a-f-]{36}$/);
  return id!;
}

/** The error a promise rejects with, typed as the SDK's APIError. */
export async function apiError(p: Promise<unknown>): Promise<InstanceType<typeof OpenAI.APIError>> {
  try {
    await p;
  } catch (err) {
    return err as InstanceType<typeof OpenAI.APIError>;
  }
  throw new Error("expected the call to fail, but it succeeded");
}

/** Sets (or replaces) the org's AI policy as the database owner. */
export async function setPolicy(orgId: string, p: {
  allowed_tiers?: string[];
  allowed_models?: string[] | null;
  moderate_input?: boolean;
  monthly_credit_cap?: number | null;
  member_monthly_credit_cap?: number | null;
}) {
  await admin.query(
    `insert into ai.org_policies (org_id, allowed_tiers, allowed_models, moderate_input, monthly_credit_cap, member_monthly_credit_cap)
     values ($1, coalesce($2::text[], '{economy,balanced,premium}'), $3, coalesce($4, false), $5, $6)
     on conflict (org_id) do update set allowed_tiers = excluded.allowed_tiers, allowed_models = excluded.allowed_models,
       moderate_input = excluded.moderate_input, monthly_credit_cap = excluded.monthly_credit_cap,
       member_monthly_credit_cap = excluded.member_monthly_credit_cap`,
    [orgId, p.allowed_tiers ?? null, p.allowed_models ?? null, p.moderate_input ?? null, p.monthly_credit_cap ?? null, p.member_monthly_credit_cap ?? null],
  );
}

/** Points one of the org's tiers at the given deployments (ai.org_routes), in order. */
export async function routeTier(orgId: string, modality: string, tier: string, deploymentIds: string[]) {
  await admin.query("delete from ai.org_routes where org_id = $1 and modality = $2 and tier = $3", [orgId, modality, tier]);
  for (const [i, id] of deploymentIds.entries()) {
    await admin.query("insert into ai.org_routes (org_id, modality, tier, position, deployment_id) values ($1, $2, $3, $4, $5)", [orgId, modality, tier, i, id]);
  }
}

/** Creates an org API key as an admin of the org, through the RPC apps use. */
export async function createApiKey(adminUser: TestUser, orgId: string, scopes: string[] = ["ai.use"]) {
  const [k] = await rpc<{ api_key_id: string; key: string }>(adminUser, "create_api_key", { p_org_id: orgId, p_name: "ai key", p_scopes: scopes });
  return { id: k.api_key_id, key: k.key };
}

/** The usage view's credits for the org are exactly what its jobs were charged. */
export async function expectUsageMatchesCharges(orgId: string) {
  const { rows } = await admin.query(
    `select (select coalesce(sum(credits), 0)::int from ai.usage_daily where org_id = $1) as usage,
            (select coalesce(sum(settled_credits), 0)::int from ai.jobs where org_id = $1) as charged`,
    [orgId],
  );
  expect(rows[0].usage, "ai.usage_daily credits = what the jobs were charged").toBe(rows[0].charged);
}
