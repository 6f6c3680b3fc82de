// An org's AI usage this month (UTC), per model, from ai.usage_daily as the caller reads it
// (billing managers only, by RLS): what billing's summary shows next to the credit balance.
import { sql } from "kysely";
import type { Tx } from "../db/client.ts";

export interface AiMonthUsage {
  credits: number;
  provider_cost_micros: number;
  attempts: number;
  by_model: { model_id: string | null; credits: number; provider_cost_micros: number; attempts: number }[];
}

export async function aiMonthUsage(tx: Tx, orgId: string): Promise<AiMonthUsage> {
  const { rows } = await sql<AiMonthUsage["by_model"][number]>`
    select model_id, sum(credits)::int as credits, sum(provider_cost_micros)::int as provider_cost_micros, sum(attempts)::int as attempts
    from ai.usage_daily
    where org_id = ${orgId} and day >= date_trunc('month', now() at time zone 'UTC')::date
    group by model_id order by sum(credits) desc, model_id`.execute(tx);
  return {
    credits: rows.reduce((n, r) => n + r.credits, 0),
    provider_cost_micros: rows.reduce((n, r) => n + r.provider_cost_micros, 0),
    attempts: rows.reduce((n, r) => n + r.attempts, 0),
    by_model: rows,
  };
}
