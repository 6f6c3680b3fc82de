// Streams through the OpenAI-compatible endpoint when things go wrong: fallback only before
// the first byte, a provider that cuts the stream after some chunks, a client that goes away,
// every deployment cooling, and refusals (moderation, provider content policy). Each case is
// checked in the ledger: charged exactly for what was delivered, or not at all.
import OpenAI from "openai";
import { describe, expect, it } from "vitest";
import { admin } from "../helpers/db.ts";
import { account, expectLedgerConsistent } from "../helpers/credits.ts";
import { fakeCalls, scriptFake } from "../helpers/fake-ai.ts";
import { attemptsOf, createModel, jobRow, reservation, stack, waitForJob } from "../helpers/ai.ts";
import { apiError, createApiKey, expectUsageMatchesCharges, fundedMember, jobOf, openai, routeTier, setPolicy } from "../helpers/openai.ts";
import { DEFAULT_LIMITS } from "../../functions/_shared/ai/router.ts";

// 1 credit per input token and 3 per output token: every charge is a small exact integer.
const PRICES = [
  { unit: "input_token", credits: 1, per_units: 1 },
  { unit: "output_token", credits: 3, per_units: 1 },
];
const tokens = (s: string) => Math.ceil(Buffer.byteLength(s, "utf8") / 4);

async function setup(deploymentCount = 1, provider = "openai") {
  const { team, client } = await fundedMember(100_000);
  const { model, deployments } = await createModel({
    modality: "text",
    deployments: Array.from({ length: deploymentCount }, () => ({ provider, prices: PRICES })),
  });
  return { team, model, deployments, client };
}

/** Streams a completion to its end (or its error): the chunks, their text, the error, the response. */
async function streamed(client: OpenAI, params: Omit<OpenAI.ChatCompletionCreateParamsStreaming, "stream">) {
  const { data, response } = await client.chat.completions.create({ ...params, stream: true }).withResponse();
  const chunks: OpenAI.ChatCompletionChunk[] = [];
  let error: unknown;
  try {
    for await (const c of data) chunks.push(c);
  } catch (err) {
    error = err;
  }
  return { chunks, text: chunks.map((c) => c.choices[0]?.delta?.content ?? "").join(""), error, response };
}

/** Streams a slow answer and goes away as soon as some text has arrived: what was received, and the response. */
async function disconnectAfterFirstText(client: OpenAI, model: string) {
  const abort = new AbortController();
  const { data, response } = await client.chat.completions
    .create({ model, messages: [{ role: "user", content: "count slowly" }], max_tokens: 500, stream: true }, { signal: abort.signal })
    .withResponse();
  let received = "";
  try {
    for await (const c of data) {
      received += c.choices[0]?.delta?.content ?? "";
      if (received) abort.abort();
    }
  } catch (err) {
    // Depending on timing the SDK ends the loop quietly or raises its abort error.
    expect(err).toBeInstanceOf(OpenAI.APIUserAbortError);
  }
  return { received, response };
}

describe("falling back before the first byte", () => {
  for (const failure of [
    { mode: "server_error", errorClass: "server" },
    { mode: "rate_limit", retryAfter: 0, errorClass: "rate_limit" },
    // The provider opened its stream but sent no text before dropping: the client has seen nothing yet.
    { mode: "stream_cut", chunks: 0, errorClass: "server" },
  ]) {
    it(`a first deployment failing with ${failure.mode} hands the stream to the second: one stream, one charge`, async () => {
      const { team, model, deployments, client } = await setup(2);
      const { errorClass, ...step } = failure;
      // It fails on every try the router gives it (the first call and its retries).
      const tries = DEFAULT_LIMITS.triesPerDeployment;
      await scriptFake(stack.fakeAiUrl, deployments[0].key, Array.from({ length: tries }, () => step));
      await scriptFake(stack.fakeAiUrl, deployments[1].key, { mode: "ok", text: "answer from the second", usage: { prompt_tokens: 4, completion_tokens: 5 } });

      const { text, chunks, error, response } = await streamed(client, {
        model,
        messages: [{ role: "user", content: "hello there friend" }],
        max_tokens: 50,
        stream_options: { include_usage: true },
      });
      expect(error).toBeUndefined();
      expect(text).toBe("answer from the second");
      // One role chunk opens the one stream.
      expect(chunks.filter((c) => c.choices[0]?.delta?.role === "assistant")).toHaveLength(1);
      expect(chunks.at(-1)!.usage).toMatchObject({ prompt_tokens: 4, completion_tokens: 5 });

      const jobId = await jobOf(response.headers);
      const job = await waitForJob(jobId);
      // 4 x 1 + 5 x 3 = 19, for the deployment that answered only.
      expect(job).toMatchObject({ status: "succeeded", settled_credits: 19, deployment_id: deployments[1].id });
      expect(await attemptsOf(jobId)).toMatchObject([
        { kind: "initial", deployment_id: deployments[0].id, status: "failed", error_class: errorClass, credits: 0 },
        ...Array.from({ length: tries - 1 }, () => ({ kind: "retry", deployment_id: deployments[0].id, status: "failed", error_class: errorClass, credits: 0 })),
        { kind: "fallback", deployment_id: deployments[1].id, status: "succeeded", credits: 19, billed: true },
      ]);
      expect(await reservation(job.reservation_id!)).toMatchObject({ status: "posted", settled_amount: 19 });
      expect(await account(team.orgId)).toMatchObject({ balance: 100_000 - 19, reserved: 0 });
      await expectLedgerConsistent(team.orgId);
      await expectUsageMatchesCharges(team.orgId);
      expect(await fakeCalls(stack.fakeAiUrl, deployments[0].key)).toHaveLength(tries);
      expect(await fakeCalls(stack.fakeAiUrl, deployments[1].key)).toHaveLength(1);
    });
  }
});

describe("a stream that fails after the first byte", () => {
  for (const mode of ["stream_cut", "stream_error"]) {
    it(`${mode}: the SDK raises on the error chunk, no fallback, the job fails charged exactly for what was delivered`, async () => {
      const { team, model, deployments, client } = await setup(2);
      const prompt = "write six words please";
      await scriptFake(stack.fakeAiUrl, deployments[0].key, { mode, text: "one two three four five six", chunks: 2 });

      const { text, error, response } = await streamed(client, { model, messages: [{ role: "user", content: prompt }], max_tokens: 100 });
      expect(text).toBe("one two three four ");
      expect(error).toBeInstanceOf(OpenAI.APIError);
      expect((error as InstanceType<typeof OpenAI.APIError>).type).toBe("server_error");
      expect((error as Error).message).toMatch(/incomplete/);

      const jobId = await jobOf(response.headers);
      const job = await waitForJob(jobId);
      // Input as estimated from the prompt (no usage arrived), output as counted from what was sent.
      const units = { input_token: tokens(prompt), output_token: tokens("one two three four ") };
      const credits = units.input_token + 3 * units.output_token;
      expect(job).toMatchObject({ status: "failed", settled_credits: credits });
      expect(job.error).toMatchObject({ code: "server" });
      const attempts = await attemptsOf(jobId);
      expect(attempts).toHaveLength(1);
      expect(attempts[0]).toMatchObject({ deployment_id: deployments[0].id, status: "failed", billed: true, credits, units });
      expect(await reservation(job.reservation_id!)).toMatchObject({ status: "posted", amount: job.reserved_credits, settled_amount: credits });
      expect(await account(team.orgId)).toMatchObject({ balance: 100_000 - credits, reserved: 0 });
      await expectLedgerConsistent(team.orgId);
      await expectUsageMatchesCharges(team.orgId);
      // The answer never changes provider mid-way.
      expect(await fakeCalls(stack.fakeAiUrl, deployments[1].key)).toHaveLength(0);
    });
  }

  it("a client that disconnects mid-stream is settled for what was consumed, and the reservation is closed", async () => {
    const { team, model, deployments, client } = await setup();
    const words = Array.from({ length: 40 }, (_, i) => `word${i}`).join(" ");
    await scriptFake(stack.fakeAiUrl, deployments[0].key, { mode: "ok", text: words, chunks: 20, chunkDelayMs: 150 });

    const { received, response } = await disconnectAfterFirstText(client, model);
    expect(received.length).toBeGreaterThan(0);
    expect(received.length).toBeLessThan(words.length);

    const jobId = await jobOf(response.headers);
    // The full stream would take 20 x 150 ms; the gateway notices the client leaving long before.
    const job = await waitForJob(jobId, ["succeeded", "failed", "canceled"], 10_000);
    expect(job.status).toBe("canceled");
    const [attempt] = await attemptsOf(jobId);
    expect(attempt).toMatchObject({ status: "canceled", billed: true });
    expect(attempt.units.input_token).toBe(tokens("count slowly"));
    expect(attempt.units.output_token).toBeGreaterThan(0);
    expect(attempt.units.output_token).toBeLessThan(tokens(words));
    expect(attempt.credits).toBe(attempt.units.input_token + 3 * attempt.units.output_token);
    expect(job.settled_credits).toBe(attempt.credits);
    expect(job.settled_credits).toBeGreaterThan(0);
    expect(job.settled_credits).toBeLessThanOrEqual(job.reserved_credits);
    expect(await reservation(job.reservation_id!)).toMatchObject({ status: "posted", settled_amount: job.settled_credits });
    expect(await account(team.orgId)).toMatchObject({ balance: 100_000 - job.settled_credits!, reserved: 0 });
    await expectLedgerConsistent(team.orgId);
    await expectUsageMatchesCharges(team.orgId);
  });
});

describe("an Anthropic deployment behind the endpoint", () => {
  it("a cut stream is charged the exact input tokens of message_start, not an estimate", async () => {
    const { team, model, deployments, client } = await setup(1, "anthropic");
    const prompt = "write six words please";
    // The provider counts 17 input tokens (its own tokenizer, system framing): more than the estimate of 6.
    await scriptFake(stack.fakeAiUrl, deployments[0].key, { mode: "stream_cut", text: "one two three four five six", chunks: 2, usage: { input_tokens: 17 } });

    const { text, error, response } = await streamed(client, { model, messages: [{ role: "user", content: prompt }], max_tokens: 100 });
    expect(text).toBe("one two three four ");
    expect(error).toBeInstanceOf(OpenAI.APIError);

    const job = await waitForJob(await jobOf(response.headers));
    const units = { input_token: 17, output_token: tokens("one two three four ") };
    const credits = 17 + 3 * units.output_token;
    expect(job).toMatchObject({ status: "failed", settled_credits: credits });
    expect(await attemptsOf(job.id)).toMatchObject([{ status: "failed", billed: true, units, credits }]);
    expect(await account(team.orgId)).toMatchObject({ balance: 100_000 - credits, reserved: 0 });
    await expectLedgerConsistent(team.orgId);
    await expectUsageMatchesCharges(team.orgId);
  });

  it("a client that disconnects is charged message_start's input and what was streamed", async () => {
    const { team, model, deployments, client } = await setup(1, "anthropic");
    const words = Array.from({ length: 40 }, (_, i) => `word${i}`).join(" ");
    await scriptFake(stack.fakeAiUrl, deployments[0].key, { mode: "ok", text: words, chunks: 20, chunkDelayMs: 150, usage: { input_tokens: 23 } });
    const { response } = await disconnectAfterFirstText(client, model);
    const job = await waitForJob(await jobOf(response.headers), ["succeeded", "failed", "canceled"], 10_000);
    expect(job.status).toBe("canceled");
    const [attempt] = await attemptsOf(job.id);
    expect(attempt.units.input_token).toBe(23);
    expect(attempt.units.output_token).toBeGreaterThan(0);
    expect(attempt.units.output_token).toBeLessThan(tokens(words));
    expect(job.settled_credits).toBe(23 + 3 * attempt.units.output_token);
    expect(await account(team.orgId)).toMatchObject({ balance: 100_000 - job.settled_credits!, reserved: 0 });
    await expectLedgerConsistent(team.orgId);
  });
});

describe("refusals that charge nothing", () => {
  it("every deployment cooling: 429 with Retry-After from the earliest cooldown, the reservation voided", async () => {
    const { team, model, deployments, client } = await setup(2);
    await admin.query(
      `insert into ai.deployment_health (deployment_id, cooldown_until, cooldown_reason) values
         ($1, now() + interval '40 seconds', 'test'), ($2, now() + interval '20 seconds', 'test')`,
      [deployments[0].id, deployments[1].id],
    );
    for (const stream of [false, true]) {
      const { data: err, response } = await client.chat.completions
        .create({ model, messages: [{ role: "user", content: "hi" }], stream })
        .withResponse()
        .then(() => ({ data: undefined, response: undefined }), (e: InstanceType<typeof OpenAI.APIError>) => ({ data: e, response: e }));
      expect(err).toBeInstanceOf(OpenAI.RateLimitError);
      expect(err!.code).toBe("all_providers_cooling");
      const retryAfter = Number(response!.headers!.get("retry-after"));
      expect(retryAfter).toBeGreaterThanOrEqual(15);
      expect(retryAfter).toBeLessThanOrEqual(20);
    }
    const { rows } = await admin.query("select status, settled_credits::int, reservation_id from ai.jobs where org_id = $1", [team.orgId]);
    expect(rows).toHaveLength(2);
    for (const r of rows) {
      expect(r).toMatchObject({ status: "failed", settled_credits: 0 });
      expect(await reservation(r.reservation_id)).toMatchObject({ status: "voided" });
    }
    expect(await account(team.orgId)).toMatchObject({ balance: 100_000, reserved: 0 });
    await expectLedgerConsistent(team.orgId);
    await expectUsageMatchesCharges(team.orgId);
    expect(await fakeCalls(stack.fakeAiUrl, deployments[0].key)).toHaveLength(0);
    expect(await fakeCalls(stack.fakeAiUrl, deployments[1].key)).toHaveLength(0);
  });

  it("input flagged by the org's moderation: 400 content_policy_violation, the model never called, nothing charged", async () => {
    const { team, model, deployments, client } = await setup();
    const mod = await createModel({ modality: "moderation", deployments: [{ provider: "openai", prices: [{ unit: "call", credits: 1 }] }] });
    await routeTier(team.orgId, "moderation", "economy", [mod.deployments[0].id]);
    await setPolicy(team.orgId, { moderate_input: true });

    for (const stream of [false, true]) {
      const err = await apiError(client.chat.completions.create({ model, messages: [{ role: "user", content: "please FLAGME now" }], stream }));
      expect(err).toBeInstanceOf(OpenAI.BadRequestError);
      expect(err.code).toBe("content_policy_violation");
    }
    expect(await fakeCalls(stack.fakeAiUrl, deployments[0].key)).toHaveLength(0);
    expect(await fakeCalls(stack.fakeAiUrl, mod.deployments[0].key)).toHaveLength(2);
    const { rows } = await admin.query("select status, settled_credits::int, error->>'code' as code from ai.jobs where org_id = $1", [team.orgId]);
    expect(rows).toEqual([
      { status: "failed", settled_credits: 0, code: "input_flagged" },
      { status: "failed", settled_credits: 0, code: "input_flagged" },
    ]);
    expect(await account(team.orgId)).toMatchObject({ balance: 100_000, reserved: 0 });
    await expectLedgerConsistent(team.orgId);
    await expectUsageMatchesCharges(team.orgId);

    // Clean input passes moderation, and the moderation call is part of the job's charge.
    await scriptFake(stack.fakeAiUrl, deployments[0].key, { mode: "ok", text: "fine", usage: { prompt_tokens: 2, completion_tokens: 1 } });
    const { response } = await client.chat.completions.create({ model, messages: [{ role: "user", content: "a kind question" }], max_tokens: 10 }).withResponse();
    const job = await jobRow(await jobOf(response.headers));
    expect(job).toMatchObject({ status: "succeeded", settled_credits: 2 + 3 + 1 });
    expect(await account(team.orgId)).toMatchObject({ balance: 100_000 - 6, reserved: 0 });
    await expectLedgerConsistent(team.orgId);
    await expectUsageMatchesCharges(team.orgId);
  });

  it("an org API key is held to the org's moderation policy like a member", async () => {
    const { team, model, deployments } = await setup();
    const mod = await createModel({ modality: "moderation", deployments: [{ provider: "openai", prices: [{ unit: "call", credits: 1 }] }] });
    await routeTier(team.orgId, "moderation", "economy", [mod.deployments[0].id]);
    await setPolicy(team.orgId, { moderate_input: true });
    const key = await createApiKey(team.admin, team.orgId);

    const err = await apiError(openai(key.key).chat.completions.create({ model, messages: [{ role: "user", content: "please FLAGME now" }] }));
    expect(err).toBeInstanceOf(OpenAI.BadRequestError);
    expect(err.code).toBe("content_policy_violation");
    expect(await fakeCalls(stack.fakeAiUrl, mod.deployments[0].key)).toHaveLength(1);
    expect(await fakeCalls(stack.fakeAiUrl, deployments[0].key)).toHaveLength(0);
    expect(await account(team.orgId)).toMatchObject({ balance: 100_000, reserved: 0 });
    await expectLedgerConsistent(team.orgId);
    await expectUsageMatchesCharges(team.orgId);
  });

  for (const c of [
    { mode: "server_error", status: 502, Class: OpenAI.InternalServerError, code: "server", tries: DEFAULT_LIMITS.triesPerDeployment },
    { mode: "context_window", status: 400, Class: OpenAI.BadRequestError, code: "context_length_exceeded", tries: 1 },
  ]) {
    it(`a provider failing for good (${c.mode}) is ${c.status} ${c.code} before any stream starts; the reservation voided`, async () => {
      const { team, model, deployments, client } = await setup();
      for (const stream of [false, true]) {
        // The first round cooled the deployment (a later request would get 429): start afresh.
        await admin.query("delete from ai.deployment_health where deployment_id = $1", [deployments[0].id]);
        await scriptFake(stack.fakeAiUrl, deployments[0].key, Array.from({ length: c.tries }, () => ({ mode: c.mode })));
        const err = await apiError(client.chat.completions.create({ model, messages: [{ role: "user", content: "hi" }], max_tokens: 10, stream }));
        expect(err).toBeInstanceOf(c.Class);
        expect(err.status).toBe(c.status);
        expect(err.code).toBe(c.code);
      }
      const { rows } = await admin.query("select status, settled_credits::int, reservation_id from ai.jobs where org_id = $1", [team.orgId]);
      expect(rows).toHaveLength(2);
      for (const r of rows) {
        expect(r).toMatchObject({ status: "failed", settled_credits: 0 });
        expect(await reservation(r.reservation_id)).toMatchObject({ status: "voided" });
      }
      expect(await fakeCalls(stack.fakeAiUrl, deployments[0].key)).toHaveLength(2 * c.tries);
      expect(await account(team.orgId)).toMatchObject({ balance: 100_000, reserved: 0 });
      await expectLedgerConsistent(team.orgId);
    });
  }

  it("a provider's content-policy refusal: 400 content_policy_violation, the reservation voided", async () => {
    const { team, model, deployments, client } = await setup();
    await scriptFake(stack.fakeAiUrl, deployments[0].key, { mode: "content_policy" });
    const err = await apiError(client.chat.completions.create({ model, messages: [{ role: "user", content: "something" }] }));
    expect(err).toBeInstanceOf(OpenAI.BadRequestError);
    expect(err.code).toBe("content_policy_violation");
    const { rows } = await admin.query("select id, status, settled_credits::int, reservation_id from ai.jobs where org_id = $1", [team.orgId]);
    expect(rows).toHaveLength(1);
    expect(rows[0]).toMatchObject({ status: "failed", settled_credits: 0 });
    expect(await reservation(rows[0].reservation_id)).toMatchObject({ status: "voided" });
    expect(await attemptsOf(rows[0].id)).toMatchObject([{ status: "refused", error_class: "content_policy", credits: 0 }]);
    expect(await account(team.orgId)).toMatchObject({ balance: 100_000, reserved: 0 });
    await expectLedgerConsistent(team.orgId);
    await expectUsageMatchesCharges(team.orgId);
  });
});
