// POST /object/list/{bucket}: one level of folders and files under a prefix, through
// storage.search, which is SECURITY INVOKER: it runs as the caller, so only objects their
// SELECT policies show are listed (and only folders that hold such objects).
import { z } from "zod";
import { mustBeAuthenticated, withCaller } from "../caller.ts";
import { callerOf, type RouteContext, scopeOf } from "../context.ts";
import { readJson, sendJson } from "../http.ts";
import { searchObjects } from "../queries.ts";
import { parseBody } from "../validate.ts";

const ListBody = z.object({
  prefix: z.string(),
  limit: z.number().int().min(1).optional(),
  offset: z.number().int().min(0).optional(),
  search: z.string().optional(),
  sortBy: z
    .object({
      column: z.enum(["name", "updated_at", "created_at", "last_accessed_at"]).optional(),
      order: z.enum(["asc", "desc"]).optional(),
    })
    .optional(),
});

export async function listObjectsRoute(ctx: RouteContext): Promise<void> {
  const caller = await callerOf(ctx);
  mustBeAuthenticated(caller);
  const body = parseBody(ListBody, await readJson(ctx.req));
  // A prefix names a folder: `docs` lists what is inside `docs/`.
  const prefix = body.prefix.length > 0 && !body.prefix.endsWith("/") ? `${body.prefix}/` : body.prefix;
  const rows = await withCaller(ctx.deps.pool, caller, scopeOf(ctx, "storage.object.list"), (c) =>
    searchObjects(c, ctx.params.bucket!, prefix, {
      limit: body.limit ?? 100,
      offset: body.offset ?? 0,
      search: body.search ?? "",
      column: body.sortBy?.column ?? "name",
      order: body.sortBy?.order ?? "asc",
    }),
  );
  sendJson(ctx.res, 200, rows);
}
