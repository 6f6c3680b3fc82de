// Every content table and RPC per role: what anon, org API keys, each built-in role, an aal1
// session in an MFA org and a stranger may read and write. Writes go through RPCs (and the
// api), so no client role writes a table directly except appending to the live log.
import { beforeAll, describe, expect, it } from "vitest";
import { admin, as, type Caller, createTeam, createUser, expectSqlError, type Team } from "../helpers/db.ts";
import { contentRpc, createDoc, note } from "../helpers/content.ts";

const TABLES = ["documents", "shares", "live_states", "doc_updates", "versions", "comment_threads", "comments", "assets", "kinds"];

let team: Team;
let docId: string;
let keyClaims: Caller;
beforeAll(async () => {
  team = await createTeam("Access");
  docId = (await createDoc(team.member, team.orgId, { body: note("x") })).id;
  await admin.query("update content.documents set status = 'published', visibility = 'public' where id = $1", [docId]);
  const { rows } = await admin.query(
    `insert into public.api_keys (org_id, name, prefix, secret_hash, scopes) values ($1, 'k', $2, sha256('s'), '{content.read}') returning id`,
    [team.orgId, `k${Date.now().toString(36)}`.slice(0, 12)],
  );
  keyClaims = { claims: { role: "authenticated", aud: "authenticated", api_key_id: rows[0].id, org_id: team.orgId } };
});

async function canSelect(who: Caller, table: string): Promise<boolean | "denied"> {
  return await as(who, async (c) => {
    try {
      await c.query(`select 1 from content.${table} limit 1`);
      return true;
    } catch (err) {
      expect((err as { code?: string }).code).toBe("42501");
      return "denied";
    }
  });
}

describe("table privileges", () => {
  it("clients select through RLS but never update or delete any content table", async () => {
    for (const table of TABLES) {
      await expectSqlError(as(team.owner, (c) => c.query(`delete from content.${table}`)), "42501");
      const col = table === "kinds" ? "description" : "org_id";
      await expectSqlError(as(team.owner, (c) => c.query(`update content.${table} set ${col} = ${col}`)), "42501");
    }
    expect(await canSelect(team.owner, "live_states")).toBe("denied");
    for (const table of TABLES.filter((t) => t !== "live_states")) expect(await canSelect(team.viewer, table)).toBe(true);
    for (const table of TABLES.filter((t) => t !== "documents")) expect(await canSelect("anon", table)).toBe("denied");
  });

  it("inserts are refused everywhere except the live log, and there only for editors", async () => {
    await expectSqlError(as(team.owner, (c) => c.query("insert into content.documents (org_id, kind) values ($1, 'note')", [team.orgId])), "42501");
    await expectSqlError(as(team.owner, (c) => c.query("insert into content.kinds (kind, module, description) values ('deck', 'deck', 'x')")), "42501");
    await expectSqlError(as(team.viewer, (c) => c.query("insert into content.doc_updates (document_id, updates) values ($1, $2)", [docId, [Buffer.from([0, 0])]])), "42501");
    expect((await as(team.member, (c) => c.query("insert into content.doc_updates (document_id, updates) values ($1, $2)", [docId, [Buffer.from([0, 0])]]))).rowCount).toBe(1);
  });
});

describe("who reads a document", () => {
  const reads = (who: Caller, id: string) => as(who, async (c) => (await c.query("select id from content.documents where id = $1", [id])).rowCount === 1);

  it("anon reads published public documents only", async () => {
    expect(await reads("anon", docId)).toBe(true);
    const draft = await createDoc(team.member, team.orgId, { visibility: "public", body: note("not yet") });
    expect(await reads("anon", draft.id)).toBe(false);
    const org = await createDoc(team.member, team.orgId, { body: note("members") });
    expect(await reads("anon", org.id)).toBe(false);
    // A signed-in stranger sees the published public one as well, and may view, not comment.
    const stranger = await createUser();
    expect(await reads(stranger, docId)).toBe(true);
    await expectSqlError(contentRpc(stranger, "add_comment", { p_document_id: docId, p_body: JSON.stringify([{ type: "text", text: "x" }]) }), "42501");
  });

  it("an org API key with content.read reads the org's non-private documents, and cannot edit", async () => {
    const open = await createDoc(team.member, team.orgId, { body: note("x") });
    const secret = await createDoc(team.owner, team.orgId, { visibility: "private", body: note("x") });
    expect(await reads(keyClaims, open.id)).toBe(true);
    expect(await reads(keyClaims, secret.id)).toBe(false);
    await expectSqlError(contentRpc(keyClaims, "push_updates", { p_document_id: open.id, p_updates: ["AAA="] }), "42501");
    // Comments are a person's: an API key is refused.
    await expectSqlError(contentRpc(keyClaims, "add_comment", { p_document_id: open.id, p_body: JSON.stringify([{ type: "text", text: "x" }]) }), "42501");
  });

  it("an org that requires MFA shows nothing to an aal1 session, everything to aal2", async () => {
    const mfa = await createTeam("Mfa");
    const doc = await createDoc(mfa.member, mfa.orgId, { body: note("x") });
    await admin.query("update public.orgs set require_mfa = true where id = $1", [mfa.orgId]);
    expect(await reads(mfa.member, doc.id)).toBe(false);
    expect(await as(mfa.member, async (c) => (await c.query("select id from content.documents where id = $1", [doc.id])).rowCount, { aal: "aal2" })).toBe(1);
    await expectSqlError(contentRpc(mfa.member, "push_updates", { p_document_id: doc.id, p_updates: ["AAA="] }), "PT404");
  });
});

describe("RPCs per role", () => {
  it("viewers comment but do not edit, manage sharing, delete or change visibility; members edit; owners manage", async () => {
    const doc = await createDoc(team.member, team.orgId, { body: note("x") });
    await expectSqlError(contentRpc(team.viewer, "update_document", { p_document_id: doc.id, p_title: "t" }), "42501");
    await expectSqlError(contentRpc(team.viewer, "delete_document", { p_document_id: doc.id }), "42501");
    await expectSqlError(contentRpc(team.viewer, "share_with_role", { p_document_id: doc.id, p_role: "member", p_level: "view" }), "42501");
    const [updated] = await contentRpc<{ title: string }>(team.member, "update_document", { p_document_id: doc.id, p_title: "Renamed", p_tags: ["a"] });
    expect(updated.title).toBe("Renamed");
    await expectSqlError(contentRpc(team.member, "update_document", { p_document_id: doc.id, p_tags: [" padded "] }), "22023");
    await expectSqlError(contentRpc(team.member, "update_document", { p_document_id: doc.id, p_visibility: "everyone" }), "22023");
    const [access] = await contentRpc<{ my_access: Record<string, unknown> }>(team.viewer, "my_access", { p_document_id: doc.id });
    expect(access.my_access).toEqual({ document_id: doc.id, level: "comment", can_manage: false, can_copy: true });
    // A share holder with edit rights edits but does not delete someone else's document.
    const guest = await createUser();
    await contentRpc(team.owner, "share_with_user", { p_document_id: doc.id, p_level: "edit", p_user_id: guest.id });
    await contentRpc(guest, "update_document", { p_document_id: doc.id, p_title: "By a guest" });
    await expectSqlError(contentRpc(guest, "update_document", { p_document_id: doc.id, p_visibility: "private" }), "42501");
    await expectSqlError(contentRpc(guest, "delete_document", { p_document_id: doc.id }), "42501");
    await contentRpc(team.member, "delete_document", { p_document_id: doc.id });
    expect((await admin.query("select count(*)::int as n from content.documents where id = $1", [doc.id])).rows[0].n).toBe(0);
    await expectSqlError(contentRpc(team.member, "delete_document", { p_document_id: doc.id }), "PT404");
    const { rows } = await admin.query("select type from notify.events where subject_id = $1 order by seq", [doc.id]);
    expect(rows.map((r) => r.type)).toEqual(["content.document_created", "content.document_deleted"]);
  });
});
