// One local stack per data folder: a lock file with the owner's pid.
import fs from "node:fs";
import path from "node:path";

export interface LockInfo {
  pid: number;
  dbUrl?: string;
  supabaseUrl?: string;
  functionsUrl?: string;
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
  fs.writeFileSync(lockPath(dataDir), JSON.stringify(info));
}

export function releaseLock(dataDir: string): void {
  fs.rmSync(lockPath(dataDir), { force: true });
}
