// The content engine's api routes (everything else is PostgREST, schema content).
import type { OpenAPIHono } from "@hono/zod-openapi";
import type { ApiEnv } from "../../context.ts";
import { registerContentAssets } from "./assets.ts";
import { registerContentDocuments } from "./documents.ts";
import { registerContentLinks } from "./links.ts";

export function registerContent(app: OpenAPIHono<ApiEnv>) {
  registerContentDocuments(app);
  registerContentAssets(app);
  registerContentLinks(app);
}
