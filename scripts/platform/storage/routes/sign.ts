// Making signed URLs. A download URL needs the object to be visible to the caller (SELECT);
// an upload URL needs the caller to pass the INSERT (or upsert) dry run now, because the
// upload itself will run on the token alone. URLs are relative, as storage-js expects.
import { randomUUID } from "node:crypto";
import { z } from "zod";
import { dryRun, mustBeAuthenticated, ownerUuid, withCaller, withSuperuser } from "../caller.ts";
import { callerOf, type RouteContext, scopeOf } from "../context.ts";
import { readJson, sendJson } from "../http.ts";
import { findObjectNames, mustFindBucket, mustFindObject, probeObjectWrite } from "../queries.ts";
import { isValidKey, mustBeValidKey, parseBody } from "../validate.ts";

const SignBody = z.object({ expiresIn: z.number().int().min(1), transform: z.record(z.string(), z.unknown()).optional() });
const SignManyBody = z.object({ expiresIn: z.number().int().min(1), paths: z.array(z.string()).min(1) });

export async function signUrlRoute(ctx: RouteContext): Promise<void> {
  const caller = await callerOf(ctx);
  mustBeAuthenticated(caller);
  // Image transformations are not enabled here, so a `transform` option is ignored.
  const body = parseBody(SignBody, await readJson(ctx.req));
  const bucket = ctx.params.bucket!;
  const key = ctx.params.key;
  mustBeValidKey(key);
  await withCaller(ctx.deps.pool, caller, scopeOf(ctx, "storage.object.sign"), (c) => mustFindObject(c, bucket, key));
  const url = `${bucket}/${key}`;
  const token = await ctx.deps.signer.sign({ url, scope: "download" }, body.expiresIn);
  sendJson(ctx.res, 200, { signedURL: `/object/sign/${url}?token=${token}` });
}

export async function signUrlsRoute(ctx: RouteContext): Promise<void> {
  const caller = await callerOf(ctx);
  mustBeAuthenticated(caller);
  const body = parseBody(SignManyBody, await readJson(ctx.req));
  const bucket = ctx.params.bucket!;
  const valid = body.paths.filter(isValidKey);
  const visible = valid.length
    ? await withCaller(ctx.deps.pool, caller, scopeOf(ctx, "storage.object.sign_many"), (c) => findObjectNames(c, bucket, valid))
    : new Set<string>();
  const signed = await Promise.all(
    body.paths.map(async (path) => {
      if (!visible.has(path)) return { error: "Either the object does not exist or you do not have access to it", path, signedURL: null };
      const token = await ctx.deps.signer.sign({ url: `${bucket}/${path}`, scope: "download" }, body.expiresIn);
      return { error: null, path, signedURL: `/object/sign/${bucket}/${path}?token=${token}` };
    }),
  );
  sendJson(ctx.res, 200, signed);
}

export async function signUploadUrlRoute(ctx: RouteContext): Promise<void> {
  const caller = await callerOf(ctx);
  mustBeAuthenticated(caller);
  await readJson(ctx.req);
  const bucket = ctx.params.bucket!;
  const key = ctx.params.key;
  mustBeValidKey(key);
  const upsert = ctx.req.headers["x-upsert"] === "true";
  const scope = scopeOf(ctx, "storage.object.sign_upload_url");
  await withSuperuser(ctx.deps.pool, scope, (c) => mustFindBucket(c, bucket));
  await dryRun(ctx.deps.pool, caller, scope, (c) =>
    probeObjectWrite(
      c,
      { bucket_id: bucket, name: key, owner: ownerUuid(caller.sub), owner_id: caller.sub ?? null, version: randomUUID(), metadata: {}, user_metadata: null },
      upsert,
    ),
  );
  const url = `${bucket}/${key}`;
  const token = await ctx.deps.signer.sign(
    { owner: caller.sub, url, upsert, scope: "upload" },
    ctx.deps.config.signedUploadUrlExpiry,
  );
  sendJson(ctx.res, 200, { url: `/object/upload/sign/${url}?token=${token}`, token });
}
