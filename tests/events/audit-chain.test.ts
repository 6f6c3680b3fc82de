// The audit log is a hash chain per org: the table owner can still disable the append-only
// trigger, but then notify.verify_audit_chain names the first row that no longer fits.
import { describe, expect, it } from "vitest";
import { admin, as, createTeam, createUser, expectSqlError, rpc, select, type Team } from "../helpers/db.ts";

interface Broken {
  seq: string;
  audit_log_id: string;
  problem: string;
}

const service = { claims: { role: "service_role" } };

function verify(orgId: string, who: Parameters<typeof select>[0] = service) {
  return select<Broken>(who, "select * from notify.verify_audit_chain($1)", [orgId]);
}

async function chain(orgId: string) {
  const { rows } = await admin.query<{ id: string; seq: string; prev_hash: Buffer | null; row_hash: Buffer }>(
    "select id, seq, prev_hash, row_hash from notify.audit_log where org_id = $1 order by seq",
    [orgId],
  );
  return rows;
}

/** What the table owner can do: turn the append-only trigger off for one transaction. */
async function tamper(sql: string, params: unknown[]) {
  const c = await admin.connect();
  try {
    await c.query("begin");
    await c.query("alter table notify.audit_log disable trigger audit_log_append_only");
    await c.query(sql, params);
    await c.query("alter table notify.audit_log enable trigger audit_log_append_only");
    await c.query("commit");
  } catch (err) {
    await c.query("rollback").catch(() => {});
    throw err;
  } finally {
    c.release();
  }
}

/** A team with a handful of audit rows. */
async function busyTeam(): Promise<Team> {
  const team = await createTeam();
  await rpc(team.admin, "set_member_role", { p_org_id: team.orgId, p_user_id: team.viewer.id, p_role: "member" });
  await rpc(team.admin, "update_org", { p_org_id: team.orgId, p_name: "Renamed" });
  await rpc(team.owner, "create_api_key", { p_org_id: team.orgId, p_name: "ci", p_scopes: ["content.read"] });
  return team;
}

describe("audit hash chain", () => {
  it("links every row of an org to the previous one, seq 1..n; an intact chain verifies clean", async () => {
    const team = await busyTeam();
    const rows = await chain(team.orgId);
    expect(rows.length).toBeGreaterThanOrEqual(6);
    rows.forEach((r, i) => {
      expect(Number(r.seq)).toBe(i + 1);
      expect(r.row_hash).toHaveLength(32);
      if (i === 0) expect(r.prev_hash).toBeNull();
      else expect(r.prev_hash!.equals(rows[i - 1].row_hash)).toBe(true);
    });
    expect(await verify(team.orgId)).toEqual([]);
    expect(await verify(team.orgId, team.owner)).toEqual([]);
  });

  it("a middle row deleted by the owner with the trigger off is reported at the row after it", async () => {
    const team = await busyTeam();
    const rows = await chain(team.orgId);
    const victim = rows[2];
    await tamper("delete from notify.audit_log where id = $1", [victim.id]);
    const [broken] = await verify(team.orgId);
    expect(broken).toMatchObject({ seq: rows[3].seq, audit_log_id: rows[3].id });
    expect(broken.problem).toMatch(/missing/);
  });

  it("a row updated by the owner with the trigger off is reported at that row", async () => {
    const team = await busyTeam();
    const rows = await chain(team.orgId);
    await tamper(`update notify.audit_log set after = '{"role": "owner"}' where id = $1`, [rows[1].id]);
    const [broken] = await verify(team.orgId);
    expect(broken).toMatchObject({ seq: rows[1].seq, audit_log_id: rows[1].id });
    expect(broken.problem).toMatch(/content was changed/);
  });

  it("recomputing the changed row's own hash only moves the break to the next row", async () => {
    const team = await busyTeam();
    const rows = await chain(team.orgId);
    await tamper(
      `update notify.audit_log a set after = '{"role": "owner"}' where id = $1;`,
      [rows[1].id],
    );
    await tamper("update notify.audit_log a set row_hash = private.audit_row_hash(a) where id = $1", [rows[1].id]);
    const [broken] = await verify(team.orgId);
    expect(broken).toMatchObject({ seq: rows[2].seq, audit_log_id: rows[2].id });
    expect(broken.problem).toMatch(/does not follow/);
  });

  it("a forged actor is reported; erasing the actor (GDPR) is not a break", async () => {
    const team = await busyTeam();
    const { rows: [row] } = await admin.query(
      "select id, seq from notify.audit_log where org_id = $1 and actor_user_id = $2 order by seq limit 1",
      [team.orgId, team.admin.id],
    );
    await admin.query("delete from auth.users where id = $1", [team.admin.id]);
    expect(await verify(team.orgId)).toEqual([]);
    await tamper("update notify.audit_log set actor_user_id = $2 where id = $1", [row.id, team.member.id]);
    const [broken] = await verify(team.orgId);
    expect(broken).toMatchObject({ audit_log_id: row.id });
    expect(broken.problem).toMatch(/actor_user_id/);
  });

  it("concurrent changes in one org still chain without gaps or forks", async () => {
    const team = await createTeam();
    await Promise.all(
      Array.from({ length: 16 }, (_, i) =>
        rpc(team.owner, "create_api_key", { p_org_id: team.orgId, p_name: `k${i}`, p_scopes: ["content.read"] })),
    );
    const rows = await chain(team.orgId);
    expect(rows.map((r) => Number(r.seq))).toEqual(rows.map((_, i) => i + 1));
    expect(await verify(team.orgId)).toEqual([]);
  });

  it("the head names the newest link, so removing the newest rows shows against a kept head", async () => {
    const team = await busyTeam();
    const rows = await chain(team.orgId);
    const [head] = await select<{ seq: string; row_hash: string }>(team.owner, "select * from notify.audit_chain_head($1)", [team.orgId]);
    expect(head).toMatchObject({ seq: rows.at(-1)!.seq, row_hash: rows.at(-1)!.row_hash.toString("hex") });
    await tamper("delete from notify.audit_log where id = $1", [rows.at(-1)!.id]);
    const [after] = await select<{ seq: string }>(service, "select * from notify.audit_chain_head($1)", [team.orgId]);
    expect(after.seq).not.toBe(head.seq);
  });

  it("verify and head: org.manage holders and the service role may call; members 42501, strangers PT404, anon denied", async () => {
    const team = await busyTeam();
    const stranger = await createUser();
    expect(await verify(team.orgId, team.admin)).toEqual([]);
    await expectSqlError(verify(team.orgId, team.member), "42501");
    await expectSqlError(verify(team.orgId, stranger), "PT404");
    await expectSqlError(verify(team.orgId, "anon"), "42501");
    await expectSqlError(select(team.viewer, "select * from notify.audit_chain_head($1)", [team.orgId]), "42501");
    await expectSqlError(select(stranger, "select * from notify.audit_chain_head($1)", [team.orgId]), "PT404");
    // MFA: an aal1 session of an org requiring MFA cannot verify either.
    await admin.query("update public.orgs set require_mfa = true where id = $1", [team.orgId]);
    await expectSqlError(verify(team.orgId, team.admin), "42501", /aal2/);
    const rows = await as(team.admin, async (c) => (await c.query("select * from notify.verify_audit_chain($1)", [team.orgId])).rows, { aal: "aal2" });
    expect(rows).toEqual([]);
  });
});
