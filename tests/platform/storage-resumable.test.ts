// Resumable uploads with tus-js-client, configured as Supabase's docs say (6 MB chunks, data
// sent with the creation request): a 20 MB upload cut mid-chunk and resumed from its stored URL
// arrives byte-identical; RLS, bucket limits and signed upload tokens are enforced with the
// real statuses; no storage.objects row exists before the last byte.
import { createHash, randomBytes } from "node:crypto";
import type { SupabaseClient } from "@supabase/supabase-js";
import * as tus from "tus-js-client";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { createTeam, stack, type Team } from "../helpers/db.ts";
import { client, tokenFor, userClient } from "../helpers/supabase.ts";
import { objectFiles, objectRow, tusUploadsFor, uniqueBucket } from "../helpers/storage.ts";

const ENDPOINT = `${stack.supabaseUrl}/storage/v1/upload/resumable`;
const CHUNK = 6 * 1024 * 1024;
const BUCKET = "org-files";

let a: Team;
let b: Team;
let service: SupabaseClient;
const buckets: string[] = [];

/** A URL store kept in memory, as a browser keeps one in localStorage. */
class MemoryUrlStorage implements tus.UrlStorage {
  private readonly entries = new Map<string, tus.PreviousUpload & { fingerprint: string }>();
  async findAllUploads() {
    return [...this.entries.values()];
  }
  async findUploadsByFingerprint(fingerprint: string) {
    return [...this.entries.values()].filter((e) => e.fingerprint === fingerprint);
  }
  async removeUpload(key: string) {
    this.entries.delete(key);
  }
  async addUpload(fingerprint: string, upload: tus.PreviousUpload) {
    const key = `tus::${fingerprint}::${this.entries.size}`;
    this.entries.set(key, { ...upload, urlStorageKey: key, fingerprint });
    return key;
  }
}

interface TusOptions {
  token?: string;
  objectName: string;
  bucket?: string;
  contentType?: string;
  upsert?: boolean;
  endpoint?: string;
  headers?: Record<string, string>;
  metadata?: Record<string, string>;
  urlStorage?: tus.UrlStorage;
  onProgress?: (sent: number, total: number, upload: tus.Upload) => void;
  onBeforeRequest?: (req: tus.HttpRequest) => void;
}

function tusOptions(o: TusOptions, done: { resolve: (u: tus.Upload) => void; reject: (e: Error) => void }, self: () => tus.Upload): tus.UploadOptions {
  return {
    endpoint: o.endpoint ?? ENDPOINT,
    chunkSize: CHUNK,
    uploadDataDuringCreation: true,
    retryDelays: null,
    headers: {
      ...(o.token ? { authorization: `Bearer ${o.token}` } : {}),
      apikey: stack.anonKey,
      "x-upsert": o.upsert ? "true" : "false",
      ...o.headers,
    },
    metadata: o.metadata ?? {
      bucketName: o.bucket ?? BUCKET,
      objectName: o.objectName,
      contentType: o.contentType ?? "application/octet-stream",
      cacheControl: "3600",
    },
    urlStorage: o.urlStorage,
    storeFingerprintForResuming: !!o.urlStorage,
    onProgress: o.onProgress ? (sent, total) => o.onProgress!(sent, total, self()) : null,
    onBeforeRequest: o.onBeforeRequest,
    onSuccess: () => done.resolve(self()),
    onError: (err) => done.reject(err),
  };
}

/** Runs one upload to the end (or its error). */
function upload(data: Buffer, o: TusOptions): Promise<tus.Upload> {
  return new Promise((resolve, reject) => {
    const u: tus.Upload = new tus.Upload(data, tusOptions(o, { resolve, reject }, () => u));
    u.start();
  });
}

async function failure(data: Buffer, o: TusOptions): Promise<{ status: number; body: string }> {
  const err = await upload(data, o).then(
    () => undefined,
    (e: unknown) => e as tus.DetailedError,
  );
  expect(err, "the upload should have failed").toBeDefined();
  return { status: err!.originalResponse?.getStatus() ?? 0, body: err!.originalResponse?.getBody() ?? "" };
}

const sha256 = (data: Buffer | ArrayBuffer) => createHash("sha256").update(Buffer.from(data as ArrayBuffer)).digest("hex");

beforeAll(async () => {
  [a, b] = await Promise.all([createTeam("TUS A"), createTeam("TUS B")]);
  service = client({ key: "service_role" });
});

afterAll(async () => {
  for (const id of buckets) {
    await service.storage.emptyBucket(id);
    await service.storage.deleteBucket(id);
  }
});

describe("resumable uploads", () => {
  it("uploads 20 MB in 6 MB chunks, resumes after a chunk is cut mid-way, and stores identical bytes", async () => {
    const data = randomBytes(20 * 1024 * 1024);
    const objectName = `${a.orgId}/videos/big.bin`;
    const token = await tokenFor(a.member);
    const urlStorage = new MemoryUrlStorage();

    // First attempt: cut off during the second chunk's PATCH.
    let uploadUrl: string | null = null;
    await new Promise<void>((resolve, reject) => {
      let cut = false;
      const u: tus.Upload = new tus.Upload(
        data,
        tusOptions(
          {
            token,
            objectName,
            urlStorage,
            metadata: { bucketName: BUCKET, objectName, contentType: "video/mp4", cacheControl: "3600", metadata: JSON.stringify({ take: 1 }) },
            onProgress: (sent) => {
              if (!cut && sent > CHUNK + 2 * 1024 * 1024) {
                cut = true;
                uploadUrl = u.url;
                void u.abort().then(() => resolve());
              }
            },
          },
          { resolve: () => reject(new Error("the upload finished before it was cut")), reject },
          () => u,
        ),
      );
      u.start();
    });
    expect(uploadUrl).toMatch(new RegExp(`^${ENDPOINT}/[A-Za-z0-9_-]+$`));
    // The id in the URL is base64url(bucket/object/version).
    const [bucketName, ...rest] = Buffer.from(uploadUrl!.split("/").pop()!, "base64url").toString("utf8").split("/");
    const version = rest.pop();
    expect(bucketName).toBe(BUCKET);
    expect(rest.join("/")).toBe(objectName);

    // The server kept what arrived, and no object exists yet.
    await new Promise((r) => setTimeout(r, 300));
    const head = await fetch(uploadUrl!, { method: "HEAD", headers: { "tus-resumable": "1.0.0", authorization: `Bearer ${token}` } });
    expect(head.status).toBe(200);
    const offset = Number(head.headers.get("upload-offset"));
    expect(head.headers.get("upload-length")).toBe(String(data.length));
    expect(offset).toBeGreaterThan(0);
    expect(offset).toBeLessThan(data.length);
    expect(await objectRow(BUCKET, objectName)).toBeUndefined();

    // Second attempt: found through the stored URL, it continues from the server's offset.
    const patchOffsets: number[] = [];
    const resumed = await new Promise<tus.Upload>((resolve, reject) => {
      const u: tus.Upload = new tus.Upload(
        data,
        tusOptions(
          {
            token,
            objectName,
            urlStorage,
            onBeforeRequest: (req) => {
              if (req.getMethod() === "PATCH") patchOffsets.push(Number(req.getHeader("Upload-Offset")));
            },
          },
          { resolve, reject },
          () => u,
        ),
      );
      void u.findPreviousUploads().then((previous) => {
        expect(previous.length).toBe(1);
        u.resumeFromPreviousUpload(previous[0]!);
        u.start();
      });
    });
    expect(resumed.url).toBe(uploadUrl);
    expect(patchOffsets[0]).toBe(offset);
    expect(patchOffsets.length).toBe(Math.ceil((data.length - offset) / CHUNK));

    const row = await objectRow(BUCKET, objectName);
    expect(row).toMatchObject({ owner_id: a.member.id, owner: a.member.id, version, user_metadata: { take: 1 } });
    expect(row!.metadata).toMatchObject({
      size: data.length,
      contentLength: data.length,
      mimetype: "video/mp4",
      cacheControl: "max-age=3600",
      eTag: `"${createHash("md5").update(data).digest("hex")}"`,
      httpStatusCode: 200,
    });
    const { data: blob, error } = await (await userClient(a.viewer)).storage.from(BUCKET).download(objectName);
    expect(error).toBeNull();
    expect(sha256(await blob!.arrayBuffer())).toBe(sha256(data));
  });

  it("refuses another org's folder (403) and a viewer, before any byte or row", async () => {
    const objectName = `${a.orgId}/videos/intruder.bin`;
    for (const user of [b.member, a.viewer]) {
      const res = await failure(randomBytes(1024), { token: await tokenFor(user), objectName });
      expect(res).toEqual({ status: 403, body: "new row violates row-level security policy" });
    }
    expect(await objectRow(BUCKET, objectName)).toBeUndefined();
    expect(await tusUploadsFor(BUCKET, objectName)).toEqual([]);
    expect(await objectFiles(BUCKET, objectName)).toEqual([]);
  });

  it("requires a JWT: without one the JSON AccessDenied reply comes before TUS", async () => {
    const res = await failure(randomBytes(10), { objectName: `${a.orgId}/videos/anon.bin` });
    expect(res.status).toBe(400);
    expect(JSON.parse(res.body)).toMatchObject({ statusCode: "403", code: "AccessDenied", error: "Unauthorized" });
  });

  it("refuses an existing key with 409 unless x-upsert is set", async () => {
    const objectName = `${a.orgId}/videos/again.bin`;
    const token = await tokenFor(a.member);
    await upload(Buffer.from("first"), { token, objectName });
    expect(await failure(Buffer.from("second"), { token, objectName })).toEqual({ status: 409, body: "The resource already exists" });
    await upload(Buffer.from("third"), { token, objectName, upsert: true });
    const row = await objectRow(BUCKET, objectName);
    expect(row!.metadata.size).toBe(5);
    const { data } = await (await userClient(a.member)).storage.from(BUCKET).download(objectName);
    expect(await data!.text()).toBe("third");
    expect(await objectFiles(BUCKET, objectName)).toEqual([row!.version]);
  });

  it("enforces bucket limits with real statuses: 413, 415, and 404 for a missing bucket", async () => {
    const id = uniqueBucket("tus-limits");
    buckets.push(id);
    expect((await service.storage.createBucket(id, { public: false, fileSizeLimit: 1024 * 1024, allowedMimeTypes: ["image/*"] })).error).toBeNull();
    const token = stack.serviceRoleKey;

    const big = await failure(randomBytes(2 * 1024 * 1024), { token, bucket: id, objectName: "big.png", contentType: "image/png" });
    expect(big).toEqual({ status: 413, body: "Maximum size exceeded\n" });
    const pdf = await failure(randomBytes(100), { token, bucket: id, objectName: "doc.pdf", contentType: "application/pdf" });
    expect(pdf).toEqual({ status: 415, body: "mime type application/pdf is not supported" });
    const nowhere = await failure(randomBytes(100), { token, bucket: uniqueBucket("missing"), objectName: "x.png", contentType: "image/png" });
    expect(nowhere).toEqual({ status: 404, body: "Bucket not found" });
    for (const key of ["big.png", "doc.pdf"]) {
      expect(await objectRow(id, key)).toBeUndefined();
      expect(await tusUploadsFor(id, key)).toEqual([]);
      expect(await objectFiles(id, key)).toEqual([]);
    }
    await upload(randomBytes(1024 * 1024), { token, bucket: id, objectName: "fits.png", contentType: "image/png" });
    expect((await objectRow(id, "fits.png"))!.metadata.size).toBe(1024 * 1024);
  });

  it("rejects bad names and missing metadata with 400", async () => {
    const token = await tokenFor(a.member);
    expect(await failure(randomBytes(10), { token, objectName: `${a.orgId}/../${b.orgId}/x.bin` })).toEqual({
      status: 400,
      body: `Invalid key: ${a.orgId}/../${b.orgId}/x.bin`,
    });
    expect(await failure(randomBytes(10), { token, objectName: "x", metadata: { bucketName: BUCKET } })).toEqual({ status: 400, body: "Invalid key: " });
    const noMetadata = await fetch(ENDPOINT, {
      method: "POST",
      headers: { "tus-resumable": "1.0.0", "upload-length": "10", authorization: `Bearer ${token}` },
    });
    expect(noMetadata.status).toBe(400);
    expect(await noMetadata.text()).toBe("Metadata header is required");
  });

  it("uploads to a signed upload URL's token through /upload/resumable/sign, owned by the signer", async () => {
    const member = await userClient(a.member);
    const objectName = `${a.orgId}/videos/signed.bin`;
    const { data: signed, error } = await member.storage.from(BUCKET).createSignedUploadUrl(objectName);
    expect(error).toBeNull();
    const bytes = randomBytes(7 * 1024 * 1024);
    // No Authorization header at all: the x-signature token is the credential.
    await upload(bytes, { endpoint: `${ENDPOINT}/sign`, objectName, headers: { "x-signature": signed!.token } });
    const row = await objectRow(BUCKET, objectName);
    expect(row!.owner_id).toBe(a.member.id);
    expect(row!.metadata.size).toBe(bytes.length);

    // The token is for that key only; a forged one is refused.
    const other = await failure(randomBytes(10), { endpoint: `${ENDPOINT}/sign`, objectName: `${a.orgId}/videos/other.bin`, headers: { "x-signature": signed!.token } });
    expect(other).toEqual({ status: 400, body: "Invalid signature" });
    const forged = await failure(randomBytes(10), { endpoint: `${ENDPOINT}/sign`, objectName, upsert: true, headers: { "x-signature": `${signed!.token}x` } });
    expect(forged.status).toBe(400);
    expect(forged.body).toBe("signature verification failed");
  });
});
