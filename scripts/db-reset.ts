// npm run db:reset: wipe the local database and rebuild it (platform, migrations, seed).
import fs from "node:fs";
import path from "node:path";
import { applyMigrations, applyPlatform, applySeed } from "./lib/database.ts";
import { databaseUrl, stackConfig } from "./lib/env.ts";
import { runningStack } from "./lib/lock.ts";
import { startPostgres } from "./lib/postgres.ts";

const cfg = stackConfig();
const running = runningStack(cfg.dataDir);
if (running) {
  console.error(`Plinth is running (pid ${running.pid}); stop it with Ctrl-C first, then reset.`);
  process.exit(1);
}
const dbDir = path.join(cfg.dataDir, "db");
fs.rmSync(dbDir, { recursive: true, force: true });
const pg = await startPostgres({ dir: dbDir, port: cfg.dbPort, password: cfg.dbPassword });
try {
  const url = databaseUrl(cfg);
  await applyPlatform(url);
  await applyMigrations(url);
  await applySeed(url);
  console.log(`Database rebuilt at ${url}. Run npm start.`);
} finally {
  await pg.stop();
}
