// A throwaway Postgres with the platform and migrations, for benchmarks only.
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { applyMigrations, applyPlatform } from "../../scripts/lib/database.ts";
import { databaseUrl, stackConfig } from "../../scripts/lib/env.ts";
import { startPostgres } from "../../scripts/lib/postgres.ts";
import { freePort } from "../../tests/setup/free-port.ts";

export async function benchDatabase(opts: { durable?: boolean } = {}): Promise<{ url: string; stop(): Promise<void> }> {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), "plinth-bench-"));
  const cfg = { ...stackConfig({}), dataDir: dir, dbPort: await freePort() };
  const pg = await startPostgres({ dir: path.join(dir, "db"), port: cfg.dbPort, password: cfg.dbPassword, durable: opts.durable, log: process.env.BENCH_VERBOSE ? console.log : undefined });
  const url = databaseUrl(cfg);
  await applyPlatform(url);
  await applyMigrations(url);
  return {
    url,
    stop: async () => {
      await pg.stop();
      fs.rmSync(dir, { recursive: true, force: true });
    },
  };
}
