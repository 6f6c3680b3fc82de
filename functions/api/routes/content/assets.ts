// Asset routes: reserving an upload (edit access and the plan's storage_gb, checked in SQL) with
// a signed upload URL for exactly the reserved path, and copy on write for a forked asset.
// Downloads need no route: supabase-js createSignedUrl / download work for anyone who can read
// the document (RLS on storage.objects), and link visitors use /content/links/asset-url.
import { createRoute, type OpenAPIHono, z } from "@hono/zod-openapi";
import { asUser } from "../../../_shared/db/client.ts";
import { copyAssetBytes, detachTarget, repointAsset, reserveAsset, signAssetUpload } from "../../../_shared/content/assets.ts";
import type { ApiEnv } from "../../context.ts";
import { requestMeta, requireAuth } from "../../middleware.ts";
import { commonErrors, UuidParam } from "../../schemas.ts";
import { AssetView, json, jsonBody, storageOf } from "./schemas.ts";

const security = [{ bearer: [] }];
const payment = { 402: json(z.object({ error: z.object({ code: z.string(), message: z.string() }) }), "Over the plan's storage") };

const Reserved = z.object({
  asset: AssetView,
  upload: z.object({
    bucket: z.string(),
    path: z.string(),
    token: z.string().openapi({ description: "For supabase.storage.from(bucket).uploadToSignedUrl(path, token, file)" }),
    signed_url: z.string().openapi({ description: "PUT the file here (valid two hours)" }),
  }),
}).openapi("ContentUpload");

const reserveRoute = createRoute({
  method: "post", path: "/content/documents/{document_id}/assets", security,
  summary: "Reserve an upload for a document (editors; within the plan's storage). Upload to the signed URL; the worker then checks the real bytes and marks the asset verified or rejected.",
  middleware: [requireAuth] as const,
  request: {
    params: z.object({ document_id: UuidParam }),
    body: jsonBody(z.object({
      filename: z.string().min(1).max(255),
      mime_type: z.string().min(3).max(100),
      size: z.number().int().min(1).max(100 * 1024 * 1024),
    }).strict()),
  },
  responses: { 201: json(Reserved, "Reserved"), ...commonErrors, ...payment },
});

const detachRoute = createRoute({
  method: "post", path: "/content/assets/{asset_id}/detach", security,
  summary: "Before editing a forked asset: copy its bytes to the document's own folder (forks share bytes until then).",
  middleware: [requireAuth] as const,
  request: { params: z.object({ asset_id: UuidParam }) },
  responses: { 200: json(AssetView, "The asset, at its own path"), ...commonErrors },
});

export function registerContentAssets(app: OpenAPIHono<ApiEnv>) {
  app.openapi(reserveRoute, async (c) => {
    const { document_id } = c.req.valid("param");
    const input = c.req.valid("json");
    const deps = c.get("deps");
    const storage = storageOf(deps);
    const asset = await asUser(deps.db, c.get("principal").claims, (tx) => reserveAsset(tx, document_id, input), requestMeta(c));
    return c.json({ asset, upload: await signAssetUpload(storage, asset) }, 201);
  });

  app.openapi(detachRoute, async (c) => {
    const { asset_id } = c.req.valid("param");
    const deps = c.get("deps");
    const storage = storageOf(deps);
    const claims = c.get("principal").claims;
    const target = await asUser(deps.db, claims, (tx) => detachTarget(tx, asset_id));
    await copyAssetBytes(storage, target);
    const asset = await asUser(deps.db, claims, (tx) => repointAsset(tx, asset_id, target), requestMeta(c));
    return c.json(asset, 200);
  });
}
