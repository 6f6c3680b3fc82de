// Reading objects: authenticated download, HEAD and info (anonymous access allowed), the
// public route, and signed-URL downloads. Private buckets are read as the caller (SELECT
// policies decide); public buckets and signed URLs are read as superuser, as in the real server.
import { type Caller, mustBeAuthenticated, withCaller, withSuperuser } from "../caller.ts";
import { callerOf, type RouteContext, scopeOf } from "../context.ts";
import { ERRORS } from "../errors.ts";
import { sendJson } from "../http.ts";
import { findBucket, mustFindObject, type ObjectRow } from "../queries.ts";
import { renderObject } from "../render.ts";
import { mustBeValidKey } from "../validate.ts";

/**
 * The object as the anon-allowed routes find it. Without a valid JWT only public buckets exist
 * (private ones answer Bucket not found, RLS not tried); with one, a private bucket's object
 * is looked up as the caller, so RLS decides.
 */
async function findReadable(ctx: RouteContext, caller: Caller, operation: string): Promise<ObjectRow> {
  const bucketId = ctx.params.bucket!;
  const key = ctx.params.key;
  mustBeValidKey(key);
  const scope = scopeOf(ctx, operation);
  const bucket = await withSuperuser(ctx.deps.pool, scope, (c) => findBucket(c, bucketId));
  if (!bucket || (!caller.authenticated && !bucket.public)) throw ERRORS.NoSuchBucket();
  return bucket.public
    ? await withSuperuser(ctx.deps.pool, scope, (c) => mustFindObject(c, bucketId, key))
    : await withCaller(ctx.deps.pool, caller, scope, (c) => mustFindObject(c, bucketId, key));
}

async function findPublic(ctx: RouteContext, operation: string): Promise<ObjectRow> {
  const bucketId = ctx.params.bucket!;
  const key = ctx.params.key;
  mustBeValidKey(key);
  return await withSuperuser(ctx.deps.pool, scopeOf(ctx, operation), async (c) => {
    const bucket = await findBucket(c, bucketId);
    if (!bucket?.public) throw ERRORS.NoSuchBucket();
    return await mustFindObject(c, bucketId, key);
  });
}

function downloadParam(ctx: RouteContext): string | null {
  return ctx.query.has("download") ? (ctx.query.get("download") ?? "") : null;
}

function infoBody(obj: ObjectRow) {
  const meta = obj.metadata ?? {};
  return {
    id: obj.id,
    name: obj.name,
    version: obj.version,
    bucket_id: obj.bucket_id,
    size: meta.size ?? null,
    content_type: meta.mimetype ?? null,
    cache_control: meta.cacheControl ?? null,
    etag: meta.eTag ?? null,
    metadata: obj.user_metadata,
    last_modified: obj.updated_at,
    created_at: obj.created_at,
  };
}

/**
 * GET/HEAD /object/{bucket}/{key} allow anonymous access; /object/authenticated/... needs a
 * valid JWT, as in the real server.
 */
export function getObjectRoute(opts: { requireJwt: boolean }) {
  return async (ctx: RouteContext): Promise<void> => {
    const caller = await callerOf(ctx);
    if (opts.requireJwt) mustBeAuthenticated(caller);
    const head = ctx.req.method === "HEAD";
    const obj = await findReadable(ctx, caller, head ? "object.head_authenticated_info" : "storage.object.get_authenticated");
    await renderObject(ctx.req, ctx.res, ctx.deps.store, obj, { download: head ? null : downloadParam(ctx), head });
  };
}

export async function getPublicObjectRoute(ctx: RouteContext): Promise<void> {
  const obj = await findPublic(ctx, ctx.req.method === "HEAD" ? "storage.object.info_public" : "storage.object.get_public");
  await renderObject(ctx.req, ctx.res, ctx.deps.store, obj, { download: downloadParam(ctx), head: ctx.req.method === "HEAD" });
}

/** GET /object/info/{bucket}/{key} allows anonymous access; /object/info/authenticated/... does not. */
export function getObjectInfoRoute(opts: { requireJwt: boolean }) {
  return async (ctx: RouteContext): Promise<void> => {
    const caller = await callerOf(ctx);
    if (opts.requireJwt) mustBeAuthenticated(caller);
    const obj = await findReadable(ctx, caller, "object.get_authenticated_info");
    sendJson(ctx.res, 200, infoBody(obj), { "cache-control": "no-cache", ...(obj.metadata?.eTag ? { etag: obj.metadata.eTag } : {}) });
  };
}

export async function getPublicObjectInfoRoute(ctx: RouteContext): Promise<void> {
  const obj = await findPublic(ctx, "storage.object.info_public");
  sendJson(ctx.res, 200, infoBody(obj), { "cache-control": "no-cache", ...(obj.metadata?.eTag ? { etag: obj.metadata.eTag } : {}) });
}

/** GET /object/sign/{bucket}/{key}?token=: the token alone authorises the read. */
export async function getSignedObjectRoute(ctx: RouteContext): Promise<void> {
  const token = ctx.query.get("token");
  if (!token) throw ERRORS.InvalidRequest("querystring must have required property 'token'");
  const bucketId = ctx.params.bucket!;
  const key = ctx.params.key;
  mustBeValidKey(key);
  const payload = await ctx.deps.signer.verify(token, `${bucketId}/${key}`, "download");
  const obj = await withSuperuser(ctx.deps.pool, scopeOf(ctx, "storage.object.get_signed"), (c) => mustFindObject(c, bucketId, key));
  await renderObject(ctx.req, ctx.res, ctx.deps.store, obj, {
    download: downloadParam(ctx),
    head: ctx.req.method === "HEAD",
    expires: typeof payload.exp === "number" ? new Date(payload.exp * 1000) : undefined,
  });
}
