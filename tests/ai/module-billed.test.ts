// Module-billed jobs (ModuleRoute.billedByModule): a product module that charges from its own
// price table (decks: per card, per image) admits its AI calls through the gateway without the
// gateway charging them too. The job holds and settles 0 credits, while routing (the org's tier
// route), attempts, provider cost and usage are recorded as for any job. Only server code can ask
// for it: no client body carries a route.
import { afterAll, describe, expect, it } from "vitest";
import { runJob } from "../../functions/_shared/ai/run-job.ts";
import { asService } from "../../functions/_shared/db/client.ts";
import { admitJob } from "../../functions/_shared/ai/submit.ts";
import { admin } from "../helpers/db.ts";
import { account, expectLedgerConsistent } from "../helpers/credits.ts";
import { scriptFake } from "../helpers/fake-ai.ts";
import { attemptsOf, createModel, jobRow, stack, submit } from "../helpers/ai.ts";
import { callCount, orgRoute, teamWithCredits } from "../helpers/ai-jobs.ts";
import { inProcessWorker, type InProcessWorker } from "../helpers/ai-worker.ts";
import { call, expectError } from "../helpers/http.ts";

const workers: InProcessWorker[] = [];
afterAll(async () => {
  for (const w of workers) await w.close();
});

const PRICED = [
  { unit: "input_token", credits: 1000, per_units: 1_000_000, provider_cost_micros: 500_000 },
  { unit: "output_token", credits: 2000, per_units: 1_000_000, provider_cost_micros: 1_000_000 },
];
const USAGE = { prompt_tokens: 900, completion_tokens: 1000 };
// 900 x 0.5 + 1000 x 1 micros.
const COST_MICROS = 1450;

describe("a job its module bills", () => {
  it("holds and settles nothing, on the org's tier route, and records provider cost and usage", async () => {
    const team = await teamWithCredits(100);
    const { deployments: [d] } = await createModel({ modality: "text", deployments: [{ provider: "openai", prices: PRICED }] });
    await orgRoute(team.orgId, "text", "balanced", [d.id]);
    await scriptFake(stack.fakeAiUrl, d.key, { mode: "ok", text: "billed elsewhere", usage: USAGE });
    const w = inProcessWorker();
    workers.push(w);
    const who = { orgId: team.orgId, userId: team.member.id, apiKeyId: null };
    const { job } = await asService(w.deps.db, (tx) =>
      admitJob(tx, null, who, { modality: "text", tier: "balanced", source: "deck", input: { prompt: "hello", max_tokens: 1000 }, route: { billedByModule: true } }));
    expect(job.reserved_credits).toBe(0);
    expect((await jobRow(job.id)).reservation_id).toBeNull();
    expect(await account(team.orgId)).toMatchObject({ balance: 100, reserved: 0 });

    await runJob(w.deps, job.id);
    const done = await jobRow(job.id);
    expect(done.status, JSON.stringify(done.error)).toBe("succeeded");
    expect(done.output.text).toBe("billed elsewhere");
    expect(done.settled_credits).toBe(0);
    expect(done.deployment_id).toBe(d.id);
    expect(await attemptsOf(job.id)).toMatchObject([{ status: "succeeded", credits: 0, billed: true, units: { input_token: 900, output_token: 1000 } }]);
    const { rows: [cost] } = await admin.query(`select provider_cost_micros::int as micros from ai.jobs where id = $1`, [job.id]);
    expect(cost.micros).toBe(COST_MICROS);
    expect(await callCount(d.key)).toBe(1);
    expect(await account(team.orgId)).toMatchObject({ balance: 100, reserved: 0 });
    await expectLedgerConsistent(team.orgId);
  });

  it("the same request without it is charged at the deployment's price (so the test above can fail)", async () => {
    const team = await teamWithCredits(100);
    const { deployments: [d] } = await createModel({ modality: "text", deployments: [{ provider: "openai", prices: PRICED }] });
    await orgRoute(team.orgId, "text", "balanced", [d.id]);
    await scriptFake(stack.fakeAiUrl, d.key, { mode: "ok", text: "billed here", usage: USAGE });
    const w = inProcessWorker();
    workers.push(w);
    const { job } = await asService(w.deps.db, (tx) =>
      admitJob(tx, null, { orgId: team.orgId, userId: team.member.id, apiKeyId: null },
        { modality: "text", tier: "balanced", source: "deck", input: { prompt: "hello", max_tokens: 1000 } }));
    expect(job.reserved_credits).toBeGreaterThan(0);
    await runJob(w.deps, job.id);
    // 900 x 1000/1M + 1000 x 2000/1M = 2.9 -> 3.
    expect((await jobRow(job.id)).settled_credits).toBe(3);
    expect(await account(team.orgId)).toMatchObject({ balance: 97, reserved: 0 });
  });

  it("a client cannot ask for it: a route in the job or batch body is refused (400) and nothing is admitted", async () => {
    const team = await teamWithCredits(100);
    const before = (await admin.query(`select count(*)::int as n from ai.jobs where org_id = $1`, [team.orgId])).rows[0].n;
    const res = await submit({ token: team.token }, {
      org_id: team.orgId, modality: "text", tier: "economy", input: { prompt: "free please", max_tokens: 100 }, route: { billedByModule: true },
    });
    expectError(res, 400, "invalid_request");
    const inInput = await submit({ token: team.token }, {
      org_id: team.orgId, modality: "text", tier: "economy", input: { prompt: "free please", max_tokens: 100, route: { billedByModule: true } },
    });
    expectError(inInput, 400, "invalid_request");
    const batch = await call("/api/ai/batches", {
      token: team.token,
      json: { org_id: team.orgId, modality: "text", tier: "economy", inputs: [{ prompt: "x", max_tokens: 10 }], route: { billedByModule: true } },
    });
    expectError(batch, 400, "invalid_request");
    const after = (await admin.query(`select count(*)::int as n from ai.jobs where org_id = $1`, [team.orgId])).rows[0].n;
    expect(after).toBe(before);
    expect(await account(team.orgId)).toMatchObject({ reserved: 0 });
  });
});
