// Debian's Postgres 15 (the oldest major we support), started in a throwaway folder to
// prove the migrations still apply there. Runs as the "postgres" OS user when we are root.
import { execFileSync } from "node:child_process";
import fs from "node:fs";
import os from "node:os";
import path from "node:path";

export const PG15_BIN = process.env.PLINTH_PG15_BIN ?? "/usr/lib/postgresql/15/bin";

function asPostgres(cmd: string, args: string[]) {
  const root = process.getuid?.() === 0;
  return root ? { cmd: "runuser", args: ["-u", "postgres", "--", cmd, ...args] } : { cmd, args };
}

export async function startPostgres15(port: number): Promise<{ url: string; stop(): Promise<void> }> {
  const base = fs.mkdtempSync(path.join(os.tmpdir(), "plinth-pg15-"));
  try {
    return startIn(base, port);
  } catch (err) {
    fs.rmSync(base, { recursive: true, force: true });
    throw err;
  }
}

function startIn(base: string, port: number): { url: string; stop(): Promise<void> } {
  fs.chmodSync(base, 0o777);
  const dir = path.join(base, "data");
  const pwFile = path.join(base, "pw");
  fs.writeFileSync(pwFile, "postgres\n", { mode: 0o644 });
  const init = asPostgres(path.join(PG15_BIN, "initdb"), ["-D", dir, "-U", "postgres", "--pwfile", pwFile, "-A", "scram-sha-256", "-E", "UTF8", "--locale=C.UTF-8"]);
  execFileSync(init.cmd, init.args, { stdio: "pipe" });
  const pgCtl = (args: string[]) => {
    const c = asPostgres(path.join(PG15_BIN, "pg_ctl"), ["-D", dir, ...args]);
    execFileSync(c.cmd, c.args, { stdio: "pipe" });
  };
  const options = `-p ${port} -c listen_addresses=127.0.0.1 -c unix_socket_directories=${base} -c fsync=off`;
  pgCtl(["start", "-w", "-t", "30", "-l", path.join(base, "log"), "-o", options]);
  return {
    url: `postgresql://postgres:postgres@127.0.0.1:${port}/postgres`,
    stop: async () => {
      pgCtl(["stop", "-m", "fast", "-w"]);
      fs.rmSync(base, { recursive: true, force: true });
    },
  };
}
