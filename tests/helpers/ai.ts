// AI gateway test helpers: a model of the test's own with deployments on the fakes (so routes,
// cooldowns and scripts never touch another file's), credits, submitting through the api, and
// waiting for a job to end.
import { randomUUID } from "node:crypto";
import { expect } from "vitest";
import { admin, stack } from "./db.ts";
import { op } from "./credits.ts";
import { call } from "./http.ts";

export type Modality = "text" | "image" | "video" | "audio" | "embedding" | "moderation";

export interface TestDeployment {
  /** Deployment id, e.g. "openai/t-1a2b3c-0". */
  id: string;
  provider: string;
  /** The model name the fake sees: script it as "<provider>:<providerModel>". */
  providerModel: string;
  /** The fake's script key. */
  key: string;
}

export interface PriceSpec {
  unit: string;
  credits: number;
  per_units?: number;
  provider_cost_micros?: number;
  variant?: string;
}

/**
 * A fresh model with one deployment per entry, in that priority order. Prices default to
 * 1000 credits per million input tokens and 2000 per million output (text), 5 per image,
 * 3 per video second, 1 per 1000 characters (audio), 1 per million tokens (embedding), 0 per call (moderation).
 */
export async function createModel(opts: {
  modality: Modality;
  deployments: { provider: string; providerModel?: string; policyAlternative?: boolean; prices?: PriceSpec[]; contextWindow?: number }[];
  contextWindow?: number;
  maxOutput?: number;
}): Promise<{ model: string; deployments: TestDeployment[] }> {
  const tag = randomUUID().slice(0, 8);
  const model = `t-${tag}`;
  await admin.query(
    `insert into ai.models (id, modality, capabilities, context_window, max_output) values ($1, $2, '{stream,json}', $3, $4)`,
    [model, opts.modality, opts.contextWindow ?? (opts.modality === "text" ? 100_000 : null), opts.maxOutput ?? (opts.modality === "text" ? 4096 : null)],
  );
  const deployments: TestDeployment[] = [];
  for (const [i, d] of opts.deployments.entries()) {
    const id = `${d.provider}/${model}-${i}`;
    const providerModel = d.providerModel ?? (d.provider === "replicate" ? `plinth-test/${model}-${i}` : `${model}-${i}`);
    await admin.query(
      `insert into ai.deployments (id, model_id, provider_id, provider_model, priority, policy_alternative) values ($1, $2, $3, $4, $5, $6)`,
      [id, model, d.provider, providerModel, i, d.policyAlternative ?? false],
    );
    for (const p of d.prices ?? defaultPrices(opts.modality)) {
      await admin.query(
        `insert into ai.prices (deployment_id, unit, variant, per_units, provider_cost_micros, credits, effective_from)
         values ($1, $2, $3, $4, $5, $6, now() - interval '1 day')`,
        [id, p.unit, p.variant ?? "", p.per_units ?? 1, p.provider_cost_micros ?? 0, p.credits],
      );
    }
    deployments.push({ id, provider: d.provider, providerModel, key: `${d.provider}:${providerModel}` });
  }
  return { model, deployments };
}

export function defaultPrices(modality: Modality): PriceSpec[] {
  switch (modality) {
    case "text":
      return [
        { unit: "input_token", credits: 1000, per_units: 1_000_000, provider_cost_micros: 500_000 },
        { unit: "output_token", credits: 2000, per_units: 1_000_000, provider_cost_micros: 1_000_000 },
      ];
    case "image":
      return [{ unit: "image", credits: 5, provider_cost_micros: 20_000 }];
    case "video":
      return [{ unit: "video_second", credits: 3, provider_cost_micros: 50_000 }];
    case "audio":
      return [{ unit: "character", credits: 1, per_units: 1000 }];
    case "embedding":
      return [{ unit: "input_token", credits: 1, per_units: 1_000_000 }];
    case "moderation":
      return [{ unit: "call", credits: 0 }];
  }
}

/** Gives an org credits through the ledger (a manual grant). */
export async function giveCredits(orgId: string, amount: number): Promise<void> {
  await op("grant_credits", { p_org_id: orgId, p_category: "manual", p_amount: amount, p_idempotency_key: `test-${randomUUID()}` });
}

/** Submits a job through the api as a user (token) or API key; returns the response. */
export function submit(auth: { token?: string; apiKey?: string }, body: Record<string, unknown>, headers: Record<string, string> = {}) {
  return call("/api/ai/jobs", { ...auth, json: body, headers });
}

export interface JobRow {
  id: string;
  org_id: string;
  status: string;
  progress: number;
  output: any;
  error: any;
  reserved_credits: number;
  settled_credits: number | null;
  reservation_id: string | null;
  deployment_id: string | null;
}

export async function jobRow(id: string): Promise<JobRow> {
  const { rows } = await admin.query(
    `select id, org_id, status, progress, output, error, reserved_credits::int, settled_credits::int, reservation_id, deployment_id
     from ai.jobs where id = $1`,
    [id],
  );
  return rows[0];
}

/** Waits until a job has ended (or reached one of `statuses`); fails with its last state. */
export async function waitForJob(id: string, statuses = ["succeeded", "failed", "canceled"], timeoutMs = 30_000): Promise<JobRow> {
  const deadline = Date.now() + timeoutMs;
  let row = await jobRow(id);
  while (!statuses.includes(row?.status) && Date.now() < deadline) {
    await new Promise((r) => setTimeout(r, 50));
    row = await jobRow(id);
  }
  expect(statuses, `job ${id} is ${row?.status}: ${JSON.stringify(row?.error)}`).toContain(row?.status);
  return row;
}

export interface AttemptRow {
  attempt_no: number;
  purpose: string;
  kind: string;
  deployment_id: string;
  status: string;
  error_class: string | null;
  credits: number;
  billed: boolean;
  units: Record<string, number>;
}

export async function attemptsOf(jobId: string): Promise<AttemptRow[]> {
  const { rows } = await admin.query(
    `select attempt_no, purpose, kind, deployment_id, status, error_class, credits::int, billed, units
     from ai.attempts where job_id = $1 order by attempt_no`,
    [jobId],
  );
  return rows;
}

export async function reservation(id: string) {
  const { rows } = await admin.query("select status, amount::int, settled_amount::int from billing.credit_reservations where id = $1", [id]);
  return rows[0];
}

export { stack };
