// The RPC walk: every function in an exposed schema that `authenticated` may execute is either
// called here for acme, an org that requires MFA, or listed as acting only on the caller. A new
// RPC fails the walk until it is listed. For each org RPC:
//   - an aal1 call by acme's owner is refused with the listed SQLSTATE, or (for a read) answers
//     exactly what a signed-in stranger gets: nothing of the org;
//   - the same call at aal2 passes the permission check (it succeeds, or meets the listed
//     non-permission error), and a read answers more than the stranger gets. So the aal1
//     refusal is the MFA rule and the walk can fail;
//   - acme's viewer gets the listed outcome (the lowest role: refused wherever a permission
//     beyond content.read is needed);
//   - globex's owner learns no more than a stranger, and a globex API key with every scope is
//     refused (or learns no more than a stranger);
//   - an acme API key, under every scope and each scope alone, does no more than a member whose
//     custom role holds exactly the key's scopes.
// (anon is refused every function in exposed schemas: tests/db/schema-conventions.test.ts.)
// One transaction turns on acme's require_mfa and is rolled back; every call runs in its own
// rolled-back savepoint, so even delete_org at aal2 leaves nothing behind.
import { randomBytes, randomUUID } from "node:crypto";
import { beforeAll, describe, expect, it } from "vitest";
import { gotrueClaims } from "../../scripts/lib/keys.ts";
import { authenticatedRpcs, walk, type Outcome } from "../helpers/catalog.ts";
import { admin, createUser, type TestUser } from "../helpers/db.ts";
import { waitFor } from "../helpers/wait.ts";

const ACME = "a0000000-0000-4000-8000-00000000a000";
const GLOBEX = "b0000000-0000-4000-8000-00000000b000";
const users = {
  alice: { id: "a0000000-0000-4000-8000-000000000001", email: "alice@acme.test" }, // owner
  adam: { id: "a0000000-0000-4000-8000-000000000002", email: "adam@acme.test" }, // admin
  mia: { id: "a0000000-0000-4000-8000-000000000003", email: "mia@acme.test" }, // member
};
const gina = "b0000000-0000-4000-8000-000000000001"; // globex's owner
const DOC = "a0000000-0000-4000-8000-0000000c0001"; // published, link-visible note with a comment, a version, an asset
const COMMENT = "a0000000-0000-4000-8000-0000000c8001"; // by mia
const THREAD = "a0000000-0000-4000-8000-0000000c7001";
const LINK_SHARE = "a0000000-0000-4000-8000-0000000c5002";
const ASSET = "a0000000-0000-4000-8000-0000000c9001";
const ENDPOINT = "a0000000-0000-4000-8000-0000000e0001";
const AI_JOB = "a1000000-0000-4000-8000-0000000f00a1"; // alice's
const AI_BATCH = "a1000000-0000-4000-8000-0000000000b1";
const UPLOAD = "a0000000-0000-4000-8000-0000000f0001"; // alice's photo
const VIDEO_JOB = "a0000000-0000-4000-8000-0000000f0101"; // alice's, completed
const DECK_OPERATION = "a0000000-0000-4000-8000-0000000de0a1"; // alice's AI card operation, applied
const DECK_TEMPLATE = "a0000000-0000-4000-8000-0000000de002"; // a deck template in review
const NOTIFICATION = "a0000000-0000-4000-8000-0000000a0001"; // alice's, unread
const BODY = [{ type: "text", text: "walk" }];

interface Ctx {
  invitation: string;
  apiKey: string;
  message: string;
  version: string;
}

interface OrgCall {
  args: (x: Ctx) => Record<string, unknown>;
  /** Who calls (acme's owner unless said): a member of acme in every case. */
  as?: keyof typeof users;
  /** At aal1: refused with this SQLSTATE, or "stranger": answers exactly what a non-member gets. */
  aal1: "42501" | "PT404" | "stranger";
  /** At aal2: "ok", or the SQLSTATE of a check that comes after the permission check. */
  aal2?: "ok" | string;
  /**
   * What acme's viewer (content.read only) gets at aal2: "ok", or the SQLSTATE refusing them
   * (PT404 where the object is someone else's, such as another member's job).
   */
  viewer: "ok" | "42501" | "PT404";
}
type Entry = OrgCall | { callerOnly: string };

const uuidArray = (ids: string[]) => `{${ids.join(",")}}`;

/** How to call each RPC for acme. A new RPC fails the walk until it is listed here. */
const RPCS: Record<string, Entry> = {
  "public.my_profile": { callerOnly: "the caller's own profile" },
  "public.create_org": { callerOnly: "makes a new org, owned by the caller" },
  "public.accept_invitation": { callerOnly: "the invitee's own token; they are not a member yet" },
  "public.set_notification_preference": { callerOnly: "the caller's own preferences, no org" },
  "public.unread_count": {
    callerOnly: "a count of the caller's own notifications across orgs (it leaves out orgs whose MFA rule the session does not meet; catalog-mfa walks the rows)",
  },
  "video.quote": { callerOnly: "prices of the global tiers; no org data" },
  "video.request_privacy": { callerOnly: "the caller's own privacy request (export or erasure of their data)" },

  "public.update_org": { args: () => ({ p_org_id: ACME, p_name: "Walked" }), aal1: "42501", viewer: "42501" },
  "public.delete_org": { args: () => ({ p_org_id: ACME, p_confirm_slug: "acme" }), aal1: "42501", viewer: "42501" },
  "public.set_member_role": { args: () => ({ p_org_id: ACME, p_user_id: users.mia.id, p_role: "viewer" }), aal1: "42501", viewer: "42501" },
  "public.remove_member": { args: () => ({ p_org_id: ACME, p_user_id: users.mia.id }), aal1: "42501", viewer: "42501" },
  "public.leave_org": { as: "mia", args: () => ({ p_org_id: ACME }), aal1: "42501", viewer: "ok" },
  "public.transfer_ownership": { args: () => ({ p_org_id: ACME, p_new_owner: users.adam.id }), aal1: "42501", viewer: "42501" },
  "public.invite_member": { args: () => ({ p_org_id: ACME, p_email: "walk@walk.test", p_role: "member" }), aal1: "42501", viewer: "42501" },
  "public.revoke_invitation": { args: (x) => ({ p_invitation_id: x.invitation }), aal1: "42501", viewer: "42501" },
  "public.create_api_key": { args: () => ({ p_org_id: ACME, p_name: "walk", p_scopes: "{content.read}" }), aal1: "42501", viewer: "42501" },
  "public.revoke_api_key": { args: (x) => ({ p_api_key_id: x.apiKey }), aal1: "42501", viewer: "42501" },
  "public.set_api_keys_survive_creator": { args: () => ({ p_org_id: ACME, p_survive: true }), aal1: "42501", viewer: "42501" },
  "public.create_webhook_endpoint": {
    args: () => ({ p_org_id: ACME, p_url: "https://example.com/walk", p_event_types: "{member.joined}" }),
    aal1: "42501", viewer: "42501",
  },
  "public.update_webhook_endpoint": { args: () => ({ p_endpoint_id: ENDPOINT, p_description: "walked" }), aal1: "42501", viewer: "42501" },
  "public.delete_webhook_endpoint": { args: () => ({ p_endpoint_id: ENDPOINT }), aal1: "42501", viewer: "42501" },
  "public.rotate_webhook_secret": { args: () => ({ p_endpoint_id: ENDPOINT }), aal1: "42501", viewer: "42501" },
  "public.replay_webhook_message": { args: (x) => ({ p_message_id: x.message }), aal1: "42501", viewer: "42501" },
  "public.recover_webhook_messages": { args: () => ({ p_org_id: ACME, p_since: "2000-01-01T00:00:00Z" }), aal1: "42501", viewer: "42501" },
  "public.send_test_webhook": { args: () => ({ p_endpoint_id: ENDPOINT }), aal1: "42501", viewer: "42501" },
  "public.mark_read": { args: () => ({ p_ids: uuidArray([NOTIFICATION]) }), aal1: "PT404", viewer: "PT404" },
  "public.mark_all_read": { args: () => ({ p_org_id: ACME }), aal1: "stranger", viewer: "ok" },

  "billing.current_plan": { args: () => ({ p_org_id: ACME }), aal1: "stranger", viewer: "ok" },
  "billing.entitled": { args: () => ({ p_org_id: ACME, p_feature: "custom_domain" }), aal1: "stranger", viewer: "ok" },
  "billing.limit_of": { args: () => ({ p_org_id: ACME, p_key: "seats" }), aal1: "stranger", viewer: "ok" },
  "billing.summary": { args: () => ({ p_org_id: ACME }), aal1: "PT404", viewer: "42501" },

  "ai.cancel_job": { args: () => ({ p_job_id: AI_JOB }), aal1: "PT404", viewer: "PT404" },
  "ai.cancel_batch": { args: () => ({ p_batch_id: AI_BATCH }), aal1: "PT404", viewer: "PT404" },

  "content.push_updates": { args: () => ({ p_document_id: DOC, p_updates: "{AAA=}" }), aal1: "PT404", viewer: "42501" },
  "content.load_live": { args: () => ({ p_document_id: DOC }), aal1: "stranger", viewer: "ok" },
  "content.pin_version": { args: (x) => ({ p_version_id: x.version }), aal1: "PT404", viewer: "42501" },
  "content.add_comment": { args: () => ({ p_document_id: DOC, p_body: JSON.stringify(BODY) }), aal1: "PT404", viewer: "ok" },
  "content.edit_comment": { as: "mia", args: () => ({ p_comment_id: COMMENT, p_body: JSON.stringify(BODY) }), aal1: "PT404", viewer: "42501" },
  "content.delete_comment": { as: "mia", args: () => ({ p_comment_id: COMMENT }), aal1: "PT404", viewer: "42501" },
  "content.resolve_thread": { args: () => ({ p_thread_id: THREAD }), aal1: "PT404", viewer: "ok" },
  "content.share_with_user": { args: () => ({ p_document_id: DOC, p_level: "view", p_user_id: gina }), aal1: "PT404", viewer: "42501" },
  "content.share_with_role": { args: () => ({ p_document_id: DOC, p_role: "viewer", p_level: "comment" }), aal1: "PT404", viewer: "42501" },
  "content.create_link": { args: () => ({ p_document_id: DOC }), aal1: "PT404", viewer: "42501" },
  "content.revoke_share": { args: () => ({ p_share_id: LINK_SHARE }), aal1: "PT404", viewer: "42501" },
  "content.my_access": { args: () => ({ p_document_id: DOC }), aal1: "stranger", viewer: "ok" },
  "content.fork_document": { args: () => ({ p_document_id: DOC, p_target_org_id: ACME }), aal1: "PT404", viewer: "42501" },
  "content.use_template": { args: () => ({ p_template_id: DOC, p_target_org_id: ACME }), aal1: "PT404", viewer: "42501" },
  "content.update_document": { args: () => ({ p_document_id: DOC, p_title: "Walked" }), aal1: "PT404", viewer: "42501" },
  "content.delete_document": { args: () => ({ p_document_id: DOC }), aal1: "PT404", viewer: "42501" },
  "content.search_documents": { args: () => ({ p_query: "brand voice", p_org_id: ACME }), aal1: "stranger", viewer: "ok" },
  "content.remove_asset": { args: () => ({ p_asset_id: ASSET }), aal1: "PT404", viewer: "42501" },

  "video.create_upload": { args: () => ({ p_org_id: ACME, p_filename: "walk.jpg" }), aal1: "42501", viewer: "42501" },
  "video.delete_upload": { args: () => ({ p_upload_id: UPLOAD }), aal1: "PT404", viewer: "PT404" },
  "video.create_job": { args: () => ({ p_org_id: ACME, p_tier: "balanced", p_photo_id: UPLOAD, p_script: JSON.stringify({ text: "Hello" }) }), aal1: "42501", viewer: "42501" },
  "video.cancel_job": { args: () => ({ p_job_id: VIDEO_JOB }), aal1: "PT404", viewer: "PT404" },
  "video.retry_job": { args: () => ({ p_job_id: VIDEO_JOB }), aal1: "PT404", aal2: "PT409", viewer: "PT404" },
  "video.job_attempts": { args: () => ({ p_job_id: VIDEO_JOB }), aal1: "stranger", viewer: "ok" },

  "deck.discard_operation": { args: () => ({ p_operation_id: DECK_OPERATION }), aal1: "PT404", aal2: "PT409", viewer: "42501" },
  "deck.review_template": { args: () => ({ p_document_id: DECK_TEMPLATE, p_decision: "reject" }), aal1: "PT404", viewer: "42501" },

  "notify.verify_audit_chain": { args: () => ({ p_org_id: ACME }), aal1: "42501", viewer: "42501" },
  "notify.audit_chain_head": { args: () => ({ p_org_id: ACME }), aal1: "42501", viewer: "42501" },
};

/** Org RPCs that refuse another org's member with 42501 rather than PT404, and why that leaks nothing. */
const REFUSED_AS_FORBIDDEN: Record<string, string> = {
  "video.create_upload": "the same 'you need content.write in this org' for any org id, existing or not",
  "video.create_job": "the same 'you need ai.use in this org' for any org id, existing or not",
};

const rpcs = await authenticatedRpcs();
const results = new Map<string, { aal1: Outcome; aal2: Outcome; stranger: Outcome; otherOwner: Outcome; otherKey: Outcome; viewer: Outcome }>();
const victor = { id: "a0000000-0000-4000-8000-000000000004", email: "victor@acme.test" }; // acme's viewer

function callSql(fn: string, args: Record<string, unknown>) {
  const names = Object.keys(args);
  return { sql: `select * from ${fn}(${names.map((n, i) => `${n} => $${i + 1}`).join(", ")})`, params: names.map((n) => args[n]) };
}

let unread: { aal1: Outcome; aal2: Outcome; inAcme: number };
const keyScopes = new Map<string, Map<string, { key: Outcome; member: Outcome }>>(); // scope set -> RPC -> outcomes

beforeAll(async () => {
  const outsider: TestUser = await createUser();
  const scoped: TestUser = await createUser();
  const one = async (sql: string, params: unknown[] = []) => (await admin.query(sql, params)).rows[0]?.id as string;
  const ctx: Ctx = {
    invitation: await one("select id from public.invitations where org_id = $1 and accepted_at is null limit 1", [ACME]),
    apiKey: await one("select id from public.api_keys where org_id = $1 and revoked_at is null limit 1", [ACME]),
    message: await one("select id from notify.webhook_messages where org_id = $1 order by created_at limit 1", [ACME]),
    version: await one("select id from content.versions where document_id = $1 limit 1", [DOC]),
  };
  // The seeded photo is checked by the worker after the stack starts; create_job needs it passed.
  await waitFor("the seeded photo to pass its check", async () =>
    (await admin.query("select status from video.uploads where id = $1", [UPLOAD])).rows[0]?.status === "passed");
  await walk(async (w) => {
    await w.owner("update public.orgs set require_mfa = true where id = $1", [ACME]);
    // Fixtures the seed lacks, inside the rolled-back walk: DOC is also an org template, and
    // alice's AI job (behind VIDEO_JOB's run) has a main attempt for job_attempts to list.
    await w.owner("update content.documents set is_template = true where id = $1", [DOC]);
    await w.owner(
      `insert into ai.attempts select (jsonb_populate_record(null::ai.attempts,
         to_jsonb(a) || jsonb_build_object('id', gen_random_uuid(), 'job_id', $1::uuid, 'attempt_no', 1))).*
       from ai.attempts a where a.org_id = $2 and a.purpose = 'main' limit 1`,
      [AI_JOB, ACME],
    );
    // A key of globex with every scope (made by globex's owner), and one of acme whose scopes
    // change below (made by acme's owner), with a member of acme whose custom role always holds
    // exactly the acme key's scopes.
    const newKey = async (id: string, org: string, creator: string) =>
      w.owner(
        `insert into public.api_keys (id, org_id, name, prefix, secret_hash, scopes, created_by)
         select $1, $2, 'walk', $3, $4, array(select key from public.permissions), $5`,
        [id, org, randomBytes(6).toString("hex"), randomBytes(32), creator],
      );
    const otherKey = randomUUID();
    const acmeKey = randomUUID();
    await newKey(otherKey, GLOBEX, gina);
    await newKey(acmeKey, ACME, users.alice.id);
    for (const [fn, e] of Object.entries(RPCS)) {
      if ("callerOnly" in e) continue;
      const { sql, params } = callSql(fn, e.args(ctx));
      const who = users[e.as ?? "alice"];
      results.set(fn, {
        aal1: await w.as(gotrueClaims(who, { aal: "aal1" }), sql, params),
        aal2: await w.as(gotrueClaims(who, { aal: "aal2" }), sql, params),
        stranger: await w.as(gotrueClaims(outsider, { aal: "aal2" }), sql, params),
        otherOwner: await w.as(gotrueClaims({ id: gina, email: "gina@globex.test" }, { aal: "aal2" }), sql, params),
        otherKey: await w.as({ role: "authenticated", aud: "authenticated", api_key_id: otherKey }, sql, params),
        viewer: await w.as(gotrueClaims(victor, { aal: "aal2" }), sql, params),
      });
    }
    const [{ n }] = await w.owner<{ n: number }>(
      "select count(*)::int as n from notify.notifications where user_id = $1 and org_id = $2 and read_at is null and archived_at is null",
      [users.alice.id, ACME],
    );
    unread = {
      aal1: await w.as(gotrueClaims(users.alice, { aal: "aal1" }), "select public.unread_count()"),
      aal2: await w.as(gotrueClaims(users.alice, { aal: "aal2" }), "select public.unread_count()"),
      inAcme: n,
    };
    await w.owner(`insert into public.org_roles (org_id, key, name, rank, permissions) values ($1, 'walk_scopes', 'Walk', 5, '{}')`, [ACME]);
    await w.owner("insert into public.org_members (org_id, user_id, role) values ($1, $2, 'walk_scopes')", [ACME, scoped.id]);
    const permissions = (await w.owner<{ key: string }>("select key from public.permissions order by key")).map((r) => r.key);
    for (const [label, scopes] of [["every scope", permissions], ...permissions.map((p) => [`only ${p}`, [p]])] as [string, string[]][]) {
      await w.owner("update public.api_keys set scopes = $1 where id = $2", [scopes, acmeKey]);
      await w.owner("update public.org_roles set permissions = $1 where org_id = $2 and key = 'walk_scopes'", [scopes, ACME]);
      const m = new Map<string, { key: Outcome; member: Outcome }>();
      for (const [fn, e] of Object.entries(RPCS)) {
        if ("callerOnly" in e) continue;
        const { sql, params } = callSql(fn, e.args(ctx));
        m.set(fn, {
          key: await w.as({ role: "authenticated", aud: "authenticated", api_key_id: acmeKey }, sql, params),
          member: await w.as(gotrueClaims(scoped, { aal: "aal2" }), sql, params),
        });
      }
      keyScopes.set(label, m);
    }
  });
});

const shown = (o: Outcome) => (o.ok ? JSON.stringify(o.values) : `${o.code}: ${o.message}`);

describe("every RPC clients can call, for an org that requires MFA", () => {
  it("lists every function executable by authenticated in an exposed schema, once, and nothing else", () => {
    const names = rpcs.map((r) => r.name);
    expect(new Set(names).size, "an overloaded RPC: list each signature").toBe(names.length);
    expect([...names].sort()).toEqual(Object.keys(RPCS).sort());
  });

  it("uses globex nowhere: every call is about acme", () => {
    expect(JSON.stringify(Object.values(RPCS).map((e) => ("args" in e ? e.args({ invitation: "", apiKey: "", message: "", version: "" }) : e)))).not.toContain(GLOBEX);
  });

  describe.each(Object.entries(RPCS).filter(([, e]) => "args" in e) as [string, OrgCall][])("%s", (fn, e) => {
    it(e.aal1 === "stranger" ? "at aal1 answers what a stranger gets" : `is refused at aal1 (${e.aal1})`, () => {
      const r = results.get(fn)!;
      if (e.aal1 === "stranger") {
        expect(shown(r.aal1)).toBe(shown(r.stranger));
      } else {
        expect(r.aal1.ok ? "succeeded" : r.aal1.code, shown(r.aal1)).toBe(e.aal1);
      }
    });

    it(`acme's viewer ${e.viewer === "ok" ? "may call it (allowed case)" : `is refused (${e.viewer})`}`, () => {
      const r = results.get(fn)!;
      expect(r.viewer.ok ? "ok" : r.viewer.code, shown(r.viewer)).toBe(e.viewer);
    });

    it("globex's owner gets what a stranger gets (a refusal is PT404), and a globex key with every scope is refused or gets the same", () => {
      const r = results.get(fn)!;
      expect(shown(r.otherOwner)).toBe(shown(r.stranger));
      // A refused call does not even confirm that acme's object exists.
      if (e.aal1 !== "stranger") expect(r.otherOwner.ok ? "ok" : r.otherOwner.code, shown(r.otherOwner)).toBe(REFUSED_AS_FORBIDDEN[fn] ? "42501" : "PT404");
      if (r.otherKey.ok) expect(shown(r.otherKey)).toBe(shown(r.stranger));
      else expect(["42501", "PT404"], shown(r.otherKey)).toContain(r.otherKey.code);
    });

    it("an acme key does no more, under each scope set, than a member whose role holds exactly those permissions", () => {
      for (const [label, m] of keyScopes) {
        const { key, member } = m.get(fn)!;
        if (!key.ok) continue;
        expect(member.ok, `${label}: the key succeeds, the member gets ${shown(member)}`).toBe(true);
        if (e.aal1 === "stranger") expect([shown(member), shown(results.get(fn)!.stranger)], label).toContain(shown(key));
      }
    });

    it("at aal2 passes the permission check (allowed case)", () => {
      const r = results.get(fn)!;
      const want = e.aal2 ?? "ok";
      expect(r.aal2.ok ? "ok" : r.aal2.code, shown(r.aal2)).toBe(want);
      if (e.aal1 === "stranger") expect(shown(r.aal2)).not.toBe(shown(r.stranger));
    });
  });
});

describe("caller-only RPCs in an org that requires MFA", () => {
  it("unread_count at aal1 leaves out the org's notifications; at aal2 it counts them", () => {
    const count = (o: Outcome) => (o.ok ? Number((o.values[0] as unknown[])[0]) : NaN);
    expect(unread.inAcme).toBeGreaterThan(0);
    expect(count(unread.aal2) - count(unread.aal1)).toBe(unread.inAcme);
  });
});

describe("an org API key on the org RPCs (every scope, and each scope alone)", () => {
  const succeeded = (label: string) => [...keyScopes.get(label)!].filter(([, o]) => o.key.ok).map(([fn]) => fn);

  it("with every scope, a key does the org's work (allowed case)", () => {
    expect(succeeded("every scope")).toEqual(
      expect.arrayContaining(["billing.summary", "content.update_document", "content.delete_document", "content.fork_document", "ai.cancel_job", "video.cancel_job"]),
    );
  });

  it("with one scope, a key does no more than with every scope, and a write needs its scope", () => {
    const all = new Set(succeeded("every scope"));
    for (const label of keyScopes.keys()) expect(succeeded(label).filter((fn) => !all.has(fn)), label).toEqual([]);
    expect(succeeded("only content.read")).not.toContain("content.update_document");
    expect(succeeded("only content.write")).not.toContain("billing.summary");
    expect(succeeded("only billing.manage")).toContain("billing.summary");
  });

  it("a key is refused every public RPC: they act for a person (docs/tenancy.md)", () => {
    for (const label of keyScopes.keys()) expect(succeeded(label).filter((fn) => fn.startsWith("public.")), label).toEqual([]);
  });
});
