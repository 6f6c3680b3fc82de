// Text jobs end to end: admitted through the api, run by the stack's worker against the
// scripted fakes, settled exactly from the price table.
import { describe, expect, it } from "vitest";
import { createTeam } from "../helpers/db.ts";
import { account } from "../helpers/credits.ts";
import { scriptFake } from "../helpers/fake-ai.ts";
import { attemptsOf, createModel, giveCredits, reservation, stack, submit, waitForJob } from "../helpers/ai.ts";
import { tokenFor } from "../helpers/supabase.ts";

describe("text jobs", () => {
  it("runs on the fake, stores the text and settles exactly the price of the usage", async () => {
    const team = await createTeam();
    await giveCredits(team.orgId, 1000);
    const { model, deployments } = await createModel({ modality: "text", deployments: [{ provider: "openai" }] });
    await scriptFake(stack.fakeAiUrl, deployments[0].key, { mode: "ok", text: "Hello there", usage: { prompt_tokens: 3000, completion_tokens: 1500 } });
    const prompt = "Say hello. ".repeat(1200); // 13,200 bytes: a bound above the 3,000 tokens the fake reports
    const res = await submit({ token: await tokenFor(team.member) }, { org_id: team.orgId, modality: "text", model, input: { prompt, max_tokens: 2000 } });
    expect(res.status, res.raw).toBe(202);
    // Worst case: (13,200 + 64 framing) bytes x 1000/1M + 2000 x 2000/1M = 13.264 + 4 -> 18.
    expect(res.body.reserved_credits).toBe(18);
    const job = await waitForJob(res.body.id);
    expect(job.status, JSON.stringify(job.error)).toBe("succeeded");
    expect(job.output.text).toBe("Hello there");
    // 3000 input x 1000/1M + 1500 output x 2000/1M = 3 + 3 = 6 credits, and the rest released.
    expect(job.settled_credits).toBe(6);
    expect(await reservation(job.reservation_id!)).toMatchObject({ status: "posted", amount: 18, settled_amount: 6 });
    expect(await account(team.orgId)).toMatchObject({ balance: 994, reserved: 0 });
    expect(await attemptsOf(job.id)).toMatchObject([{ kind: "initial", status: "succeeded", credits: 6, billed: true, deployment_id: deployments[0].id }]);
  });
});
