// Child processes of the local stack (Deno functions server, worker), with their output
// prefixed and a clean stop.
import { type ChildProcess, spawn } from "node:child_process";
import path from "node:path";
import { ROOT } from "./env.ts";

export interface Child {
  name: string;
  proc: ChildProcess;
  stop(): Promise<void>;
}

export const denoBin = () => path.join(ROOT, "node_modules/.bin/deno");

export function spawnDeno(
  name: string,
  script: string,
  env: Record<string, string>,
  log: (name: string, line: string) => void,
): Child {
  const proc = spawn(denoBin(), ["run", "--allow-all", "--config", path.join(ROOT, "deno.json"), script], {
    cwd: ROOT,
    env: { ...process.env, ...env, NO_COLOR: "1" },
    stdio: ["ignore", "pipe", "pipe"],
  });
  const forward = (chunk: Buffer) => {
    for (const line of chunk.toString().split("\n")) if (line.trim()) log(name, line);
  };
  proc.stdout!.on("data", forward);
  proc.stderr!.on("data", forward);
  return {
    name,
    proc,
    stop: () =>
      new Promise<void>((resolve) => {
        if (proc.exitCode !== null || proc.signalCode !== null) return resolve();
        const timer = setTimeout(() => proc.kill("SIGKILL"), 10_000);
        proc.once("exit", () => {
          clearTimeout(timer);
          resolve();
        });
        proc.kill("SIGTERM");
      }),
  };
}

/** Resolves when `check` passes, or rejects with the last error after `timeoutMs` (or at once when `signal` aborts). */
/** Thrown by a waitFor check when waiting longer cannot help (the process it waits for has exited). */
export class GaveUp extends Error {}

export async function waitFor(what: string, check: () => Promise<boolean>, timeoutMs = 60_000, signal?: AbortSignal): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  let last: unknown;
  while (Date.now() < deadline) {
    signal?.throwIfAborted();
    try {
      if (await check()) return;
    } catch (err) {
      if (err instanceof GaveUp) throw new Error(`${what} did not come up: ${err.message}`);
      last = err;
    }
    await new Promise((r) => setTimeout(r, 200));
  }
  throw new Error(`${what} did not come up in ${timeoutMs} ms${last ? `: ${(last as Error).message}` : ""}`);
}
