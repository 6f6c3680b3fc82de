// The OpenAI-compatible endpoint, mounted at /api/ai/v1: any OpenAI SDK works against Plinth
// with baseURL <SUPABASE_URL>/functions/v1/api/ai/v1 and a user access token or an org API key
// as its apiKey. Errors use OpenAI's JSON shape so the SDK raises its own error classes.
import { Hono } from "hono";
import type { ApiEnv } from "../context.ts";
import { requireAuth } from "../middleware.ts";
import { chatCompletions } from "./chat.ts";
import { onOpenAiError, openaiError } from "./errors.ts";
import { embeddings, imagesGenerations, moderations } from "./media.ts";
import { listModels } from "./models.ts";

export function createOpenAiApp() {
  const app = new Hono<ApiEnv>();
  app.use(requireAuth);
  app.post("/chat/completions", chatCompletions);
  app.post("/images/generations", imagesGenerations);
  app.post("/embeddings", embeddings);
  app.post("/moderations", moderations);
  app.get("/models", listModels);
  // A mounted app's notFound is never reached (the parent's answers), so a catch-all route
  // keeps unknown paths and methods in OpenAI's error shape.
  app.all("*", (c) => openaiError(c, 404, `no route ${c.req.method} ${c.req.path}`, "invalid_request_error", "unknown_url"));
  app.onError(onOpenAiError);
  return app;
}
