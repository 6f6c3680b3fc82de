// The api edge function: client calls with a user JWT or an org API key.
import { OpenAPIHono } from "@hono/zod-openapi";
import { bodyLimit } from "hono/body-limit";
import { HTTPException } from "hono/http-exception";
import { NoResultError } from "kysely";
import { requestId } from "hono/request-id";
import { createAdapterRegistry } from "../_shared/ai/adapters.ts";
import { createJwtVerifier } from "../_shared/auth/jwt.ts";
import { jwksUrl, loadConfig } from "../_shared/config.ts";
import { createDb } from "../_shared/db/client.ts";
import { ApiError, errorBody, fromPostgresError, retryAfterOf } from "../_shared/http/errors.ts";
import { Producer } from "../_shared/jobs/queue.ts";
import type { ApiDeps, ApiEnv } from "./context.ts";
import { refuseNul } from "./input.ts";
import { createOpenAiApp } from "./openai/app.ts";
import { registerAi } from "./routes/ai.ts";
import { registerBilling } from "./routes/billing.ts";
import { registerContent } from "./routes/content/index.ts";
import { registerDeck } from "./routes/deck/index.ts";
import { registerHealth } from "./routes/health.ts";
import { registerInvitations } from "./routes/invitations.ts";
import { registerMe } from "./routes/me.ts";
import { registerWebhooks } from "./routes/webhooks.ts";
import { registerUnsubscribe } from "./routes/unsubscribe.ts";
import { registerVideo } from "./routes/video.ts";

export function createApiDeps(env: Record<string, string | undefined>): ApiDeps {
  const cfg = loadConfig(env);
  const { db } = createDb(cfg.SUPABASE_DB_URL, cfg.PLINTH_DB_POOL_SIZE);
  return {
    cfg,
    db,
    verifyJwt: createJwtVerifier({ secret: cfg.PLINTH_JWT_SECRET, jwksUrl: jwksUrl(cfg) }),
    jobs: new Producer(cfg.SUPABASE_DB_URL),
    ai: createAdapterRegistry(db, env),
  };
}

export function createApiApp(deps: ApiDeps) {
  const app = new OpenAPIHono<ApiEnv>({
    // zod failures become the standard 400 body, naming each bad field.
    defaultHook: (result, c) => {
      if (!result.success) {
        const details = result.error.issues.map((i) => ({ path: i.path.join("."), message: i.message }));
        return c.json(errorBody("invalid_request", "the request failed validation", details), 400);
      }
    },
  }).basePath("/api");

  app.use(requestId());
  app.use(async (c, next) => {
    c.set("deps", deps);
    await next();
  });
  app.use(bodyLimit({
    maxSize: deps.cfg.PLINTH_MAX_BODY_BYTES,
    onError: (c) => {
      const message = `the body exceeds ${deps.cfg.PLINTH_MAX_BODY_BYTES} bytes`;
      // The OpenAI-compatible endpoint answers in OpenAI's error shape, so its SDKs read it.
      return c.req.path.startsWith("/api/ai/v1/")
        ? c.json({ error: { message, type: "invalid_request_error", param: null, code: "payload_too_large" } }, 413)
        : c.json(errorBody("payload_too_large", message), 413);
    },
  }));
  app.use(refuseNul);

  registerHealth(app);
  registerMe(app);
  registerInvitations(app);
  registerWebhooks(app);
  registerUnsubscribe(app);
  registerBilling(app);
  registerAi(app);
  registerContent(app);
  registerVideo(app);
  registerDeck(app);
  app.route("/ai/v1", createOpenAiApp());

  app.openAPIRegistry.registerComponent("securitySchemes", "bearer", {
    type: "http",
    scheme: "bearer",
    description: "A Supabase user access token, or an org API key (plk_…)",
  });
  app.doc31("/openapi.json", {
    openapi: "3.1.0",
    info: { title: "Plinth api", version: "0.1.0", description: "Server-side routes of Plinth. Everything else is PostgREST." },
    servers: [{ url: "/functions/v1" }],
  });

  app.notFound((c) => c.json(errorBody("not_found", `no route ${c.req.method} ${c.req.path}`), 404));
  app.onError((err, c) => {
    const known = err instanceof ApiError
      ? err
      : err instanceof NoResultError
      ? new ApiError(404, "not_found", "not found")
      : fromPostgresError(err);
    if (known) {
      const retryAfter = retryAfterOf(known);
      if (retryAfter !== undefined) c.header("Retry-After", String(retryAfter));
      return c.json(errorBody(known.code, known.message, known.details), known.status);
    }
    if (err instanceof HTTPException && err.status < 500) {
      return c.json(errorBody(err.status === 400 ? "invalid_request" : "http_error", err.message), err.status);
    }
    // Unknown failures: log the request id and the message, never the request or its headers.
    console.error(JSON.stringify({ msg: "unhandled error", request_id: c.get("requestId"), error: err.message }));
    return c.json(errorBody("internal", "something went wrong on our side", { request_id: c.get("requestId") }), 500);
  });
  return app;
}
