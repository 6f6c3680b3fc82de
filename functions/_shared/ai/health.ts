// Deployment health as every worker and edge function shares it (ai.deployment_health): who is
// cooling down, and each call's outcome fed back into the cooldown rules (in SQL, so that
// cooldown_until only ever moves later, whoever writes).
import { sql } from "kysely";
import { asService, type Db } from "../db/client.ts";
import type { ErrorClass } from "./types.ts";

/** Deployments of the list that are cooling now, with when each is back. */
export async function cooling(db: Db, deploymentIds: string[]): Promise<Map<string, Date>> {
  if (deploymentIds.length === 0) return new Map();
  const rows = await asService(db, async (tx) =>
    (await sql<{ deployment_id: string; cooldown_until: string }>`
      select deployment_id, cooldown_until from ai.deployment_health
      where deployment_id = any(${deploymentIds}) and cooldown_until > clock_timestamp()`.execute(tx)).rows);
  return new Map(rows.map((r) => [r.deployment_id, new Date(r.cooldown_until)]));
}

export async function recordOutcome(
  db: Db,
  deploymentId: string,
  o: { ok: true } | { ok: false; status?: number; errorClass: ErrorClass; retryAfterMs?: number; sole: boolean },
): Promise<void> {
  await asService(db, async (tx) => {
    if (o.ok) {
      await sql`select private.ai_record_health(${deploymentId}, true)`.execute(tx);
    } else {
      await sql`select private.ai_record_health(${deploymentId}, false, ${o.status ?? null}::int, ${o.errorClass},
                                                ${o.retryAfterMs ?? null}::bigint, ${o.sole})`.execute(tx);
    }
  });
}
