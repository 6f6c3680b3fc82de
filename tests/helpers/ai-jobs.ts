// More AI gateway helpers for the job tests: a provider row of the test's own (its own timeout,
// pointed at the fakes), an org's own route for a tier, a member ready to submit, and reading the
// fake's calls and the deployments' shared health.
import { randomUUID } from "node:crypto";
import { expect } from "vitest";
import { admin, createTeam, type Team } from "./db.ts";
import { fakeCalls } from "./fake-ai.ts";
import { createModel, giveCredits, type Modality, stack, submit } from "./ai.ts";
import { client, tokenFor } from "./supabase.ts";
import { encodePng } from "../../functions/_shared/ai/providers/local-media.ts";

/** Where each provider kind's API sits on the fake server. */
const PREFIX: Record<string, string> = {
  openai: "/openai/v1",
  anthropic: "/anthropic",
  stability: "/stability",
  replicate: "/replicate/v1",
  runway: "/runway",
  did: "/did",
};

const SECRET: Record<string, string> = {
  openai: "OPENAI_API_KEY",
  anthropic: "ANTHROPIC_API_KEY",
  stability: "STABILITY_API_KEY",
  replicate: "REPLICATE_API_TOKEN",
  runway: "RUNWAY_API_KEY",
  did: "DID_API_KEY",
};

/**
 * A provider row of the test's own, on the fake, with its own timeout (the global rows are
 * shared by every file). Its id is "<kind>-<tag>"; the fake still keys scripts by kind.
 */
export async function ownProvider(kind: keyof typeof PREFIX, opts: { timeoutMs?: number } = {}): Promise<string> {
  const id = `${kind}-${randomUUID().slice(0, 8)}`;
  await admin.query(
    `insert into ai.providers (id, kind, base_url, api_key_secret, webhook_secret, timeout_ms) values ($1, $2, $3, $4, $5, $6)`,
    [id, kind, `${stack.fakeAiUrl}${PREFIX[kind]}`, SECRET[kind], kind === "replicate" ? "REPLICATE_WEBHOOK_SECRET" : null, opts.timeoutMs ?? 10_000],
  );
  return id;
}

/** The org's own route for a tier: these deployments, in this order. */
export async function orgRoute(orgId: string, modality: Modality, tier: string, deploymentIds: string[]): Promise<void> {
  for (const [i, id] of deploymentIds.entries()) {
    await admin.query(`insert into ai.org_routes (org_id, modality, tier, position, deployment_id) values ($1, $2, $3, $4, $5)`, [orgId, modality, tier, i, id]);
  }
}

/** A team with credits, and its member's token. */
export async function teamWithCredits(credits: number): Promise<Team & { token: string }> {
  const team = await createTeam();
  if (credits > 0) await giveCredits(team.orgId, credits);
  return { ...team, token: await tokenFor(team.member) };
}

/** Submits a job as the team's member and expects it admitted; returns its id. */
export async function submitJob(team: Team & { token: string }, body: Record<string, unknown>, headers: Record<string, string> = {}): Promise<string> {
  const res = await submit({ token: team.token }, { org_id: team.orgId, ...body }, headers);
  expect(res.status, res.raw).toBe(202);
  return res.body.id as string;
}

/** How many requests a fake key received. */
export async function callCount(key: string): Promise<number> {
  return (await fakeCalls(stack.fakeAiUrl, key)).length;
}

export async function health(deploymentId: string) {
  const { rows } = await admin.query(
    `select cooldown_until, cooldown_reason, last_status, last_error_class, window_requests, window_failures
     from ai.deployment_health where deployment_id = $1`,
    [deploymentId],
  );
  return rows[0] as
    | { cooldown_until: Date | null; cooldown_reason: string | null; last_status: number | null; last_error_class: string | null; window_requests: number; window_failures: number }
    | undefined;
}

/** Polls until `check` returns a value (not undefined/false), or fails after the timeout. */
export async function eventually<T>(check: () => Promise<T | undefined | false>, what: string, timeoutMs = 15_000): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const v = await check();
    if (v !== undefined && v !== false) return v;
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

/** createModel, with script keys that also hold for the test's own providers ("<kind>-<tag>"). */
export async function ownModel(opts: Parameters<typeof createModel>[0]) {
  const m = await createModel(opts);
  return { ...m, deployments: m.deployments.map((d) => ({ ...d, key: `${d.provider.replace(/-[0-9a-f]{8}$/, "")}:${d.providerModel}` })) };
}

/** A text model with one deployment per provider, in that order. */
export async function textModel(providers: string[], opts: { contextWindow?: number; policyAlternative?: boolean[] } = {}) {
  return await ownModel({
    modality: "text",
    contextWindow: opts.contextWindow,
    deployments: providers.map((provider, i) => ({ provider, policyAlternative: opts.policyAlternative?.[i] })),
  });
}

/** Uploads a small PNG to the org's folder in org-files; returns its job input path ("org-files/<org>/<name>"). */
export async function uploadPhoto(orgId: string): Promise<string> {
  const path = `${orgId}/photo-${randomUUID().slice(0, 8)}.png`;
  const { error } = await client({ key: "service_role" }).storage.from("org-files").upload(path, encodePng(8, 8, [200, 120, 40], [40, 120, 200]), { contentType: "image/png" });
  expect(error).toBeNull();
  return `org-files/${path}`;
}

/** The POST requests (creates) a fake key received. */
export async function creates(key: string): Promise<number> {
  return (await fakeCalls(stack.fakeAiUrl, key)).filter((c) => c.method === "POST").length;
}
