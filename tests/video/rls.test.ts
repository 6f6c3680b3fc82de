// Who may read and write what in schema video, as PostgREST would run it: every table (allowed
// and denied, per role that matters) and every RPC. Writes go through the RPCs and the worker;
// no client writes a table directly.
import { randomUUID } from "node:crypto";
import { beforeAll, describe, expect, it } from "vitest";
import { admin, as, createTeam, createUser, expectSqlError, select, type Team, type TestUser } from "../helpers/db.ts";

let team: Team;
let outsider: TestUser;
let upload: string;
let job: string;
let exportId: string;
let request: string;

const rows = (who: Parameters<typeof select>[0], sql: string, params: unknown[] = []) => select(who, sql, params);
const call = (who: Parameters<typeof select>[0], sql: string, params: unknown[] = []) => as(who, async (c) => (await c.query(sql, params)).rows);

beforeAll(async () => {
  team = await createTeam("Video RLS");
  outsider = await createUser();
  // The member's upload, video (with a run), export check and privacy request, made as the worker would.
  upload = (await admin.query(
    `insert into video.uploads (org_id, user_id, path, filename, kind, status, width, height) values ($1, $2, $3, 'f.png', 'photo', 'passed', 500, 600) returning id`,
    [team.orgId, team.member.id, `${team.orgId}/${team.member.id}/${randomUUID()}.png`])).rows[0].id;
  const { rows: [ai] } = await admin.query(
    `insert into ai.jobs (org_id, user_id, source, modality, tier, input, route, reserved_credits) values ($1, $2, 'video', 'video', 'balanced', '{}', '{"main": []}', 1) returning id`,
    [team.orgId, team.member.id]);
  job = (await admin.query(
    `insert into video.jobs (org_id, user_id, tier, photo_id, script, est_seconds, price_id, quoted_credits, quoted_inr_minor, quoted_usd_cents, status, ai_job_id, run)
     select $1, $2, 'balanced', $3, '{"text": "hi", "voice": "v"}', 2, id, 1, 3, 1, 'completed', $4, 1 from video.tier_prices where tier_key = 'balanced' limit 1 returning id`,
    [team.orgId, team.member.id, upload, ai.id])).rows[0].id;
  await admin.query(`insert into video.job_runs (job_id, run, org_id, ai_job_id) values ($1, 1, $2, $3)`, [job, team.orgId, ai.id]);
  // One provider call, so that job_attempts has something to show or to hide.
  await admin.query(`insert into ai.attempts (job_id, org_id, attempt_no, kind, deployment_id, provider_id, provider_model, status)
                     values ($1, $2, 1, 'initial', 'local/video', 'local', 'local-video', 'succeeded')`, [ai.id, team.orgId]);
  exportId = (await admin.query(
    `insert into video.exports (org_id, user_id, job_id, platform, spec_id, valid, metadata)
     select $1, $2, $3, 'tiktok', id, true, '{}' from video.current_platform_specs where platform = 'tiktok' returning id`,
    [team.orgId, team.member.id, job])).rows[0].id;
  request = (await admin.query(`insert into video.privacy_requests (user_id, kind, status) values ($1, 'erasure', 'done') returning id`, [team.member.id])).rows[0].id;
  await admin.query(`insert into video.deletion_receipts (request_id, user_id, provider_id, provider_task_id, status) values ($1, $2, 'local', $3, 'deleted')`,
    [request, team.member.id, `task-${randomUUID()}`]);
});

describe("tables", () => {
  it("uploads: the org's readers see them; outsiders and anon do not; nobody writes them directly", async () => {
    expect(await rows(team.viewer, `select id from video.uploads where id = $1`, [upload])).toHaveLength(1);
    expect(await rows(outsider, `select id from video.uploads where id = $1`, [upload])).toHaveLength(0);
    await expectSqlError(rows("anon", `select id from video.uploads`), "42501");
    await expectSqlError(call(team.owner, `update video.uploads set status = 'passed' where id = $1`, [upload]), "42501");
    await expectSqlError(call(team.member, `insert into video.uploads (org_id, path, filename) values ($1, $2, 'x')`, [team.orgId, `${team.orgId}/x`]), "42501");
    await expectSqlError(call(team.member, `delete from video.uploads where id = $1`, [upload]), "42501");
  });

  it("jobs and runs: the owner and billing managers see them; other members and outsiders do not; no direct writes", async () => {
    for (const t of ["video.jobs where id", "video.job_runs where job_id"]) {
      expect(await rows(team.member, `select 1 from ${t} = $1`, [job]), t).toHaveLength(1);
      expect(await rows(team.admin, `select 1 from ${t} = $1`, [job]), t).toHaveLength(1);
      expect(await rows(team.viewer, `select 1 from ${t} = $1`, [job]), t).toHaveLength(0);
      expect(await rows(outsider, `select 1 from ${t} = $1`, [job]), t).toHaveLength(0);
    }
    await expectSqlError(call(team.member, `update video.jobs set status = 'completed', charged_credits = 0 where id = $1`, [job]), "42501");
    await expectSqlError(call(team.admin, `delete from video.jobs where id = $1`, [job]), "42501");
    await expectSqlError(rows("anon", `select 1 from video.jobs`), "42501");
  });

  it("exports: only the member who checked; privacy requests and receipts: only their member", async () => {
    expect(await rows(team.member, `select 1 from video.exports where id = $1`, [exportId])).toHaveLength(1);
    expect(await rows(team.admin, `select 1 from video.exports where id = $1`, [exportId])).toHaveLength(0);
    await expectSqlError(call(team.member, `insert into video.exports (org_id, user_id, job_id, platform, spec_id, valid, metadata)
      select $1, $2, $3, 'tiktok', spec_id, true, '{}' from video.exports where id = $4`, [team.orgId, team.member.id, job, exportId]), "42501");
    expect(await rows(team.member, `select 1 from video.privacy_requests where id = $1`, [request])).toHaveLength(1);
    expect(await rows(team.owner, `select 1 from video.privacy_requests where id = $1`, [request])).toHaveLength(0);
    expect(await rows(team.member, `select 1 from video.deletion_receipts where request_id = $1`, [request])).toHaveLength(1);
    expect(await rows(outsider, `select 1 from video.deletion_receipts where request_id = $1`, [request])).toHaveLength(0);
    await expectSqlError(call(team.member, `update video.privacy_requests set status = 'queued' where id = $1`, [request]), "42501");
  });

  it("the catalog (tiers, chains, prices, platform specs, templates) is read by signed-in users and written by admins only", async () => {
    for (const t of ["video.tiers", "video.tier_deployments", "video.tier_prices", "video.platform_specs", "video.current_platform_specs", "video.export_templates"]) {
      expect((await rows(outsider, `select * from ${t}`)).length, t).toBeGreaterThan(0);
      await expectSqlError(rows("anon", `select * from ${t}`), "42501");
    }
    await expectSqlError(call(team.owner, `insert into video.tiers (key, name, ai_tier, max_seconds) values ('mine', 'Mine', 'economy', 10)`), "42501");
    await expectSqlError(call(team.owner, `update video.tier_prices set credits = 0`), "42501");
    await expectSqlError(call(team.owner, `delete from video.platform_specs`), "42501");
    await expectSqlError(call(team.owner, `update video.export_templates set checklist = '{}'`), "42501");
  });
});

describe("RPCs", () => {
  it("create_upload: writers may, viewers and outsiders may not, anon cannot call it", async () => {
    const [u] = await call(team.member, `select * from video.create_upload($1, 'me.png')`, [team.orgId]);
    expect(u).toMatchObject({ status: "pending", user_id: team.member.id });
    expect(u.path).toMatch(new RegExp(`^${team.orgId}/${team.member.id}/`));
    await expectSqlError(call(team.viewer, `select * from video.create_upload($1, 'me.png')`, [team.orgId]), "42501");
    await expectSqlError(call(outsider, `select * from video.create_upload($1, 'me.png')`, [team.orgId]), "42501");
    await expectSqlError(call("anon", `select * from video.create_upload($1, 'me.png')`, [team.orgId]), "42501");
  });

  it("delete_upload: the uploader or a writer; outsiders see nothing to delete", async () => {
    await expectSqlError(call(outsider, `select * from video.delete_upload($1)`, [upload]), "PT404");
    await expectSqlError(call(team.viewer, `select * from video.delete_upload($1)`, [upload]), "PT404");
    const [d] = await call(team.admin, `select * from video.delete_upload($1)`, [upload]);
    expect(d.deleted_at).not.toBeNull();
    await admin.query(`update video.uploads set deleted_at = null where id = $1`, [upload]);
  });

  it("create_job: members with ai.use; not viewers, outsiders or anon", async () => {
    const args = [team.orgId, "balanced", upload, JSON.stringify({ text: "Hello", voice: "v" })];
    await expectSqlError(call(team.viewer, `select * from video.create_job($1, $2, $3, $4::jsonb)`, args), "42501");
    await expectSqlError(call(outsider, `select * from video.create_job($1, $2, $3, $4::jsonb)`, args), "42501");
    await expectSqlError(call("anon", `select * from video.create_job($1, $2, $3, $4::jsonb)`, args), "42501");
    // Allowed, as far as credits: the org has none.
    await expectSqlError(call(team.member, `select * from video.create_job($1, $2, $3, $4::jsonb)`, args), "PT402", /insufficient credits/);
  });

  it("cancel_job, retry_job, job_attempts: the owner or a billing manager", async () => {
    await expectSqlError(call(outsider, `select * from video.cancel_job($1)`, [job]), "PT404");
    await expectSqlError(call(team.viewer, `select * from video.retry_job($1)`, [job]), "PT404");
    expect((await call(team.member, `select status from video.cancel_job($1)`, [job]))[0].status).toBe("completed");
    await expectSqlError(call(team.admin, `select * from video.retry_job($1)`, [job]), "PT409", /only a failed job/);
    expect((await call(team.member, `select * from video.job_attempts($1)`, [job])).length).toBeGreaterThan(0);
    expect(await call(team.viewer, `select * from video.job_attempts($1)`, [job])).toEqual([]);
    expect(await call(outsider, `select * from video.job_attempts($1)`, [job])).toEqual([]);
    await expectSqlError(call("anon", `select * from video.job_attempts($1)`, [job]), "42501");
  });

  it("quote and request_privacy: any signed-in user; not anon", async () => {
    expect((await call(outsider, `select credits::int from video.quote('balanced', 100)`))[0].credits).toBe(18);
    await expectSqlError(call("anon", `select * from video.quote('balanced', 10)`), "42501");
    const [r] = await call(outsider, `select * from video.request_privacy('export')`);
    expect(r).toMatchObject({ user_id: outsider.id, kind: "export", status: "queued" });
    await expectSqlError(call("anon", `select * from video.request_privacy('export')`), "42501");
    await expectSqlError(call(outsider, `select * from video.request_privacy('everything')`), "22023");
  });

  it("the private helpers are the worker's only", async () => {
    await expectSqlError(call(team.owner, `select private.video_upload_arrived($1, null)`, [`${team.orgId}/x.png`]), "42501");
    await expectSqlError(call(team.owner, `select private.ai_erase_job_inputs(array[]::uuid[])`), "42501");
    await expectSqlError(call(team.owner, `select private.ai_take_token($1, 'x', 10, interval '1 hour', 'things')`, [team.orgId]), "42501");
  });
});
