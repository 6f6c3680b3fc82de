// Share links. Anyone holding a link (anon included) reads the document only through these
// routes, which check the token, its expiry and its password in SQL (private.content_*link*).
// A wrong password is counted even though the request fails (five lock the link for 15
// minutes), so those functions commit and answer with a status, which is mapped here.
import { createRoute, type OpenAPIHono, z } from "@hono/zod-openapi";
import { sql } from "kysely";
import { asService, asUser } from "../../../_shared/db/client.ts";
import { ApiError } from "../../../_shared/http/errors.ts";
import { getKind } from "../../../_shared/content/kinds/index.ts";
import { signDownload } from "../../../_shared/content/storage.ts";
import { docFromPayload, type LiveBatch } from "../../../_shared/content/ydoc.ts";
import type { ApiEnv } from "../../context.ts";
import { requestMeta, requireAuth, requireUser } from "../../middleware.ts";
import { commonErrors } from "../../schemas.ts";
import { Body, DocumentView, json, jsonBody, LINK_REFUSALS, LinkCredentials, storageOf } from "./schemas.ts";

const REFUSALS: Record<string, [401 | 403 | 404 | 410 | 429, string, string]> = {
  ...LINK_REFUSALS,
  copy_not_allowed: [403, "copy_not_allowed", "this link does not allow copying"],
  asset_not_found: [404, "not_found", "asset not found"],
};

function refuse(status: string): never {
  const [http, code, message] = REFUSALS[status] ?? [404, "not_found", "this link does not exist"];
  throw new ApiError(http, code, message, http === 429 ? { retry_after: 900 } : undefined);
}

const errors = { ...commonErrors, 410: json(z.object({ error: z.object({ code: z.string(), message: z.string() }) }), "Expired or revoked"), 429: json(z.object({ error: z.object({ code: z.string(), message: z.string() }) }), "Locked after wrong passwords") };

const Opened = z.object({
  share: z.object({ level: z.enum(["view", "comment", "edit"]), allow_download: z.boolean(), template: z.boolean(), expires_at: z.string().nullable() }),
  document: z.object({ id: z.string().uuid(), org_id: z.string().uuid(), kind: z.string(), title: z.string(), body: Body, status: z.string(), revision: z.number().int(), tags: z.array(z.string()), updated_at: z.string() }),
  assets: z.array(z.object({ id: z.string().uuid(), mime_type: z.string().nullable(), size_bytes: z.number().nullable(), width: z.number().nullable(), height: z.number().nullable(), duration_ms: z.number().nullable() })),
}).openapi("ContentLinkOpened");

const openRoute = createRoute({
  method: "post", path: "/content/links/open",
  summary: "Read a linked document with its token (and password): no account needed.",
  request: { body: jsonBody(z.object(LinkCredentials).strict()) },
  responses: { 200: json(Opened, "The document"), ...errors },
});

const assetUrlRoute = createRoute({
  method: "post", path: "/content/links/asset-url",
  summary: "A signed URL (5 minutes) for a verified asset of a linked document; download=true (an attachment) only when the link allows downloads.",
  request: { body: jsonBody(z.object({ ...LinkCredentials, asset_id: z.string().uuid(), download: z.boolean().default(false) }).strict()) },
  responses: { 200: json(z.object({ signed_url: z.string(), expires_in: z.number().int() }).openapi("ContentSignedUrl"), "The URL"), ...errors },
});

const redeemRoute = createRoute({
  method: "post", path: "/content/links/redeem", security: [{ bearer: [] }],
  summary: "Signed in: turn a link into your own grant at its level (Realtime, Storage and RLS then honour it while the link lives).",
  middleware: [requireAuth, requireUser] as const,
  request: { body: jsonBody(z.object(LinkCredentials).strict()) },
  responses: { 200: json(z.object({ document_id: z.string().uuid(), level: z.enum(["view", "comment", "edit"]), template: z.boolean() }).openapi("ContentLinkRedeemed"), "Redeemed"), ...errors },
});

const copyRoute = createRoute({
  method: "post", path: "/content/links/copy", security: [{ bearer: [] }],
  summary: "Signed in: copy the linked document into an org you write to (a template link's purpose; any link that allows downloads).",
  middleware: [requireAuth, requireUser] as const,
  request: { body: jsonBody(z.object({ ...LinkCredentials, org_id: z.string().uuid(), title: z.string().max(300).optional() }).strict()) },
  responses: { 201: json(DocumentView, "The copy"), ...errors },
});

interface OpenedRow {
  status: string;
  share: z.infer<typeof Opened>["share"];
  document: z.infer<typeof Opened>["document"] & { body_revision: number };
  assets: z.infer<typeof Opened>["assets"];
  live: { ystate: string | null; updates: LiveBatch[] } | null;
}

export function registerContentLinks(app: OpenAPIHono<ApiEnv>) {
  app.openapi(openRoute, async (c) => {
    const { token, password } = c.req.valid("json");
    const opened = await asService(c.get("deps").db, async (tx) =>
      (await sql<{ r: OpenedRow }>`select private.content_open_link(${token}, ${password ?? null}) as r`.execute(tx)).rows[0].r);
    if (opened.status !== "ok") refuse(opened.status);
    const { body_revision: _, ...document } = opened.document;
    // A live document's stored body may lag its log: show the merged state.
    const kind = getKind(document.kind);
    if (opened.live?.ystate && kind) {
      const fresh = kind.schema.safeParse(kind.fromYDoc(docFromPayload({ ystate: opened.live.ystate, updates: opened.live.updates })));
      if (fresh.success) document.body = fresh.data as Record<string, unknown>;
    }
    return c.json({ share: opened.share, document, assets: opened.assets }, 200);
  });

  app.openapi(assetUrlRoute, async (c) => {
    const { token, password, asset_id, download } = c.req.valid("json");
    const deps = c.get("deps");
    const r = await asService(deps.db, async (tx) =>
      (await sql<{ r: { status: string; bucket_id: string; object_path: string; allow_download: boolean } }>`
        select private.content_link_asset(${token}, ${password ?? null}, ${asset_id}::uuid) as r`.execute(tx)).rows[0].r);
    if (r.status !== "ok") refuse(r.status);
    if (download && !r.allow_download) throw new ApiError(403, "download_not_allowed", "this link does not allow downloads");
    const expiresIn = 300;
    const url = await signDownload(storageOf(deps), r.bucket_id, r.object_path, expiresIn, download ? r.object_path.split("/").pop() : undefined);
    return c.json({ signed_url: url, expires_in: expiresIn }, 200);
  });

  app.openapi(redeemRoute, async (c) => {
    const { token, password } = c.req.valid("json");
    const r = await asUser(c.get("deps").db, c.get("principal").claims, async (tx) =>
      (await sql<{ r: { status: string; document_id: string; level: "view" | "comment" | "edit"; template: boolean } }>`
        select private.content_redeem_link(${token}, ${password ?? null}) as r`.execute(tx)).rows[0].r, requestMeta(c));
    if (r.status !== "ok") refuse(r.status);
    return c.json({ document_id: r.document_id, level: r.level, template: r.template }, 200);
  });

  app.openapi(copyRoute, async (c) => {
    const { token, password, org_id, title } = c.req.valid("json");
    const r = await asUser(c.get("deps").db, c.get("principal").claims, async (tx) =>
      (await sql<{ r: { status: string; document: z.infer<typeof DocumentView> } }>`
        select private.content_copy_from_link(${token}, ${password ?? null}, ${org_id}::uuid, ${title ?? null}) as r`.execute(tx)).rows[0].r,
      requestMeta(c));
    if (r.status !== "ok") refuse(r.status);
    return c.json(r.document, 201);
  });
}
