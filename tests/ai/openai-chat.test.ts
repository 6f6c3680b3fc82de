// The OpenAI-compatible endpoint driven by the real openai SDK: chat completions streamed and
// not, who may call it for which org (member, viewer, non-member, org API key, personal org),
// tier aliases, and 402 without credits. Every charge is checked against the price table.
import OpenAI from "openai";
import { describe, expect, it } from "vitest";
import { admin, createTeam, createUser } from "../helpers/db.ts";
import { account, expectLedgerConsistent } from "../helpers/credits.ts";
import { fakeCalls, scriptFake } from "../helpers/fake-ai.ts";
import { attemptsOf, createModel, giveCredits, jobRow, reservation, stack } from "../helpers/ai.ts";
import { apiError, createApiKey, expectUnchanged, expectUsageMatchesCharges, fundedMember, jobOf, openai, orgState, routeTier } from "../helpers/openai.ts";
import { tokenFor } from "../helpers/supabase.ts";

const USAGE = { prompt_tokens: 3000, completion_tokens: 1500 };
// 3000 x 1000/1M + 1500 x 2000/1M = 3 + 3 (the default test prices).
const CREDITS = 6;
// 3,300 bytes: a bound above the 3,000 prompt tokens the fake reports (a real count never exceeds the bytes).
const PROMPT = "Say hello. ".repeat(300);
const ask = (content = PROMPT) => [{ role: "user" as const, content }];

async function textModel() {
  return await createModel({ modality: "text", deployments: [{ provider: "openai" }] });
}

describe("chat completions through the openai SDK", () => {
  it("answers a member, reports the provider's usage and settles exactly that", async () => {
    const { team, client } = await fundedMember(1000);
    const { model, deployments } = await textModel();
    await scriptFake(stack.fakeAiUrl, deployments[0].key, { mode: "ok", text: "Hello from the fake.", usage: USAGE });

    const { data, response } = await client.chat.completions
      .create({ model, messages: [{ role: "system", content: "Be brief." }, { role: "user", content: PROMPT }], max_tokens: 2000 })
      .withResponse();

    expect(data.object).toBe("chat.completion");
    expect(data.model).toBe(model);
    expect(data.choices).toHaveLength(1);
    expect(data.choices[0]).toMatchObject({ index: 0, finish_reason: "stop", message: { role: "assistant", content: "Hello from the fake." } });
    expect(data.usage).toMatchObject({ prompt_tokens: 3000, completion_tokens: 1500, total_tokens: 4500 });
    expect(response.headers.get("x-plinth-credits")).toBe(String(CREDITS));
    const jobId = await jobOf(response.headers);
    expect(data.id).toBe(`chatcmpl-${jobId.replaceAll("-", "")}`);

    const job = await jobRow(jobId);
    expect(job).toMatchObject({ org_id: team.orgId, status: "succeeded", settled_credits: CREDITS });
    // Worst case: (9 + 3300 bytes + 64) x 1000/1M + 2000 x 2000/1M = 3.373 + 4 -> 8.
    expect(job.reserved_credits).toBe(8);
    expect(await reservation(job.reservation_id!)).toMatchObject({ status: "posted", settled_amount: CREDITS });
    expect(await account(team.orgId)).toMatchObject({ balance: 1000 - CREDITS, reserved: 0 });
    await expectLedgerConsistent(team.orgId);
    await expectUsageMatchesCharges(team.orgId);
    expect(await attemptsOf(jobId)).toMatchObject([
      { kind: "initial", status: "succeeded", credits: CREDITS, billed: true, units: { input_token: 3000, output_token: 1500 } },
    ]);
    const { rows } = await admin.query("select user_id, api_key_id, source, model_id, tier from ai.jobs where id = $1", [jobId]);
    expect(rows[0]).toEqual({ user_id: team.member.id, api_key_id: null, source: "openai", model_id: model, tier: null });

    // The provider was called once, with the messages as sent and the caller's max_tokens.
    const calls = await fakeCalls(stack.fakeAiUrl, deployments[0].key);
    expect(calls).toHaveLength(1);
    expect(calls[0].body).toMatchObject({ model: deployments[0].providerModel, max_tokens: 2000, messages: [{ role: "system", content: "Be brief." }, { role: "user", content: PROMPT }] });
  });

  it("streams with stream_options.include_usage: chunks, a final usage chunk, one exact charge", async () => {
    const { team, client } = await fundedMember(1000);
    const { model, deployments } = await textModel();
    const text = "one two three four five six seven";
    await scriptFake(stack.fakeAiUrl, deployments[0].key, { mode: "ok", text, chunks: 4, usage: USAGE });

    const { data: stream, response } = await client.chat.completions
      .create({ model, messages: ask(), stream: true, stream_options: { include_usage: true } })
      .withResponse();
    expect(response.headers.get("content-type")).toMatch(/text\/event-stream/);
    const chunks: OpenAI.ChatCompletionChunk[] = [];
    for await (const c of stream) chunks.push(c);

    const jobId = await jobOf(response.headers);
    expect(chunks.every((c) => c.object === "chat.completion.chunk" && c.id === `chatcmpl-${jobId.replaceAll("-", "")}`)).toBe(true);
    expect(chunks[0].choices[0].delta).toMatchObject({ role: "assistant" });
    expect(chunks.map((c) => c.choices[0]?.delta?.content ?? "").join("")).toBe(text);
    // Exactly one finish_reason, then exactly one usage chunk with no choices, last.
    expect(chunks.filter((c) => c.choices[0]?.finish_reason).map((c) => c.choices[0].finish_reason)).toEqual(["stop"]);
    const last = chunks.at(-1)!;
    expect(last.choices).toEqual([]);
    expect(last.usage).toMatchObject({ prompt_tokens: 3000, completion_tokens: 1500, total_tokens: 4500 });
    expect(chunks.slice(0, -1).every((c) => c.usage === null)).toBe(true);

    const job = await jobRow(jobId);
    // No max_tokens: the model's max_output (4096) bounds it: 3.364 + 8.192 -> 12 held, 6 charged.
    expect(job).toMatchObject({ status: "succeeded", reserved_credits: 12, settled_credits: CREDITS });
    expect(await reservation(job.reservation_id!)).toMatchObject({ status: "posted", amount: 12, settled_amount: CREDITS });
    expect(await account(team.orgId)).toMatchObject({ balance: 1000 - CREDITS, reserved: 0 });
    expect(await attemptsOf(jobId)).toHaveLength(1);
  });

  it("streams without include_usage: no usage reaches the client, but the provider's usage is still what is charged", async () => {
    const { team, client } = await fundedMember(1000);
    const { model, deployments } = await textModel();
    await scriptFake(stack.fakeAiUrl, deployments[0].key, { mode: "ok", text: "alpha beta gamma", usage: USAGE });

    const { data: stream, response } = await client.chat.completions
      .create({ model, messages: ask(), stream: true })
      .withResponse();
    const chunks: OpenAI.ChatCompletionChunk[] = [];
    for await (const c of stream) chunks.push(c);

    expect(chunks.map((c) => c.choices[0]?.delta?.content ?? "").join("")).toBe("alpha beta gamma");
    expect(chunks.every((c) => c.choices.length === 1)).toBe(true);
    expect(chunks.some((c) => c.usage)).toBe(false);
    expect(chunks.at(-1)!.choices[0].finish_reason).toBe("stop");
    // The gateway always asks the provider for usage, whatever the client asked.
    const calls = await fakeCalls(stack.fakeAiUrl, deployments[0].key);
    expect(calls.map((c) => (c.body as { stream_options?: unknown }).stream_options)).toEqual([{ include_usage: true }]);
    const job = await jobRow(await jobOf(response.headers));
    expect(job).toMatchObject({ status: "succeeded", settled_credits: CREDITS });
    expect(await account(team.orgId)).toMatchObject({ balance: 1000 - CREDITS, reserved: 0 });
  });

  it("routes plinth/economy through the org's own route for the tier", async () => {
    const team = await createTeam();
    await giveCredits(team.orgId, 1000);
    const { deployments } = await createModel({
      modality: "text",
      deployments: [{ provider: "openai", prices: [{ unit: "input_token", credits: 1, per_units: 1000 }, { unit: "output_token", credits: 1, per_units: 100 }] }],
    });
    await routeTier(team.orgId, "text", "economy", [deployments[0].id]);
    await scriptFake(stack.fakeAiUrl, deployments[0].key, { mode: "ok", text: "economy answer", usage: { prompt_tokens: 2000, completion_tokens: 300 } });
    const client = openai(await tokenFor(team.owner), team.orgId);

    const { data, response } = await client.chat.completions
      .create({ model: "plinth/economy", messages: ask("cheap please ".repeat(200)), max_tokens: 400 })
      .withResponse();

    expect(data.choices[0].message.content).toBe("economy answer");
    expect(data.model).toBe("plinth/economy");
    expect(await fakeCalls(stack.fakeAiUrl, deployments[0].key)).toHaveLength(1);
    const jobId = await jobOf(response.headers);
    const { rows } = await admin.query("select tier, model_id, deployment_id, settled_credits::int from ai.jobs where id = $1", [jobId]);
    // 2000 / 1000 + 300 / 100 = 2 + 3 credits, at the org route's deployment's prices.
    expect(rows[0]).toEqual({ tier: "economy", model_id: null, deployment_id: deployments[0].id, settled_credits: 5 });
    expect(await account(team.orgId)).toMatchObject({ balance: 995, reserved: 0 });
  });

  it("refuses a non-member with 403 (PermissionDeniedError) and a viewer too, and changes nothing", async () => {
    const team = await createTeam();
    await giveCredits(team.orgId, 1000);
    const { model, deployments } = await textModel();
    const stranger = await createUser();
    const before = await orgState(team.orgId);

    for (const user of [stranger, team.viewer]) {
      const err = await apiError(openai(await tokenFor(user), team.orgId).chat.completions.create({ model, messages: [{ role: "user", content: "hi" }] }));
      expect(err).toBeInstanceOf(OpenAI.PermissionDeniedError);
      expect(err.status).toBe(403);
      expect(err.error).toMatchObject({ type: "permission_error", param: null });
      expect(typeof (err.error as { message: string }).message).toBe("string");
      // Streaming is refused the same way, as an HTTP error before any stream starts.
      const streamErr = await apiError(openai(await tokenFor(user), team.orgId).chat.completions.create({ model, messages: [{ role: "user", content: "hi" }], stream: true }));
      expect(streamErr).toBeInstanceOf(OpenAI.PermissionDeniedError);
    }
    await expectUnchanged(team.orgId, before);
    expect(await fakeCalls(stack.fakeAiUrl, deployments[0].key)).toHaveLength(0);
  });

  it("in an org that requires MFA, an aal1 session is refused (403) and an aal2 one answered", async () => {
    const team = await createTeam("MFA AI");
    await admin.query("update public.orgs set require_mfa = true where id = $1", [team.orgId]);
    await giveCredits(team.orgId, 1000);
    const { model, deployments } = await textModel();
    const before = await orgState(team.orgId);
    const err = await apiError(openai(await tokenFor(team.member, { aal: "aal1" }), team.orgId).chat.completions.create({ model, messages: ask(), max_tokens: 2000 }));
    expect(err).toBeInstanceOf(OpenAI.PermissionDeniedError);
    await expectUnchanged(team.orgId, before);

    await scriptFake(stack.fakeAiUrl, deployments[0].key, { mode: "ok", text: "second factor", usage: USAGE });
    const res = await openai(await tokenFor(team.member, { aal: "aal2" }), team.orgId).chat.completions.create({ model, messages: ask(), max_tokens: 2000 });
    expect(res.choices[0].message.content).toBe("second factor");
    expect(await account(team.orgId)).toMatchObject({ balance: 1000 - CREDITS, reserved: 0 });
  });

  it("answers 402 to an org without credits, before any provider call", async () => {
    const team = await createTeam();
    const { model, deployments } = await textModel();
    const before = await orgState(team.orgId);
    const client = openai(await tokenFor(team.member), team.orgId);

    const err = await apiError(client.chat.completions.create({ model, messages: [{ role: "user", content: "hi" }] }));
    expect(err).toBeInstanceOf(OpenAI.APIError);
    expect(err.status).toBe(402);
    expect(err.code).toBe("insufficient_credits");
    expect(err.type).toBe("insufficient_quota");
    const streamErr = await apiError(client.chat.completions.create({ model, messages: [{ role: "user", content: "hi" }], stream: true }));
    expect(streamErr.status).toBe(402);

    await expectUnchanged(team.orgId, before);
    expect(await fakeCalls(stack.fakeAiUrl, deployments[0].key)).toHaveLength(0);
  });

  it("an org API key spends in its own org, and is refused (403) when it names another", async () => {
    const team = await createTeam();
    const other = await createTeam();
    await giveCredits(team.orgId, 1000);
    await giveCredits(other.orgId, 1000);
    const { model, deployments } = await textModel();
    await scriptFake(stack.fakeAiUrl, deployments[0].key, { mode: "ok", text: "from a key", usage: USAGE });
    const key = await createApiKey(team.admin, team.orgId);

    const { data, response } = await openai(key.key).chat.completions
      .create({ model, messages: ask(), max_tokens: 2000 })
      .withResponse();
    expect(data.choices[0].message.content).toBe("from a key");
    const { rows } = await admin.query("select org_id, user_id, api_key_id, settled_credits::int from ai.jobs where id = $1", [await jobOf(response.headers)]);
    expect(rows[0]).toEqual({ org_id: team.orgId, user_id: null, api_key_id: key.id, settled_credits: CREDITS });

    // Naming its own org is fine; naming another is refused and spends nothing there.
    await scriptFake(stack.fakeAiUrl, deployments[0].key, { mode: "ok", text: "again", usage: USAGE });
    expect((await openai(key.key, team.orgId).chat.completions.create({ model, messages: ask(), max_tokens: 2000 })).choices[0].message.content).toBe("again");
    const beforeOther = await orgState(other.orgId);
    const err = await apiError(openai(key.key, other.orgId).chat.completions.create({ model, messages: [{ role: "user", content: "hi" }] }));
    expect(err).toBeInstanceOf(OpenAI.PermissionDeniedError);
    await expectUnchanged(other.orgId, beforeOther);
    expect(await account(team.orgId)).toMatchObject({ balance: 1000 - 2 * CREDITS, reserved: 0 });

    // A key without ai.use in its scopes cannot spend.
    const readOnly = await createApiKey(team.admin, team.orgId, ["content.read"]);
    const before = await orgState(team.orgId);
    expect(await apiError(openai(readOnly.key).chat.completions.create({ model, messages: [{ role: "user", content: "hi" }] }))).toBeInstanceOf(OpenAI.PermissionDeniedError);
    await expectUnchanged(team.orgId, before);
  });

  it("uses the caller's personal org when no x-plinth-org is sent", async () => {
    const team = await createTeam();
    await giveCredits(team.orgId, 1000);
    const { rows } = await admin.query("select id from public.orgs where personal_user_id = $1", [team.member.id]);
    const personal = rows[0].id as string;
    await giveCredits(personal, 100);
    const { model, deployments } = await textModel();
    await scriptFake(stack.fakeAiUrl, deployments[0].key, { mode: "ok", text: "personal", usage: USAGE });
    const teamBefore = await orgState(team.orgId);

    const { response } = await openai(await tokenFor(team.member)).chat.completions
      .create({ model, messages: ask(), max_tokens: 2000 })
      .withResponse();
    const job = await jobRow(await jobOf(response.headers));
    expect(job).toMatchObject({ org_id: personal, status: "succeeded", settled_credits: CREDITS });
    expect(await account(personal)).toMatchObject({ balance: 100 - CREDITS, reserved: 0 });
    await expectUnchanged(team.orgId, teamBefore);
  });

  it("refuses a missing or forged credential with 401 (AuthenticationError)", async () => {
    const { model } = await textModel();
    const forged = await apiError(openai("not-a-jwt").chat.completions.create({ model, messages: [{ role: "user", content: "hi" }] }));
    expect(forged).toBeInstanceOf(OpenAI.AuthenticationError);
    const badKey = await apiError(openai(`plk_000000000000_${"x".repeat(43)}`).chat.completions.create({ model, messages: [{ role: "user", content: "hi" }] }));
    expect(badKey).toBeInstanceOf(OpenAI.AuthenticationError);
    expect(badKey.error).toMatchObject({ type: "authentication_error" });
  });
});
