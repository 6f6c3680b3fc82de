// Shares: every grantee kind (user, org role, link) at every level (view, comment, edit), allowed
// and denied, as RLS and the RPCs see them; links with expiry, password (and its lockout),
// revocation, redeeming, template links; and the revoke broadcast that kicks an open client.
import { beforeAll, describe, expect, it } from "vitest";
import { admin, as, createTeam, createUser, expectSqlError, type Team, type TestUser } from "../helpers/db.ts";
import { expectError } from "../helpers/http.ts";
import { api, contentRpc, createDoc, LiveEditor, note } from "../helpers/content.ts";

let team: Team;
let outsider: Team;
beforeAll(async () => {
  [team, outsider] = await Promise.all([createTeam("Sharing"), createTeam("Outside")]);
});

type Level = "view" | "comment" | "edit";

/** What the caller can actually do: read the row, comment, push a live update. */
async function abilities(who: TestUser, documentId: string) {
  const read = (await as(who, (c) => c.query("select id from content.documents where id = $1", [documentId]))).rowCount === 1;
  const comment = await contentRpc(who, "add_comment", { p_document_id: documentId, p_body: JSON.stringify([{ type: "text", text: "hi" }]) })
    .then(() => true, (e) => (expect(["42501", "PT404"]).toContain(e.code), false));
  const edit = await contentRpc(who, "push_updates", { p_document_id: documentId, p_updates: [Buffer.from([0, 0]).toString("base64")] })
    .then(() => true, (e) => (expect(["42501", "PT404"]).toContain(e.code), false));
  return { read, comment, edit };
}

const expected = (level: Level | null) => ({ read: level !== null, comment: level === "comment" || level === "edit", edit: level === "edit" });

async function privateDoc() {
  return await createDoc(team.owner, team.orgId, { visibility: "private", body: note("secret plans") });
}

describe("membership and visibility", () => {
  it("a private document: only its owner and org admins; org visibility: members by role", async () => {
    const doc = await privateDoc();
    expect(await abilities(team.owner, doc.id)).toEqual(expected("edit"));
    expect(await abilities(team.admin, doc.id)).toEqual(expected("edit"));
    expect(await abilities(team.member, doc.id)).toEqual(expected(null));
    expect(await abilities(team.viewer, doc.id)).toEqual(expected(null));
    expect(await abilities(outsider.owner, doc.id)).toEqual(expected(null));
    const open = await createDoc(team.member, team.orgId, { body: note("for all") });
    expect(await abilities(team.viewer, open.id)).toEqual(expected("comment"));
    expect(await abilities(team.member, open.id)).toEqual(expected("edit"));
    expect(await abilities(outsider.member, open.id)).toEqual(expected(null));
  });
});

describe("user shares", () => {
  it.each(["view", "comment", "edit"] as const)("grants exactly %s to a person in another org, until revoked", async (level) => {
    const doc = await privateDoc();
    const guest = outsider.member;
    expect(await abilities(guest, doc.id)).toEqual(expected(null));
    const [share] = await contentRpc<{ share_with_user: { id: string } }>(team.owner, "share_with_user", {
      p_document_id: doc.id, p_level: level, p_email: guest.email,
    });
    expect(await abilities(guest, doc.id)).toEqual(expected(level));
    await contentRpc(team.owner, "revoke_share", { p_share_id: share.share_with_user.id });
    expect(await abilities(guest, doc.id)).toEqual(expected(null));
  });

  it("an expired grant grants nothing", async () => {
    const doc = await privateDoc();
    const [share] = await contentRpc<{ share_with_user: { id: string } }>(team.owner, "share_with_user", {
      p_document_id: doc.id, p_level: "edit", p_user_id: outsider.member.id, p_expires_at: new Date(Date.now() + 60_000).toISOString(),
    });
    expect((await abilities(outsider.member, doc.id)).edit).toBe(true);
    await admin.query("update content.shares set expires_at = now() - interval '1 second' where id = $1", [share.share_with_user.id]);
    expect(await abilities(outsider.member, doc.id)).toEqual(expected(null));
  });

  it("only managers share: a member without access, an edit-share holder and a viewer are refused; bad input is 22023/PT404", async () => {
    const doc = await privateDoc();
    await expectSqlError(contentRpc(team.member, "share_with_user", { p_document_id: doc.id, p_level: "view", p_email: outsider.owner.email }), "PT404");
    await contentRpc(team.owner, "share_with_user", { p_document_id: doc.id, p_level: "edit", p_user_id: outsider.owner.id });
    await expectSqlError(contentRpc(outsider.owner, "share_with_user", { p_document_id: doc.id, p_level: "view", p_user_id: outsider.member.id }), "42501");
    const open = await createDoc(team.member, team.orgId);
    await expectSqlError(contentRpc(team.viewer, "share_with_user", { p_document_id: open.id, p_level: "view", p_user_id: outsider.owner.id }), "42501");
    await expectSqlError(contentRpc(team.owner, "share_with_user", { p_document_id: doc.id, p_level: "owner", p_user_id: outsider.owner.id }), "22023");
    await expectSqlError(contentRpc(team.owner, "share_with_user", { p_document_id: doc.id, p_level: "view", p_email: "nobody@nowhere.test" }), "PT404");
    await expectSqlError(contentRpc(team.owner, "share_with_user", { p_document_id: doc.id, p_level: "view", p_user_id: team.owner.id }), "22023");
    await expectSqlError(contentRpc(team.owner, "share_with_user", { p_document_id: doc.id, p_level: "view" }), "22023");
    const { rows } = await admin.query("select count(*)::int as n from content.shares where document_id = $1", [doc.id]);
    expect(rows[0].n).toBe(1);
  });

  it("role shares, links and revocation are for managers too: an edit-share holder and a viewer are refused, and nothing changes", async () => {
    const doc = await privateDoc();
    const [granted] = await contentRpc<{ share_with_user: { id: string } }>(team.owner, "share_with_user", { p_document_id: doc.id, p_level: "edit", p_user_id: outsider.owner.id });
    for (const who of [outsider.owner, team.viewer]) {
      const refused = who === team.viewer ? ["42501", "PT404"] : ["42501"];
      for (const attempt of [
        () => contentRpc(who, "share_with_role", { p_document_id: doc.id, p_role: "member", p_level: "view" }),
        () => contentRpc(who, "create_link", { p_document_id: doc.id }),
        () => contentRpc(who, "revoke_share", { p_share_id: granted.share_with_user.id }),
      ]) {
        const err = await attempt().then(() => undefined, (e: { code?: string }) => e);
        expect(err?.code, "expected a refusal").toBeDefined();
        expect(refused).toContain(err!.code);
      }
    }
    const { rows } = await admin.query("select count(*)::int as n, count(*) filter (where revoked_at is null)::int as live from content.shares where document_id = $1", [doc.id]);
    expect(rows[0]).toEqual({ n: 1, live: 1 });
  });

  it("grantees see their own share row; managers see all of a document's; others none", async () => {
    const doc = await privateDoc();
    await contentRpc(team.owner, "share_with_user", { p_document_id: doc.id, p_level: "view", p_user_id: outsider.owner.id });
    await contentRpc(team.owner, "share_with_user", { p_document_id: doc.id, p_level: "view", p_user_id: outsider.member.id });
    const count = (who: TestUser) => as(who, async (c) => (await c.query("select count(*)::int as n from content.shares where document_id = $1", [doc.id])).rows[0].n);
    expect(await count(team.owner)).toBe(2);
    expect(await count(outsider.owner)).toBe(1);
    expect(await count(team.member)).toBe(0);
    // The link secrets are never readable.
    await expectSqlError(as(team.owner, (c) => c.query("select token_hash from content.shares")), "42501");
    // No direct writes.
    await expectSqlError(as(team.owner, (c) => c.query("delete from content.shares where document_id = $1", [doc.id])), "42501");
  });
});

describe("role shares", () => {
  it.each(["view", "comment", "edit"] as const)("grants %s to everyone holding the role in the document's org", async (level) => {
    const doc = await privateDoc();
    const extraViewer = await createUser();
    await admin.query("insert into public.org_members (org_id, user_id, role) values ($1, $2, 'viewer')", [team.orgId, extraViewer.id]);
    await contentRpc(team.owner, "share_with_role", { p_document_id: doc.id, p_role: "viewer", p_level: level });
    expect(await abilities(team.viewer, doc.id)).toEqual(expected(level));
    expect(await abilities(extraViewer, doc.id)).toEqual(expected(level));
    expect(await abilities(team.member, doc.id)).toEqual(expected(null));
    // Holding the same role key in another org grants nothing here.
    expect(await abilities(outsider.viewer, doc.id)).toEqual(expected(null));
  });

  it("refuses an unknown role", async () => {
    const doc = await privateDoc();
    await expectSqlError(contentRpc(team.owner, "share_with_role", { p_document_id: doc.id, p_role: "wizard", p_level: "view" }), "22023");
  });
});

describe("links", () => {
  async function linkedDoc(level: Level, opts: { password?: string; template?: boolean; allowDownload?: boolean; expiresAt?: string } = {}) {
    const doc = await createDoc(team.owner, team.orgId, { visibility: "link", body: note("linked words") });
    const [row] = await contentRpc<{ create_link: { id: string; token: string } }>(team.owner, "create_link", {
      p_document_id: doc.id, p_level: level, p_password: opts.password ?? null, p_template: opts.template ?? false,
      p_allow_download: opts.allowDownload ?? true, p_expires_at: opts.expiresAt ?? new Date(Date.now() + 3600_000).toISOString(),
    });
    return { doc, share: row.create_link };
  }

  it("anon reads a linked document through the api only; the token is stored hashed", async () => {
    const { doc, share } = await linkedDoc("view");
    const opened = await api(null, "/links/open", { json: { token: share.token } });
    expect(opened.status, opened.raw).toBe(200);
    expect(opened.body).toMatchObject({ share: { level: "view", template: false }, document: { id: doc.id, body: note("linked words") } });
    // Anon cannot read the table (the document is not public) nor reach the private function.
    expect((await as("anon", (c) => c.query("select id from content.documents where id = $1", [doc.id]))).rowCount).toBe(0);
    await expectSqlError(as("anon", (c) => c.query("select private.content_open_link($1, null)", [share.token])), "42501");
    const { rows } = await admin.query("select token_hash from content.shares where id = $1", [share.id]);
    expect(Buffer.from(rows[0].token_hash).toString("utf8")).not.toContain(share.token);
  });

  it("an expired link, a revoked link and a link whose document went back to org visibility are refused", async () => {
    const expired = await linkedDoc("view");
    await admin.query("update content.shares set expires_at = now() - interval '1 second' where id = $1", [expired.share.id]);
    expectError(await api(null, "/links/open", { json: { token: expired.share.token } }), 410, "link_expired");

    const revoked = await linkedDoc("view");
    await contentRpc(team.owner, "revoke_share", { p_share_id: revoked.share.id });
    expectError(await api(null, "/links/open", { json: { token: revoked.share.token } }), 410, "link_revoked");

    const narrowed = await linkedDoc("view");
    await contentRpc(team.owner, "update_document", { p_document_id: narrowed.doc.id, p_visibility: "org" });
    expectError(await api(null, "/links/open", { json: { token: narrowed.share.token } }), 410, "link_revoked");

    expectError(await api(null, "/links/open", { json: { token: "x".repeat(43) } }), 404, "not_found");
    expectError(await api(null, "/links/open", { json: { token: "short" } }), 400, "invalid_request");
  });

  it("a password protects a link; five wrong ones lock it for 15 minutes, even for the right one", async () => {
    const { share } = await linkedDoc("view", { password: "open sesame" });
    expectError(await api(null, "/links/open", { json: { token: share.token } }), 401, "password_required");
    expectError(await api(null, "/links/open", { json: { token: share.token, password: "guess" } }), 403, "wrong_password");
    expect((await api(null, "/links/open", { json: { token: share.token, password: "open sesame" } })).status).toBe(200);
    for (let i = 0; i < 5; i++) expectError(await api(null, "/links/open", { json: { token: share.token, password: `guess ${i}` } }), 403, "wrong_password");
    const locked = await api(null, "/links/open", { json: { token: share.token, password: "open sesame" } });
    expectError(locked, 429, "link_locked");
    expect(locked.headers.get("retry-after")).toBe("900");
    const { rows } = await admin.query("select password_hash from content.shares where id = $1", [share.id]);
    expect(rows[0].password_hash).toMatch(/^\$2[ab]\$/);
  });

  it.each(["view", "comment", "edit"] as const)("a signed-in user who redeems a %s link gets exactly that, while the link lives", async (level) => {
    const { doc, share } = await linkedDoc(level, { password: "pw-123456" });
    const guest = await createUser();
    expect(await abilities(guest, doc.id)).toEqual(expected(null));
    expectError(await api(guest, "/links/redeem", { json: { token: share.token, password: "nope" } }), 403, "wrong_password");
    expect(await abilities(guest, doc.id)).toEqual(expected(null));
    const redeemed = await api(guest, "/links/redeem", { json: { token: share.token, password: "pw-123456" } });
    expect(redeemed.status, redeemed.raw).toBe(200);
    expect(redeemed.body).toEqual({ document_id: doc.id, level, template: false });
    expect(await abilities(guest, doc.id)).toEqual(expected(level));
    // Revoking the link takes the redeemed grant with it.
    await contentRpc(team.owner, "revoke_share", { p_share_id: share.id });
    expect(await abilities(guest, doc.id)).toEqual(expected(null));
  });

  it("a template link copies the document into the visitor's org but never lets them edit it", async () => {
    const { doc, share } = await linkedDoc("view", { template: true });
    const visitor = outsider.member;
    const copy = await api(visitor, "/links/copy", { json: { token: share.token, org_id: outsider.orgId, title: "My copy" } });
    expect(copy.status, copy.raw).toBe(201);
    expect(copy.body).toMatchObject({ org_id: outsider.orgId, title: "My copy", forked_from: doc.id, origin: "template", body: note("linked words") });
    expect(await abilities(visitor, doc.id)).toEqual(expected(null));
    await api(visitor, "/links/redeem", { json: { token: share.token } });
    expect(await abilities(visitor, doc.id)).toEqual(expected("view"));
    // A template link cannot be made at edit level; a viewer of the target org cannot copy into it.
    await expectSqlError(contentRpc(team.owner, "create_link", { p_document_id: doc.id, p_level: "edit", p_template: true }), "22023");
    expectError(await api(outsider.viewer, "/links/copy", { json: { token: share.token, org_id: outsider.orgId } }), 403, "forbidden");
  });

  it("a link without downloads neither copies nor signs attachment URLs", async () => {
    const { share } = await linkedDoc("view", { allowDownload: false });
    expectError(await api(outsider.member, "/links/copy", { json: { token: share.token, org_id: outsider.orgId } }), 403, "copy_not_allowed");
  });

  it("links need link or public visibility, an expiry within a year, and a sane password; only managers make them", async () => {
    const doc = await createDoc(team.owner, team.orgId, { body: note("org only") });
    await expectSqlError(contentRpc(team.owner, "create_link", { p_document_id: doc.id }), "22023", /visibility is link or public/);
    await contentRpc(team.owner, "update_document", { p_document_id: doc.id, p_visibility: "link" });
    await expectSqlError(contentRpc(team.owner, "create_link", { p_document_id: doc.id, p_expires_at: new Date(Date.now() + 400 * 86400_000).toISOString() }), "22023");
    await expectSqlError(contentRpc(team.owner, "create_link", { p_document_id: doc.id, p_password: "123" }), "22023");
    await expectSqlError(contentRpc(team.viewer, "create_link", { p_document_id: doc.id }), "42501");
    await expectSqlError(contentRpc(outsider.owner, "create_link", { p_document_id: doc.id }), "PT404");
  });
});

describe("revoking kicks open clients", () => {
  it("a revoke broadcast reaches the client, which then finds it has no access and leaves", async () => {
    const doc = await privateDoc();
    const [share] = await contentRpc<{ share_with_user: { id: string } }>(team.owner, "share_with_user", {
      p_document_id: doc.id, p_level: "edit", p_user_id: outsider.member.id,
    });
    const guest = new LiveEditor(outsider.member, doc.id);
    await guest.join();
    await contentRpc(team.owner, "revoke_share", { p_share_id: share.share_with_user.id });
    const revoke = await guest.revokes.waitFor(() => true, 10_000, "a revoke broadcast");
    expect(revoke).toMatchObject({ share_id: share.share_with_user.id, grantee_kind: "user", user_ids: [outsider.member.id] });
    const [access] = await contentRpc<{ my_access: { level: string } }>(outsider.member, "my_access", { p_document_id: doc.id });
    expect(access.my_access.level).toBe("none");
    // And the database refuses its writes at once, whatever the channel still allows.
    await expectSqlError(contentRpc(outsider.member, "push_updates", { p_document_id: doc.id, p_updates: ["AAA="] }), "PT404");
    await guest.leave();
  });
});
