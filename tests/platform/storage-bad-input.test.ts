// Hostile and broken requests: path traversal, NUL bytes, keys outside the allowed characters,
// malformed JSON and multipart bodies, bad tokens, unknown routes. Each gets the real server's
// error reply, leaves nothing behind, and the server keeps serving.
import crypto from "node:crypto";
import fs from "node:fs";
import http from "node:http";
import path from "node:path";
import type { SupabaseClient } from "@supabase/supabase-js";
import { beforeAll, describe, expect, it } from "vitest";
import { createTeam, stack, type Team } from "../helpers/db.ts";
import { tokenFor, userClient } from "../helpers/supabase.ts";
import { expectStorageError, objectFiles, objectRow, storageRoot } from "../helpers/storage.ts";
import { signJwt } from "../../scripts/lib/keys.ts";

const BUCKET = "org-files";
let a: Team;
let b: Team;
let member: SupabaseClient;
let token: string;

/** A request sent byte for byte: fetch would normalise `..` segments away before sending. */
function raw(method: string, path: string, opts: { headers?: Record<string, string>; body?: string | Buffer } = {}) {
  const { hostname, port } = new URL(stack.supabaseUrl);
  return new Promise<{ status: number; body: string }>((resolve, reject) => {
    const headers = { ...opts.headers, ...(opts.body !== undefined ? { "content-length": String(Buffer.byteLength(opts.body)) } : {}) };
    const req = http.request({ host: hostname, port, method, path, headers }, (res) => {
      let data = "";
      res.setEncoding("utf8");
      res.on("data", (d) => (data += d));
      res.on("end", () => resolve({ status: res.statusCode ?? 0, body: data }));
    });
    req.on("error", reject);
    req.end(opts.body);
  });
}

const auth = () => ({ authorization: `Bearer ${token}`, apikey: stack.anonKey });

beforeAll(async () => {
  [a, b] = await Promise.all([createTeam("Bad input A"), createTeam("Bad input B")]);
  member = await userClient(a.member);
  token = await tokenFor(a.member);
});

describe("object keys", () => {
  it("refuses `..` segments (raw or percent-encoded) with InvalidKey, storing nothing", async () => {
    for (const path of [`${a.orgId}/../${b.orgId}/evil.txt`, `${a.orgId}/%2e%2e/${b.orgId}/evil.txt`, `${a.orgId}/./evil.txt`]) {
      const res = await raw("POST", `/storage/v1/object/${BUCKET}/${path}`, {
        headers: { ...auth(), "content-type": "text/plain" },
        body: "evil",
      });
      expect(res.status).toBe(400);
      expect(JSON.parse(res.body)).toEqual({
        statusCode: "400",
        code: "InvalidKey",
        error: "InvalidKey",
        message: `Invalid key: ${decodeURIComponent(path)}`,
      });
    }
    expect(await objectRow(BUCKET, `${b.orgId}/evil.txt`)).toBeUndefined();
    expect(await objectFiles(BUCKET, `${b.orgId}/evil.txt`)).toEqual([]);
    // Reads with such keys are refused the same way.
    const read = await raw("GET", `/storage/v1/object/${BUCKET}/${a.orgId}/../${b.orgId}/x.txt`, { headers: auth() });
    expect(JSON.parse(read.body).code).toBe("InvalidKey");
  });

  it("through supabase-js, `..` is resolved by URL rules and RLS judges the real target", async () => {
    const { error } = await member.storage.from(BUCKET).upload(`${a.orgId}/../${b.orgId}/x.txt`, new Blob(["x"]));
    expectStorageError(error, { statusCode: "403", code: "AccessDenied" });
    expect(await objectRow(BUCKET, `${b.orgId}/x.txt`)).toBeUndefined();
  });

  it("refuses keys with traversal in JSON bodies (move, copy, sign, remove)", async () => {
    const src = `${a.orgId}/bad/src.txt`;
    expect((await member.storage.from(BUCKET).upload(src, new Blob(["src"]))).error).toBeNull();
    const evil = `${a.orgId}/../${b.orgId}/moved.txt`;
    expectStorageError((await member.storage.from(BUCKET).move(src, evil)).error, { statusCode: "400", code: "InvalidKey", message: `Invalid key: ${evil}` });
    expectStorageError((await member.storage.from(BUCKET).copy(src, evil)).error, { statusCode: "400", code: "InvalidKey" });
    expect((await member.storage.from(BUCKET).remove([`${a.orgId}/bad/../bad/src.txt`])).data).toEqual([]);
    expect(await (await member.storage.from(BUCKET).download(src)).data!.text()).toBe("src");
    expect(await objectRow(BUCKET, evil)).toBeUndefined();
  });

  it("refuses a NUL byte and characters outside the key charset", async () => {
    for (const key of [`${a.orgId}/nul\0byte.txt`, `${a.orgId}/brackets[1].txt`, `${a.orgId}/ümlaut.txt`, `${a.orgId}/pipe|char.txt`]) {
      const { error } = await member.storage.from(BUCKET).upload(key, new Blob(["x"]));
      expectStorageError(error, { statusCode: "400", code: "InvalidKey", message: `Invalid key: ${key}` });
      expect(await objectFiles(BUCKET, key)).toEqual([]);
    }
    for (const key of [`${a.orgId}/brackets[1].txt`, `${a.orgId}/ümlaut.txt`, `${a.orgId}/pipe|char.txt`]) {
      expect(await objectRow(BUCKET, key)).toBeUndefined();
    }
    // A backslash (which fetch would turn into a slash) sent as is.
    const backslash = await raw("POST", `/storage/v1/object/${BUCKET}/${a.orgId}/back%5Cslash.txt`, { headers: auth(), body: "x" });
    expect(JSON.parse(backslash.body)).toMatchObject({ statusCode: "400", code: "InvalidKey", message: `Invalid key: ${a.orgId}/back\\slash.txt` });
    // The same in an info lookup and a signed URL request.
    expectStorageError((await member.storage.from(BUCKET).info(`${a.orgId}/nul\0.txt`)).error, { statusCode: "400", code: "InvalidKey" });
    expectStorageError((await member.storage.from(BUCKET).createSignedUrl(`${a.orgId}/nul\0.txt`, 60)).error, { statusCode: "400", code: "InvalidKey" });
  });
});

describe("request bodies", () => {
  it("malformed JSON, missing fields and wrong types get 400 InvalidRequest", async () => {
    const post = (path: string, body: string, type = "application/json") =>
      raw("POST", `/storage/v1${path}`, { headers: { ...auth(), "content-type": type }, body });
    const bad = await post(`/object/list/${BUCKET}`, "{not json");
    expect(bad.status).toBe(400);
    expect(JSON.parse(bad.body)).toMatchObject({ statusCode: "400", code: "InvalidRequest", error: "SyntaxError" });

    const missing = await post(`/object/list/${BUCKET}`, "{}");
    expect(JSON.parse(missing.body)).toMatchObject({ statusCode: "400", code: "InvalidRequest", message: "body must have required property 'prefix'" });

    const wrongType = await post(`/object/sign/${BUCKET}/${a.orgId}/x.txt`, '{"expiresIn":"soon"}');
    expect(JSON.parse(wrongType.body)).toMatchObject({ statusCode: "400", code: "InvalidRequest", message: "body/expiresIn must be number" });

    const empty = await post("/object/move", "");
    expect(JSON.parse(empty.body)).toMatchObject({ statusCode: "400", message: "Body cannot be empty when content-type is set to 'application/json'" });

    const notJson = await post("/object/copy", "a=b", "application/x-www-form-urlencoded");
    expect(JSON.parse(notJson.body)).toEqual({ statusCode: "415", code: "InvalidMimeType", error: "invalid_mime_type", message: "Invalid Content-Type header" });

    const removeNone = await raw("DELETE", `/storage/v1/object/${BUCKET}`, { headers: { ...auth(), "content-type": "application/json" }, body: '{"prefixes":[]}' });
    expect(JSON.parse(removeNone.body)).toMatchObject({ statusCode: "400", message: "body/prefixes must NOT have fewer than 1 items" });
  });

  it("a NUL byte in a bucket name or in user metadata is a 400, never a 500", async () => {
    const list = await raw("POST", "/storage/v1/object/list/bad%00bucket", { headers: { ...auth(), "content-type": "application/json" }, body: '{"prefix":""}' });
    expect(list.status).toBe(400);
    expect(JSON.parse(list.body)).toMatchObject({ statusCode: "400", code: "InvalidRequest" });
    const key = `${a.orgId}/bad/nul-metadata.txt`;
    const { error } = await member.storage.from(BUCKET).upload(key, Buffer.from("x"), { metadata: { note: "a\u0000b" } });
    expectStorageError(error, { statusCode: "400", code: "InvalidRequest" });
    expect(await objectRow(BUCKET, key)).toBeUndefined();
    expect(await objectFiles(BUCKET, key)).toEqual([]);
  });

  it("a cut-off multipart body is refused and stores nothing", async () => {
    const key = `${a.orgId}/bad/cut.txt`;
    const body = `--XyZ\r\nContent-Disposition: form-data; name="cacheControl"\r\n\r\n3600\r\n--XyZ\r\nContent-Disposition: form-data; name=""; filename="blob"\r\nContent-Type: text/plain\r\n\r\nhalf a file`;
    const res = await raw("POST", `/storage/v1/object/${BUCKET}/${key}`, {
      headers: { ...auth(), "content-type": "multipart/form-data; boundary=XyZ" },
      body,
    });
    expect(res.status).toBe(400);
    expect(JSON.parse(res.body)).toMatchObject({ statusCode: "400", code: "InvalidRequest" });
    expect(await objectRow(BUCKET, key)).toBeUndefined();
    expect(await objectFiles(BUCKET, key)).toEqual([]);

    const noFile = await raw("POST", `/storage/v1/object/${BUCKET}/${key}`, {
      headers: { ...auth(), "content-type": "multipart/form-data; boundary=XyZ" },
      body: `--XyZ\r\nContent-Disposition: form-data; name="cacheControl"\r\n\r\n3600\r\n--XyZ--\r\n`,
    });
    expect(JSON.parse(noFile.body)).toMatchObject({ statusCode: "400", message: "No content provided" });
    expect(await objectRow(BUCKET, key)).toBeUndefined();
  });
});

describe("tokens and routes", () => {
  it("a missing, garbage, expired or foreign JWT is AccessDenied on routes that need one", async () => {
    const list = (authorization?: string) =>
      raw("POST", `/storage/v1/object/list/${BUCKET}`, {
        headers: { "content-type": "application/json", ...(authorization ? { authorization } : {}) },
        body: '{"prefix":""}',
      });
    const expired = await signJwt(stack.jwtSecret, { sub: a.member.id, role: "authenticated" }, -60);
    const foreign = await signJwt("some-other-projects-secret-some-other-projects", { sub: a.member.id, role: "authenticated" });
    // A validly signed token naming a database role the API may not switch to.
    const superuser = await signJwt(stack.jwtSecret, { sub: a.member.id, role: "postgres" });
    const asSuperuser = await list(`Bearer ${superuser}`);
    expect(JSON.parse(asSuperuser.body)).toEqual({ statusCode: "403", code: "AccessDenied", error: "Unauthorized", message: 'permission denied to set role "postgres"' });
    const cases: [string | undefined, string][] = [
      [undefined, "Invalid Compact JWS"],
      ["Bearer garbage", "Invalid Compact JWS"],
      [`Bearer ${expired}`, '"exp" claim timestamp check failed'],
      [`Bearer ${foreign}`, "signature verification failed"],
    ];
    for (const [authorization, message] of cases) {
      const res = await list(authorization);
      expect(res.status).toBe(400);
      expect(JSON.parse(res.body)).toEqual({ statusCode: "403", code: "AccessDenied", error: "Unauthorized", message });
    }
  });

  it("features that are off here have no route, as on a server without them", async () => {
    // list-v2 falls through to the upload route, as on a server that predates it.
    const listV2 = await raw("POST", `/storage/v1/object/list-v2/${BUCKET}`, { headers: { ...auth(), "content-type": "application/json" }, body: "{}" });
    expect(JSON.parse(listV2.body)).toMatchObject({ statusCode: "404", code: "NoSuchBucket" });
    for (const [method, path] of [
      ["GET", `/render/image/authenticated/${BUCKET}/x.png`],
      ["GET", "/s3/bucket"],
    ] as const) {
      const res = await raw(method, `/storage/v1${path}`, { headers: auth() });
      expect(res.status).toBe(404);
      expect(JSON.parse(res.body)).toEqual({ message: `Route ${method}:${path} not found`, error: "Not Found", statusCode: 404 });
    }
  });

  it("TUS: an unknown upload URL is 404 and a missing Tus-Resumable header is 412", async () => {
    const bogus = Buffer.from(`${BUCKET}/${a.orgId}/x.bin/not-a-uuid`).toString("base64url");
    const head = await raw("HEAD", `/storage/v1/upload/resumable/${bogus}`, { headers: { ...auth(), "tus-resumable": "1.0.0" } });
    expect(head.status).toBe(404);
    const noVersion = await raw("POST", "/storage/v1/upload/resumable", { headers: { ...auth(), "upload-length": "1" } });
    expect(noVersion.status).toBe(412);
  });

  it("a client that goes away mid-upload leaves no object, and the key stays usable", async () => {
    const key = `${a.orgId}/bad/aborted.bin`;
    const { hostname, port } = new URL(stack.supabaseUrl);
    // Other files upload through the same stand-in at the same time, and a resumable upload's
    // temp file rightly outlives a cut: this upload's own temp file is the one that holds its
    // random bytes, among those that appeared while it ran.
    const tmp = path.join(await storageRoot(), "tmp");
    const before = new Set(fs.readdirSync(tmp));
    const sent = crypto.randomBytes(64 * 1024);
    const isOurs = (f: string) => {
      try {
        const head = fs.readFileSync(path.join(tmp, f)).subarray(0, 4096);
        return head.length > 0 && sent.subarray(0, head.length).equals(head);
      } catch {
        return false; // gone meanwhile
      }
    };
    await new Promise<void>((resolve) => {
      const req = http.request({
        host: hostname,
        port,
        method: "POST",
        path: `/storage/v1/object/${BUCKET}/${key}`,
        headers: { ...auth(), "content-type": "application/octet-stream", "content-length": String(1024 * 1024) },
      });
      req.on("error", () => resolve());
      req.write(sent);
      setTimeout(() => {
        req.destroy();
        resolve();
      }, 100);
    });
    await new Promise((r) => setTimeout(r, 200));
    // The cut upload's temp file goes too (a handler left waiting would keep it forever).
    const ours = () => fs.readdirSync(tmp).filter((f) => !before.has(f) && isOurs(f));
    for (let i = 0; i < 200 && ours().length > 0; i++) await new Promise((r) => setTimeout(r, 50));
    expect(ours()).toEqual([]);
    expect(await objectRow(BUCKET, key)).toBeUndefined();
    expect(await objectFiles(BUCKET, key)).toEqual([]);
    expect((await member.storage.from(BUCKET).upload(key, new Blob(["complete"]))).error).toBeNull();
  });

  it("the server is still up and serving after all of the above", async () => {
    const key = `${a.orgId}/bad/after.txt`;
    expect((await member.storage.from(BUCKET).upload(key, new Blob(["still here"]))).error).toBeNull();
    expect(await (await member.storage.from(BUCKET).download(key)).data!.text()).toBe("still here");
  });
});
