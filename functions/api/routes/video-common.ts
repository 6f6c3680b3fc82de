// What the talking-video routes share: response helpers and paging (Storage signing: ../storage.ts).
import { z } from "@hono/zod-openapi";
import { errorResponse } from "../schemas.ts";
export { storageOf } from "../storage.ts";

export { json, jsonBody as body } from "../schemas.ts";

export const limitErrors = {
  402: errorResponse("Not enough credits, or a plan limit"),
  429: errorResponse("Rate limited (see Retry-After), or too many videos in progress"),
};

export const Json = z.record(z.string(), z.unknown()).nullable();
export const Cursor = z.string().datetime({ offset: true }).optional().openapi({ description: "created_at of the last row of the previous page" });
export const Limit = z.coerce.number().int().min(1).max(100).default(20);

