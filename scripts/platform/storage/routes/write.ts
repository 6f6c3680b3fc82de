// Writing objects: upload (POST, x-upsert), update (PUT, always upsert), upload to a signed
// URL, remove, move and copy. Each checks the caller's policies the way the real server does
// (a dry run as the caller, or the caller's own DELETE), then writes as superuser.
import { randomUUID } from "node:crypto";
import { z } from "zod";
import { mustBeAuthenticated, ownerUuid, withCaller, dryRun, withSuperuser } from "../caller.ts";
import { callerOf, type RouteContext, scopeOf } from "../context.ts";
import { ERRORS } from "../errors.ts";
import { readJson, sendJson } from "../http.ts";
import {
  deleteObjects,
  moveObjectRow,
  mustFindBucket,
  mustFindObject,
  probeObjectWrite,
  writeObject,
  type ObjectRow,
} from "../queries.ts";
import { uploadObject } from "../upload.ts";
import { isValidKey, mustBeAllowedMimeType, mustBeValidKey, parseBody } from "../validate.ts";

async function upload(ctx: RouteContext, operation: string, upsert: boolean): Promise<void> {
  const caller = await callerOf(ctx);
  mustBeAuthenticated(caller);
  const bucket = ctx.params.bucket!;
  const key = ctx.params.key ?? "";
  const { id } = await uploadObject(ctx.deps, ctx.req, { bucket, key, upsert, ownerId: caller.sub, checkAs: caller, scope: scopeOf(ctx, operation) });
  sendJson(ctx.res, 200, { Id: id, Key: `${bucket}/${key}` });
}

export const uploadRoute = (ctx: RouteContext) => upload(ctx, "storage.object.upload", ctx.req.headers["x-upsert"] === "true");
export const updateRoute = (ctx: RouteContext) => upload(ctx, "storage.object.upload_update", true);

/** PUT /object/upload/sign/{bucket}/{key}?token=: owner and upsert come from the token. */
export async function uploadSignedRoute(ctx: RouteContext): Promise<void> {
  const token = ctx.query.get("token");
  if (!token) throw ERRORS.InvalidRequest("querystring must have required property 'token'");
  const bucket = ctx.params.bucket!;
  const key = ctx.params.key ?? "";
  mustBeValidKey(key);
  const payload = await ctx.deps.signer.verify(token, `${bucket}/${key}`, "upload");
  await uploadObject(ctx.deps, ctx.req, {
    bucket,
    key,
    upsert: payload.upsert === true,
    ownerId: typeof payload.owner === "string" ? payload.owner : undefined,
    scope: scopeOf(ctx, "storage.object.upload_signed"),
  });
  sendJson(ctx.res, 200, { Key: `${bucket}/${key}` });
}

const RemoveBody = z.object({ prefixes: z.array(z.string()).min(1).max(1000) });

/** DELETE /object/{bucket}: deletes what the caller may delete (and see); the rest is skipped. */
export async function removeRoute(ctx: RouteContext): Promise<void> {
  const caller = await callerOf(ctx);
  mustBeAuthenticated(caller);
  const body = parseBody(RemoveBody, await readJson(ctx.req));
  const bucket = ctx.params.bucket!;
  // A name that is not a valid key names no object.
  const names = body.prefixes.filter(isValidKey);
  const deleted = names.length
    ? await withCaller(ctx.deps.pool, caller, scopeOf(ctx, "storage.object.delete_many"), (c) => deleteObjects(c, bucket, names))
    : [];
  for (const obj of deleted) if (obj.version) await ctx.deps.store.remove(obj.bucket_id, obj.name, obj.version);
  sendJson(ctx.res, 200, deleted);
}

/** DELETE /object/{bucket}/{key} (not used by storage-js, part of the API). */
export async function deleteOneRoute(ctx: RouteContext): Promise<void> {
  const caller = await callerOf(ctx);
  mustBeAuthenticated(caller);
  const bucket = ctx.params.bucket!;
  const key = ctx.params.key;
  mustBeValidKey(key);
  const [obj] = await withCaller(ctx.deps.pool, caller, scopeOf(ctx, "storage.object.delete"), (c) => deleteObjects(c, bucket, [key]));
  if (!obj) throw ERRORS.NoSuchKey();
  if (obj.version) await ctx.deps.store.remove(obj.bucket_id, obj.name, obj.version);
  sendJson(ctx.res, 200, { message: "Successfully deleted" });
}

const MoveBody = z.object({
  bucketId: z.string(),
  sourceKey: z.string(),
  destinationKey: z.string(),
  destinationBucket: z.string().optional(),
});

/**
 * POST /object/move: the caller must see the source (SELECT) and be allowed to update it into
 * its new name (UPDATE, both USING and WITH CHECK), tried as a dry run; the bytes get a new
 * version, and the row is renamed as superuser.
 */
export async function moveRoute(ctx: RouteContext): Promise<void> {
  const caller = await callerOf(ctx);
  mustBeAuthenticated(caller);
  const body = parseBody(MoveBody, await readJson(ctx.req));
  mustBeValidKey(body.sourceKey);
  mustBeValidKey(body.destinationKey);
  const from = { bucket: body.bucketId, name: body.sourceKey };
  const destBucket = body.destinationBucket || body.bucketId;
  const scope = scopeOf(ctx, "storage.object.move");
  const { pool, store } = ctx.deps;

  const source = await withCaller(pool, caller, scope, (c) => mustFindObject(c, from.bucket, from.name));
  await withSuperuser(pool, scope, (c) => mustFindBucket(c, destBucket));
  const to = { bucket: destBucket, name: body.destinationKey, version: randomUUID(), owner: ownerUuid(caller.sub), owner_id: caller.sub ?? null };
  await dryRun(pool, caller, scope, async (c) => {
    if (!(await moveObjectRow(c, from, to))) throw ERRORS.NoSuchKey();
  });

  const sourceVersion = source.version ?? "";
  if (!(await store.stat(from.bucket, from.name, sourceVersion))) throw ERRORS.BytesNotFound();
  await store.adopt(store.path(from.bucket, from.name, sourceVersion), to.bucket, to.name, to.version);
  let moved: { id: string; previousVersion: string | null };
  try {
    moved = await withSuperuser(pool, scope, async (c) => {
      await c.query("select pg_advisory_xact_lock(hashtextextended($1, 0))", [`${to.bucket}/${to.name}`]);
      const current = await mustFindObject(c, from.bucket, from.name, { forUpdate: true });
      const row = await moveObjectRow(c, from, to);
      if (!row) throw ERRORS.NoSuchKey();
      return { id: row.id, previousVersion: current.version };
    });
  } catch (err) {
    await store.remove(to.bucket, to.name, to.version);
    throw err;
  }
  // The source's bytes live on under the new version; its old name for them goes.
  if (moved.previousVersion) await store.remove(from.bucket, from.name, moved.previousVersion);
  sendJson(ctx.res, 200, { message: "Successfully moved", Id: moved.id, Key: body.destinationKey });
}

const CopyBody = z.object({
  bucketId: z.string(),
  sourceKey: z.string(),
  destinationKey: z.string(),
  destinationBucket: z.string().optional(),
  copyMetadata: z.boolean().optional(),
  metadata: z.object({ cacheControl: z.string().optional(), mimetype: z.string().optional(), contentEncoding: z.string().optional() }).optional(),
});

/**
 * POST /object/copy: the caller must see the source (SELECT) and pass the INSERT (or, with
 * x-upsert, upsert) dry run at the destination; the destination bucket's limits apply.
 */
export async function copyRoute(ctx: RouteContext): Promise<void> {
  const caller = await callerOf(ctx);
  mustBeAuthenticated(caller);
  const body = parseBody(CopyBody, await readJson(ctx.req));
  mustBeValidKey(body.sourceKey);
  mustBeValidKey(body.destinationKey);
  const upsert = ctx.req.headers["x-upsert"] === "true";
  const destBucketId = body.destinationBucket || body.bucketId;
  const scope = scopeOf(ctx, "storage.object.copy");
  const { pool, store, config } = ctx.deps;

  const source = await withCaller(pool, caller, scope, (c) => mustFindObject(c, body.bucketId, body.sourceKey));
  const destBucket = await withSuperuser(pool, scope, (c) => mustFindBucket(c, destBucketId));
  const meta = { ...(source.metadata ?? {}) } as Record<string, unknown>;
  const copyMetadata = body.copyMetadata !== false;
  if (!copyMetadata && body.metadata) {
    if (body.metadata.cacheControl !== undefined) meta.cacheControl = body.metadata.cacheControl;
    if (body.metadata.mimetype !== undefined) meta.mimetype = body.metadata.mimetype;
  }
  const mimetype = typeof meta.mimetype === "string" ? meta.mimetype : "application/octet-stream";
  const size = Number(meta.size ?? 0);
  const limit = Math.min(destBucket.file_size_limit || config.fileSizeLimit, config.fileSizeLimit);
  if (size > limit) throw ERRORS.EntityTooLarge();
  mustBeAllowedMimeType(mimetype, destBucket.allowed_mime_types);

  const version = randomUUID();
  const row = {
    bucket_id: destBucketId,
    name: body.destinationKey,
    owner: ownerUuid(caller.sub),
    owner_id: caller.sub ?? null,
    version,
    metadata: { mimetype, contentLength: size } as Record<string, unknown>,
    user_metadata: copyMetadata ? source.user_metadata : null,
  };
  await dryRun(pool, caller, scope, (c) => probeObjectWrite(c, row, upsert));

  const sourceVersion = source.version ?? "";
  if (!(await store.stat(body.bucketId, body.sourceKey, sourceVersion))) throw ERRORS.BytesNotFound();
  await store.adopt(store.path(body.bucketId, body.sourceKey, sourceVersion), destBucketId, body.destinationKey, version);
  let written: { id: string; replaced?: string; row: ObjectRow };
  try {
    written = await withSuperuser(pool, scope, async (c) => {
      const result = await writeObject(c, { ...row, metadata: { ...meta, lastModified: new Date().toISOString() } }, upsert);
      return { ...result, row: await mustFindObject(c, destBucketId, body.destinationKey) };
    });
  } catch (err) {
    await store.remove(destBucketId, body.destinationKey, version);
    throw err;
  }
  if (written.replaced) await store.remove(destBucketId, body.destinationKey, written.replaced);
  sendJson(ctx.res, 200, { Id: written.id, Key: `${destBucketId}/${body.destinationKey}`, ...written.row });
}
