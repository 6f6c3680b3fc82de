// The REST routes under /storage/v1, matched like the real server's Fastify router: static
// segments win over parameters (a bucket named `sign` or `list` cannot shadow a route), `*`
// takes the rest of the path (the object key, possibly with slashes).
import type http from "node:http";
import type { Handler, RouteContext, StorageDeps } from "./context.ts";
import { sendError } from "./errors.ts";
import { decodePathPart, sendJson } from "./http.ts";
import {
  createBucketRoute,
  deleteBucketRoute,
  emptyBucketRoute,
  getBucketRoute,
  listBucketsRoute,
  updateBucketRoute,
} from "./routes/buckets.ts";
import { listObjectsRoute } from "./routes/list.ts";
import { getObjectInfoRoute, getObjectRoute, getPublicObjectInfoRoute, getPublicObjectRoute, getSignedObjectRoute } from "./routes/read.ts";
import { signUploadUrlRoute, signUrlRoute, signUrlsRoute } from "./routes/sign.ts";
import { copyRoute, deleteOneRoute, moveRoute, removeRoute, updateRoute, uploadRoute, uploadSignedRoute } from "./routes/write.ts";

interface Route {
  methods: string[];
  re: RegExp;
  names: string[];
  handler: Handler;
}

function route(methods: string[], pattern: string, handler: Handler): Route {
  const names: string[] = [];
  const source = pattern
    .split("/")
    .map((part) => {
      if (part === "*") {
        names.push("key");
        return "(.*)";
      }
      if (part.startsWith(":")) {
        names.push(part.slice(1));
        return "([^/]+)";
      }
      return part.replace(/[.*+?^${}()|[\]\\]/g, "\\$&");
    })
    .join("/");
  return { methods, re: new RegExp(`^${source}$`), names, handler };
}

const GET = ["GET", "HEAD"];

// Order matters: more specific (static) routes before the parameterised ones they overlap.
// Image transformations, list-v2, the S3 protocol, CDN purge, lifecycle rules, analytics and
// vector buckets are not enabled here. Like a server without them, their paths have no route of
// their own: they get Fastify's 404, or fall through to a route that matches them (a POST to
// /object/list-v2/{bucket} is an upload into a bucket named `list-v2`).
const ROUTES: Route[] = [
  route(["GET"], "/bucket", listBucketsRoute),
  route(["POST"], "/bucket", createBucketRoute),
  route(["POST"], "/bucket/:bucket/empty", emptyBucketRoute),
  route(["GET"], "/bucket/:bucket", getBucketRoute),
  route(["PUT"], "/bucket/:bucket", updateBucketRoute),
  route(["DELETE"], "/bucket/:bucket", deleteBucketRoute),
  route(["POST"], "/object/list/:bucket", listObjectsRoute),
  route(["POST"], "/object/move", moveRoute),
  route(["POST"], "/object/copy", copyRoute),
  route(["POST"], "/object/sign/:bucket", signUrlsRoute),
  route(["POST"], "/object/sign/:bucket/*", signUrlRoute),
  route(GET, "/object/sign/:bucket/*", getSignedObjectRoute),
  route(["POST"], "/object/upload/sign/:bucket/*", signUploadUrlRoute),
  route(["PUT"], "/object/upload/sign/:bucket/*", uploadSignedRoute),
  route(GET, "/object/public/:bucket/*", getPublicObjectRoute),
  route(["GET"], "/object/info/public/:bucket/*", getPublicObjectInfoRoute),
  route(["GET"], "/object/info/authenticated/:bucket/*", getObjectInfoRoute({ requireJwt: true })),
  route(["GET"], "/object/info/:bucket/*", getObjectInfoRoute({ requireJwt: false })),
  route(GET, "/object/authenticated/:bucket/*", getObjectRoute({ requireJwt: true })),
  route(["POST"], "/object/:bucket/*", uploadRoute),
  route(["PUT"], "/object/:bucket/*", updateRoute),
  route(GET, "/object/:bucket/*", getObjectRoute({ requireJwt: false })),
  route(["DELETE"], "/object/:bucket", removeRoute),
  route(["DELETE"], "/object/:bucket/*", deleteOneRoute),
];

const CORS_HEADERS = {
  "access-control-allow-origin": "*",
  "access-control-allow-methods": "GET, HEAD, POST, PUT, PATCH, DELETE, OPTIONS",
  "access-control-allow-headers": "authorization, x-client-info, apikey, content-type, x-upsert, cache-control, x-metadata, content-encoding, range",
  "access-control-max-age": "86400",
};

/** Handles one REST request; `path` is the part after /storage/v1 (query string included). */
export async function dispatch(deps: StorageDeps, req: http.IncomingMessage, res: http.ServerResponse, rawPath: string): Promise<void> {
  const q = rawPath.indexOf("?");
  const path = q < 0 ? rawPath : rawPath.slice(0, q);
  const query = new URLSearchParams(q < 0 ? "" : rawPath.slice(q + 1));
  const method = req.method ?? "GET";
  res.setHeader("access-control-allow-origin", "*");
  try {
    if (method === "OPTIONS") {
      res.writeHead(204, CORS_HEADERS);
      res.end();
      return;
    }
    for (const r of ROUTES) {
      if (!r.methods.includes(method)) continue;
      const m = r.re.exec(path);
      if (!m) continue;
      const params: Record<string, string> = {};
      r.names.forEach((name, i) => (params[name] = decodePathPart(m[i + 1] ?? "")));
      const ctx: RouteContext = { req, res, params, query, deps, path };
      await r.handler(ctx);
      return;
    }
    // Fastify's own reply for a path no route serves.
    sendJson(res, 404, { message: `Route ${method}:${path} not found`, error: "Not Found", statusCode: 404 });
  } catch (err) {
    sendError(res, err, deps.log);
  }
}
