import { createRoute, type OpenAPIHono, z } from "@hono/zod-openapi";
import { sql } from "kysely";
import { asUser } from "../../_shared/db/client.ts";
import { enqueue } from "../../_shared/jobs/queue.ts";
import type { ApiEnv } from "../context.ts";
import { requestMeta, requireAuth, requireUser } from "../middleware.ts";
import { commonErrors, UuidParam } from "../schemas.ts";

const InviteBody = z
  .object({
    email: z.string().trim().toLowerCase().email().max(254),
    role: z.string().min(1).max(32).default("member"),
    expires_in_hours: z.number().int().min(1).max(720).default(168),
  })
  .strict()
  .openapi("InviteRequest");

const InvitationSchema = z
  .object({
    invitation_id: z.string().uuid(),
    email: z.string(),
    role: z.string(),
    expires_at: z.string(),
  })
  .openapi("Invitation");

const route = createRoute({
  method: "post",
  path: "/orgs/{org_id}/invitations",
  summary: "Invite someone by email (needs members.manage). Replaces a pending invitation for the same email.",
  security: [{ bearer: [] }],
  middleware: [requireAuth, requireUser] as const,
  request: {
    params: z.object({ org_id: UuidParam }),
    body: { required: true, content: { "application/json": { schema: InviteBody } } },
  },
  responses: {
    201: { description: "Invited; the email is queued", content: { "application/json": { schema: InvitationSchema } } },
    ...commonErrors,
  },
});

export function registerInvitations(app: OpenAPIHono<ApiEnv>) {
  app.openapi(route, async (c) => {
    const { org_id } = c.req.valid("param");
    const body = c.req.valid("json");
    const { db, jobs } = c.get("deps");
    const principal = c.get("principal");

    // The invitation and its email job commit together or not at all. The job carries only
    // the id: it issues the token itself when it sends, so no plain token sits in the queue.
    const invitation = await asUser(db, principal.claims, async (tx) => {
      const { rows } = await sql<{ invitation_id: string; expires_at: string }>`
        select invitation_id, expires_at
        from public.invite_member(${org_id}, ${body.email}, ${body.role}, make_interval(hours => ${body.expires_in_hours}))`
        .execute(tx);
      await enqueue(jobs, tx, "invitation.send", { invitation_id: rows[0].invitation_id });
      return rows[0];
    }, requestMeta(c));
    return c.json({
      invitation_id: invitation.invitation_id,
      email: body.email,
      role: body.role,
      expires_at: invitation.expires_at,
    }, 201);
  });
}
