// GET /ai/v1/models: what the caller's org may use: the tier aliases its policy and plan allow,
// and the enabled models its policy allows by name (all, when it names none). Only for callers
// who may use AI there (ai.use), as admission requires: a non-member or a viewer gets 403.
import type { Context } from "hono";
import { sql } from "kysely";
import { asUser } from "../../_shared/db/client.ts";
import { ApiError } from "../../_shared/http/errors.ts";
import { submitterFor } from "../ai-caller.ts";
import type { ApiEnv } from "../context.ts";

export async function listModels(c: Context<ApiEnv>) {
  const { db } = c.get("deps");
  const rows = await asUser(db, c.get("principal").claims, async (tx) => {
    const who = await submitterFor(c, tx);
    const { rows: [can] } = await sql<{ ok: boolean }>`select private.has_permission(${who.orgId}, 'ai.use') as ok`.execute(tx);
    if (!can.ok) throw new ApiError(403, "forbidden", "you need ai.use in this org to use its AI models");
    return (await sql<{ id: string; created: number }>`
      with policy as (select * from ai.org_policies where org_id = ${who.orgId})
      select 'plinth/' || t as id, 0 as created
      from unnest(coalesce((select allowed_tiers from policy), array['economy', 'balanced', 'premium'])) t
      where t <> 'premium' or billing.entitled(${who.orgId}, 'ai_premium_tier')
      union all
      select m.id, extract(epoch from m.created_at)::int
      from ai.models m
      where m.enabled
        and ((select allowed_models from policy) is null or m.id = any (coalesce((select allowed_models from policy), array[]::text[])))
        and exists (select 1 from private.ai_route(${who.orgId}, m.modality, null, m.id))
      order by 1`.execute(tx)).rows;
  });
  return c.json({ object: "list", data: rows.map((r) => ({ id: r.id, object: "model", created: r.created, owned_by: "plinth" })) });
}
