// Webhook operations that need the job queue or a view across tables: replay, recover, test
// and the attempt log. Each runs as the caller (asUser), so the RPCs and RLS decide
// (webhooks.manage); the delivery job is queued in the same transaction as the state change.
import { createRoute, type OpenAPIHono, z } from "@hono/zod-openapi";
import { sql } from "kysely";
import { asUser } from "../../_shared/db/client.ts";
import { ApiError } from "../../_shared/http/errors.ts";
import { deliveryScheduler } from "../../_shared/webhooks/queue.ts";
import type { ApiEnv } from "../context.ts";
import { requestMeta, requireAuth, requireUser } from "../middleware.ts";
import { commonErrors, json, UuidParam } from "../schemas.ts";


const replayRoute = createRoute({
  method: "post",
  path: "/webhooks/messages/{message_id}/replay",
  summary: "Deliver a webhook message again, with the same webhook-id (needs webhooks.manage).",
  security: [{ bearer: [] }],
  middleware: [requireAuth, requireUser] as const,
  request: { params: z.object({ message_id: UuidParam }) },
  responses: {
    202: json(z.object({ message_id: z.string().uuid(), status: z.literal("pending") }).openapi("WebhookReplay"), "Queued for delivery"),
    ...commonErrors,
  },
});

const RecoverBody = z
  .object({
    since: z.string().datetime({ offset: true }),
    endpoint_id: z.string().uuid().optional(),
  })
  .strict()
  .openapi("WebhookRecoverRequest");

const recoverRoute = createRoute({
  method: "post",
  path: "/orgs/{org_id}/webhooks/recover",
  summary: "Re-queue every failed webhook message of the org created since a time (needs webhooks.manage).",
  security: [{ bearer: [] }],
  middleware: [requireAuth, requireUser] as const,
  request: {
    params: z.object({ org_id: UuidParam }),
    body: { required: true, content: { "application/json": { schema: RecoverBody } } },
  },
  responses: {
    202: json(z.object({ count: z.number().int() }).openapi("WebhookRecover"), "Messages queued for delivery"),
    ...commonErrors,
  },
});

const testRoute = createRoute({
  method: "post",
  path: "/webhooks/endpoints/{endpoint_id}/test",
  summary: "Send a webhook.test event to this endpoint only, through the real delivery path (needs webhooks.manage).",
  security: [{ bearer: [] }],
  middleware: [requireAuth, requireUser] as const,
  request: { params: z.object({ endpoint_id: UuidParam }) },
  responses: {
    202: json(z.object({ event_id: z.string().uuid() }).openapi("WebhookTest"), "Test event emitted"),
    ...commonErrors,
  },
});

const AttemptSchema = z
  .object({
    id: z.string().uuid(),
    message_id: z.string().uuid(),
    event_id: z.string().uuid(),
    event_type: z.string().nullable(),
    attempt: z.number().int(),
    attempted_at: z.string(),
    status_code: z.number().int().nullable(),
    latency_ms: z.number().int().nullable(),
    response_snippet: z.string().nullable(),
    error: z.string().nullable(),
  })
  .openapi("WebhookAttempt");

const attemptsRoute = createRoute({
  method: "get",
  path: "/webhooks/endpoints/{endpoint_id}/attempts",
  summary: "Recent delivery attempts of an endpoint, newest first (needs webhooks.manage).",
  security: [{ bearer: [] }],
  middleware: [requireAuth] as const,
  request: {
    params: z.object({ endpoint_id: UuidParam }),
    query: z.object({ limit: z.coerce.number().int().min(1).max(200).default(50) }),
  },
  responses: {
    200: json(z.object({ attempts: z.array(AttemptSchema) }).openapi("WebhookAttempts"), "Attempts"),
    ...commonErrors,
  },
});

export function registerWebhooks(app: OpenAPIHono<ApiEnv>) {
  app.openapi(replayRoute, async (c) => {
    const { message_id } = c.req.valid("param");
    const { db, jobs } = c.get("deps");
    const schedule = deliveryScheduler(jobs);
    await asUser(db, c.get("principal").claims, async (tx) => {
      await sql`select public.replay_webhook_message(${message_id}::uuid)`.execute(tx);
      await schedule(tx, message_id);
    }, requestMeta(c));
    return c.json({ message_id, status: "pending" as const }, 202);
  });

  app.openapi(recoverRoute, async (c) => {
    const { org_id } = c.req.valid("param");
    const body = c.req.valid("json");
    const { db, jobs } = c.get("deps");
    const schedule = deliveryScheduler(jobs);
    const count = await asUser(db, c.get("principal").claims, async (tx) => {
      const { rows } = await sql<{ id: string }>`
        select id from public.recover_webhook_messages(${org_id}::uuid, ${body.since}::timestamptz, ${body.endpoint_id ?? null}::uuid) as id`
        .execute(tx);
      for (const { id } of rows) await schedule(tx, id);
      return rows.length;
    }, requestMeta(c));
    return c.json({ count }, 202);
  });

  app.openapi(testRoute, async (c) => {
    const { endpoint_id } = c.req.valid("param");
    const { db } = c.get("deps");
    const event_id = await asUser(db, c.get("principal").claims, async (tx) => {
      const { rows } = await sql<{ id: string }>`select public.send_test_webhook(${endpoint_id}::uuid) as id`.execute(tx);
      return rows[0].id;
    }, requestMeta(c));
    return c.json({ event_id }, 202);
  });

  app.openapi(attemptsRoute, async (c) => {
    const { endpoint_id } = c.req.valid("param");
    const { limit } = c.req.valid("query");
    const { db } = c.get("deps");
    const attempts = await asUser(db, c.get("principal").claims, async (tx) => {
      // RLS hides endpoints of other orgs and from callers without webhooks.manage.
      const { rows: visible } = await sql`select 1 from notify.webhook_endpoints where id = ${endpoint_id}::uuid`.execute(tx);
      if (visible.length === 0) throw new ApiError(404, "not_found", "webhook endpoint not found");
      const { rows } = await sql<z.infer<typeof AttemptSchema>>`
        select a.id, a.message_id, m.event_id, ev.type as event_type, a.attempt, a.attempted_at, a.status_code,
               a.latency_ms, a.response_snippet, a.error
        from notify.webhook_attempts a
        join notify.webhook_messages m on m.id = a.message_id
        -- Sensitive events are hidden from those without members.manage; the attempt still shows.
        left join notify.events ev on ev.id = m.event_id
        where a.endpoint_id = ${endpoint_id}::uuid
        order by a.attempted_at desc, a.attempt desc
        limit ${limit}`.execute(tx);
      return rows;
    });
    return c.json({ attempts }, 200);
  });
}
