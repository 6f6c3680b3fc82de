import { createWebhooksApp, createWebhooksDeps } from "./app.ts";

Deno.serve(createWebhooksApp(createWebhooksDeps(Deno.env.toObject())).fetch);
