import { createWorkerApp } from "./app.ts";

Deno.serve(createWorkerApp(Deno.env.toObject()).fetch);
