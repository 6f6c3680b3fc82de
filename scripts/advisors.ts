// npm run advisors: Supabase's security and performance lints on the running local database.
import { spawnSync } from "node:child_process";
import { supabaseBin } from "./lib/database.ts";
import { databaseUrl, ROOT, stackConfig } from "./lib/env.ts";
import { runningStack } from "./lib/lock.ts";

const cfg = stackConfig();
const url = runningStack(cfg.dataDir)?.dbUrl ?? process.env.SUPABASE_DB_URL ?? databaseUrl(cfg);
const level = process.argv.includes("--all") ? "info" : "warn";
const res = spawnSync(supabaseBin(), ["db", "advisors", `--remote=${url}`, "--level", level, "--fail-on", "warn"], {
  cwd: ROOT,
  stdio: "inherit",
});
process.exit(res.status ?? 1);
