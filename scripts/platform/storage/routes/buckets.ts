// Bucket routes. Every read and write of storage.buckets runs as the caller, so RLS on that
// table decides: with no policies (as on a fresh project) users see and change no bucket,
// while service_role, which bypasses RLS, manages them all.
import { z } from "zod";
import { mustBeAuthenticated, ownerUuid, withCaller, withSuperuser } from "../caller.ts";
import { callerOf, type RouteContext, scopeOf } from "../context.ts";
import { ERRORS } from "../errors.ts";
import { readJson, sendJson } from "../http.ts";
import { countObjects, createBucket, deleteBucket, deleteObjects, findBucket, listBuckets, updateBucket } from "../queries.ts";
import { mustBeValidBucketName, parseBody, parseFileSizeLimit } from "../validate.ts";

const SizeLimit = z.union([z.number(), z.string()]).nullable().optional();
const MimeTypes = z.array(z.string()).nullable().optional();

const CreateBody = z.object({
  name: z.string(),
  id: z.string().optional(),
  public: z.boolean().optional(),
  file_size_limit: SizeLimit,
  allowed_mime_types: MimeTypes,
  type: z.enum(["STANDARD", "ANALYTICS", "VECTOR"]).optional(),
  versioning_status: z.string().optional(),
});

const UpdateBody = z.object({
  public: z.boolean().optional(),
  file_size_limit: SizeLimit,
  allowed_mime_types: MimeTypes,
  versioning_status: z.string().optional(),
});

const ListQuery = z.object({
  limit: z.coerce.number().int().min(0).optional(),
  offset: z.coerce.number().int().min(0).optional(),
  search: z.string().optional(),
  sortColumn: z.enum(["id", "name", "created_at", "updated_at"]).optional(),
  sortOrder: z.enum(["asc", "desc"]).optional(),
});

function sizeLimitWithinGlobal(ctx: RouteContext, value: unknown): number | null | undefined {
  const limit = parseFileSizeLimit(value);
  if (typeof limit === "number" && limit > ctx.deps.config.fileSizeLimit) throw ERRORS.EntityTooLarge();
  return limit;
}

export async function listBucketsRoute(ctx: RouteContext): Promise<void> {
  const caller = await callerOf(ctx);
  mustBeAuthenticated(caller);
  const q = parseBody(ListQuery, Object.fromEntries(ctx.query), "querystring");
  const rows = await withCaller(ctx.deps.pool, caller, scopeOf(ctx, "storage.bucket.list"), (c) =>
    listBuckets(c, { limit: q.limit, offset: q.offset, search: q.search, sortColumn: q.sortColumn ?? "name", sortOrder: q.sortOrder ?? "asc" }),
  );
  sendJson(
    ctx.res,
    200,
    rows.map((b) => ({
      id: b.id,
      name: b.name,
      owner: b.owner,
      public: b.public,
      type: b.type,
      file_size_limit: b.file_size_limit,
      allowed_mime_types: b.allowed_mime_types,
      created_at: b.created_at,
      updated_at: b.updated_at,
    })),
  );
}

export async function getBucketRoute(ctx: RouteContext): Promise<void> {
  const caller = await callerOf(ctx);
  mustBeAuthenticated(caller);
  const b = await withCaller(ctx.deps.pool, caller, scopeOf(ctx, "storage.bucket.get"), (c) => findBucket(c, ctx.params.bucket!));
  if (!b) throw ERRORS.NoSuchBucket();
  sendJson(ctx.res, 200, {
    id: b.id,
    name: b.name,
    owner: b.owner,
    public: b.public,
    file_size_limit: b.file_size_limit,
    allowed_mime_types: b.allowed_mime_types,
    created_at: b.created_at,
    updated_at: b.updated_at,
  });
}

export async function createBucketRoute(ctx: RouteContext): Promise<void> {
  const caller = await callerOf(ctx);
  mustBeAuthenticated(caller);
  const body = parseBody(CreateBody, await readJson(ctx.req));
  // Analytics (Iceberg) and vector buckets, and object versioning, are not enabled here.
  if (body.type && body.type !== "STANDARD") throw ERRORS.FeatureNotEnabled(`${body.type.toLowerCase()} buckets`);
  if (body.versioning_status && body.versioning_status !== "DISABLED") throw ERRORS.FeatureNotEnabled("versioning");
  const id = body.id ?? body.name;
  mustBeValidBucketName(body.name);
  mustBeValidBucketName(id);
  const fileSizeLimit = sizeLimitWithinGlobal(ctx, body.file_size_limit);
  await withCaller(ctx.deps.pool, caller, scopeOf(ctx, "storage.bucket.create"), (c) =>
    createBucket(c, {
      id,
      name: body.name,
      owner: ownerUuid(caller.sub),
      owner_id: caller.sub ?? null,
      public: body.public ?? false,
      file_size_limit: fileSizeLimit ?? null,
      allowed_mime_types: body.allowed_mime_types ?? null,
    }),
  );
  sendJson(ctx.res, 200, { name: body.name });
}

export async function updateBucketRoute(ctx: RouteContext): Promise<void> {
  const caller = await callerOf(ctx);
  mustBeAuthenticated(caller);
  const body = parseBody(UpdateBody, await readJson(ctx.req));
  if (body.versioning_status && body.versioning_status !== "DISABLED") throw ERRORS.FeatureNotEnabled("versioning");
  const fileSizeLimit = sizeLimitWithinGlobal(ctx, body.file_size_limit);
  const updated = await withCaller(ctx.deps.pool, caller, scopeOf(ctx, "storage.bucket.update"), (c) =>
    updateBucket(c, ctx.params.bucket!, { public: body.public, file_size_limit: fileSizeLimit, allowed_mime_types: body.allowed_mime_types }),
  );
  if (!updated) throw ERRORS.NoSuchBucket();
  sendJson(ctx.res, 200, { message: "Successfully updated" });
}

export async function deleteBucketRoute(ctx: RouteContext): Promise<void> {
  const caller = await callerOf(ctx);
  mustBeAuthenticated(caller);
  const id = ctx.params.bucket!;
  const scope = scopeOf(ctx, "storage.bucket.delete");
  const visible = await withCaller(ctx.deps.pool, caller, scope, (c) => findBucket(c, id));
  if (!visible) throw ERRORS.NoSuchBucket();
  if ((await withSuperuser(ctx.deps.pool, scope, (c) => countObjects(c, id))) > 0) throw ERRORS.BucketNotEmpty();
  const deleted = await withCaller(ctx.deps.pool, caller, scope, (c) => deleteBucket(c, id));
  if (deleted === 0) throw ERRORS.NoSuchBucket();
  sendJson(ctx.res, 200, { message: "Successfully deleted" });
}

export async function emptyBucketRoute(ctx: RouteContext): Promise<void> {
  const caller = await callerOf(ctx);
  mustBeAuthenticated(caller);
  if (caller.role !== "service_role") throw ERRORS.InvalidRole();
  const id = ctx.params.bucket!;
  const scope = scopeOf(ctx, "storage.bucket.empty");
  const { pool, store } = ctx.deps;
  if (!(await withCaller(pool, caller, scope, (c) => findBucket(c, id)))) throw ERRORS.NoSuchBucket();
  // The real server queues this; done here and now, in batches, bytes after each commit.
  for (;;) {
    const batch = await withCaller(pool, caller, scope, async (c) => {
      const names = (await c.query<{ name: string }>("select name from storage.objects where bucket_id = $1 limit 1000", [id])).rows;
      return names.length ? deleteObjects(c, id, names.map((n) => n.name)) : [];
    });
    for (const obj of batch) if (obj.version) await store.remove(obj.bucket_id, obj.name, obj.version);
    if (batch.length < 1000) break;
  }
  sendJson(ctx.res, 200, { message: "Empty bucket has been queued. Completion may take up to an hour." });
}
