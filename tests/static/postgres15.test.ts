// The migrations must also apply on Postgres 15 (self-hosters and older projects).
import pg from "pg";
import { expect, it } from "vitest";
import { applyMigrations, applyPlatform, applySeed } from "../../scripts/lib/database.ts";
import { startPostgres15 } from "../../scripts/lib/postgres15.ts";
import { freePort } from "../setup/free-port.ts";

it("platform, migrations and seed apply cleanly on Postgres 15", async () => {
  const server = await startPostgres15(await freePort());
  try {
    await applyPlatform(server.url);
    await applyMigrations(server.url);
    await applySeed(server.url);
    const c = new pg.Client({ connectionString: server.url });
    await c.connect();
    const { rows } = await c.query("select current_setting('server_version_num')::int as v, (select count(*)::int from public.orgs where kind = 'team') as teams");
    await c.end();
    expect(rows[0].v).toBeGreaterThanOrEqual(150000);
    expect(rows[0].v).toBeLessThan(160000);
    expect(rows[0].teams).toBe(2);
  } finally {
    await server.stop();
  }
});
