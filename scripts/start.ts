// npm start: the whole local backend, printed ready to use. Ctrl-C stops everything.
import { stackConfig } from "./lib/env.ts";
import { userToken } from "./lib/keys.ts";
import { releaseLock, runningStack, writeLock } from "./lib/lock.ts";
import { SEED_API_KEYS, SEED_USERS } from "./lib/seed-users.ts";
import { startStack } from "./lib/stack.ts";

const cfg = stackConfig();
const running = runningStack(cfg.dataDir);
if (running) {
  console.error(`Plinth is already running (pid ${running.pid}).`);
  console.error(`  database:  ${running.dbUrl ?? "?"}\n  project:   ${running.supabaseUrl ?? running.functionsUrl ?? "?"}`);
  console.error("Stop it with Ctrl-C in its terminal, or use another PLINTH_DATA_DIR and ports.");
  process.exit(1);
}
writeLock(cfg.dataDir, { pid: process.pid });

const verbose = process.env.PLINTH_VERBOSE === "1";
const log = (source: string, line: string) => {
  // Postgres chatter only when asked; everything else is useful while developing.
  if (source !== "postgres" || verbose) console.log(`[${source}] ${line}`);
};

let stack: Awaited<ReturnType<typeof startStack>>;
try {
  stack = await startStack(cfg, { seed: true, log });
} catch (err) {
  releaseLock(cfg.dataDir);
  console.error(`\nPlinth could not start: ${(err as Error).message}`);
  process.exit(1);
}
writeLock(cfg.dataDir, { pid: process.pid, dbUrl: stack.dbUrl, supabaseUrl: stack.supabaseUrl, functionsUrl: stack.functionsUrl });

let stopping = false;
async function shutdown() {
  if (stopping) return;
  stopping = true;
  console.log("\nStopping Plinth…");
  await stack.stop();
  releaseLock(cfg.dataDir);
  process.exit(0);
}
process.on("SIGINT", shutdown);
process.on("SIGTERM", shutdown);

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
Press Ctrl-C to stop.
`);
