// Document routes: the writes that need the kind's TypeScript (zod body, search text, Yjs).
// Reads, metadata, sharing, comments and live updates are PostgREST (schema content).
// Each handler is one asUser transaction: what it checks, computes and writes commits together.
import { createRoute, type OpenAPIHono, z } from "@hono/zod-openapi";
import { asUser } from "../../../_shared/db/client.ts";
import {
  createDocument,
  createVersion,
  documentJson,
  goLive,
  readCurrent,
  restoreVersion,
  setStatus,
  writeBody,
} from "../../../_shared/content/documents.ts";
import type { ApiEnv } from "../../context.ts";
import { requestMeta, requireAuth } from "../../middleware.ts";
import { commonErrors, UuidParam } from "../../schemas.ts";
import { Body, DocumentView, json, jsonBody, LiveView, Tags, Visibility, VersionView } from "./schemas.ts";

const security = [{ bearer: [] }];
const DocParam = z.object({ document_id: UuidParam });

const CreateBody = z.object({
  org_id: z.string().uuid(),
  kind: z.string().min(1).max(40),
  title: z.string().max(300).optional(),
  body: Body.optional(),
  tags: Tags.optional(),
  visibility: Visibility.optional(),
  is_template: z.boolean().optional(),
  template_category: z.string().min(1).max(60).optional(),
  template_locale: z.string().regex(/^[a-z]{2,3}(-[A-Za-z0-9]{2,8})*$/).optional(),
}).strict().openapi("ContentCreate");

const SaveBody = z.object({
  base_revision: z.number().int().min(1).openapi({ description: "The revision the change was made against" }),
  body: Body,
  title: z.string().max(300).optional(),
  message: z.string().min(1).max(500).optional().openapi({ description: "Keep a version of the result, with this message" }),
  reason: z.enum(["save", "import", "ai_rewrite"]).default("save")
    .openapi({ description: "import and ai_rewrite keep a version of what they replace first" }),
}).strict().openapi("ContentSave");

const Saved = z.object({ revision: z.number().int(), body: Body, version: VersionView.nullable() }).openapi("ContentSaved");

const createRoute_ = createRoute({
  method: "post", path: "/content/documents", security,
  summary: "Create a document of a registered kind (needs content.write in the org). It is live from the start: the server seeds its Yjs state.",
  middleware: [requireAuth] as const,
  request: { body: jsonBody(CreateBody) },
  responses: { 201: json(DocumentView, "Created"), ...commonErrors },
});

const getRoute = createRoute({
  method: "get", path: "/content/documents/{document_id}", security,
  summary: "A document with its current body and revision (for a live one, merged from the live log).",
  middleware: [requireAuth] as const,
  request: { params: DocParam },
  responses: { 200: json(DocumentView, "The document"), ...commonErrors },
});

const saveRoute = createRoute({
  method: "put", path: "/content/documents/{document_id}", security,
  summary: "Replace the body as of base_revision. A stale base gets 409 with the current revision and body in error.details.",
  middleware: [requireAuth] as const,
  request: { params: DocParam, body: jsonBody(SaveBody) },
  responses: { 200: json(Saved, "Saved"), ...commonErrors },
});

const versionRoute = createRoute({
  method: "post", path: "/content/documents/{document_id}/versions", security,
  summary: "Keep a named version of the document as it is now (editors).",
  middleware: [requireAuth] as const,
  request: { params: DocParam, body: jsonBody(z.object({ message: z.string().min(1).max(500), pinned: z.boolean().optional() }).strict()) },
  responses: { 201: json(VersionView, "The version"), ...commonErrors },
});

const restoreRoute = createRoute({
  method: "post", path: "/content/documents/{document_id}/versions/{version_id}/restore", security,
  summary: "Restore a version as a new forward change, recorded as a new version. History is never rewritten.",
  middleware: [requireAuth] as const,
  request: {
    params: z.object({ document_id: UuidParam, version_id: UuidParam }),
    body: { required: false, content: { "application/json": { schema: z.object({ base_revision: z.number().int().min(1).optional() }).strict() } } },
  },
  responses: { 200: json(Saved, "Restored"), ...commonErrors },
});

const statusRoute = createRoute({
  method: "post", path: "/content/documents/{document_id}/status", security,
  summary: "Publish, archive or return to draft (editors). Publishing keeps a version of what is published.",
  middleware: [requireAuth] as const,
  request: { params: DocParam, body: jsonBody(z.object({ status: z.enum(["draft", "published", "archived"]) }).strict()) },
  responses: { 200: json(DocumentView, "The document"), ...commonErrors },
});

const liveRoute = createRoute({
  method: "post", path: "/content/documents/{document_id}/live", security,
  summary: "Open a document for live editing: the server seeds its Yjs state once if needed; returns the state and every update after it. Subscribe to doc:<id> first.",
  middleware: [requireAuth] as const,
  request: { params: DocParam },
  responses: { 200: json(LiveView, "The live state"), ...commonErrors },
});

export function registerContentDocuments(app: OpenAPIHono<ApiEnv>) {
  app.openapi(createRoute_, async (c) => {
    const input = c.req.valid("json");
    const { db } = c.get("deps");
    const doc = await asUser(db, c.get("principal").claims, async (tx) => {
      const row = await createDocument(tx, input);
      return documentJson(await readCurrent(tx, row.id));
    }, requestMeta(c));
    return c.json(doc, 201);
  });

  app.openapi(getRoute, async (c) => {
    const { document_id } = c.req.valid("param");
    const doc = await asUser(c.get("deps").db, c.get("principal").claims, async (tx) => documentJson(await readCurrent(tx, document_id)));
    return c.json(doc, 200);
  });

  app.openapi(saveRoute, async (c) => {
    const { document_id } = c.req.valid("param");
    const input = c.req.valid("json");
    const saved = await asUser(c.get("deps").db, c.get("principal").claims, (tx) => writeBody(tx, document_id, input), requestMeta(c));
    return c.json(saved, 200);
  });

  app.openapi(versionRoute, async (c) => {
    const { document_id } = c.req.valid("param");
    const input = c.req.valid("json");
    const version = await asUser(c.get("deps").db, c.get("principal").claims, (tx) => createVersion(tx, document_id, input), requestMeta(c));
    return c.json(version, 201);
  });

  app.openapi(restoreRoute, async (c) => {
    const { document_id, version_id } = c.req.valid("param");
    const base = c.req.header("content-type")?.includes("json") ? c.req.valid("json")?.base_revision : undefined;
    const restored = await asUser(c.get("deps").db, c.get("principal").claims, (tx) => restoreVersion(tx, document_id, version_id, base), requestMeta(c));
    return c.json(restored, 200);
  });

  app.openapi(statusRoute, async (c) => {
    const { document_id } = c.req.valid("param");
    const { status } = c.req.valid("json");
    const doc = await asUser(c.get("deps").db, c.get("principal").claims, async (tx) => {
      await setStatus(tx, document_id, status);
      return documentJson(await readCurrent(tx, document_id));
    }, requestMeta(c));
    return c.json(doc, 200);
  });

  app.openapi(liveRoute, async (c) => {
    const { document_id } = c.req.valid("param");
    const live = await asUser(c.get("deps").db, c.get("principal").claims, (tx) => goLive(tx, document_id), requestMeta(c));
    return c.json(live, 200);
  });
}
