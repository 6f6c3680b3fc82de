// The permission helpers behind every RLS-checked list (issue #8 §4): the invitations list goes
// through private.org_ids_with_permission_array as one initplan, every other policy through
// private.org_ids_with_permission. Same answers as the original join (membership, built-in and
// custom roles, the org's MFA rule, API keys), at a cost that does not grow with a page per
// membership.
import { randomUUID } from "node:crypto";
import { describe, expect, it } from "vitest";
import { addMember, admin, as, createTeam, createUser, rpc, select, type Caller, type TestUser } from "../helpers/db.ts";

const LIST = "select id, org_id, email from public.invitations where org_id = $1 order by created_at desc";

async function inviteSome(who: TestUser, orgId: string, n: number) {
  for (let i = 0; i < n; i++) {
    await rpc(who, "invite_member", { p_org_id: orgId, p_email: `rls-${randomUUID().slice(0, 8)}@test.local`, p_role: "member" });
  }
}

async function customRole(orgId: string, key: string, permissions: string[]) {
  await admin.query("insert into public.org_roles (org_id, key, name, rank, permissions) values ($1, $2, $2, 15, $3)", [orgId, key, permissions]);
}

async function newKey(who: TestUser, orgId: string, scopes: string[]): Promise<Caller> {
  const [k] = await rpc<{ api_key_id: string }>(who, "create_api_key", { p_org_id: orgId, p_name: "rls key", p_scopes: scopes });
  return { claims: { role: "authenticated", aud: "authenticated", api_key_id: k.api_key_id } };
}

// The original definition (core_orgs), kept here as the reference the helpers must agree with.
const REFERENCE = `
  select coalesce(array_agg(m.org_id order by m.org_id), '{}') as ids
  from public.org_members m
  join public.orgs o on o.id = m.org_id
  left join public.builtin_roles b on b.key = m.role
  left join public.org_roles r on r.org_id = m.org_id and r.key = m.role
  where m.user_id = $1 and ($2 or not o.require_mfa) and $3 = any (coalesce(b.permissions, r.permissions))`;

describe("invitations listed through RLS", () => {
  it("members.manage holders (owner, admin) see the org's invitations; member, viewer and strangers see none", async () => {
    const team = await createTeam();
    const stranger = await createUser();
    await inviteSome(team.admin, team.orgId, 3);
    for (const who of [team.owner, team.admin]) expect(await select(who, LIST, [team.orgId])).toHaveLength(3);
    for (const who of [team.member, team.viewer, stranger]) expect(await select(who, LIST, [team.orgId])).toHaveLength(0);
  });

  it("a member of two orgs sees only the org where they hold members.manage", async () => {
    const [a, b] = [await createTeam("A"), await createTeam("B")];
    const both = await createUser();
    await addMember(a.orgId, both, "admin");
    await addMember(b.orgId, both, "member");
    await inviteSome(a.admin, a.orgId, 2);
    await inviteSome(b.admin, b.orgId, 2);
    const rows = await select<{ org_id: string }>(both, "select org_id from public.invitations where org_id = any ($1)", [[a.orgId, b.orgId]]);
    expect(rows.map((r) => r.org_id)).toEqual([a.orgId, a.orgId]);
  });

  it("a custom role with members.manage sees them; one without it does not", async () => {
    const team = await createTeam();
    await customRole(team.orgId, "recruiter", ["members.manage"]);
    await customRole(team.orgId, "reader", ["content.read"]);
    const [recruiter, reader] = [await createUser(), await createUser()];
    await addMember(team.orgId, recruiter, "recruiter");
    await addMember(team.orgId, reader, "reader");
    await inviteSome(team.admin, team.orgId, 2);
    expect(await select(recruiter, LIST, [team.orgId])).toHaveLength(2);
    expect(await select(reader, LIST, [team.orgId])).toHaveLength(0);
  });

  it("an org that requires MFA shows them to an aal2 session only", async () => {
    const team = await createTeam();
    await inviteSome(team.admin, team.orgId, 2);
    await admin.query("update public.orgs set require_mfa = true where id = $1", [team.orgId]);
    expect(await select(team.admin, LIST, [team.orgId])).toHaveLength(0);
    expect(await select(team.admin, LIST, [team.orgId], { aal: "aal2" })).toHaveLength(2);
  });

  it("an API key sees them with the members.manage scope, not without it, and not once revoked", async () => {
    const team = await createTeam();
    await inviteSome(team.admin, team.orgId, 2);
    const manage = await newKey(team.admin, team.orgId, ["members.manage"]);
    const read = await newKey(team.admin, team.orgId, ["content.read"]);
    expect(await select(manage, LIST, [team.orgId])).toHaveLength(2);
    expect(await select(read, LIST, [team.orgId])).toHaveLength(0);
    const keyId = (manage as { claims: { api_key_id: string } }).claims.api_key_id;
    await admin.query("update public.api_keys set revoked_at = now() where id = $1", [keyId]);
    expect(await select(manage, LIST, [team.orgId])).toHaveLength(0);
  });

  it("reads the set once per statement (an initplan) and the org's rows through the (org_id, created_at) index", async () => {
    const team = await createTeam();
    await inviteSome(team.admin, team.orgId, 2);
    const plan = await as(team.admin, async (c) => {
      // A test database holds a few hundred invitations, where a sequential scan can win on cost; the
      // question here is whether the permitted set can drive the index at all, as it must at scale.
      // So the other ways are priced out (no sequential or bitmap scan, and no sort, which a plan
      // through the (org_id, email) index would need), rather than left to cost under load.
      await c.query("set local enable_seqscan = off");
      await c.query("set local enable_bitmapscan = off");
      await c.query("set local enable_sort = off");
      const { rows } = await c.query(`explain (format json) ${LIST.replace("$1", `'${team.orgId}'`)}`);
      return JSON.stringify(rows[0]["QUERY PLAN"]);
    });
    expect(plan).toContain('"Subplan Name":"InitPlan 1"');
    expect(plan).not.toContain("hashed SubPlan");
    expect(plan).not.toContain("ProjectSet");
    expect(plan).toContain('"Index Name":"invitations_org_id_idx"');
    expect(plan).not.toContain('"Node Type":"Sort"');
  });

  it("the permission check reads fewer pages than one per membership (it used to probe orgs for each)", async () => {
    const MEMBERSHIPS = 60;
    const user = await createUser();
    const ids = Array.from({ length: MEMBERSHIPS }, () => randomUUID());
    await admin.query(
      `insert into public.orgs (id, slug, name, kind) select id, 'rls-' || replace(id::text, '-', ''), 'RLS org', 'team' from unnest($1::uuid[]) id`,
      [ids],
    );
    await admin.query("insert into public.org_members (org_id, user_id, role) select id, $2, 'owner' from unnest($1::uuid[]) id", [ids, user.id]);
    await inviteSome(user, ids[0], 1); // a row to list, so a per-row filter would run too
    const hits = await as(user, async (c) => {
      await c.query(`select 1 from public.invitations where org_id = $1`, [ids[0]]); // warm the caches
      const { rows } = await c.query(`explain (analyze, buffers, format json) ${LIST.replace("$1", `'${ids[0]}'`)}`);
      const walk = (n: Record<string, unknown>): Record<string, unknown>[] =>
        [n, ...((n.Plans as Record<string, unknown>[] | undefined) ?? []).flatMap(walk)];
      const nodes = walk(rows[0]["QUERY PLAN"][0].Plan);
      const check = nodes.find((n) => n["Parent Relationship"] === "InitPlan" || n["Parent Relationship"] === "SubPlan");
      expect(check, "the permission check is its own plan node").toBeDefined();
      return (check!["Shared Hit Blocks"] as number) + (check!["Shared Read Blocks"] as number);
    });
    expect(hits).toBeGreaterThan(0);
    expect(hits).toBeLessThan(MEMBERSHIPS);
  });
});

describe("org_ids_with_permission and org_ids_with_permission_array", () => {
  it("agree with the original join for every permission, role kind, MFA rule and session level", async () => {
    const plain = await createTeam("Plain");
    const mfa = await createTeam("Mfa");
    await admin.query("update public.orgs set require_mfa = true where id = $1", [mfa.orgId]);
    await customRole(plain.orgId, "auditor", ["billing.manage", "content.read"]);
    const multi = await createUser();
    await addMember(plain.orgId, multi, "auditor");
    await addMember(mfa.orgId, multi, "admin");
    const { rows: perms } = await admin.query<{ key: string }>("select key from public.permissions order by key");
    expect(perms.length).toBeGreaterThan(5);
    let nonEmpty = 0;
    for (const user of [plain.owner, plain.member, plain.viewer, mfa.admin, multi]) {
      for (const aal2 of [false, true]) {
        for (const { key } of perms) {
          const { rows: [ref] } = await admin.query<{ ids: string[] }>(REFERENCE, [user.id, aal2, key]);
          const [got] = await select<{ set: string[]; arr: string[] }>(
            user,
            `select (select coalesce(array_agg(x order by x), '{}') from private.org_ids_with_permission($1) x) as set,
                    (select coalesce(array_agg(x order by x), '{}') from unnest(private.org_ids_with_permission_array($1)) x) as arr`,
            [key],
            { aal: aal2 ? "aal2" : "aal1" },
          );
          expect(got.set, `${key} aal2=${aal2}`).toEqual(ref.ids);
          expect(got.arr, `${key} aal2=${aal2}`).toEqual(ref.ids);
          if (ref.ids.length) nonEmpty++;
        }
      }
    }
    expect(nonEmpty).toBeGreaterThan(20); // the comparison is not vacuous
  });

  it("member_org_ids and accessible_org_ids (now plpgsql) agree with their original SQL bodies", async () => {
    const plain = await createTeam("Plain");
    const mfa = await createTeam("Mfa");
    await admin.query("update public.orgs set require_mfa = true where id = $1", [mfa.orgId]);
    const multi = await createUser();
    await addMember(plain.orgId, multi, "viewer");
    await addMember(mfa.orgId, multi, "member");
    const key = await newKey(plain.admin, plain.orgId, ["content.read"]);
    const sorted = "coalesce(array_agg(x order by x), '{}')";
    const ORIGINAL_MEMBER = `select ${sorted} as ids from (
        select m.org_id as x from public.org_members m where m.user_id = (select auth.uid())
        union all
        select k.org_id from public.api_keys k
        where k.id = nullif((select auth.jwt()) ->> 'api_key_id', '')::uuid and k.revoked_at is null and (k.expires_at is null or k.expires_at > now())) t`;
    const ORIGINAL_ACCESSIBLE = `select ${sorted} as ids from (
        select m.org_id as x from public.org_members m join public.orgs o on o.id = m.org_id
        where m.user_id = (select auth.uid()) and (not o.require_mfa or coalesce((select auth.jwt()) ->> 'aal', 'aal1') = 'aal2')) t`;
    let nonEmpty = 0;
    for (const who of [plain.owner, mfa.admin, multi, key, "anon" as const]) {
      for (const aal of ["aal1", "aal2"] as const) {
        const got = await as(who, async (c) => {
          // The originals run as the owner would (they were security definer); the claims are the same.
          const helpers = (await c.query(`select (select ${sorted} from private.member_org_ids() x) as member,
                                                 (select ${sorted} from private.accessible_org_ids() x) as accessible`)).rows[0];
          await c.query("reset role");
          const member = (await c.query(ORIGINAL_MEMBER)).rows[0].ids;
          const accessible = (await c.query(ORIGINAL_ACCESSIBLE)).rows[0].ids;
          return { helpers, member, accessible };
        }, { aal }).catch((e: { code?: string }) => ({ error: e.code }));
        if ("error" in got) {
          expect(who, "only anon may not call the helpers").toBe("anon");
          expect(got.error).toBe("42501");
          continue;
        }
        expect(got.helpers.member).toEqual(got.member);
        expect(got.helpers.accessible).toEqual(got.accessible);
        nonEmpty += got.member.length + got.accessible.length;
      }
    }
    expect(nonEmpty).toBeGreaterThan(10);
  });

  it("the membership helpers that policies and RPCs call keep their plans (plpgsql, not re-planned SQL)", async () => {
    // A security definer SQL function with SET search_path is never inlined: Postgres plans its
    // body again on every call, i.e. on every request that touches a policy calling it.
    const { rows } = await admin.query<{ proname: string; lanname: string }>(
      `select p.proname, l.lanname from pg_proc p
       join pg_namespace n on n.oid = p.pronamespace join pg_language l on l.oid = p.prolang
       where n.nspname = 'private'
         and p.proname in ('member_org_ids', 'accessible_org_ids', 'org_ids_with_permission', 'org_ids_with_permission_array', 'has_permission')
       order by 1`,
    );
    expect(rows).toEqual(
      ["accessible_org_ids", "has_permission", "member_org_ids", "org_ids_with_permission", "org_ids_with_permission_array"]
        .map((proname) => ({ proname, lanname: "plpgsql" })),
    );
  });

  it("has_permission answers as the set does, and false for a null org", async () => {
    const team = await createTeam();
    const mfa = await createTeam("Mfa");
    await admin.query("update public.orgs set require_mfa = true where id = $1", [mfa.orgId]);
    const check = (who: TestUser, org: string | null, perm: string, aal: "aal1" | "aal2" = "aal1") =>
      select<{ ok: boolean }>(who, "select private.has_permission($1, $2) as ok", [org, perm], { aal }).then((r) => r[0].ok);
    expect(await check(team.admin, team.orgId, "members.manage")).toBe(true);
    expect(await check(team.member, team.orgId, "members.manage")).toBe(false);
    expect(await check(team.admin, null, "members.manage")).toBe(false);
    expect(await check(team.admin, mfa.orgId, "members.manage")).toBe(false);
    expect(await check(mfa.admin, mfa.orgId, "members.manage")).toBe(false);
    expect(await check(mfa.admin, mfa.orgId, "members.manage", "aal2")).toBe(true);
  });

  it("anon and a caller without claims get nothing", async () => {
    await expect(select("anon", "select private.org_ids_with_permission_array('members.manage') as ids")).rejects.toMatchObject({ code: "42501" });
    const { rows } = await admin.query("select private.org_ids_with_permission_array('members.manage') as ids");
    expect(rows[0].ids).toEqual([]);
  });
});
