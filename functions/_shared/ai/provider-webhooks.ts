// Inbound callbacks from AI providers (Replicate): verified on the raw bytes, recorded once by
// webhook-id, and turned into a poll of the job the task belongs to. The webhook's body is not
// trusted for the outcome: the poll reads the provider, so a late or reordered callback cannot
// move a job backwards, and a missed one is caught by the regular poll.
import { sql } from "kysely";
import { asService, type Db } from "../db/client.ts";
import { enqueue, type JobSender } from "../jobs/queue.ts";
import { ReplicateWebhookError, verifyReplicateWebhook } from "./providers/replicate-webhook.ts";

export type WebhookOutcome =
  | { status: "queued"; job_id: string }
  | { status: "duplicate" }
  | { status: "ignored"; reason: string };

export class WebhookRefused extends Error {
  constructor(readonly httpStatus: 400 | 401 | 404 | 503, readonly code: string, message: string) {
    super(message);
  }
}

export async function handleProviderWebhook(
  deps: { db: Db; jobs: JobSender; secret: (providerId: string) => Promise<{ kind: string; secret?: string } | undefined> },
  providerId: string,
  raw: string,
  headers: Headers,
): Promise<WebhookOutcome> {
  const provider = await deps.secret(providerId);
  if (!provider || provider.kind !== "replicate") throw new WebhookRefused(404, "not_found", `no provider ${providerId} takes webhooks`);
  if (!provider.secret) throw new WebhookRefused(503, "not_configured", `no webhook secret configured for ${providerId}`);
  let verified;
  try {
    verified = await verifyReplicateWebhook(raw, headers, provider.secret);
  } catch (err) {
    if (err instanceof ReplicateWebhookError) {
      throw new WebhookRefused(err.code === "malformed_body" ? 400 : 401, err.code === "malformed_body" ? "invalid_request" : "invalid_signature", err.message);
    }
    throw err;
  }
  const taskId = verified.prediction.id;
  return await asService(deps.db, async (tx) => {
    const fresh = await sql`insert into private.ai_webhook_receipts (provider_id, webhook_id, provider_task_id)
                            values (${providerId}, ${verified.webhookId}, ${taskId}) on conflict do nothing`.execute(tx);
    if (Number(fresh.numAffectedRows ?? 0) === 0) return { status: "duplicate" } as const;
    const { rows } = await sql<{ job_id: string }>`
      select job_id from ai.attempts where provider_id = ${providerId} and provider_request_id = ${taskId}
      order by attempt_no desc limit 1`.execute(tx);
    if (!rows[0]) return { status: "ignored", reason: "no attempt has this task" } as const;
    await enqueue(deps.jobs, tx, "ai.poll", { job_id: rows[0].job_id }, { singletonKey: rows[0].job_id });
    return { status: "queued", job_id: rows[0].job_id } as const;
  });
}
