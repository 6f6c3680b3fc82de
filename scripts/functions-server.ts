// Runs under Deno: the local edge runtime. Serves every edge function at /functions/v1/<name>/...
// (behind the gateway in scripts/platform), handing each the path the hosted runtime would
// (/<name>/...), so the same app code runs here and there.
import { createApiApp, createApiDeps } from "../functions/api/app.ts";
import { createWebhooksApp, createWebhooksDeps } from "../functions/webhooks/app.ts";
import { createWorkerApp } from "../functions/worker/app.ts";

const env = Deno.env.toObject();
const functions: Record<string, { fetch: (req: Request) => Response | Promise<Response> }> = {
  api: createApiApp(createApiDeps(env)),
  worker: createWorkerApp(env),
  webhooks: createWebhooksApp(createWebhooksDeps(env)),
};

const port = Number(env.PLINTH_EDGE_PORT ?? 54328);
Deno.serve({ port, hostname: "127.0.0.1", onListen: () => console.log(`functions on :${port}`) }, (req) => {
  const url = new URL(req.url);
  const match = /^\/functions\/v1\/([^/]+)(\/.*)?$/.exec(url.pathname);
  const fn = match && functions[match[1]];
  if (!fn) {
    return Response.json({ error: { code: "not_found", message: "no such function" } }, { status: 404 });
  }
  url.pathname = `/${match[1]}${match[2] ?? ""}`;
  return fn.fetch(new Request(url, req));
});
