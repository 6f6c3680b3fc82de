// Building a database: the platform stand-in, the migrations (applied by the real
// Supabase CLI), and the seed.
import fs from "node:fs";
import path from "node:path";
import { execFile } from "node:child_process";
import { promisify } from "node:util";
import pg from "pg";
import { ROOT } from "./env.ts";

const run = promisify(execFile);

function sqlFiles(dir: string): string[] {
  return fs
    .readdirSync(dir)
    .filter((f) => f.endsWith(".sql"))
    .sort()
    .map((f) => path.join(dir, f));
}

export async function withClient<T>(url: string, fn: (c: pg.Client) => Promise<T>): Promise<T> {
  const client = new pg.Client({ connectionString: url });
  await client.connect();
  try {
    return await fn(client);
  } finally {
    await client.end();
  }
}

export async function runSqlFiles(url: string, dir: string): Promise<void> {
  await withClient(url, async (c) => {
    for (const file of sqlFiles(dir)) {
      try {
        await c.query(fs.readFileSync(file, "utf8"));
      } catch (err) {
        throw new Error(`${path.relative(ROOT, file)}: ${(err as Error).message}`);
      }
    }
  });
}

export const applyPlatform = (url: string) => runSqlFiles(url, path.join(ROOT, "sql/platform"));
export const applySeed = (url: string) => runSqlFiles(url, path.join(ROOT, "sql/seed"));

/** Whether the demo data is in (the seed's first org exists). */
export async function isSeeded(url: string): Promise<boolean> {
  return await withClient(url, async (c) => (await c.query("select exists (select 1 from public.orgs where slug = 'acme') as ok")).rows[0].ok);
}

export function supabaseBin(): string {
  return path.join(ROOT, "node_modules/.bin/supabase");
}

/** Applies pending migrations with the Supabase CLI, exactly as against a hosted project. */
export async function applyMigrations(url: string): Promise<void> {
  try {
    await run(supabaseBin(), ["migration", "up", "--yes", `--remote=${url}`], {
      cwd: ROOT,
      env: { ...process.env, SUPABASE_TELEMETRY_DISABLED: "1", DO_NOT_TRACK: "1" },
      maxBuffer: 16 * 1024 * 1024,
    });
  } catch (err) {
    const e = err as { stderr?: string; stdout?: string; message: string };
    throw new Error(`supabase migration up failed:\n${e.stderr || e.stdout || e.message}`);
  }
}

export async function createDatabase(adminUrl: string, name: string): Promise<void> {
  await withClient(adminUrl, async (c) => {
    await c.query(`drop database if exists ${name} with (force)`);
    await c.query(`create database ${name}`);
  });
}

/** A fresh database with the platform, the schema and (optionally) the seed. */
export async function buildDatabase(url: string, opts: { seed: boolean }): Promise<void> {
  await applyPlatform(url);
  await applyMigrations(url);
  if (opts.seed) await applySeed(url);
}
