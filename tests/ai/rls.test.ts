// RLS and grants on every table, view and RPC of the ai schema, acting exactly as PostgREST
// does (claims + role in one transaction): for each role that matters an allowed case and a
// denied one, and after every denial a re-read proving that nothing changed.
import { beforeAll, describe, expect, it } from "vitest";
import { addMember, admin, as, type Caller, createTeam, createUser, expectSqlError, select, type Team, type TestUser } from "../helpers/db.ts";
import { account } from "../helpers/credits.ts";
import { createModel, giveCredits, reservation, stack, submit, waitForJob } from "../helpers/ai.ts";
import { createApiKey } from "../helpers/openai.ts";
import { scriptFake } from "../helpers/fake-ai.ts";
import { tokenFor } from "../helpers/supabase.ts";

const keyCaller = (apiKeyId: string): Caller => ({ claims: { role: "authenticated", aud: "authenticated", api_key_id: apiKeyId } });

let A: Team;
let B: Team;
let M: Team; // requires MFA
let member2: TestUser;
let keyA: { id: string; key: string };
let keyB: { id: string; key: string };
let model: string;
/** A job the member ran through the api (succeeded, with an attempt), and one the key ran. */
let ranByMember: string;
let ranByKey: string;

/** A job admitted (and reserved) but never queued, so it stays cancelable; as the service role. */
async function pendingJob(orgId: string, who: { userId?: string; apiKeyId?: string }, batchId: string | null = null): Promise<{ id: string; reservation_id: string }> {
  const { rows } = await admin.query(
    `select id, reservation_id from private.ai_admit_job($1, $2, $3, 'api', 'text', null, $4,
       '{"prompt": "x", "max_tokens": 10, "response_format": "text"}'::jsonb, '{"main": [{"deployment_id": "none"}]}'::jsonb, 5, null, $5)`,
    [orgId, who.userId ?? null, who.apiKeyId ?? null, model, batchId],
  );
  return rows[0];
}

async function pendingBatch(orgId: string, userId: string, n = 2) {
  const { rows } = await admin.query("select id from private.ai_open_batch($1, $2, null, 'rls', $3)", [orgId, userId, n]);
  const jobs = [];
  for (let i = 0; i < n; i++) jobs.push(await pendingJob(orgId, { userId }, rows[0].id));
  return { id: rows[0].id as string, jobs };
}

const jobStatus = async (id: string) => (await admin.query("select status from ai.jobs where id = $1", [id])).rows[0].status as string;
const count = async (who: Caller, query: string, params: unknown[] = [], opts: { aal?: "aal1" | "aal2" } = {}) =>
  (await select(who, query, params, opts)).length;

beforeAll(async () => {
  [A, B, M] = await Promise.all([createTeam("AI A"), createTeam("AI B"), createTeam("AI MFA")]);
  member2 = await createUser();
  await addMember(A.orgId, member2, "member");
  await admin.query("update public.orgs set require_mfa = true where id = $1", [M.orgId]);
  await Promise.all([giveCredits(A.orgId, 10_000), giveCredits(B.orgId, 10_000), giveCredits(M.orgId, 10_000)]);
  keyA = await createApiKey(A.admin, A.orgId);
  keyB = await createApiKey(B.admin, B.orgId);
  const created = await createModel({ modality: "text", deployments: [{ provider: "openai" }] });
  model = created.model;
  await scriptFake(stack.fakeAiUrl, created.deployments[0].key, [
    { mode: "ok", usage: { prompt_tokens: 3, completion_tokens: 4 } },
    { mode: "ok", usage: { prompt_tokens: 3, completion_tokens: 4 } },
  ]);
  const byMember = await submit({ token: await tokenFor(A.member) }, { org_id: A.orgId, modality: "text", model, input: { prompt: "hello there", max_tokens: 20 } });
  const byKey = await submit({ apiKey: keyA.key }, { modality: "text", model, input: { prompt: "hello there", max_tokens: 20 } });
  expect(byMember.status, byMember.raw).toBe(202);
  expect(byKey.status, byKey.raw).toBe(202);
  ranByMember = byMember.body.id;
  ranByKey = byKey.body.id;
  await waitForJob(ranByMember);
  await waitForJob(ranByKey);
});

describe("ai.jobs", () => {
  const visible = (who: Caller, id: string, opts: { aal?: "aal1" | "aal2" } = {}) => count(who, "select id from ai.jobs where id = $1", [id], opts);

  it("the submitter and billing managers see a job; other members, viewers and other orgs do not", async () => {
    expect(await visible(A.member, ranByMember)).toBe(1);
    expect(await visible(A.owner, ranByMember)).toBe(1);
    expect(await visible(A.admin, ranByMember)).toBe(1);
    expect(await visible(member2, ranByMember)).toBe(0);
    expect(await visible(A.viewer, ranByMember)).toBe(0);
    expect(await visible(B.owner, ranByMember)).toBe(0);
    // The key's job: the key and billing managers, not a member.
    expect(await visible(keyCaller(keyA.id), ranByKey)).toBe(1);
    expect(await visible(keyCaller(keyA.id), ranByMember)).toBe(0);
    expect(await visible(keyCaller(keyB.id), ranByKey)).toBe(0);
    expect(await visible(A.owner, ranByKey)).toBe(1);
    expect(await visible(A.member, ranByKey)).toBe(0);
  });

  it("in an org that requires MFA, an aal1 session sees not even its own job; aal2 does", async () => {
    const job = await pendingJob(M.orgId, { userId: M.member.id });
    expect(await visible(M.member, job.id, { aal: "aal1" })).toBe(0);
    expect(await visible(M.owner, job.id, { aal: "aal1" })).toBe(0);
    expect(await visible(M.member, job.id, { aal: "aal2" })).toBe(1);
    expect(await visible(M.owner, job.id, { aal: "aal2" })).toBe(1);
  });

  it("an Idempotency-Key another member used does not hand over their job (409), and admits nothing", async () => {
    const key = `idem-${Date.now()}`;
    // A model of its own, so the usage rows of this file's other jobs stay as they are.
    const own = await createModel({ modality: "text", deployments: [{ provider: "openai" }] });
    const body = { org_id: A.orgId, modality: "text", model: own.model, input: { prompt: "the first member's secret prompt", max_tokens: 5 } };
    const first = await submit({ token: await tokenFor(A.member) }, body, { "idempotency-key": key });
    expect(first.status, first.raw).toBe(202);
    // The same member again: the same job (200).
    const again = await submit({ token: await tokenFor(A.member) }, body, { "idempotency-key": key });
    expect(again.status, again.raw).toBe(200);
    expect(again.body.id).toBe(first.body.id);

    const jobsBefore = (await admin.query("select count(*)::int as n from ai.jobs where org_id = $1", [A.orgId])).rows[0].n;
    // Another member, the org's key, and even a billing manager (who may read the job) get a 409, not that job.
    for (const who of [{ token: await tokenFor(member2) }, { apiKey: keyA.key }, { token: await tokenFor(A.owner) }]) {
      const res = await submit(who, { ...body, input: { prompt: "another prompt", max_tokens: 5 } }, { "idempotency-key": key });
      expect(res.status, res.raw).toBe(409);
      expect(res.raw).not.toContain("secret prompt");
      expect(res.raw).not.toContain(first.body.id);
    }
    expect((await admin.query("select count(*)::int as n from ai.jobs where org_id = $1", [A.orgId])).rows[0].n).toBe(jobsBefore);
    await waitForJob(first.body.id);
  });

  it("anon has no access to the ai schema at all", async () => {
    await expectSqlError(select("anon", "select id from ai.jobs"), "42501");
    await expectSqlError(select("anon", "select id from ai.models"), "42501");
  });

  it("nobody writes jobs directly: insert, update and delete are refused and the row is unchanged", async () => {
    const before = (await admin.query("select status, settled_credits, reserved_credits from ai.jobs where id = $1", [ranByMember])).rows[0];
    for (const who of [A.member, A.owner] as Caller[]) {
      await expectSqlError(as(who, (c) => c.query("update ai.jobs set status = 'queued', settled_credits = 0 where id = $1", [ranByMember])), "42501");
      await expectSqlError(as(who, (c) => c.query("delete from ai.jobs where id = $1", [ranByMember])), "42501");
      await expectSqlError(
        as(who, (c) => c.query(`insert into ai.jobs (org_id, user_id, source, modality, model_id, input, route, reserved_credits)
                               values ($1, $2, 'api', 'text', $3, '{}', '{"main": []}', 1)`, [A.orgId, A.member.id, model])),
        "42501",
      );
    }
    expect((await admin.query("select status, settled_credits, reserved_credits from ai.jobs where id = $1", [ranByMember])).rows[0]).toEqual(before);
  });
});

describe("ai.attempts and ai.usage_daily (provider cost: billing.manage only)", () => {
  it("billing managers read attempts; the submitter, other members, viewers, keys and other orgs do not", async () => {
    const q = "select id from ai.attempts where job_id = $1";
    expect(await count(A.owner, q, [ranByMember])).toBe(1);
    expect(await count(A.admin, q, [ranByMember])).toBe(1);
    expect(await count(A.member, q, [ranByMember])).toBe(0);
    expect(await count(A.viewer, q, [ranByMember])).toBe(0);
    expect(await count(keyCaller(keyA.id), q, [ranByKey])).toBe(0);
    expect(await count(B.owner, q, [ranByMember])).toBe(0);
    await expectSqlError(as(A.owner, (c) => c.query("update ai.attempts set credits = 0 where job_id = $1", [ranByMember])), "42501");
  });

  it("billing managers read the org's daily usage, with the credits the jobs were charged; others see none of it", async () => {
    const rows = await select<{ user_id: string | null; api_key_id: string | null; model_id: string; attempts: number; succeeded: number; input_tokens: string; output_tokens: string; credits: string }>(
      A.owner, "select user_id, api_key_id, model_id, attempts, succeeded, input_tokens, output_tokens, credits from ai.usage_daily where org_id = $1 and model_id = $2 order by api_key_id nulls first", [A.orgId, model]);
    // 3 input x 1000/1M + 4 output x 2000/1M, rounded up: 1 credit each.
    expect(rows).toEqual([
      { user_id: A.member.id, api_key_id: null, model_id: model, attempts: 1, succeeded: 1, input_tokens: "3", output_tokens: "4", credits: "1" },
      { user_id: null, api_key_id: keyA.id, model_id: model, attempts: 1, succeeded: 1, input_tokens: "3", output_tokens: "4", credits: "1" },
    ]);
    expect(await count(A.admin, "select 1 from ai.usage_daily where org_id = $1 and model_id = $2", [A.orgId, model])).toBe(2);
    expect(await count(A.member, "select 1 from ai.usage_daily where org_id = $1", [A.orgId])).toBe(0);
    expect(await count(A.viewer, "select 1 from ai.usage_daily where org_id = $1", [A.orgId])).toBe(0);
    expect(await count(keyCaller(keyA.id), "select 1 from ai.usage_daily where org_id = $1", [A.orgId])).toBe(0);
    expect(await count(B.owner, "select 1 from ai.usage_daily where org_id = $1", [A.orgId])).toBe(0);
    await expectSqlError(select("anon", "select 1 from ai.usage_daily"), "42501");
  });
});

describe("ai.batches and ai.batch_progress", () => {
  it("the submitter and billing managers see a batch and its progress; other members and orgs do not", async () => {
    const batch = await pendingBatch(A.orgId, A.member.id);
    const q = "select batch_id, total, pending, held_credits from ai.batch_progress where batch_id = $1";
    expect(await select(A.member, q, [batch.id])).toEqual([{ batch_id: batch.id, total: 2, pending: 2, held_credits: "10" }]);
    expect(await count(A.owner, q, [batch.id])).toBe(1);
    expect(await count(member2, q, [batch.id])).toBe(0);
    expect(await count(A.viewer, "select id from ai.batches where id = $1", [batch.id])).toBe(0);
    expect(await count(B.owner, "select id from ai.batches where id = $1", [batch.id])).toBe(0);
    await expectSqlError(as(A.member, (c) => c.query("update ai.batches set canceled_at = now() where id = $1", [batch.id])), "42501");
    expect((await admin.query("select canceled_at from ai.batches where id = $1", [batch.id])).rows[0].canceled_at).toBeNull();
  });
});

describe("ai.org_policies and ai.org_routes: members (and AI keys) read, org.manage writes", () => {
  for (const table of ["org_policies", "org_routes"] as const) {
    const row = (orgId: string) =>
      table === "org_policies"
        ? { sql: "insert into ai.org_policies (org_id, allowed_tiers) values ($1, '{economy}')", params: [orgId] }
        : { sql: "insert into ai.org_routes (org_id, modality, tier, position, deployment_id) values ($1, 'text', 'economy', 0, 'openai/gpt-4o-mini')", params: [orgId] };
    const change = table === "org_policies" ? "update ai.org_policies set moderate_input = true where org_id = $1" : "update ai.org_routes set deployment_id = 'openai/gpt-4o' where org_id = $1";
    const snapshot = async (orgId: string) => (await admin.query(`select * from ai.${table} where org_id = $1`, [orgId])).rows;

    it(`${table}: an admin writes; a member, a viewer and another org's owner cannot, and nothing changes`, async () => {
      const team = await createTeam(`AI ${table}`);
      const other = await createTeam();
      // Insert: member, viewer, other org's owner refused.
      for (const who of [team.member, team.viewer, other.owner]) {
        await expectSqlError(as(who, (c) => c.query(row(team.orgId).sql, row(team.orgId).params)), "42501");
      }
      expect(await snapshot(team.orgId)).toEqual([]);
      // The admin writes it.
      await as(team.admin, (c) => c.query(row(team.orgId).sql, row(team.orgId).params));
      const written = await snapshot(team.orgId);
      expect(written).toHaveLength(1);
      // Update and delete by those without org.manage touch nothing.
      for (const who of [team.member, team.viewer, other.owner]) {
        expect((await as(who, (c) => c.query(change, [team.orgId]))).rowCount).toBe(0);
        expect((await as(who, (c) => c.query(`delete from ai.${table} where org_id = $1`, [team.orgId]))).rowCount).toBe(0);
      }
      expect(await snapshot(team.orgId)).toEqual(written);
      // The owner may change and remove it.
      expect((await as(team.owner, (c) => c.query(change, [team.orgId]))).rowCount).toBe(1);
      expect((await as(team.owner, (c) => c.query(`delete from ai.${table} where org_id = $1`, [team.orgId]))).rowCount).toBe(1);
      expect(await snapshot(team.orgId)).toEqual([]);
    });

    it(`${table}: every member and the org's AI key read it; other orgs, aal1 sessions of an MFA org and anon do not`, async () => {
      await admin.query(row(A.orgId).sql.replace("insert into", "insert into").concat(" on conflict do nothing"), row(A.orgId).params);
      await admin.query(row(M.orgId).sql.concat(" on conflict do nothing"), row(M.orgId).params);
      const q = `select org_id from ai.${table} where org_id = $1`;
      for (const who of [A.owner, A.admin, A.member, A.viewer, keyCaller(keyA.id)]) expect(await count(who, q, [A.orgId])).toBe(1);
      expect(await count(B.owner, q, [A.orgId])).toBe(0);
      expect(await count(keyCaller(keyB.id), q, [A.orgId])).toBe(0);
      expect(await count(M.member, q, [M.orgId], { aal: "aal1" })).toBe(0);
      expect(await count(M.member, q, [M.orgId], { aal: "aal2" })).toBe(1);
      await expectSqlError(select("anon", q, [A.orgId]), "42501");
    });
  }
});

describe("ai.org_presets and ai.available_presets: content.write writes", () => {
  const insert = (orgId: string, key: string) =>
    `insert into ai.org_presets (org_id, key, kind, modality, name, body) values ('${orgId}', '${key}', 'style', 'image', 'House style', '{"prompt_suffix": "in our house style"}')`;

  it("a member adds, changes and removes presets; a viewer and another org cannot", async () => {
    const team = await createTeam("AI presets");
    const other = await createTeam();
    await as(team.member, (c) => c.query(insert(team.orgId, "house")));
    await expectSqlError(as(team.viewer, (c) => c.query(insert(team.orgId, "viewer-style"))), "42501");
    await expectSqlError(as(other.owner, (c) => c.query(insert(team.orgId, "intruder"))), "42501");
    for (const who of [team.viewer, other.owner]) {
      expect((await as(who, (c) => c.query("update ai.org_presets set name = 'Hijacked' where org_id = $1", [team.orgId]))).rowCount).toBe(0);
      expect((await as(who, (c) => c.query("delete from ai.org_presets where org_id = $1", [team.orgId]))).rowCount).toBe(0);
    }
    expect((await admin.query("select key, name from ai.org_presets where org_id = $1", [team.orgId])).rows).toEqual([{ key: "house", name: "House style" }]);
    expect((await as(team.member, (c) => c.query("update ai.org_presets set name = 'Ours' where org_id = $1", [team.orgId]))).rowCount).toBe(1);
    expect((await as(team.admin, (c) => c.query("delete from ai.org_presets where org_id = $1", [team.orgId]))).rowCount).toBe(1);
    // Global presets are the catalog's: no signed-in user writes them.
    await expectSqlError(as(team.owner, (c) => c.query("update ai.presets set name = 'x' where key = 'photoreal'")), "42501");
  });

  it("available_presets shows the global ones to everyone signed in, and an org's own only to it (and its AI key)", async () => {
    await admin.query(insert(A.orgId, "a-only") + " on conflict do nothing");
    const q = "select key, global from ai.available_presets where key in ('a-only', 'photoreal') order by key";
    const both = [{ key: "a-only", global: false }, { key: "photoreal", global: true }];
    expect(await select(A.viewer, q)).toEqual(both);
    expect(await select(keyCaller(keyA.id), q)).toEqual(both);
    expect(await select(B.member, q)).toEqual([{ key: "photoreal", global: true }]);
    expect(await select(keyCaller(keyB.id), q)).toEqual([{ key: "photoreal", global: true }]);
    await expectSqlError(select("anon", q), "42501");
  });
});

describe("the global catalog", () => {
  it("is readable by any signed-in user (enabled rows), not by anon, and written by no one signed in", async () => {
    const stranger = await createUser();
    expect(await count(stranger, "select id from ai.models where id = 'gpt-4o-mini'")).toBe(1);
    expect(await count(stranger, "select id from ai.deployments where id = 'openai/gpt-4o-mini'")).toBe(1);
    expect(await count(stranger, "select id from ai.prices where deployment_id = 'openai/gpt-4o-mini'")).toBeGreaterThan(0);
    expect(await count(stranger, "select 1 from ai.tiers where modality = 'text' and tier = 'economy'")).toBeGreaterThan(0);
    expect(await count(stranger, "select key from ai.presets where key = 'photoreal'")).toBe(1);
    const hidden = await createModel({ modality: "text", deployments: [{ provider: "openai" }] });
    await admin.query("update ai.models set enabled = false where id = $1", [hidden.model]);
    await admin.query("update ai.deployments set enabled = false where id = $1", [hidden.deployments[0].id]);
    expect(await count(stranger, "select id from ai.models where id = $1", [hidden.model])).toBe(0);
    expect(await count(stranger, "select id from ai.deployments where id = $1", [hidden.deployments[0].id])).toBe(0);

    for (const table of ["models", "deployments", "prices", "tiers", "presets"]) {
      await expectSqlError(select("anon", `select 1 from ai.${table} limit 1`), "42501");
    }
    await expectSqlError(as(A.owner, (c) => c.query("insert into ai.models (id, modality) values ('evil-model', 'text')")), "42501");
    await expectSqlError(as(A.owner, (c) => c.query("update ai.prices set credits = 0 where deployment_id = 'openai/gpt-4o-mini'")), "42501");
    await expectSqlError(as(A.owner, (c) => c.query("delete from ai.tiers where modality = 'text'")), "42501");
    expect((await admin.query("select count(*)::int as n from ai.prices where deployment_id = 'openai/gpt-4o-mini' and credits = 0")).rows[0].n).toBe(0);
  });

  it("providers, deployment health and the rate buckets are for admins and the service role only", async () => {
    for (const who of [A.owner, keyCaller(keyA.id), "anon"] as Caller[]) {
      await expectSqlError(select(who, "select api_key_secret from ai.providers"), "42501");
      await expectSqlError(select(who, "select cooldown_until from ai.deployment_health"), "42501");
      await expectSqlError(select(who, "select tokens from private.ai_rate_buckets"), "42501");
    }
    await expectSqlError(as(A.owner, (c) => c.query("update ai.deployment_health set cooldown_until = null")), "42501");
  });
});

describe("ai.cancel_job", () => {
  const cancel = (who: Caller, id: string, opts: { aal?: "aal1" | "aal2" } = {}) =>
    select<{ id: string; status: string }>(who, "select id, status from ai.cancel_job($1)", [id], opts);

  it("the submitter cancels a pending job and its credits are released at once", async () => {
    const job = await pendingJob(A.orgId, { userId: A.member.id });
    expect((await reservation(job.reservation_id)).status).toBe("pending");
    expect(await cancel(A.member, job.id)).toEqual([{ id: job.id, status: "canceled" }]);
    expect(await reservation(job.reservation_id)).toMatchObject({ status: "voided" });
  });

  it("a billing manager cancels another member's job; an AI key cancels its own", async () => {
    const j1 = await pendingJob(A.orgId, { userId: member2.id });
    expect(await cancel(A.admin, j1.id)).toEqual([{ id: j1.id, status: "canceled" }]);
    const j2 = await pendingJob(A.orgId, { apiKeyId: keyA.id });
    expect(await cancel(keyCaller(keyA.id), j2.id)).toEqual([{ id: j2.id, status: "canceled" }]);
    expect(await reservation(j2.reservation_id)).toMatchObject({ status: "voided" });
  });

  it("is 404 for another member, a viewer, another org, another key and an aal1 session of an MFA org; the job keeps running", async () => {
    const job = await pendingJob(A.orgId, { userId: A.member.id });
    const byKey = await pendingJob(A.orgId, { apiKeyId: keyA.id });
    for (const [name, who] of [["member", member2], ["viewer", A.viewer], ["other org", B.owner], ["other key", keyCaller(keyB.id)], ["key", keyCaller(keyA.id)]] as const) {
      const err = await cancel(who, job.id).then(() => undefined, (e: { code?: string }) => e);
      expect(err?.code, name).toBe("PT404");
    }
    // An API key's job: no signed-in user but a billing manager of its org may touch it.
    for (const [name, who] of [["member", A.member], ["viewer", A.viewer], ["other org", B.owner], ["stranger", await createUser()]] as const) {
      const err = await cancel(who, byKey.id).then(() => undefined, (e: { code?: string }) => e);
      expect(err?.code, name).toBe("PT404");
    }
    await expectSqlError(cancel("anon", job.id), "42501");
    expect(await jobStatus(job.id)).toBe("queued");
    expect(await jobStatus(byKey.id)).toBe("queued");
    expect((await reservation(job.reservation_id)).status).toBe("pending");

    const mfaJob = await pendingJob(M.orgId, { userId: M.member.id });
    await expectSqlError(cancel(M.member, mfaJob.id, { aal: "aal1" }), "PT404");
    await expectSqlError(cancel(M.owner, mfaJob.id, { aal: "aal1" }), "PT404");
    expect(await jobStatus(mfaJob.id)).toBe("queued");
    expect(await cancel(M.member, mfaJob.id, { aal: "aal2" })).toEqual([{ id: mfaJob.id, status: "canceled" }]);
  });

  it("an ended job is returned as it ended, not charged again", async () => {
    const before = await account(A.orgId);
    const [row] = await cancel(A.member, ranByMember);
    expect(row.status).toBe("succeeded");
    expect(await account(A.orgId)).toEqual(before);
  });
});

describe("ai.cancel_batch", () => {
  it("the submitter and billing managers cancel a batch; others get 404 and the batch runs on", async () => {
    const b1 = await pendingBatch(A.orgId, A.member.id);
    for (const who of [member2, A.viewer, B.owner, keyCaller(keyA.id)] as Caller[]) {
      await expectSqlError(select(who, "select ai.cancel_batch($1) as n", [b1.id]), "PT404");
    }
    await expectSqlError(select("anon", "select ai.cancel_batch($1) as n", [b1.id]), "42501");
    expect(await Promise.all(b1.jobs.map((j) => jobStatus(j.id)))).toEqual(["queued", "queued"]);
    expect((await admin.query("select canceled_at from ai.batches where id = $1", [b1.id])).rows[0].canceled_at).toBeNull();

    expect(await select(A.member, "select ai.cancel_batch($1) as n", [b1.id])).toEqual([{ n: 2 }]);
    expect(await Promise.all(b1.jobs.map((j) => jobStatus(j.id)))).toEqual(["canceled", "canceled"]);
    for (const j of b1.jobs) expect((await reservation(j.reservation_id)).status).toBe("voided");

    const b2 = await pendingBatch(A.orgId, member2.id, 1);
    expect(await select(A.owner, "select ai.cancel_batch($1) as n", [b2.id])).toEqual([{ n: 1 }]);
  });

  it("an API key's batch: the key cancels it; no signed-in user but a billing manager may", async () => {
    const { rows } = await admin.query("select id from private.ai_open_batch($1, null, $2, 'key batch', 1)", [A.orgId, keyA.id]);
    const job = await pendingJob(A.orgId, { apiKeyId: keyA.id }, rows[0].id);
    for (const who of [A.member, B.owner, keyCaller(keyB.id), await createUser()] as Caller[]) {
      await expectSqlError(select(who, "select ai.cancel_batch($1) as n", [rows[0].id]), "PT404");
    }
    expect(await jobStatus(job.id)).toBe("queued");
    expect(await select(keyCaller(keyA.id), "select ai.cancel_batch($1) as n", [rows[0].id])).toEqual([{ n: 1 }]);
    expect(await jobStatus(job.id)).toBe("canceled");
  });
});

describe("private admission and settling functions", () => {
  const admit = (who: Caller, orgId: string, userId: string | null, apiKeyId: string | null = null) =>
    select<{ id: string }>(
      who,
      `select id from private.ai_admit_job($1, $2, $3, 'api', 'text', null, $4,
         '{"prompt": "x", "max_tokens": 10, "response_format": "text"}'::jsonb, '{"main": [{"deployment_id": "none"}]}'::jsonb, 5)`,
      [orgId, userId, apiKeyId, model],
    );
  const jobsOf = async (orgId: string) => (await admin.query("select count(*)::int as n from ai.jobs where org_id = $1", [orgId])).rows[0].n;

  it("admits a member as themself, and a key as itself", async () => {
    const [job] = await admit(A.member, A.orgId, A.member.id);
    const { rows } = await admin.query("select user_id, reserved_credits::int, reservation_id from ai.jobs where id = $1", [job.id]);
    expect(rows[0]).toMatchObject({ user_id: A.member.id, reserved_credits: 5 });
    expect(await reservation(rows[0].reservation_id)).toMatchObject({ status: "pending", amount: 5 });
    const [byKey] = await admit(keyCaller(keyA.id), A.orgId, null, keyA.id);
    expect((await admin.query("select api_key_id from ai.jobs where id = $1", [byKey.id])).rows[0].api_key_id).toBe(keyA.id);
  });

  it("refuses a caller claiming another user or key (42501), one without ai.use, and other orgs; nothing is reserved", async () => {
    const before = { jobs: await jobsOf(A.orgId), account: await account(A.orgId) };
    await expectSqlError(admit(A.member, A.orgId, member2.id), "42501", /as the caller/);
    await expectSqlError(admit(A.owner, A.orgId, null, keyA.id), "42501", /as the caller/);
    await expectSqlError(admit(keyCaller(keyA.id), A.orgId, A.member.id, null), "42501");
    await expectSqlError(admit(keyCaller(keyB.id), A.orgId, null, keyB.id), "42501", /ai\.use/);
    await expectSqlError(admit(A.viewer, A.orgId, A.viewer.id), "42501", /ai\.use/);
    await expectSqlError(admit(B.member, A.orgId, B.member.id), "42501", /ai\.use/);
    await expectSqlError(admit(M.member, M.orgId, M.member.id), "42501", /ai\.use/);
    await expectSqlError(admit("anon", A.orgId, null), "42501");
    expect({ jobs: await jobsOf(A.orgId), account: await account(A.orgId) }).toEqual(before);
  });

  it("a key without ai.use in its scopes cannot admit", async () => {
    const readOnly = await createApiKey(A.admin, A.orgId, ["content.read"]);
    await expectSqlError(admit(keyCaller(readOnly.id), A.orgId, null, readOnly.id), "42501", /ai\.use/);
  });

  it("settling, opening batches for others and taking rate tokens are not for signed-in callers", async () => {
    const job = await pendingJob(A.orgId, { userId: A.member.id });
    await expectSqlError(select(A.member, "select status from private.ai_finish_job($1, 'succeeded', null, null, 0)", [job.id]), "42501");
    await expectSqlError(select(A.owner, "select private.ai_take_token($1, 'org', 1000, interval '1 minute', 'AI requests per minute')", [A.orgId]), "42501");
    await expectSqlError(select(A.member, "select id from private.ai_open_batch($1, $2, null, 'x', 1)", [A.orgId, member2.id]), "42501", /as the caller/);
    await expectSqlError(select(A.viewer, "select id from private.ai_open_batch($1, $2, null, 'x', 1)", [A.orgId, A.viewer.id]), "42501", /ai\.use/);
    expect(await jobStatus(job.id)).toBe("queued");
    expect((await reservation(job.reservation_id)).status).toBe("pending");
  });
});
