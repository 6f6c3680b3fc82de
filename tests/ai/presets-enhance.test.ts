// Presets and prompt enhancement: what the provider is sent, and what the org pays.
import { describe, expect, it } from "vitest";
import { admin, createTeam } from "../helpers/db.ts";
import { fakeCalls, scriptFake } from "../helpers/fake-ai.ts";
import { attemptsOf, createModel, giveCredits, stack, submit, waitForJob } from "../helpers/ai.ts";
import { orgRoute } from "../helpers/ai-jobs.ts";
import { tokenFor } from "../helpers/supabase.ts";

async function team() {
  const t = await createTeam();
  await giveCredits(t.orgId, 10_000);
  return { ...t, token: await tokenFor(t.member) };
}

describe("presets", () => {
  it("a global style preset adds its suffix and negative prompt to what the image provider gets", async () => {
    const t = await team();
    const { model, deployments } = await createModel({ modality: "image", deployments: [{ provider: "openai" }] });
    const res = await submit({ token: t.token }, { org_id: t.orgId, modality: "image", model, input: { prompt: "a red fox", size: "512x512", preset: "photoreal" } });
    expect(res.status, res.raw).toBe(202);
    expect((await waitForJob(res.body.id)).status).toBe("succeeded");
    const [sent] = await fakeCalls(stack.fakeAiUrl, deployments[0].key);
    expect((sent.body as { prompt: string }).prompt).toBe("a red fox, photorealistic, natural light, 35mm, high detail");
  });

  it("an org's own preset shadows the global one with the same key, for that org only", async () => {
    const [a, b] = [await team(), await team()];
    await admin.query(`insert into ai.org_presets (org_id, key, kind, modality, name, body) values ($1, 'photoreal', 'style', 'image', 'Ours', '{"prompt_suffix": "in our house style"}')`, [a.orgId]);
    const { model, deployments } = await createModel({ modality: "image", deployments: [{ provider: "openai" }] });
    for (const t of [a, b]) {
      const res = await submit({ token: t.token }, { org_id: t.orgId, modality: "image", model, input: { prompt: "a fox", size: "512x512", preset: "photoreal" } });
      expect((await waitForJob(res.body.id)).status).toBe("succeeded");
    }
    const prompts = (await fakeCalls(stack.fakeAiUrl, deployments[0].key)).map((c) => (c.body as { prompt: string }).prompt);
    expect(prompts).toEqual(["a fox, in our house style", "a fox, photorealistic, natural light, 35mm, high detail"]);
  });

  it("a prompt template is filled from variables, and its system prompt is sent", async () => {
    const t = await team();
    const { model, deployments } = await createModel({ modality: "text", deployments: [{ provider: "openai" }] });
    const res = await submit({ token: t.token }, {
      org_id: t.orgId, modality: "text", model,
      input: { preset: "marketing-copy", variables: { format: "a tweet", topic: "oat milk", audience: "runners", tone: "cheerful" }, max_tokens: 100 },
    });
    expect(res.status, res.raw).toBe(202);
    expect((await waitForJob(res.body.id)).status).toBe("succeeded");
    const [sent] = await fakeCalls(stack.fakeAiUrl, deployments[0].key);
    expect((sent.body as { messages: unknown[] }).messages).toEqual([
      { role: "system", content: "You write concise, persuasive marketing copy." },
      { role: "user", content: "Write a tweet about oat milk for runners in a cheerful tone." },
    ]);
  });

  it("a template missing a variable is refused before anything is reserved", async () => {
    const t = await team();
    const { model } = await createModel({ modality: "text", deployments: [{ provider: "openai" }] });
    const res = await submit({ token: t.token }, { org_id: t.orgId, modality: "text", model, input: { preset: "marketing-copy", variables: { format: "a tweet" } } });
    expect(res.status).toBe(400);
    expect(res.body.error.message).toMatch(/needs the variable "topic"/);
    expect((await admin.query("select count(*)::int as n from ai.jobs where org_id = $1", [t.orgId])).rows[0].n).toBe(0);
  });
});

describe("prompt enhancement", () => {
  it("rewrites the prompt with the org's economy text route first, sends the rewrite, and charges both calls once", async () => {
    const t = await team();
    const text = await createModel({ modality: "text", deployments: [{ provider: "openai" }] });
    await orgRoute(t.orgId, "text", "economy", [text.deployments[0].id]);
    await scriptFake(stack.fakeAiUrl, text.deployments[0].key, { mode: "ok", text: "  a red fox in fresh snow at dawn, soft light  ", usage: { prompt_tokens: 50, completion_tokens: 12 } });
    const image = await createModel({ modality: "image", deployments: [{ provider: "openai" }] });
    const res = await submit({ token: t.token }, { org_id: t.orgId, modality: "image", model: image.model, input: { prompt: "red fox snow", size: "512x512", enhance: true } });
    expect(res.status, res.raw).toBe(202);
    const job = await waitForJob(res.body.id);
    expect(job.status, JSON.stringify(job.error)).toBe("succeeded");
    const [sent] = await fakeCalls(stack.fakeAiUrl, image.deployments[0].key);
    expect((sent.body as { prompt: string }).prompt).toBe("a red fox in fresh snow at dawn, soft light");
    const attempts = await attemptsOf(job.id);
    expect(attempts.map((a) => [a.purpose, a.status, a.credits])).toEqual([
      // 50 x 1000/1M + 12 x 2000/1M = 0.074 -> 1 credit; one image at 5 credits.
      ["enhance", "succeeded", 1],
      ["main", "succeeded", 5],
    ]);
    expect(job.settled_credits).toBe(6);
    // The rewrite is kept with the job, so a resumed run does not pay for it twice.
    expect((await admin.query("select input ->> 'enhanced_prompt' as p from ai.jobs where id = $1", [job.id])).rows[0].p)
      .toBe("a red fox in fresh snow at dawn, soft light");
  });
});
