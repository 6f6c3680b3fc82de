// npm run worker: the long-lived job worker against the running local stack's database
// (or SUPABASE_DB_URL). npm start already runs one; this is for running extra ones.
import { spawn } from "node:child_process";
import path from "node:path";
import { databaseUrl, ROOT, stackConfig } from "./lib/env.ts";
import { denoBin } from "./lib/processes.ts";

const cfg = stackConfig();
const child = spawn(denoBin(), ["run", "--allow-all", "--config", path.join(ROOT, "deno.json"), path.join(ROOT, "functions/worker/main.ts")], {
  stdio: "inherit",
  env: {
    SUPABASE_DB_URL: databaseUrl(cfg),
    SUPABASE_URL: `http://127.0.0.1:${cfg.gatewayPort}`,
    SMTP_URL: `smtp://127.0.0.1:${cfg.mailSmtpPort}`,
    ...process.env,
  },
});
for (const sig of ["SIGINT", "SIGTERM"] as const) process.on(sig, () => child.kill(sig));
child.on("exit", (code) => process.exit(code ?? 0));
