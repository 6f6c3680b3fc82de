// `npm start` as an operator runs it: as root from a folder the postgres OS user cannot enter
// (a clone under /root, any 0700 folder), stopped by a supervisor's SIGTERM to the npm process.
// It must come up, and the signal must stop every process it started and free every port.
import { type ChildProcess, spawn } from "node:child_process";
import fs from "node:fs";
import net from "node:net";
import os from "node:os";
import path from "node:path";
import { afterAll, describe, expect, it } from "vitest";
import { ROOT } from "../../scripts/lib/env.ts";
import { relocatedPath } from "../../scripts/lib/postgres.ts";
import { freePort } from "../setup/free-port.ts";

const asRoot = process.getuid?.() === 0;
// mkdtemp makes the folder 0700: as root, the postgres OS user cannot enter anything below it.
const closed = fs.mkdtempSync(path.join(os.tmpdir(), "plinth-closed-"));
const dataDir = path.join(closed, "clone", ".plinth");
afterAll(() => {
  fs.rmSync(closed, { recursive: true, force: true });
  if (asRoot) fs.rmSync(path.dirname(relocatedPath(path.join(dataDir, "db"))), { recursive: true, force: true });
});

const exited = (p: ChildProcess) => new Promise<void>((resolve) => (p.exitCode !== null || p.signalCode !== null ? resolve() : p.once("exit", () => resolve())));

function listening(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const s = net.connect({ port, host: "127.0.0.1" });
    s.once("connect", () => {
      s.destroy();
      resolve(true);
    });
    s.once("error", () => resolve(false));
  });
}

/** The live processes of a process group: zombies (exited, waiting for a parent or init to reap them) don't count. */
function groupMembers(pgid: number): string[] {
  const live: string[] = [];
  for (const pid of fs.readdirSync("/proc").filter((d) => /^\d+$/.test(d))) {
    try {
      const stat = fs.readFileSync(`/proc/${pid}/stat`, "utf8");
      // Fields after the parenthesised command: state, ppid, pgrp, ...
      const [state, , pgrp] = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
      if (Number(pgrp) === pgid && state !== "Z") live.push(`${pid} ${fs.readFileSync(`/proc/${pid}/cmdline`, "utf8").replace(/\0/g, " ").slice(0, 160)}`);
    } catch {
      // gone while we looked
    }
  }
  return live;
}
const groupAlive = (pgid: number) => groupMembers(pgid).length > 0;

describe("npm start", () => {
  it("comes up from a 0700 folder and stops everything on SIGTERM to the npm process", { timeout: 180_000 }, async () => {
    const ports = {
      PLINTH_DB_PORT: await freePort(),
      PLINTH_PORT: await freePort(),
      PLINTH_EDGE_PORT: await freePort(),
      PLINTH_MAIL_SMTP_PORT: await freePort(),
      PLINTH_MAIL_HTTP_PORT: await freePort(),
      PLINTH_STRIPE_PORT: await freePort(),
      PLINTH_AI_FAKE_PORT: await freePort(),
    };
    // Its own process group, as a supervisor's child would be: the check afterwards reads the whole group.
    const npm = spawn("npm", ["start"], {
      cwd: ROOT,
      detached: true,
      env: { ...process.env, ...Object.fromEntries(Object.entries(ports).map(([k, v]) => [k, String(v)])), PLINTH_DATA_DIR: dataDir },
      stdio: ["ignore", "pipe", "pipe"],
    });
    let output = "";
    npm.stdout!.on("data", (c: Buffer) => (output = (output + c.toString()).slice(-20_000)));
    npm.stderr!.on("data", (c: Buffer) => (output = (output + c.toString()).slice(-20_000)));
    try {
      const health = `http://127.0.0.1:${ports.PLINTH_PORT}/functions/v1/api/health`;
      const deadline = Date.now() + 150_000;
      let up = false;
      while (!up && Date.now() < deadline && npm.exitCode === null) {
        up = await fetch(health).then((r) => r.ok, () => false);
        if (!up) await new Promise((r) => setTimeout(r, 250));
      }
      // An early exit's last words arrive after its exit code: wait for its output to close.
      if (!up) await new Promise((r) => (npm.stdout!.readableEnded ? r(undefined) : npm.stdout!.once("close", r)));
      expect(up, `npm start did not come up:\n${output.slice(-4000)}`).toBe(true);
      expect(output).not.toContain("EACCES");
      if (asRoot) {
        expect(output).toContain("the postgres OS user cannot enter");
        expect(fs.lstatSync(path.join(dataDir, "db")).isSymbolicLink()).toBe(true);
      }

      process.kill(npm.pid!, "SIGTERM");
      await Promise.race([exited(npm), new Promise((r) => setTimeout(r, 45_000))]);
      expect(npm.exitCode ?? npm.signalCode, `npm start did not exit:\n${output.slice(-4000)}`).not.toBeNull();
      expect(output).toContain("Stopping Plinth (SIGTERM)");
      // Postgres, the edge runtime, the worker, the gateway, the fakes and the mail sink: all gone.
      for (let i = 0; i < 60 && groupAlive(npm.pid!); i++) await new Promise((r) => setTimeout(r, 250));
      expect(groupMembers(npm.pid!), "processes of npm start outlived it").toEqual([]);
      for (const [name, port] of Object.entries(ports)) expect(await listening(port), `${name} ${port} still listening`).toBe(false);
    } finally {
      // Whatever happened above, nothing of this run is left behind.
      if (groupAlive(npm.pid!)) process.kill(-npm.pid!, "SIGKILL");
    }
  });
});
