// What the talking-video routes share: response helpers and paging (Storage signing: ../storage.ts).
import { z } from "@hono/zod-openapi";
export { storageOf } from "../storage.ts";

export const json = <T extends z.ZodType>(schema: T, description: string) => ({ description, content: { "application/json": { schema } } });
export const body = <T extends z.ZodType>(schema: T) => ({ required: true, content: { "application/json": { schema } } });

const errorSchema = z.object({ error: z.object({ code: z.string(), message: z.string() }) });
export const limitErrors = {
  402: json(errorSchema, "Not enough credits, or a plan limit"),
  429: json(errorSchema, "Rate limited (see Retry-After), or too many videos in progress"),
};

export const Json = z.record(z.string(), z.unknown()).nullable();
export const Cursor = z.string().datetime({ offset: true }).optional().openapi({ description: "created_at of the last row of the previous page" });
export const Limit = z.coerce.number().int().min(1).max(100).default(20);

