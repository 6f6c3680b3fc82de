// Buckets through supabase-js: RLS on storage.buckets (no policies, so users see and change
// none; service_role manages them), public buckets read without a token, and bucket limits
// (size, MIME types) that refuse uploads with the real status and leave nothing behind.
import type { SupabaseClient } from "@supabase/supabase-js";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import * as tus from "tus-js-client";
import { admin, createUser, stack } from "../helpers/db.ts";
import { client, userClient } from "../helpers/supabase.ts";
import { expectStorageError, objectFiles, objectRow, uniqueBucket } from "../helpers/storage.ts";

let service: SupabaseClient;
let user: SupabaseClient;
let userToken: string;
const created: string[] = [];
const policies: string[] = [];

async function makeBucket(prefix: string, opts: Parameters<SupabaseClient["storage"]["createBucket"]>[1]) {
  const id = uniqueBucket(prefix);
  const { data, error } = await service.storage.createBucket(id, opts);
  expect(error).toBeNull();
  expect(data).toEqual({ name: id });
  created.push(id);
  return id;
}

beforeAll(async () => {
  service = client({ key: "service_role" });
  const someone = await createUser();
  user = await userClient(someone);
  userToken = await (await import("../helpers/supabase.ts")).tokenFor(someone);
});

afterAll(async () => {
  for (const name of policies) await admin.query(`drop policy if exists "${name}" on storage.objects`);
  for (const id of created) {
    await service.storage.emptyBucket(id);
    await service.storage.deleteBucket(id);
  }
});

describe("bucket management", () => {
  it("service_role creates, reads, lists and updates buckets", async () => {
    const id = await makeBucket("managed", { public: false, fileSizeLimit: "20MB", allowedMimeTypes: ["image/png"] });
    const { data, error } = await service.storage.getBucket(id);
    expect(error).toBeNull();
    expect(data).toMatchObject({ id, name: id, public: false, file_size_limit: 20_000_000, allowed_mime_types: ["image/png"] });
    expect(typeof data!.created_at).toBe("string");

    const list = await service.storage.listBuckets({ search: id });
    expect(list.data!.map((x) => x.id)).toEqual([id]);
    expect(list.data![0]).toMatchObject({ type: "STANDARD", public: false });

    const upd = await service.storage.updateBucket(id, { public: true, fileSizeLimit: 1000, allowedMimeTypes: null });
    expect(upd).toEqual({ data: { message: "Successfully updated" }, error: null });
    expect((await service.storage.getBucket(id)).data).toMatchObject({ public: true, file_size_limit: 1000, allowed_mime_types: null });
  });

  it("a user sees no bucket and may create or change none (no policies on storage.buckets)", async () => {
    const id = await makeBucket("hidden", { public: true });
    expect((await user.storage.listBuckets()).data).toEqual([]);
    expectStorageError((await user.storage.getBucket(id)).error, { statusCode: "404", code: "NoSuchBucket", message: "Bucket not found" });
    expectStorageError((await user.storage.createBucket(uniqueBucket("mine"), { public: true })).error, {
      statusCode: "403",
      code: "AccessDenied",
      message: "new row violates row-level security policy",
    });
    expectStorageError((await user.storage.updateBucket(id, { public: false })).error, { statusCode: "404", code: "NoSuchBucket" });
    expectStorageError((await user.storage.deleteBucket(id)).error, { statusCode: "404", code: "NoSuchBucket" });
    expect((await service.storage.getBucket(id)).data).toMatchObject({ public: true });
  });

  it("refuses a duplicate bucket and an invalid bucket name", async () => {
    const id = await makeBucket("dup", { public: false });
    expectStorageError((await service.storage.createBucket(id, { public: false })).error, { statusCode: "409", code: "BucketAlreadyExists" });
    expectStorageError((await service.storage.createBucket("bad/name", { public: false })).error, { statusCode: "400", code: "InvalidBucketName" });
    expectStorageError((await service.storage.createBucket(uniqueBucket("size"), { public: false, fileSizeLimit: "lots" })).error, {
      statusCode: "400",
      code: "InvalidRequest",
    });
  });

  it("a bucket with objects is not deleted; emptied (service_role only) it is", async () => {
    const id = uniqueBucket("full");
    expect((await service.storage.createBucket(id, { public: false })).error).toBeNull();
    await service.storage.from(id).upload("one.txt", new Blob(["1"]));
    await service.storage.from(id).upload("dir/two.txt", new Blob(["2"]));
    expectStorageError((await service.storage.deleteBucket(id)).error, {
      statusCode: "409",
      code: "ResourceNotEmpty",
      message: "The bucket you tried to delete is not empty",
    });
    // Emptying is for service_role only: anyone else gets a real HTTP 403.
    expectStorageError((await user.storage.emptyBucket(id)).error, { statusCode: "403", httpStatus: 403, message: "Access denied: Invalid role" });
    expect(await objectRow(id, "one.txt")).toBeDefined();
    expect((await service.storage.emptyBucket(id)).data).toEqual({ message: "Empty bucket has been queued. Completion may take up to an hour." });
    expect(await objectRow(id, "one.txt")).toBeUndefined();
    expect(await objectFiles(id, "dir/two.txt")).toEqual([]);
    expect((await service.storage.deleteBucket(id)).data).toEqual({ message: "Successfully deleted" });
    expectStorageError((await service.storage.getBucket(id)).error, { statusCode: "404" });
  });

  it("analytics buckets are not enabled here", async () => {
    const { error } = await service.storage.createBucket(uniqueBucket("iceberg"), { public: false, type: "ANALYTICS" });
    expectStorageError(error, { statusCode: "409", code: "FeatureNotEnabled" });
  });
});

describe("public buckets", () => {
  let pub: string;
  beforeAll(async () => {
    pub = await makeBucket("pub", { public: true });
    expect((await service.storage.from(pub).upload("img/logo.svg", new Blob(["<svg/>"], { type: "image/svg+xml" }))).error).toBeNull();
  });

  it("getPublicUrl works without any token, with ?download as an attachment", async () => {
    const anon = client();
    const { data } = anon.storage.from(pub).getPublicUrl("img/logo.svg");
    expect(data.publicUrl).toBe(`${stack.supabaseUrl}/storage/v1/object/public/${pub}/img/logo.svg`);
    const res = await fetch(data.publicUrl);
    expect(res.status).toBe(200);
    expect(res.headers.get("content-type")).toBe("image/svg+xml");
    expect(await res.text()).toBe("<svg/>");

    const dl = await fetch(anon.storage.from(pub).getPublicUrl("img/logo.svg", { download: "brand.svg" }).data.publicUrl);
    expect(dl.headers.get("content-disposition")).toContain("attachment; filename=brand.svg");

    const info = await fetch(`${stack.supabaseUrl}/storage/v1/object/info/public/${pub}/img/logo.svg`);
    expect((await info.json()).size).toBe(6);
  });

  it("anyone reads a public bucket's objects through the authenticated route too, but may not write", async () => {
    for (const who of [client(), user]) {
      const { data, error } = await who.storage.from(pub).download("img/logo.svg");
      expect(error).toBeNull();
      expect(await data!.text()).toBe("<svg/>");
    }
    const noToken = await fetch(`${stack.supabaseUrl}/storage/v1/object/${pub}/img/logo.svg`);
    expect(await noToken.text()).toBe("<svg/>");
    // The explicitly authenticated routes want a JWT even for a public bucket.
    for (const path of [`object/authenticated/${pub}/img/logo.svg`, `object/info/authenticated/${pub}/img/logo.svg`]) {
      const res = await fetch(`${stack.supabaseUrl}/storage/v1/${path}`);
      expect(res.status).toBe(400);
      expect(await res.json()).toMatchObject({ statusCode: "403", code: "AccessDenied", message: "Invalid Compact JWS" });
    }
    expectStorageError((await user.storage.from(pub).upload("img/evil.svg", new Blob(["x"]))).error, { statusCode: "403" });
    expect(await objectRow(pub, "img/evil.svg")).toBeUndefined();
  });

  it("a missing object in a public bucket is Object not found; a private bucket has no public URL", async () => {
    const missing = await fetch(`${stack.supabaseUrl}/storage/v1/object/public/${pub}/img/none.svg`);
    expect(missing.status).toBe(400);
    expect(await missing.json()).toMatchObject({ statusCode: "404", code: "NoSuchKey", error: "not_found", message: "Object not found" });

    const priv = await makeBucket("priv", { public: false });
    await service.storage.from(priv).upload("secret.txt", new Blob(["s"]));
    const res = await fetch(client().storage.from(priv).getPublicUrl("secret.txt").data.publicUrl);
    expect(res.status).toBe(400);
    expect(await res.json()).toEqual({ statusCode: "404", code: "NoSuchBucket", error: "Bucket not found", message: "Bucket not found" });
  });

  it("making a bucket private takes its public URLs away", async () => {
    const id = await makeBucket("flip", { public: true });
    await service.storage.from(id).upload("a.txt", new Blob(["a"]));
    const url = client().storage.from(id).getPublicUrl("a.txt").data.publicUrl;
    expect((await fetch(url)).status).toBe(200);
    await service.storage.updateBucket(id, { public: false });
    const res = await fetch(url);
    expect(res.status).toBe(400);
    expect((await res.json()).code).toBe("NoSuchBucket");
  });
});

describe("bucket limits", () => {
  let limited: string;
  beforeAll(async () => {
    limited = await makeBucket("limited", { public: false, fileSizeLimit: 1024, allowedMimeTypes: ["image/png", "text/*"] });
  });

  it("refuses an object over the size limit (multipart and raw) with 413, leaving no row and no file", async () => {
    const big = new Uint8Array(4096).fill(7);
    const multipart = await service.storage.from(limited).upload("big.png", new Blob([big], { type: "image/png" }));
    expectStorageError(multipart.error, {
      statusCode: "413",
      code: "EntityTooLarge",
      message: "The object exceeded the maximum allowed size",
    });
    const raw = await service.storage.from(limited).upload("big-raw.png", Buffer.from(big), { contentType: "image/png" });
    expectStorageError(raw.error, { statusCode: "413", code: "EntityTooLarge" });
    for (const key of ["big.png", "big-raw.png"]) {
      expect(await objectRow(limited, key)).toBeUndefined();
      expect(await objectFiles(limited, key)).toEqual([]);
    }
    // Exactly at the limit is fine.
    expect((await service.storage.from(limited).upload("edge.png", new Blob([new Uint8Array(1024)], { type: "image/png" }))).error).toBeNull();
  });

  it("refuses a MIME type the bucket does not allow with 415; type/* and exact types pass", async () => {
    const { error } = await service.storage.from(limited).upload("doc.pdf", new Blob(["%PDF"], { type: "application/pdf" }));
    expectStorageError(error, { statusCode: "415", code: "InvalidMimeType", message: "mime type application/pdf is not supported" });
    expect(await objectRow(limited, "doc.pdf")).toBeUndefined();
    expect(await objectFiles(limited, "doc.pdf")).toEqual([]);
    expect((await service.storage.from(limited).upload("ok.csv", new Blob(["a,b"], { type: "text/csv" }))).error).toBeNull();
    expect((await service.storage.from(limited).upload("ok.png", new Blob(["png"], { type: "image/png" }))).error).toBeNull();
  });

  it("lets an empty folder placeholder past the MIME list, but only when it is empty", async () => {
    expect((await service.storage.from(limited).upload("docs/.emptyFolderPlaceholder", new Blob([], { type: "application/x-empty" }))).error).toBeNull();
    expect((await service.storage.from(limited).list()).data!.map((f) => f.name)).toContain("docs");
    const { error } = await service.storage.from(limited).upload("more/.emptyFolderPlaceholder", new Blob(["not empty"], { type: "text/plain" }));
    expectStorageError(error, { statusCode: "413", code: "EntityTooLarge" });
    expect(await objectRow(limited, "more/.emptyFolderPlaceholder")).toBeUndefined();
  });

  it("applies the destination bucket's limits to a copy", async () => {
    const roomy = await makeBucket("roomy", { public: false });
    await service.storage.from(roomy).upload("big.txt", new Blob([new Uint8Array(2048)], { type: "text/plain" }));
    const { error } = await service.storage.from(roomy).copy("big.txt", "big.txt", { destinationBucket: limited });
    expectStorageError(error, { statusCode: "413" });
    expect(await objectRow(limited, "big.txt")).toBeUndefined();
  });
});

describe("storage.operation()", () => {
  it("lets policies tell Storage operations apart, as the server sets it per request", async () => {
    const id = await makeBucket("ops", { public: false });
    const insert = `ops insert ${id}`;
    const select = `ops select ${id}`;
    policies.push(insert, select);
    await admin.query(
      `create policy "${insert}" on storage.objects for insert to authenticated
         with check (bucket_id = '${id}' and storage.operation() = 'storage.object.upload')`,
    );
    await admin.query(
      `create policy "${select}" on storage.objects for select to authenticated
         using (bucket_id = '${id}' and storage.allow_only_operation('storage.object.list'))`,
    );

    // A plain upload is storage.object.upload: allowed.
    expect((await user.storage.from(id).upload("a.txt", new Blob(["a"]))).error).toBeNull();
    // Signing an upload URL and a resumable upload are other operations: refused.
    expectStorageError((await user.storage.from(id).createSignedUploadUrl("b.txt")).error, { statusCode: "403" });
    const tusStatus = await new Promise<number>((resolve) => {
      new tus.Upload(Buffer.from("c"), {
        endpoint: `${stack.supabaseUrl}/storage/v1/upload/resumable`,
        headers: { authorization: `Bearer ${userToken}` },
        metadata: { bucketName: id, objectName: "c.txt" },
        retryDelays: null,
        onSuccess: () => resolve(200),
        onError: (e) => resolve((e as tus.DetailedError).originalResponse?.getStatus() ?? 0),
      }).start();
    });
    expect(tusStatus).toBe(403);
    // Listing may see the object; downloading it is another operation, so it stays hidden.
    expect((await user.storage.from(id).list()).data!.map((f) => f.name)).toEqual(["a.txt"]);
    expectStorageError((await user.storage.from(id).download("a.txt")).error, { statusCode: "404", code: "NoSuchKey" });
    expect(await objectRow(id, "b.txt")).toBeUndefined();
    expect(await objectRow(id, "c.txt")).toBeUndefined();
  });
});
