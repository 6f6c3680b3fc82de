// Deployment health as every worker and edge function shares it (ai.deployment_health): who is
// cooling down, and each call's outcome fed back into the cooldown rules (in SQL, so that
// cooldown_until only ever moves later, whoever writes).
import { sql } from "kysely";
import type { Tx } from "../db/client.ts";
import type { ErrorClass } from "./types.ts";

/** Deployments of the list that are cooling now, with when each is back (inside the caller's transaction). */
export async function cooling(tx: Tx, deploymentIds: string[]): Promise<Map<string, Date>> {
  if (deploymentIds.length === 0) return new Map();
  const { rows } = await sql<{ deployment_id: string; cooldown_until: string }>`
    select deployment_id, cooldown_until from ai.deployment_health
    where deployment_id = any(${deploymentIds}) and cooldown_until > clock_timestamp()`.execute(tx);
  return new Map(rows.map((r) => [r.deployment_id, new Date(r.cooldown_until)]));
}

export type Outcome = { ok: true } | { ok: false; status?: number; errorClass: ErrorClass; retryAfterMs?: number; sole: boolean };

/** Feeds one call's outcome to the cooldown rules, inside the caller's transaction. */
export async function recordOutcomeIn(tx: Tx, deploymentId: string, o: Outcome): Promise<void> {
  if (o.ok) {
    await sql`select private.ai_record_health(${deploymentId}, true)`.execute(tx);
  } else {
    await sql`select private.ai_record_health(${deploymentId}, false, ${o.status ?? null}::int, ${o.errorClass},
                                              ${o.retryAfterMs ?? null}::bigint, ${o.sole})`.execute(tx);
  }
}
