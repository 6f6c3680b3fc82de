// Request and response schemas of the content routes (validation, types and /openapi.json).
import { z } from "@hono/zod-openapi";
import { ApiError } from "../../../_shared/http/errors.ts";
import type { StorageAccess } from "../../../_shared/content/storage.ts";
import type { ApiDeps } from "../../context.ts";

export { json, jsonBody } from "../../schemas.ts";

export const Body = z.record(z.string(), z.unknown()).openapi({ description: "The document body, as its kind's schema defines it" });
export const Visibility = z.enum(["private", "org", "link", "public"]);
export const Tags = z.array(z.string().min(1).max(50)).max(50);

export const DocumentView = z.object({
  id: z.string().uuid(),
  org_id: z.string().uuid(),
  kind: z.string(),
  title: z.string(),
  body: Body,
  status: z.enum(["draft", "published", "archived"]),
  visibility: Visibility,
  owner_id: z.string().uuid().nullable(),
  tags: z.array(z.string()),
  forked_from: z.string().uuid().nullable(),
  origin: z.string(),
  is_template: z.boolean(),
  template_scope: z.string(),
  template_category: z.string().nullable(),
  template_locale: z.string().nullable(),
  revision: z.number().int(),
  version_count: z.number().int(),
  published_at: z.string().nullable(),
  created_at: z.string(),
  updated_at: z.string(),
  live: z.boolean().optional(),
}).passthrough().openapi("ContentDocument");

export const VersionView = z.object({
  id: z.string().uuid(),
  document_id: z.string().uuid(),
  number: z.number().int(),
  revision: z.number().int(),
  reason: z.string(),
  message: z.string().nullable(),
  title: z.string(),
  pinned: z.boolean(),
  restored_from: z.string().uuid().nullable(),
  created_by: z.string().uuid().nullable(),
  created_at: z.string(),
}).openapi("ContentVersion");

export const LiveView = z.object({
  document_id: z.string().uuid(),
  revision: z.number().int(),
  level: z.enum(["view", "comment", "edit"]),
  ystate: z.string().nullable().openapi({ description: "The compacted Yjs state (base64)" }),
  updates: z.array(z.object({ update_id: z.number().int(), revision: z.number().int(), updates: z.array(z.string()) })),
  seeded: z.boolean().optional(),
}).openapi("ContentLive");

export const AssetView = z.object({
  id: z.string().uuid(),
  org_id: z.string().uuid(),
  document_id: z.string().uuid(),
  bucket_id: z.string(),
  object_path: z.string(),
  filename: z.string().nullable(),
  declared_mime: z.string().nullable(),
  mime_type: z.string().nullable(),
  size_bytes: z.number().int().nullable(),
  sha256: z.string().nullable(),
  width: z.number().int().nullable(),
  height: z.number().int().nullable(),
  duration_ms: z.number().int().nullable(),
  status: z.enum(["pending", "uploaded", "verified", "rejected"]),
  reject_reason: z.string().nullable(),
  source_asset_id: z.string().uuid().nullable(),
  created_at: z.string(),
  verified_at: z.string().nullable(),
}).openapi("ContentAsset");

/** How a link check's refusal answers (status, code, message): shared by every route that takes a link. */
export const LINK_REFUSALS: Record<string, [401 | 403 | 404 | 410 | 429, string, string]> = {
  not_found: [404, "not_found", "this link does not exist"],
  revoked: [410, "link_revoked", "this link was revoked"],
  expired: [410, "link_expired", "this link has expired"],
  password_required: [401, "password_required", "this link needs its password"],
  wrong_password: [403, "wrong_password", "the password is wrong"],
  locked: [429, "link_locked", "too many wrong passwords: try again in 15 minutes"],
};

export const LinkCredentials = {
  token: z.string().min(20).max(100),
  password: z.string().min(1).max(72).optional(),
};

/** The Storage API with the service key; the routes that sign URLs need it. */
export function storageOf(deps: ApiDeps): StorageAccess {
  const key = deps.cfg.SUPABASE_SERVICE_ROLE_KEY;
  if (!key) throw new ApiError(503, "not_configured", "asset uploads need SUPABASE_SERVICE_ROLE_KEY on this server");
  return { url: deps.cfg.SUPABASE_URL, serviceRoleKey: key };
}
