// The documents list through RLS (migration 20261201000700_content_list): the policy reads the
// caller's orgs once per statement (an initplan over org_ids_with_permission_array) and a
// single-org list keeps the (org_id, updated_at) index scan that LIMIT stops early; and who sees
// which row of one org's list, through each branch of the policy.
import { beforeAll, describe, expect, it } from "vitest";
import { admin, as, type Caller, createUser, createTeam, type Team, type TestUser } from "../helpers/db.ts";
import { contentRpc, createDoc, note } from "../helpers/content.ts";

let team: Team;
let docs: { org: string; ownerPrivate: string; memberPrivate: string; published: string };

// What PostgREST sends for
//   supabase.from("documents").select("id,title,updated_at").eq("org_id", X).order("updated_at", { ascending: false }).limit(50)
const listSql = (orgId: string) =>
  `with pgrst_source as (select "content"."documents"."id", "content"."documents"."title", "content"."documents"."updated_at"
     from "content"."documents" where "content"."documents"."org_id" = '${orgId}'
     order by "content"."documents"."updated_at" desc limit 50 offset 0)
   select null::bigint as total_result_set, pg_catalog.count(_postgrest_t) as page_total,
          coalesce(json_agg(_postgrest_t), '[]') as body from (select * from pgrst_source) _postgrest_t`;

const list = (who: Caller) =>
  as(who, async (c) => ((await c.query(listSql(team.orgId))).rows[0].body as { id: string }[]).map((r) => r.id).sort());

async function apiKey(scopes: string[]): Promise<Caller> {
  const { rows } = await admin.query(
    `insert into public.api_keys (org_id, name, prefix, secret_hash, scopes) values ($1, 'k', $2, sha256('s'), $3) returning id`,
    [team.orgId, `l${Math.random().toString(36).slice(2, 12)}`, scopes],
  );
  return { claims: { role: "authenticated", aud: "authenticated", api_key_id: rows[0].id, org_id: team.orgId } };
}

beforeAll(async () => {
  team = await createTeam("List");
  const org = await createDoc(team.member, team.orgId, { body: note("org") });
  const ownerPrivate = await createDoc(team.owner, team.orgId, { visibility: "private", body: note("owner's") });
  const memberPrivate = await createDoc(team.member, team.orgId, { visibility: "private", body: note("member's") });
  const published = await createDoc(team.member, team.orgId, { body: note("out") });
  await admin.query("update content.documents set status = 'published', visibility = 'public' where id = $1", [published.id]);
  docs = { org: org.id, ownerPrivate: ownerPrivate.id, memberPrivate: memberPrivate.id, published: published.id };
});

describe("the single-org list's plan", () => {
  it("reads the caller's orgs once (an initplan) and walks the org's (org_id, updated_at) index", async () => {
    const plan = await as(team.member, async (c) => {
      // The question is whether the index can serve the list (the org's rows, in order, so that
      // LIMIT stops early), not which plan wins on cost in a small test database under load. So
      // every other way is priced out: no sequential or bitmap scan, and no sort, which a plan
      // through any other index would need. At scale (bench/content.bench.ts) the index is
      // chosen on its own.
      await c.query("set local enable_seqscan = off");
      await c.query("set local enable_bitmapscan = off");
      await c.query("set local enable_sort = off");
      const { rows } = await c.query(`explain (verbose, costs off) ${listSql(team.orgId)}`);
      return rows.map((r) => r["QUERY PLAN"] as string).join("\n");
    });
    expect(plan).toMatch(/Index Scan using documents_org_updated_idx on content\.documents/);
    expect(plan).toMatch(/Index Cond: \(documents\.org_id = '[0-9a-f-]{36}'::uuid\)/);
    expect(plan).not.toMatch(/Sort Key|Sort Method|Disabled/);
    // The membership test is one array lookup against a once-per-statement initplan...
    expect(plan).toMatch(/InitPlan \d+\n\s+->\s+Result\n\s+Output: private\.org_ids_with_permission_array\('content\.read'::text\)/);
    expect(plan).toMatch(/documents\.org_id = ANY \(\(InitPlan \d+\)\.col1\)/);
    // ...not a set-returning helper hashed per statement (the policy before).
    expect(plan).not.toMatch(/content_reader_keys/);
  });
});

describe("who sees which rows of one org's list", () => {
  it("members by role: private documents only to their owner and to org.manage holders", async () => {
    const all = Object.values(docs).sort();
    expect(await list(team.owner)).toEqual(all);
    expect(await list(team.admin)).toEqual(all);
    expect(await list(team.member)).toEqual([docs.org, docs.memberPrivate, docs.published].sort());
    expect(await list(team.viewer)).toEqual([docs.org, docs.published].sort());
  });

  it("API keys by scope: content.read reads non-private documents, with org.manage private ones too", async () => {
    expect(await list(await apiKey(["content.read"]))).toEqual([docs.org, docs.published].sort());
    expect(await list(await apiKey(["content.read", "org.manage"]))).toEqual(Object.values(docs).sort());
    // org.manage alone does not read content.
    expect(await list(await apiKey(["org.manage"]))).toEqual([docs.published]);
  });

  it("outsiders: published public documents, plus what is shared with them", async () => {
    const stranger: TestUser = await createUser();
    expect(await list(stranger)).toEqual([docs.published]);
    await contentRpc(team.owner, "share_with_user", { p_document_id: docs.ownerPrivate, p_level: "view", p_email: stranger.email });
    expect(await list(stranger)).toEqual([docs.ownerPrivate, docs.published].sort());
    expect(await list("anon")).toEqual([docs.published]);
  });

  it("an org that requires MFA lists only public documents to an aal1 session, everything to aal2", async () => {
    const mfa = await createTeam("ListMfa");
    const doc = await createDoc(mfa.member, mfa.orgId, { body: note("x") });
    await admin.query("update public.orgs set require_mfa = true where id = $1", [mfa.orgId]);
    const ids = (aal: "aal1" | "aal2") =>
      as(mfa.owner, async (c) => ((await c.query(listSql(mfa.orgId))).rows[0].body as { id: string }[]).map((r) => r.id), { aal });
    expect(await ids("aal1")).toEqual([]);
    expect(await ids("aal2")).toEqual([doc.id]);
  });
});
