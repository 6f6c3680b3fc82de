// The rest of the OpenAI-compatible surface through the real openai SDK: images (a signed
// Storage URL, or b64_json), embeddings (the SDK's default base64 and float), moderations, and
// the models an org may use.
import { createHash } from "node:crypto";
import OpenAI from "openai";
import { describe, expect, it } from "vitest";
import { admin, createTeam, createUser } from "../helpers/db.ts";
import { account } from "../helpers/credits.ts";
import { fakeCalls } from "../helpers/fake-ai.ts";
import { attemptsOf, createModel, jobRow, stack } from "../helpers/ai.ts";
import { apiError, createApiKey, fundedMember, jobOf, OPENAI_BASE, openai, setPolicy } from "../helpers/openai.ts";
import { tokenFor } from "../helpers/supabase.ts";

const PNG_MAGIC = [0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a];

/** What the fake OpenAI embeds a text as (scripts/fakes/openai.ts): exact in float32. */
function fakeVector(text: string, dims = 8): number[] {
  const d = createHash("sha256").update(text).digest();
  return Array.from({ length: dims }, (_, i) => (d[i % d.length] - 128) / 128);
}

describe("images/generations", () => {
  it("answers signed Storage URLs that download the generated PNGs, and charges n x the image price", async () => {
    const { team, client } = await fundedMember(1000);
    const { model, deployments } = await createModel({ modality: "image", deployments: [{ provider: "openai" }] });

    const { data, response } = await client.images.generate({ model, prompt: "a red fox in snow", n: 2, size: "1024x1024" }).withResponse();

    expect(data.data).toHaveLength(2);
    const urls = data.data!.map((d) => d.url!);
    for (const url of urls) {
      expect(url.startsWith(`${stack.supabaseUrl}/storage/v1/object/sign/ai-outputs/${team.orgId}/`)).toBe(true);
      // A signed URL needs no other credential, as OpenAI's expiring image URLs.
      const res = await fetch(url);
      expect(res.status).toBe(200);
      const bytes = new Uint8Array(await res.arrayBuffer());
      expect([...bytes.slice(0, 8)]).toEqual(PNG_MAGIC);
    }
    expect(new Set(urls).size).toBe(2);
    // The URL's token is what grants access: without it the object is private.
    const unsigned = urls[0].replace("/object/sign/", "/object/public/").replace(/\?.*$/, "");
    expect((await fetch(unsigned)).status).toBeGreaterThanOrEqual(400);

    const job = await jobRow(await jobOf(response.headers));
    expect(job).toMatchObject({ status: "succeeded", reserved_credits: 10, settled_credits: 10 });
    expect(job.output.files).toHaveLength(2);
    expect(await account(team.orgId)).toMatchObject({ balance: 990, reserved: 0 });
    expect((await fakeCalls(stack.fakeAiUrl, deployments[0].key))[0].body).toMatchObject({ prompt: "a red fox in snow", n: 2 });
  });

  it("answers b64_json when asked: the PNG itself", async () => {
    const { team, client } = await fundedMember(1000);
    const { model } = await createModel({ modality: "image", deployments: [{ provider: "openai" }] });

    const { data } = await client.images.generate({ model, prompt: "a lighthouse", response_format: "b64_json" }).withResponse();

    expect(data.data).toHaveLength(1);
    expect(data.data![0].url).toBeUndefined();
    const bytes = Buffer.from(data.data![0].b64_json!, "base64");
    expect([...bytes.subarray(0, 8)]).toEqual(PNG_MAGIC);
    // IHDR: the fake draws 16 x 16.
    expect(bytes.readUInt32BE(16)).toBe(16);
    expect(bytes.readUInt32BE(20)).toBe(16);
    expect(await account(team.orgId)).toMatchObject({ balance: 995, reserved: 0 });
  });
});

describe("embeddings", () => {
  it("the SDK's default (base64 on the wire) decodes to the provider's vectors", async () => {
    const { team, client } = await fundedMember(1000);
    const { model, deployments } = await createModel({ modality: "embedding", deployments: [{ provider: "openai", prices: [{ unit: "input_token", credits: 1, per_units: 1 }] }] });
    const inputs = ["alpha", "a longer second input"];

    const { data, response } = await client.embeddings.create({ model, input: inputs }).withResponse();

    expect(data.object).toBe("list");
    expect(data.model).toBe(model);
    expect(data.data.map((d) => d.index)).toEqual([0, 1]);
    expect(data.data.map((d) => Array.from(d.embedding))).toEqual(inputs.map((t) => fakeVector(t)));
    // The fake counts ceil(bytes / 4) per input: 2 + 6.
    expect(data.usage).toEqual({ prompt_tokens: 8, total_tokens: 8 });
    const job = await jobRow(await jobOf(response.headers));
    expect(job).toMatchObject({ status: "succeeded", settled_credits: 8 });
    expect(await account(team.orgId)).toMatchObject({ balance: 992, reserved: 0 });
    expect(await fakeCalls(stack.fakeAiUrl, deployments[0].key)).toHaveLength(1);

    // On the wire it really is base64 of little-endian float32 when asked for base64.
    const raw = await fetch(`${OPENAI_BASE}/embeddings`, {
      method: "POST",
      headers: { authorization: `Bearer ${await tokenFor(team.member)}`, "x-plinth-org": team.orgId, "content-type": "application/json" },
      body: JSON.stringify({ model, input: "alpha", encoding_format: "base64" }),
    });
    expect(raw.status).toBe(200);
    const body = (await raw.json()) as { data: { embedding: string }[] };
    expect(typeof body.data[0].embedding).toBe("string");
    const buf = Buffer.from(body.data[0].embedding, "base64");
    expect(Array.from(new Float32Array(buf.buffer, buf.byteOffset, buf.byteLength / 4))).toEqual(fakeVector("alpha"));
  });

  it("encoding_format float answers plain arrays, with the requested dimensions", async () => {
    const { client } = await fundedMember(1000);
    const { model } = await createModel({ modality: "embedding", deployments: [{ provider: "openai" }] });

    const res = await client.embeddings.create({ model, input: "one input", encoding_format: "float", dimensions: 12 });

    expect(res.data).toHaveLength(1);
    expect(Array.isArray(res.data[0].embedding)).toBe(true);
    expect(res.data[0].embedding).toEqual(fakeVector("one input", 12));
  });
});

describe("moderations", () => {
  it("answers per input, flagged and by category, at the call price", async () => {
    const { team, client } = await fundedMember(1000);
    const { model } = await createModel({ modality: "moderation", deployments: [{ provider: "openai", prices: [{ unit: "call", credits: 2 }] }] });

    const { data, response } = await client.moderations.create({ model, input: ["a kind word", "FLAGME now"] }).withResponse();

    expect(data.model).toBe(model);
    expect(data.results.map((r) => r.flagged)).toEqual([false, true]);
    expect(data.results[1].categories.violence).toBe(true);
    expect(data.results[1].categories.hate).toBe(false);
    expect(data.results[1].category_scores.violence).toBeCloseTo(0.91);
    expect(data.results[0].categories.violence).toBe(false);
    const jobId = await jobOf(response.headers);
    expect(await jobRow(jobId)).toMatchObject({ status: "succeeded", settled_credits: 2 });
    expect(await attemptsOf(jobId)).toMatchObject([{ status: "succeeded", units: { call: 1 }, credits: 2 }]);
    expect(await account(team.orgId)).toMatchObject({ balance: 998, reserved: 0 });
  });
});

describe("models", () => {
  const ids = async (client: OpenAI) => {
    const out: string[] = [];
    for await (const m of client.models.list()) {
      expect(m).toMatchObject({ object: "model", owned_by: "plinth" });
      out.push(m.id);
    }
    return out;
  };

  it("lists the tier aliases the plan allows and the routable models; premium is hidden on the free plan", async () => {
    const team = await createTeam("Team plan");
    const free = await createTeam("Free plan", { plan: null });
    const priced = await createModel({ modality: "text", deployments: [{ provider: "openai" }] });
    const unpriced = await createModel({ modality: "text", deployments: [{ provider: "openai", prices: [] }] });
    const disabled = await createModel({ modality: "image", deployments: [{ provider: "openai" }] });
    await admin.query("update ai.models set enabled = false where id = $1", [disabled.model]);

    const teamIds = await ids(openai(await tokenFor(team.member), team.orgId));
    expect(teamIds).toEqual(expect.arrayContaining(["plinth/economy", "plinth/balanced", "plinth/premium", priced.model, "gpt-4o-mini"]));
    expect(teamIds).not.toContain(unpriced.model);
    expect(teamIds).not.toContain(disabled.model);

    const freeIds = await ids(openai(await tokenFor(free.member), free.orgId));
    expect(freeIds).toEqual(expect.arrayContaining(["plinth/economy", "plinth/balanced", priced.model]));
    expect(freeIds).not.toContain("plinth/premium");
  });

  it("follows the org's policy: only its allowed tiers and models", async () => {
    const team = await createTeam();
    const mine = await createModel({ modality: "text", deployments: [{ provider: "openai" }] });
    await createModel({ modality: "text", deployments: [{ provider: "openai" }] });
    await setPolicy(team.orgId, { allowed_tiers: ["economy", "balanced"], allowed_models: [mine.model] });
    expect(await ids(openai(await tokenFor(team.member), team.orgId))).toEqual(["plinth/balanced", "plinth/economy", mine.model]);

    // An org API key sees its own org's list.
    const key = await createApiKey(team.admin, team.orgId);
    expect(await ids(openai(key.key))).toEqual(["plinth/balanced", "plinth/economy", mine.model]);
  });

  it("refuses to list another org's models to a non-member, a viewer and a key of another org", async () => {
    const team = await createTeam();
    const other = await createTeam();
    await setPolicy(team.orgId, { allowed_tiers: ["economy"], allowed_models: [] });
    const stranger = await createUser();
    for (const client of [
      openai(await tokenFor(stranger), team.orgId),
      openai(await tokenFor(team.viewer), team.orgId),
      openai((await createApiKey(other.admin, other.orgId)).key, team.orgId),
    ]) {
      const err = await apiError(client.models.list());
      expect(err).toBeInstanceOf(OpenAI.PermissionDeniedError);
    }
  });
});

describe("unknown routes", () => {
  it("answer 404 in OpenAI's error shape", async () => {
    const team = await createTeam();
    const res = await fetch(`${OPENAI_BASE}/completions`, {
      method: "POST",
      headers: { authorization: `Bearer ${await tokenFor(team.member)}`, "content-type": "application/json" },
      body: "{}",
    });
    expect(res.status).toBe(404);
    expect(await res.json()).toMatchObject({ error: { type: "invalid_request_error", code: "unknown_url", param: null } });
  });
});
