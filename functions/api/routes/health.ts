import { createRoute, type OpenAPIHono, z } from "@hono/zod-openapi";
import { sql } from "kysely";
import type { ApiEnv } from "../context.ts";

const route = createRoute({
  method: "get",
  path: "/health",
  summary: "Liveness and database reachability",
  responses: {
    200: {
      description: "The function is up and the database answers",
      content: { "application/json": { schema: z.object({ status: z.literal("ok"), time: z.string() }) } },
    },
  },
});

export function registerHealth(app: OpenAPIHono<ApiEnv>) {
  app.openapi(route, async (c) => {
    const { rows } = await sql<{ now: string }>`select now()::text as now`.execute(c.get("deps").db);
    return c.json({ status: "ok" as const, time: rows[0].now }, 200);
  });
}
