// Signed URLs through supabase-js: made only for objects (or uploads) the caller's policies
// allow, then usable by anyone holding the token until it expires. Expired, tampered,
// foreign-path and wrong-scope tokens get the real server's errors.
import type { SupabaseClient } from "@supabase/supabase-js";
import { SignJWT } from "jose";
import { beforeAll, describe, expect, it } from "vitest";
import { createTeam, stack, type Team } from "../helpers/db.ts";
import { client, userClient } from "../helpers/supabase.ts";
import { expectStorageError, objectFiles, objectRow } from "../helpers/storage.ts";

const BUCKET = "org-files";
let a: Team;
let b: Team;
let memberA: SupabaseClient;
let viewerA: SupabaseClient;
let memberB: SupabaseClient;
const paths = { report: "", other: "", bFile: "" };

async function errorOf(res: Response) {
  expect(res.status).toBe(400);
  return (await res.json()) as { statusCode: string; code: string; error: string; message: string };
}

/** A token's parts, to tamper with. */
function parts(token: string) {
  const [header, payload, signature] = token.split(".") as [string, string, string];
  return { header, payload: JSON.parse(Buffer.from(payload, "base64url").toString()) as Record<string, unknown>, signature };
}
const encode = (o: unknown) => Buffer.from(JSON.stringify(o)).toString("base64url");
const tokenOf = (url: string) => new URL(url).searchParams.get("token")!;

beforeAll(async () => {
  [a, b] = await Promise.all([createTeam("Signed A"), createTeam("Signed B")]);
  [memberA, viewerA, memberB] = await Promise.all([userClient(a.member), userClient(a.viewer), userClient(b.member)]);
  paths.report = `${a.orgId}/signed/report.txt`;
  paths.other = `${a.orgId}/signed/other.txt`;
  paths.bFile = `${b.orgId}/signed/b.txt`;
  for (const [who, p, body] of [
    [memberA, paths.report, "report"],
    [memberA, paths.other, "other"],
    [memberB, paths.bFile, "b"],
  ] as const) {
    expect((await who.storage.from(BUCKET).upload(p, new Blob([body], { type: "text/plain" }))).error).toBeNull();
  }
});

describe("signed download URLs", () => {
  it("a reader signs a URL that works with no token at all, until it expires", async () => {
    const { data, error } = await viewerA.storage.from(BUCKET).createSignedUrl(paths.report, 60, { download: true });
    expect(error).toBeNull();
    expect(data!.signedUrl).toMatch(new RegExp(`^${stack.supabaseUrl}/storage/v1/object/sign/${BUCKET}/${paths.report}\\?token=[^&]+&download=$`));
    const res = await fetch(data!.signedUrl);
    expect(res.status).toBe(200);
    expect(await res.text()).toBe("report");
    expect(res.headers.get("content-disposition")).toBe("attachment;");
    const exp = parts(tokenOf(data!.signedUrl)).payload.exp as number;
    expect(new Date(res.headers.get("expires")!).getTime()).toBe(exp * 1000);

    const claims = parts(tokenOf(data!.signedUrl)).payload;
    expect(claims).toMatchObject({ url: `${BUCKET}/${paths.report}`, scope: "download" });
    expect(claims.exp! as number - (claims.iat as number)).toBe(60);
    expect(claims).not.toHaveProperty("role");
  });

  it("another org's member and anon cannot sign it", async () => {
    for (const who of [memberB, client()]) {
      const { data, error } = await who.storage.from(BUCKET).createSignedUrl(paths.report, 60);
      expect(data).toBeNull();
      expectStorageError(error, { statusCode: "404", code: "NoSuchKey", message: "Object not found" });
    }
  });

  it("createSignedUrls signs what the caller sees and reports the rest", async () => {
    const missing = `${a.orgId}/signed/missing.txt`;
    const { data, error } = await memberA.storage.from(BUCKET).createSignedUrls([paths.report, paths.bFile, missing], 60);
    expect(error).toBeNull();
    expect(data![0]).toMatchObject({ error: null, path: paths.report });
    expect(await (await fetch(data![0]!.signedUrl!)).text()).toBe("report");
    for (const [i, p] of [[1, paths.bFile], [2, missing]] as const) {
      expect(data![i]).toEqual({
        error: "Either the object does not exist or you do not have access to it",
        path: p,
        signedURL: null,
        signedUrl: null,
      });
    }
  });

  it("an expired URL gets ExpiredToken", async () => {
    const { data } = await memberA.storage.from(BUCKET).createSignedUrl(paths.report, 1);
    await new Promise((r) => setTimeout(r, 2100));
    expect(await errorOf(await fetch(data!.signedUrl))).toEqual({
      statusCode: "400",
      code: "ExpiredToken",
      error: "ExpiredToken",
      message: "The provided token has expired.",
    });
  });

  it("a tampered token gets InvalidJWT; another object's token gets InvalidSignature", async () => {
    const { data } = await memberA.storage.from(BUCKET).createSignedUrl(paths.report, 60);
    const token = tokenOf(data!.signedUrl);
    const t = parts(token);
    const pointedElsewhere = `${t.header}.${encode({ ...t.payload, url: `${BUCKET}/${paths.bFile}` })}.${t.signature}`;
    const res = await fetch(`${stack.supabaseUrl}/storage/v1/object/sign/${BUCKET}/${paths.bFile}?token=${pointedElsewhere}`);
    expect(await errorOf(res)).toMatchObject({ statusCode: "400", code: "InvalidJWT", message: "signature verification failed" });

    const foreign = await new SignJWT({ url: `${BUCKET}/${paths.bFile}`, scope: "download" })
      .setProtectedHeader({ alg: "HS256" })
      .setIssuedAt()
      .setExpirationTime("1h")
      .sign(new TextEncoder().encode("not-the-project-secret-not-the-project-secret"));
    expect((await errorOf(await fetch(`${stack.supabaseUrl}/storage/v1/object/sign/${BUCKET}/${paths.bFile}?token=${foreign}`))).code).toBe("InvalidJWT");

    const reused = await fetch(`${stack.supabaseUrl}/storage/v1/object/sign/${BUCKET}/${paths.other}?token=${token}`);
    expect(await errorOf(reused)).toEqual({ statusCode: "400", code: "InvalidSignature", error: "InvalidSignature", message: "Invalid signature" });

    const garbage = await fetch(`${stack.supabaseUrl}/storage/v1/object/sign/${BUCKET}/${paths.report}?token=garbage`);
    expect((await errorOf(garbage)).code).toBe("InvalidJWT");
  });

  it("a signed URL stops working once its object is gone", async () => {
    const p = `${a.orgId}/signed/temp.txt`;
    await memberA.storage.from(BUCKET).upload(p, new Blob(["temp"]));
    const { data } = await memberA.storage.from(BUCKET).createSignedUrl(p, 60);
    await memberA.storage.from(BUCKET).remove([p]);
    expect(await errorOf(await fetch(data!.signedUrl))).toMatchObject({ statusCode: "404", code: "NoSuchKey" });
  });
});

describe("signed upload URLs", () => {
  it("a writer signs an upload URL; anyone holding the token uploads once, owned by the signer", async () => {
    const p = `${a.orgId}/signed/upload.txt`;
    const { data, error } = await memberA.storage.from(BUCKET).createSignedUploadUrl(p);
    expect(error).toBeNull();
    expect(data!.path).toBe(p);
    expect(data!.signedUrl).toBe(`${stack.supabaseUrl}/storage/v1/object/upload/sign/${BUCKET}/${p}?token=${data!.token}`);
    expect(parts(data!.token).payload).toMatchObject({ owner: a.member.id, url: `${BUCKET}/${p}`, upsert: false, scope: "upload" });

    const anon = client();
    const up = await anon.storage.from(BUCKET).uploadToSignedUrl(p, data!.token, new Blob(["via token"], { type: "text/plain" }));
    expect(up.error).toBeNull();
    expect(up.data).toEqual({ path: p, fullPath: `${BUCKET}/${p}` });
    const row = await objectRow(BUCKET, p);
    expect(row).toMatchObject({ owner_id: a.member.id });
    expect((await (await memberA.storage.from(BUCKET).download(p)).data!.text())).toBe("via token");

    // Without upsert in the token, a second upload is a conflict and changes nothing.
    const again = await anon.storage.from(BUCKET).uploadToSignedUrl(p, data!.token, new Blob(["again"]));
    expectStorageError(again.error, { statusCode: "409", code: "KeyAlreadyExists" });
    expect((await objectRow(BUCKET, p))!.version).toBe(row!.version);
    expect(await objectFiles(BUCKET, p)).toEqual([row!.version]);
  });

  it("an upsert token replaces the object", async () => {
    const p = `${a.orgId}/signed/upsert.txt`;
    await memberA.storage.from(BUCKET).upload(p, new Blob(["old"]));
    const { data } = await memberA.storage.from(BUCKET).createSignedUploadUrl(p, { upsert: true });
    expect((await client().storage.from(BUCKET).uploadToSignedUrl(p, data!.token, Buffer.from("new"))).error).toBeNull();
    expect(await (await memberA.storage.from(BUCKET).download(p)).data!.text()).toBe("new");
  });

  it("viewers and other orgs cannot sign uploads; tokens work for their own path and scope only", async () => {
    const p = `${a.orgId}/signed/nope.txt`;
    for (const who of [viewerA, memberB]) {
      expectStorageError((await who.storage.from(BUCKET).createSignedUploadUrl(p)).error, { statusCode: "403", code: "AccessDenied" });
    }
    const { data } = await memberA.storage.from(BUCKET).createSignedUploadUrl(p);
    const elsewhere = await client().storage.from(BUCKET).uploadToSignedUrl(`${a.orgId}/signed/elsewhere.txt`, data!.token, new Blob(["x"]));
    expectStorageError(elsewhere.error, { statusCode: "400", code: "InvalidSignature", message: "Invalid signature" });
    // An upload token is not a download token.
    const asDownload = await fetch(`${stack.supabaseUrl}/storage/v1/object/sign/${BUCKET}/${p}?token=${data!.token}`);
    expect(await errorOf(asDownload)).toMatchObject({ code: "InvalidSignature", message: "Token is not scoped for download" });
    // Flipping upsert on breaks the signature.
    const t = parts(data!.token);
    const flipped = `${t.header}.${encode({ ...t.payload, upsert: true })}.${t.signature}`;
    expectStorageError((await client().storage.from(BUCKET).uploadToSignedUrl(p, flipped, new Blob(["x"]))).error, { statusCode: "400", code: "InvalidJWT" });
    for (const key of [p, `${a.orgId}/signed/elsewhere.txt`]) {
      expect(await objectRow(BUCKET, key)).toBeUndefined();
      expect(await objectFiles(BUCKET, key)).toEqual([]);
    }
  });
});
