import { createApiApp, createApiDeps } from "./app.ts";

Deno.serve(createApiApp(createApiDeps(Deno.env.toObject())).fetch);
