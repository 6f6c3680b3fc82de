// One local stack per data folder: a lock file with the owner's pid.
import fs from "node:fs";
import path from "node:path";

export interface LockInfo {
  pid: number;
  dbUrl?: string;
  supabaseUrl?: string;
  functionsUrl?: string;
  /** The stack's own project keys, for `npm run token -- --anon` / `--service-role`. */
  anonKey?: string;
  serviceRoleKey?: string;
}

const lockPath = (dataDir: string) => path.join(dataDir, "stack.lock.json");

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}

/** The running stack's lock, if its process is still alive (stale locks are ignored). */
export function runningStack(dataDir: string): LockInfo | undefined {
  try {
    const info = JSON.parse(fs.readFileSync(lockPath(dataDir), "utf8")) as LockInfo;
    return alive(info.pid) ? info : undefined;
  } catch {
    return undefined;
  }
}

export function writeLock(dataDir: string, info: LockInfo): void {
  fs.mkdirSync(dataDir, { recursive: true });
  // It holds the local service-role key: readable by its owner only.
  fs.writeFileSync(lockPath(dataDir), JSON.stringify(info), { mode: 0o600 });
}

export function releaseLock(dataDir: string): void {
  fs.rmSync(lockPath(dataDir), { force: true });
}
