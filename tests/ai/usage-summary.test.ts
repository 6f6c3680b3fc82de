// Billing's summary shows the month's AI usage (ai.usage_daily), to billing managers only.
import { describe, expect, it } from "vitest";
import { createTeam } from "../helpers/db.ts";
import { scriptFake } from "../helpers/fake-ai.ts";
import { call } from "../helpers/http.ts";
import { createModel, giveCredits, stack, submit, waitForJob } from "../helpers/ai.ts";
import { tokenFor } from "../helpers/supabase.ts";

describe("billing summary: AI usage", () => {
  it("sums this month's charged credits and provider cost per model", async () => {
    const team = await createTeam();
    await giveCredits(team.orgId, 1000);
    const { model, deployments } = await createModel({ modality: "text", deployments: [{ provider: "openai" }] });
    await scriptFake(stack.fakeAiUrl, deployments[0].key, [
      { mode: "ok", usage: { prompt_tokens: 1000, completion_tokens: 500 } },
      { mode: "ok", usage: { prompt_tokens: 2000, completion_tokens: 1000 } },
    ]);
    const token = await tokenFor(team.member);
    const prompt = "words ".repeat(500); // 3,000 bytes: a bound above the tokens the fake reports
    for (let i = 0; i < 2; i++) {
      const res = await submit({ token }, { org_id: team.orgId, modality: "text", model, input: { prompt, max_tokens: 1000 } });
      expect(res.status, res.raw).toBe(202);
      expect((await waitForJob(res.body.id)).status).toBe("succeeded");
    }
    const summary = await call(`/api/orgs/${team.orgId}/billing/summary`, { token: await tokenFor(team.owner) });
    expect(summary.status, summary.raw).toBe(200);
    // (1000 + 2000) x 1000/1M + (500 + 1000) x 2000/1M = 3 + 3; each job rounds up once: 2 + 4 = 6.
    // Provider cost: 3000 x 0.5 + 1500 x 1 micros per token = 3,000 micros.
    expect(summary.body.ai).toEqual({
      credits: 6,
      provider_cost_micros: 3000,
      attempts: 2,
      by_model: [{ model_id: model, credits: 6, provider_cost_micros: 3000, attempts: 2 }],
    });
    // A member without billing.manage sees no summary at all.
    const denied = await call(`/api/orgs/${team.orgId}/billing/summary`, { token });
    expect(denied.status).toBe(403);
  });
});
