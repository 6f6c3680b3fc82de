// Storage objects through supabase-js, in the core's org-files bucket: members of an org read
// and write its folder (`<org_id>/...`), viewers only read, other orgs and anon nothing. Every
// denial is followed by a re-read proving that nothing changed.
import type { SupabaseClient } from "@supabase/supabase-js";
import { beforeAll, describe, expect, it } from "vitest";
import { createHash } from "node:crypto";
import { createTeam, stack, type Team } from "../helpers/db.ts";
import { client, userClient } from "../helpers/supabase.ts";
import { expectStorageError, objectFiles, objectRow } from "../helpers/storage.ts";

const BUCKET = "org-files";
let a: Team;
let b: Team;
let memberA: SupabaseClient;
let viewerA: SupabaseClient;
let memberB: SupabaseClient;
let anon: SupabaseClient;

const text = (s: string, type = "text/plain") => new Blob([s], { type });
const md5 = (s: string) => createHash("md5").update(s).digest("hex");

async function download(c: SupabaseClient, path: string) {
  const { data, error } = await c.storage.from(BUCKET).download(path);
  return { body: data ? await data.text() : undefined, error };
}

beforeAll(async () => {
  [a, b] = await Promise.all([createTeam("Storage A"), createTeam("Storage B")]);
  [memberA, viewerA, memberB] = await Promise.all([userClient(a.member), userClient(a.viewer), userClient(b.member)]);
  anon = client();
});

describe("upload", () => {
  it("a member uploads into their org's folder; the row records owner and the real metadata", async () => {
    const path = `${a.orgId}/upload/report.txt`;
    const { data, error } = await memberA.storage.from(BUCKET).upload(path, text("quarterly numbers"), {
      cacheControl: "120",
      metadata: { source: "test" },
    });
    expect(error).toBeNull();
    expect(data).toMatchObject({ path, fullPath: `${BUCKET}/${path}` });

    const row = await objectRow(BUCKET, path);
    expect(row).toBeDefined();
    expect(data!.id).toBe(row!.id);
    expect(row!.owner_id).toBe(a.member.id);
    expect(row!.owner).toBe(a.member.id);
    expect(row!.user_metadata).toEqual({ source: "test" });
    expect(row!.metadata).toMatchObject({
      eTag: `"${md5("quarterly numbers")}"`,
      size: 17,
      contentLength: 17,
      mimetype: "text/plain",
      cacheControl: "max-age=120",
      httpStatusCode: 200,
    });
    expect(new Date(row!.metadata.lastModified as string).getTime()).toBeGreaterThan(Date.now() - 60_000);
    expect(await objectFiles(BUCKET, path)).toEqual([row!.version]);
  });

  it("a raw body keeps its content type and cache-control header", async () => {
    const path = `${a.orgId}/upload/data.json`;
    const { error } = await memberA.storage.from(BUCKET).upload(path, Buffer.from('{"a":1}'), { contentType: "application/json" });
    expect(error).toBeNull();
    const row = await objectRow(BUCKET, path);
    expect(row!.metadata).toMatchObject({ mimetype: "application/json", cacheControl: "max-age=3600", size: 7 });
  });

  it("streams a large multipart upload through intact", async () => {
    const path = `${a.orgId}/upload/large.bin`;
    const bytes = (await import("node:crypto")).randomBytes(12 * 1024 * 1024);
    const { error } = await memberA.storage.from(BUCKET).upload(path, new Blob([bytes], { type: "application/octet-stream" }));
    expect(error).toBeNull();
    const { data } = await memberA.storage.from(BUCKET).download(path);
    const back = Buffer.from(await data!.arrayBuffer());
    expect(back.length).toBe(bytes.length);
    expect(createHash("sha256").update(back).digest("hex")).toBe(createHash("sha256").update(bytes).digest("hex"));
    expect((await objectRow(BUCKET, path))!.metadata).toMatchObject({ size: bytes.length, eTag: `"${createHash("md5").update(bytes).digest("hex")}"` });
  });

  it("a viewer, another org's member and anon are refused by RLS, and nothing is stored", async () => {
    const path = `${a.orgId}/upload/denied.txt`;
    for (const who of [viewerA, memberB, anon]) {
      const { data, error } = await who.storage.from(BUCKET).upload(path, text("nope"));
      expect(data).toBeNull();
      expectStorageError(error, { statusCode: "403", code: "AccessDenied", message: "new row violates row-level security policy" });
    }
    expect(await objectRow(BUCKET, path)).toBeUndefined();
    expect(await objectFiles(BUCKET, path)).toEqual([]);
  });

  it("an existing key is refused without upsert, replaced with it (the old bytes go)", async () => {
    const path = `${a.orgId}/upload/twice.txt`;
    expect((await memberA.storage.from(BUCKET).upload(path, text("first"))).error).toBeNull();
    const first = await objectRow(BUCKET, path);

    const again = await memberA.storage.from(BUCKET).upload(path, text("second"));
    expectStorageError(again.error, { statusCode: "409", code: "KeyAlreadyExists", message: "The resource already exists" });
    expect((await download(memberA, path)).body).toBe("first");

    expect((await memberA.storage.from(BUCKET).upload(path, text("third"), { upsert: true })).error).toBeNull();
    const replaced = await objectRow(BUCKET, path);
    expect(replaced!.id).toBe(first!.id);
    expect(replaced!.version).not.toBe(first!.version);
    expect((await download(memberA, path)).body).toBe("third");
    expect(await objectFiles(BUCKET, path)).toEqual([replaced!.version]);

    // update() is an upsert too; a viewer may not do it.
    expectStorageError((await viewerA.storage.from(BUCKET).update(path, text("viewer"))).error, { statusCode: "403" });
    expect((await memberA.storage.from(BUCKET).update(path, text("fourth"))).error).toBeNull();
    expect((await download(viewerA, path)).body).toBe("fourth");
  });
});

describe("reading", () => {
  const path = () => `${a.orgId}/read/notes.md`;
  beforeAll(async () => {
    const { error } = await memberA.storage.from(BUCKET).upload(path(), text("# notes", "text/markdown"), { metadata: { lang: "en" } });
    expect(error).toBeNull();
  });

  it("members and viewers of the org download it, with the stored headers", async () => {
    for (const who of [memberA, viewerA]) expect(await download(who, path())).toEqual({ body: "# notes", error: null });
    const token = await (async () => (await import("../helpers/supabase.ts")).tokenFor(a.viewer))();
    const res = await fetch(`${stack.supabaseUrl}/storage/v1/object/authenticated/${BUCKET}/${path()}`, {
      headers: { authorization: `Bearer ${token}`, apikey: stack.anonKey },
    });
    expect(res.status).toBe(200);
    expect(res.headers.get("content-type")).toBe("text/markdown");
    expect(res.headers.get("etag")).toBe(`"${md5("# notes")}"`);
    expect(res.headers.get("cache-control")).toBe("max-age=3600");
    expect(res.headers.get("content-length")).toBe("7");
    expect(await res.text()).toBe("# notes");
  });

  it("another org's member and the anon key get Object not found; no token at all gets Bucket not found", async () => {
    for (const who of [memberB, anon]) {
      const { body, error } = await download(who, path());
      expect(body).toBeUndefined();
      expectStorageError(error, { statusCode: "404", code: "NoSuchKey", message: "Object not found" });
    }
    const res = await fetch(`${stack.supabaseUrl}/storage/v1/object/${BUCKET}/${path()}`);
    expect(res.status).toBe(400);
    expect(await res.json()).toEqual({ statusCode: "404", code: "NoSuchBucket", error: "Bucket not found", message: "Bucket not found" });
  });

  it("info and exists follow the same rules", async () => {
    const { data, error } = await viewerA.storage.from(BUCKET).info(path());
    expect(error).toBeNull();
    const row = await objectRow(BUCKET, path());
    expect(data).toMatchObject({
      id: row!.id,
      name: path(),
      version: row!.version,
      bucketId: BUCKET,
      size: 7,
      contentType: "text/markdown",
      cacheControl: "max-age=3600",
      etag: `"${md5("# notes")}"`,
      metadata: { lang: "en" },
    });
    expect(typeof data!.lastModified).toBe("string");

    for (const who of [memberB, anon]) {
      expectStorageError((await who.storage.from(BUCKET).info(path())).error, { statusCode: "404", code: "NoSuchKey" });
      expect((await who.storage.from(BUCKET).exists(path())).data).toBe(false);
    }
    expect((await memberA.storage.from(BUCKET).exists(path())).data).toBe(true);
    expect((await memberA.storage.from(BUCKET).exists(`${a.orgId}/read/missing.md`)).data).toBe(false);
  });

  it("HEAD answers with the object's headers and no body", async () => {
    const token = await (await import("../helpers/supabase.ts")).tokenFor(a.member);
    const res = await fetch(`${stack.supabaseUrl}/storage/v1/object/${BUCKET}/${path()}`, { method: "HEAD", headers: { authorization: `Bearer ${token}` } });
    expect(res.status).toBe(200);
    expect(res.headers.get("content-length")).toBe("7");
    expect(await res.text()).toBe("");
  });

  it("serves stored HTML as plain text", async () => {
    const page = `${a.orgId}/read/page.html`;
    expect((await memberA.storage.from(BUCKET).upload(page, text("<script>alert(1)</script>", "text/html"))).error).toBeNull();
    const token = await (await import("../helpers/supabase.ts")).tokenFor(a.member);
    const res = await fetch(`${stack.supabaseUrl}/storage/v1/object/${BUCKET}/${page}`, { headers: { authorization: `Bearer ${token}` } });
    expect(res.headers.get("content-type")).toBe("text/plain");
    expect((await objectRow(BUCKET, page))!.metadata.mimetype).toBe("text/html");
  });

  it("a byte range and a matching ETag are honoured", async () => {
    const token = await (await import("../helpers/supabase.ts")).tokenFor(a.member);
    const url = `${stack.supabaseUrl}/storage/v1/object/${BUCKET}/${path()}`;
    const ranged = await fetch(url, { headers: { authorization: `Bearer ${token}`, range: "bytes=2-4" } });
    expect(ranged.status).toBe(206);
    expect(ranged.headers.get("content-range")).toBe("bytes 2-4/7");
    expect(await ranged.text()).toBe("not");
    const cached = await fetch(url, { headers: { authorization: `Bearer ${token}`, "if-none-match": `"${md5("# notes")}"` } });
    expect(cached.status).toBe(304);
  });
});

describe("list", () => {
  beforeAll(async () => {
    const up = (p: string, body: string) => memberA.storage.from(BUCKET).upload(`${a.orgId}/list/${p}`, text(body));
    for (const [p, body] of [
      ["b.txt", "bb"],
      ["a.txt", "a"],
      ["sub/c.txt", "ccc"],
      ["sub/deeper/d.txt", "d"],
      ["Alpha.txt", "A"],
    ]) {
      expect((await up(p!, body!)).error).toBeNull();
    }
  });

  it("lists folders (null id and metadata) before files, one level below the prefix", async () => {
    const { data, error } = await viewerA.storage.from(BUCKET).list(`${a.orgId}/list`);
    expect(error).toBeNull();
    const names = data!.map((f) => f.name);
    expect(names[0]).toBe("sub");
    expect(names.slice(1).sort()).toEqual(["Alpha.txt", "a.txt", "b.txt"]);
    const folder = data!.find((f) => f.name === "sub")!;
    expect(folder).toMatchObject({ id: null, metadata: null, updated_at: null, created_at: null });
    const file = data!.find((f) => f.name === "b.txt")!;
    expect(file.id).toBe((await objectRow(BUCKET, `${a.orgId}/list/b.txt`))!.id);
    expect(file.metadata).toMatchObject({ size: 2, mimetype: "text/plain" });
    // The org folder itself shows as one folder at the top.
    const top = await memberA.storage.from(BUCKET).list(a.orgId);
    expect(top.data!.map((f) => f.name)).toContain("list");
  });

  it("honours limit, offset, search (case-insensitive prefix) and sortBy", async () => {
    const dir = `${a.orgId}/list`;
    const page = await memberA.storage.from(BUCKET).list(dir, { limit: 2, offset: 1 });
    expect(page.data!.length).toBe(2);
    const search = await memberA.storage.from(BUCKET).list(dir, { search: "a" });
    expect(search.data!.map((f) => f.name).sort()).toEqual(["Alpha.txt", "a.txt"]);
    const desc = await memberA.storage.from(BUCKET).list(dir, { sortBy: { column: "name", order: "desc" } });
    const files = desc.data!.filter((f) => f.id).map((f) => f.name);
    expect(files.indexOf("b.txt")).toBeLessThan(files.indexOf("a.txt"));
    const nested = await memberA.storage.from(BUCKET).list(`${dir}/sub/`);
    expect(nested.data!.map((f) => f.name)).toEqual(["deeper", "c.txt"]);
  });

  it("another org's member and anon see nothing", async () => {
    for (const who of [memberB, anon]) {
      const { data, error } = await who.storage.from(BUCKET).list(`${a.orgId}/list`);
      expect(error).toBeNull();
      expect(data).toEqual([]);
    }
  });
});

describe("move and copy", () => {
  it("a member moves a file: same row, new name, same bytes; the old name is gone", async () => {
    const from = `${a.orgId}/mv/from.txt`;
    const to = `${a.orgId}/mv/to.txt`;
    expect((await memberA.storage.from(BUCKET).upload(from, text("moving"))).error).toBeNull();
    const before = await objectRow(BUCKET, from);
    const { data, error } = await memberA.storage.from(BUCKET).move(from, to);
    expect(error).toBeNull();
    expect(data).toMatchObject({ message: "Successfully moved" });
    expect(await objectRow(BUCKET, from)).toBeUndefined();
    const after = await objectRow(BUCKET, to);
    expect(after!.id).toBe(before!.id);
    expect((await download(memberA, to)).body).toBe("moving");
    expect(await objectFiles(BUCKET, from)).toEqual([]);
    expect(await objectFiles(BUCKET, to)).toEqual([after!.version]);
  });

  it("a viewer, another org and a move into another org's folder are refused; nothing moves", async () => {
    const from = `${a.orgId}/mv/stay.txt`;
    expect((await memberA.storage.from(BUCKET).upload(from, text("stay"))).error).toBeNull();
    expectStorageError((await viewerA.storage.from(BUCKET).move(from, `${a.orgId}/mv/viewer.txt`)).error, { statusCode: "404", code: "NoSuchKey" });
    expectStorageError((await memberB.storage.from(BUCKET).move(from, `${b.orgId}/stolen.txt`)).error, { statusCode: "404", code: "NoSuchKey" });
    expectStorageError((await anon.storage.from(BUCKET).move(from, `${a.orgId}/mv/anon.txt`)).error, { statusCode: "404", code: "NoSuchKey" });
    expectStorageError((await memberA.storage.from(BUCKET).move(from, `${b.orgId}/pushed.txt`)).error, { statusCode: "403", code: "AccessDenied" });
    expect((await download(memberA, from)).body).toBe("stay");
    for (const p of [`${a.orgId}/mv/viewer.txt`, `${b.orgId}/stolen.txt`, `${b.orgId}/pushed.txt`, `${a.orgId}/mv/anon.txt`]) {
      expect(await objectRow(BUCKET, p)).toBeUndefined();
      expect(await objectFiles(BUCKET, p)).toEqual([]);
    }
  });

  it("moving onto an existing key is a conflict", async () => {
    const x = `${a.orgId}/mv/x.txt`;
    const y = `${a.orgId}/mv/y.txt`;
    await memberA.storage.from(BUCKET).upload(x, text("x"));
    await memberA.storage.from(BUCKET).upload(y, text("y"));
    expectStorageError((await memberA.storage.from(BUCKET).move(x, y)).error, { statusCode: "409" });
    expect((await download(memberA, x)).body).toBe("x");
    expect((await download(memberA, y)).body).toBe("y");
  });

  it("copy makes an independent object owned by the copier; refused for others", async () => {
    const src = `${a.orgId}/cp/src.txt`;
    const dst = `${a.orgId}/cp/dst.txt`;
    expect((await memberA.storage.from(BUCKET).upload(src, text("copy me"), { metadata: { k: "v" } })).error).toBeNull();
    const admin = await userClient(a.admin);
    const { data, error } = await admin.storage.from(BUCKET).copy(src, dst);
    expect(error).toBeNull();
    expect(data).toEqual({ path: `${BUCKET}/${dst}` });
    const [s, d] = [await objectRow(BUCKET, src), await objectRow(BUCKET, dst)];
    expect(d!.id).not.toBe(s!.id);
    expect(d!.owner_id).toBe(a.admin.id);
    expect(d!.user_metadata).toEqual({ k: "v" });
    expect(d!.metadata).toMatchObject({ eTag: s!.metadata.eTag, size: 7 });
    expect((await download(viewerA, dst)).body).toBe("copy me");
    // Removing the source leaves the copy whole.
    await memberA.storage.from(BUCKET).remove([src]);
    expect((await download(viewerA, dst)).body).toBe("copy me");

    expectStorageError((await viewerA.storage.from(BUCKET).copy(dst, `${a.orgId}/cp/viewer.txt`)).error, { statusCode: "403" });
    expectStorageError((await memberB.storage.from(BUCKET).copy(dst, `${b.orgId}/cp.txt`)).error, { statusCode: "404", code: "NoSuchKey" });
    expectStorageError((await anon.storage.from(BUCKET).copy(dst, `${a.orgId}/cp/anon.txt`)).error, { statusCode: "404", code: "NoSuchKey" });
    expectStorageError((await memberA.storage.from(BUCKET).copy(dst, `${b.orgId}/cp.txt`)).error, { statusCode: "403" });
    expectStorageError((await memberA.storage.from(BUCKET).copy(dst, dst)).error, { statusCode: "409" });
    for (const p of [`${a.orgId}/cp/viewer.txt`, `${b.orgId}/cp.txt`, `${a.orgId}/cp/anon.txt`]) expect(await objectRow(BUCKET, p)).toBeUndefined();
  });
});

describe("remove", () => {
  it("deletes only what the caller may delete; bytes go with the rows", async () => {
    const keep = `${a.orgId}/rm/keep.txt`;
    const gone = `${a.orgId}/rm/gone.txt`;
    await memberA.storage.from(BUCKET).upload(keep, text("keep"));
    await memberA.storage.from(BUCKET).upload(gone, text("gone"));

    for (const who of [memberB, viewerA, anon]) {
      const { data, error } = await who.storage.from(BUCKET).remove([keep, gone]);
      expect(error).toBeNull();
      expect(data).toEqual([]);
    }
    expect((await download(memberA, keep)).body).toBe("keep");
    expect((await download(memberA, gone)).body).toBe("gone");

    const version = (await objectRow(BUCKET, gone))!.version;
    const { data, error } = await memberA.storage.from(BUCKET).remove([gone, `${a.orgId}/rm/never-existed.txt`]);
    expect(error).toBeNull();
    expect(data!.map((o) => o.name)).toEqual([gone]);
    expect(data![0]).toMatchObject({ bucket_id: BUCKET, version });
    expect(await objectRow(BUCKET, gone)).toBeUndefined();
    expect(await objectFiles(BUCKET, gone)).toEqual([]);
    expect((await download(memberA, keep)).body).toBe("keep");
  });

  it("a direct DELETE on storage.objects is refused unless the transaction allows it", async () => {
    const { admin } = await import("../helpers/db.ts");
    await expect(admin.query("delete from storage.objects where bucket_id = $1 and name = $2", [BUCKET, `${a.orgId}/rm/keep.txt`])).rejects.toMatchObject({
      code: "42501",
      message: "Direct deletion from storage tables is not allowed. Use the Storage API instead.",
    });
    expect(await objectRow(BUCKET, `${a.orgId}/rm/keep.txt`)).toBeDefined();
  });
});
