// Which org an AI request spends in: an API key's own org; for a user, the org named in the
// body or the x-plinth-org header, else their personal org. Membership and ai.use are checked
// by admission itself (private.ai_admit_job), as the caller.
import type { Context } from "hono";
import { sql } from "kysely";
import { z } from "zod";
import type { Submitter } from "../_shared/ai/submit.ts";
import type { Tx } from "../_shared/db/client.ts";
import { ApiError } from "../_shared/http/errors.ts";
import type { ApiEnv } from "./context.ts";

const OrgId = z.string().uuid();

export async function submitterFor(c: Context<ApiEnv>, tx: Tx, named?: string): Promise<Submitter> {
  const principal = c.get("principal");
  const header = c.req.header("x-plinth-org");
  const wanted = named ?? header;
  if (wanted !== undefined && !OrgId.safeParse(wanted).success) throw new ApiError(400, "invalid_request", "x-plinth-org must be an org id");
  if (principal.kind === "api_key") {
    if (wanted && wanted !== principal.orgId) throw new ApiError(403, "forbidden", "an API key acts only for its own org");
    return { orgId: principal.orgId, userId: null, apiKeyId: principal.keyId };
  }
  if (wanted) return { orgId: wanted, userId: principal.userId, apiKeyId: null };
  const { rows } = await sql<{ id: string }>`select id from public.orgs where personal_user_id = ${principal.userId}`.execute(tx);
  if (!rows[0]) throw new ApiError(400, "invalid_request", "you have no personal org: name one with x-plinth-org");
  return { orgId: rows[0].id, userId: principal.userId, apiKeyId: null };
}
