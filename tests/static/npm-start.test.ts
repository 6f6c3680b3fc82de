// `npm start` as an operator runs it: as root from a folder the postgres OS user cannot enter
// (a clone under /root, any 0700 folder), stopped by a supervisor's SIGTERM to the npm process.
// It must come up, and the signal must stop every process it started and free every port. And as
// a newcomer at a terminal: a second `npm start` says one is running and exits, `npm run token`
// prints a token the api accepts, and Ctrl-C (SIGINT to the whole foreground group) stops it all.
import { type ChildProcess, execFile, spawn } from "node:child_process";
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
// The terminal run uses its own data folder (a plain one), so neither run sees the other's lock.
const termDir = fs.mkdtempSync(path.join(os.tmpdir(), "plinth-term-"));
const termDataDir = path.join(termDir, ".plinth");
afterAll(() => {
  fs.rmSync(closed, { recursive: true, force: true });
  fs.rmSync(termDir, { recursive: true, force: true });
  for (const dir of [dataDir, termDataDir]) {
    if (asRoot) fs.rmSync(path.dirname(relocatedPath(path.join(dir, "db"))), { recursive: true, force: true });
  }
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

async function freePorts() {
  return {
    PLINTH_DB_PORT: await freePort(),
    PLINTH_PORT: await freePort(),
    PLINTH_EDGE_PORT: await freePort(),
    PLINTH_MAIL_SMTP_PORT: await freePort(),
    PLINTH_MAIL_HTTP_PORT: await freePort(),
    PLINTH_STRIPE_PORT: await freePort(),
    PLINTH_AI_FAKE_PORT: await freePort(),
  };
}
type Ports = Awaited<ReturnType<typeof freePorts>>;

const envFor = (ports: Ports, dir: string) => ({
  ...process.env,
  ...Object.fromEntries(Object.entries(ports).map(([k, v]) => [k, String(v)])),
  PLINTH_DATA_DIR: dir,
});

/** Spawns `npm start` in its own process group (as a supervisor's child, or a terminal's foreground job, would be). */
function startNpm(ports: Ports, dir: string) {
  const npm = spawn("npm", ["start"], { cwd: ROOT, detached: true, env: envFor(ports, dir), stdio: ["ignore", "pipe", "pipe"] });
  const run = { npm, output: "" };
  npm.stdout!.on("data", (c: Buffer) => (run.output = (run.output + c.toString()).slice(-20_000)));
  npm.stderr!.on("data", (c: Buffer) => (run.output = (run.output + c.toString()).slice(-20_000)));
  return run;
}

/** Waits until the api answers its health check; fails with npm's last words if it exits or never does. */
async function waitUp(run: ReturnType<typeof startNpm>, ports: Ports) {
  const { npm } = run;
  const health = `http://127.0.0.1:${ports.PLINTH_PORT}/functions/v1/api/health`;
  const deadline = Date.now() + 150_000;
  let up = false;
  while (!up && Date.now() < deadline && npm.exitCode === null) {
    up = await fetch(health).then((r) => r.ok, () => false);
    if (!up) await new Promise((r) => setTimeout(r, 250));
  }
  // An early exit's last words arrive after its exit code: wait for its output to close.
  if (!up) await new Promise((r) => (npm.stdout!.readableEnded ? r(undefined) : npm.stdout!.once("close", r)));
  expect(up, `npm start did not come up:\n${run.output.slice(-4000)}`).toBe(true);
  // "Plinth is up." is printed just after the stack answers: the banner is what a newcomer reads.
  for (let i = 0; i < 120 && !run.output.includes("Press Ctrl-C"); i++) await new Promise((r) => setTimeout(r, 250));
  expect(run.output, "the ready banner").toContain("Plinth is up.");
}

/** After a stop signal: npm exits, every process of its group is gone, every port is free. */
async function expectAllStopped(run: ReturnType<typeof startNpm>, ports: Ports, why: string) {
  const { npm } = run;
  await Promise.race([exited(npm), new Promise((r) => setTimeout(r, 45_000))]);
  expect(npm.exitCode ?? npm.signalCode, `npm start did not exit:\n${run.output.slice(-4000)}`).not.toBeNull();
  expect(run.output).toContain(`Stopping Plinth (${why})`);
  // Postgres, the edge runtime, the worker, the gateway, the fakes and the mail sink: all gone.
  // npm itself may go first (Ctrl-C reaches it too), while the stack is still stopping: wait for the group.
  for (let i = 0; i < 180 && groupAlive(npm.pid!); i++) await new Promise((r) => setTimeout(r, 250));
  expect(groupMembers(npm.pid!), "processes of npm start outlived it").toEqual([]);
  for (const [name, port] of Object.entries(ports)) expect(await listening(port), `${name} ${port} still listening`).toBe(false);
}

/** Runs an npm command to its end, as a user at the same terminal would (same env); its exit code and output. */
function npmRun(args: string[], ports: Ports, dir: string): Promise<{ code: number; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    execFile("npm", args, { cwd: ROOT, env: envFor(ports, dir), timeout: 60_000 }, (err, stdout, stderr) =>
      resolve({ code: err ? ((err as { code?: number }).code ?? 1) : 0, stdout, stderr }));
  });
}

const JWT_RE = /^eyJ[\w-]+\.[\w-]+\.[\w-]+$/;
const lastJwt = (out: string) => out.split("\n").map((l) => l.trim()).filter((l) => JWT_RE.test(l)).at(-1);
const claimsOf = (jwt: string) => JSON.parse(Buffer.from(jwt.split(".")[1], "base64url").toString()) as Record<string, unknown>;

describe("npm start", () => {
  it("comes up from a 0700 folder and stops everything on SIGTERM to the npm process", { timeout: 180_000 }, async () => {
    const ports = await freePorts();
    const run = startNpm(ports, dataDir);
    const { npm } = run;
    try {
      await waitUp(run, ports);
      expect(run.output).not.toContain("EACCES");
      if (asRoot) {
        expect(run.output).toContain("the postgres OS user cannot enter");
        expect(fs.lstatSync(path.join(dataDir, "db")).isSymbolicLink()).toBe(true);
      }

      process.kill(npm.pid!, "SIGTERM");
      await expectAllStopped(run, ports, "SIGTERM");
    } finally {
      // Whatever happened above, nothing of this run is left behind.
      if (groupAlive(npm.pid!)) process.kill(-npm.pid!, "SIGKILL");
    }
  });

  it("refuses a second start, prints usable tokens with npm run token, and stops everything on Ctrl-C", { timeout: 240_000 }, async () => {
    const ports = await freePorts();
    const run = startNpm(ports, termDataDir);
    const { npm } = run;
    try {
      await waitUp(run, ports);
      const api = `http://127.0.0.1:${ports.PLINTH_PORT}/functions/v1/api`;

      // A second npm start on the same data folder says who is running and exits, touching nothing.
      const second = await npmRun(["start"], ports, termDataDir);
      expect(second.code, second.stdout + second.stderr).toBe(1);
      expect(second.stderr).toMatch(/Plinth is already running \(pid \d+\)\./);
      expect(second.stderr).toContain(`database:  postgresql://`);
      expect(second.stdout + second.stderr).not.toContain("Plinth is up.");
      expect(npm.exitCode).toBeNull();
      expect(await fetch(`${api}/health`).then((r) => r.status)).toBe(200);

      // npm run token, as the README shows it: a token the api accepts for that user.
      const alice = await npmRun(["run", "token", "--", "alice@acme.test"], ports, termDataDir);
      expect(alice.code, alice.stderr).toBe(0);
      const token = lastJwt(alice.stdout);
      expect(token, alice.stdout).toBeDefined();
      const me = await fetch(`${api}/me`, { headers: { authorization: `Bearer ${token}` } });
      const body = (await me.json()) as { kind: string; user_id: string; aal: string; orgs: { slug: string; role: string }[] };
      expect(me.status, JSON.stringify(body)).toBe(200);
      expect(body).toMatchObject({ kind: "user", user_id: "a0000000-0000-4000-8000-000000000001", aal: "aal1" });
      expect(body.orgs.find((o) => o.slug === "acme")?.role).toBe("owner");
      // --aal2 and --expires as documented.
      const strong = await npmRun(["run", "token", "--", "alice@acme.test", "--aal2", "--expires", "24h"], ports, termDataDir);
      const strongClaims = claimsOf(lastJwt(strong.stdout)!);
      expect(strongClaims.aal).toBe("aal2");
      expect(Math.abs((strongClaims.exp as number) - (strongClaims.iat as number) - 24 * 3600)).toBeLessThanOrEqual(1);
      // -- --anon prints the anon key the banner printed, -- --service-role the key the worker's drain takes.
      const anon = await npmRun(["run", "token", "--", "--anon"], ports, termDataDir);
      const bannerAnon = /anon key\s+(\S+)/.exec(run.output)?.[1];
      expect(bannerAnon).toMatch(JWT_RE);
      expect(lastJwt(anon.stdout)).toBe(bannerAnon);
      const service = lastJwt((await npmRun(["run", "token", "--", "--service-role"], ports, termDataDir)).stdout);
      const drain = await fetch(`http://127.0.0.1:${ports.PLINTH_PORT}/functions/v1/worker/drain?budget_ms=100`, {
        method: "POST",
        headers: { authorization: `Bearer ${service}` },
      });
      expect(drain.status, await drain.text()).toBe(200);
      // An unknown user is an error, not a token.
      const nobody = await npmRun(["run", "token", "--", "nobody@nowhere.test"], ports, termDataDir);
      expect(nobody.code).toBe(1);
      expect(lastJwt(nobody.stdout)).toBeUndefined();
      expect(nobody.stderr).toContain("no user nobody@nowhere.test");

      // Ctrl-C: the terminal sends SIGINT to every process of the foreground group at once.
      process.kill(-npm.pid!, "SIGINT");
      await expectAllStopped(run, ports, "SIGINT");
    } finally {
      if (groupAlive(npm.pid!)) process.kill(-npm.pid!, "SIGKILL");
    }
  });
});
