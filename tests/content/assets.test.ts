// Assets through the official client: the api reserves an upload (edit access, plan storage) and
// signs a URL for exactly that path; supabase-js uploads to it; the stack's worker verifies the
// real bytes (file-type) and rejects a file that lies about its type. Storage RLS follows
// document access (membership, shares, fork references); nobody writes directly.
import { beforeAll, describe, expect, it } from "vitest";
import { removeOrphans } from "../../functions/_shared/content/assets.ts";
import { createDb } from "../../functions/_shared/db/client.ts";
import { admin, createTeam, stack, type Team, type TestUser } from "../helpers/db.ts";
import { expectError } from "../helpers/http.ts";
import { objectRow, sha256 } from "../helpers/storage.ts";
import { userClient } from "../helpers/supabase.ts";
import { png as videoPng } from "../helpers/video.ts";
import { api, contentRpc, createDoc, eventually, note } from "../helpers/content.ts";

const BUCKET = "content-assets";

let team: Team;
let other: Team;
let free: Team;
beforeAll(async () => {
  [team, other, free] = await Promise.all([createTeam("Assets"), createTeam("Elsewhere"), createTeam("Free", { plan: null })]);
});

/** A real PNG of w×h pixels (the video tests' helper). */
const png = (w: number, h: number) => Buffer.from(videoPng(w, h));

async function upload(user: TestUser, documentId: string, bytes: Buffer, declared: string, filename = "file") {
  const res = await api(user, `/documents/${documentId}/assets`, { json: { filename, mime_type: declared, size: bytes.length } });
  expect(res.status, res.raw).toBe(201);
  const sb = await userClient(user);
  const { error } = await sb.storage.from(BUCKET).uploadToSignedUrl(res.body.upload.path, res.body.upload.token, new Blob([new Uint8Array(bytes)], { type: declared }));
  expect(error).toBeNull();
  return res.body as { asset: { id: string; object_path: string }; upload: { path: string; signed_url: string } };
}

async function assetRow(id: string) {
  const { rows } = await admin.query("select * from content.assets where id = $1", [id]);
  return rows[0];
}

const settled = (id: string) => eventually(async () => {
  const row = await assetRow(id);
  return ["verified", "rejected"].includes(row?.status) ? row : null;
}, 20_000);

describe("uploading", () => {
  it("a real PNG is verified from its bytes: type, size, checksum, dimensions; readers download it with supabase-js", async () => {
    const doc = await createDoc(team.member, team.orgId, { body: note("with a picture") });
    const bytes = png(3, 2);
    const { asset, upload: up } = await upload(team.member, doc.id, bytes, "image/png", "dot.png");
    expect(up.path).toBe(`${team.orgId}/${doc.id}/${asset.id}.png`);
    expect(up.signed_url).toContain("/storage/v1/object/upload/sign/content-assets/");
    const row = await settled(asset.id);
    expect({ ...row, size_bytes: Number(row.size_bytes) }).toMatchObject({
      status: "verified", mime_type: "image/png", size_bytes: bytes.length, width: 3, height: 2, sha256: await sha256(bytes), reject_reason: null,
    });
    const viewer = await userClient(team.viewer);
    const { data, error } = await viewer.storage.from(BUCKET).download(asset.object_path);
    expect(error).toBeNull();
    expect(Buffer.from(await data!.arrayBuffer()).equals(bytes)).toBe(true);
    const signed = await viewer.storage.from(BUCKET).createSignedUrl(asset.object_path, 60);
    expect(signed.error).toBeNull();
    // The verification event went through the outbox.
    const { rows } = await admin.query("select type from notify.events where subject_id = $1 order by seq", [asset.id]);
    expect(rows.map((r) => r.type)).toEqual(["content.asset_verified"]);
  });

  it("a file that lies about its type is rejected and its bytes removed; the uploader is told why", async () => {
    const doc = await createDoc(team.member, team.orgId, { title: "Launch", body: note("x") });
    const html = Buffer.from("<html><script>alert(1)</script></html>");
    const { asset } = await upload(team.member, doc.id, html, "image/png", "cat.png");
    const row = await settled(asset.id);
    expect(row).toMatchObject({ status: "rejected", reject_reason: expect.stringContaining("not a recognizable") });
    // The verdict commits first; the bytes go right after it (no lock is held across Storage).
    expect(await eventually(async () => (await objectRow(BUCKET, asset.object_path)) === undefined)).toBe(true);
    // A real JPEG header declared as PNG is a lie too.
    const jpeg = Buffer.from([0xff, 0xd8, 0xff, 0xe0, 0, 16, 0x4a, 0x46, 0x49, 0x46, 0, 1, 1, 0, 0, 1, 0, 1, 0, 0, 0xff, 0xd9]);
    const second = await upload(team.member, doc.id, jpeg, "image/png", "photo.png");
    expect(await settled(second.asset.id)).toMatchObject({ status: "rejected", mime_type: "image/jpeg", reject_reason: expect.stringContaining("image/jpeg, not the image/png") });
    const notes = await eventually(async () => {
      const { rows } = await admin.query("select body from notify.notifications where user_id = $1 and type = 'content.asset_rejected'", [team.member.id]);
      return rows.length === 2 ? rows : null;
    });
    expect(notes!.map((n) => n.body).join()).toContain("Launch");
  });

  it("SVG is refused: declared up front, and hidden under another type", async () => {
    const doc = await createDoc(team.member, team.orgId, { body: note("x") });
    expectError(await api(team.member, `/documents/${doc.id}/assets`, { json: { filename: "logo.svg", mime_type: "image/svg+xml", size: 100 } }), 400, "invalid_request");
    expectError(await api(team.member, `/documents/${doc.id}/assets`, { json: { filename: "logo.svg", mime_type: "image/png", size: 100 } }), 400, "invalid_request");
    const svg = Buffer.from('<?xml version="1.0"?><svg xmlns="http://www.w3.org/2000/svg"><script>alert(1)</script></svg>');
    const { asset } = await upload(team.member, doc.id, svg, "image/webp", "logo.webp");
    expect(await settled(asset.id)).toMatchObject({ status: "rejected", reject_reason: expect.stringContaining("SVG") });
  });

  it("needs edit access and a supported type; over the plan's storage is 402; nothing is reserved when refused", async () => {
    const doc = await createDoc(team.member, team.orgId, { body: note("x") });
    const ask = (user: TestUser, d: string, body: Record<string, unknown>) => api(user, `/documents/${d}/assets`, { json: { filename: "a.png", mime_type: "image/png", size: 10, ...body } });
    expectError(await ask(team.viewer, doc.id, {}), 403, "forbidden");
    expectError(await ask(other.owner, doc.id, {}), 404, "not_found");
    expectError(await ask(team.member, doc.id, { mime_type: "application/x-msdownload", filename: "a.exe" }), 400, "invalid_request");
    expectError(await ask(team.member, doc.id, { size: 0 }), 400, "invalid_request");
    expectError(await ask(team.member, doc.id, { size: 200 * 1024 * 1024 }), 400, "invalid_request");

    const freeDoc = await createDoc(free.owner, free.orgId, { body: note("x") });
    // The free plan has 1 GB; the org's folder in org-files already holds nearly all of it.
    await admin.query(
      `insert into storage.objects (bucket_id, name, metadata) values ('org-files', $1, jsonb_build_object('size', 1073741800))`,
      [`${free.orgId}/big.bin`],
    );
    const over = await ask(free.owner, freeDoc.id, { size: 100 });
    expectError(over, 402, "payment_required");
    expect((await ask(free.owner, freeDoc.id, { size: 10 })).status).toBe(201);
    const { rows } = await admin.query("select count(*)::int as n from content.assets where document_id in ($1, $2)", [doc.id, freeDoc.id]);
    expect(rows[0].n).toBe(1);
  });
});

describe("Storage RLS", () => {
  it("another org cannot read, list, sign or write a document's files; nobody uploads without a signed URL", async () => {
    const doc = await createDoc(team.member, team.orgId, { body: note("x") });
    const { asset } = await upload(team.member, doc.id, png(1, 1), "image/png");
    await settled(asset.id);
    const outsider = await userClient(other.owner);
    expect((await outsider.storage.from(BUCKET).download(asset.object_path)).error).not.toBeNull();
    expect((await outsider.storage.from(BUCKET).list(`${team.orgId}/${doc.id}`)).data).toEqual([]);
    expect((await outsider.storage.from(BUCKET).createSignedUrl(asset.object_path, 60)).error).not.toBeNull();
    expect((await outsider.storage.from(BUCKET).upload(`${team.orgId}/${doc.id}/x.png`, png(1, 1), { contentType: "image/png" })).error).not.toBeNull();
    // Members of the org cannot write directly either (uploads are reserved first), nor delete.
    const member = await userClient(team.member);
    expect((await member.storage.from(BUCKET).upload(`${team.orgId}/${doc.id}/y.png`, png(1, 1), { contentType: "image/png" })).error).not.toBeNull();
    await member.storage.from(BUCKET).remove([asset.object_path]);
    expect(await objectRow(BUCKET, asset.object_path)).toBeDefined();
    // A signed upload URL is for its own path only.
    const res = await api(team.member, `/documents/${doc.id}/assets`, { json: { filename: "a.png", mime_type: "image/png", size: 10 } });
    const elsewhere = await member.storage.from(BUCKET).uploadToSignedUrl(`${team.orgId}/${doc.id}/other.png`, res.body.upload.token, png(1, 1));
    expect(elsewhere.error).not.toBeNull();
  });

  it("a private document's files are its readers' only; a share opens them; a fork references them without copying", async () => {
    const doc = await createDoc(team.owner, team.orgId, { visibility: "private", body: note("x") });
    const { asset } = await upload(team.owner, doc.id, png(2, 2), "image/png");
    await settled(asset.id);
    const member = await userClient(team.member);
    expect((await member.storage.from(BUCKET).download(asset.object_path)).error).not.toBeNull();
    await contentRpc(team.owner, "share_with_user", { p_document_id: doc.id, p_level: "view", p_user_id: other.member.id });
    const guest = await userClient(other.member);
    expect((await guest.storage.from(BUCKET).download(asset.object_path)).error).toBeNull();

    const [fork] = await contentRpc<{ id: string }>(other.member, "fork_document", { p_document_id: doc.id, p_target_org_id: other.orgId });
    const { rows: refs } = await admin.query("select id, object_path, source_asset_id, status from content.assets where document_id = $1", [fork.id]);
    expect(refs).toEqual([{ id: expect.any(String), object_path: asset.object_path, source_asset_id: asset.id, status: "verified" }]);
    // The fork (private, like its source, and its forker's) reads the shared bytes through its
    // own reference, even once the share is gone.
    await admin.query("update content.shares set revoked_at = now() where document_id = $1", [doc.id]);
    const colleague = guest;
    expect((await colleague.storage.from(BUCKET).download(asset.object_path)).error).toBeNull();
    // Editing the asset in the fork copies the bytes first (copy on write).
    const detached = await api(other.member, `/assets/${refs[0].id}/detach`, { method: "POST" });
    expect(detached.status, detached.raw).toBe(200);
    expect(detached.body.object_path).toBe(`${other.orgId}/${fork.id}/${refs[0].id}.png`);
    expect((await colleague.storage.from(BUCKET).download(detached.body.object_path)).error).toBeNull();
    expect((await colleague.storage.from(BUCKET).download(asset.object_path)).error).not.toBeNull();
    expectError(await api(other.viewer, `/assets/${refs[0].id}/detach`, { method: "POST" }), 404, "not_found");
    await contentRpc(other.member, "share_with_user", { p_document_id: fork.id, p_level: "view", p_user_id: other.viewer.id });
    expectError(await api(other.viewer, `/assets/${refs[0].id}/detach`, { method: "POST" }), 403, "forbidden");
  });
});

describe("links and retention", () => {
  it("a link visitor gets short signed URLs; downloads only when the link allows them", async () => {
    const doc = await createDoc(team.owner, team.orgId, { visibility: "link", body: note("x") });
    const { asset } = await upload(team.owner, doc.id, png(1, 1), "image/png");
    await settled(asset.id);
    const [{ create_link: link }] = await contentRpc<{ create_link: { token: string } }>(team.owner, "create_link", { p_document_id: doc.id, p_allow_download: false });
    const opened = await api(null, "/links/open", { json: { token: link.token } });
    expect(opened.body.assets).toEqual([expect.objectContaining({ id: asset.id, mime_type: "image/png", width: 1, height: 1 })]);
    const url = await api(null, "/links/asset-url", { json: { token: link.token, asset_id: asset.id } });
    expect(url.status, url.raw).toBe(200);
    const fetched = await fetch(url.body.signed_url);
    expect(fetched.status).toBe(200);
    expectError(await api(null, "/links/asset-url", { json: { token: link.token, asset_id: asset.id, download: true } }), 403, "download_not_allowed");
    expectError(await api(null, "/links/asset-url", { json: { token: link.token, asset_id: crypto.randomUUID() } }), 404, "not_found");
  });

  it("removes bytes nothing references, and only those", async () => {
    const doc = await createDoc(team.owner, team.orgId, { body: note("x") });
    const kept = await upload(team.owner, doc.id, png(1, 1), "image/png");
    const dropped = await upload(team.owner, doc.id, png(1, 2), "image/png");
    await settled(kept.asset.id);
    await settled(dropped.asset.id);
    await contentRpc(team.owner, "remove_asset", { p_asset_id: dropped.asset.id });
    await expectRemoveRefused(team.viewer, kept.asset.id);
    const { db, pool } = createDb(stack.dbUrl, 2);
    try {
      await removeOrphans({ db, storage: { url: stack.supabaseUrl, serviceRoleKey: stack.serviceRoleKey } }, { orphans: "0 seconds" });
    } finally {
      await pool.end();
    }
    expect(await objectRow(BUCKET, dropped.asset.object_path)).toBeUndefined();
    expect(await objectRow(BUCKET, kept.asset.object_path)).toBeDefined();
  });
});

async function expectRemoveRefused(user: TestUser, assetId: string) {
  await expect(contentRpc(user, "remove_asset", { p_asset_id: assetId })).rejects.toMatchObject({ code: "42501" });
}
