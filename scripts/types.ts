// npm run types: regenerate functions/_shared/db/database.types.ts from the migrations.
// Uses the running local stack when there is one, else a throwaway Postgres.
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { applyMigrations, applyPlatform } from "./lib/database.ts";
import { databaseUrl, stackConfig } from "./lib/env.ts";
import { runningStack } from "./lib/lock.ts";
import { startPostgres } from "./lib/postgres.ts";
import { generateTypes, TYPES_FILE } from "./lib/types-gen.ts";

const cfg = stackConfig();
const running = runningStack(cfg.dataDir);
let stop = async () => {};
let url = running?.dbUrl;
if (!url) {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), "plinth-types-"));
  const port = cfg.dbPort + 100;
  const pg = await startPostgres({ dir: path.join(dir, "db"), port, password: "postgres" });
  stop = async () => {
    await pg.stop();
    fs.rmSync(dir, { recursive: true, force: true });
  };
  url = databaseUrl({ ...cfg, dbPort: port, dbPassword: "postgres" });
  await applyPlatform(url);
  await applyMigrations(url);
}
try {
  fs.writeFileSync(TYPES_FILE, await generateTypes(url));
  console.log(`wrote ${path.relative(process.cwd(), TYPES_FILE)}`);
} finally {
  await stop();
}
