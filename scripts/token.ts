// npm run token -- <email or user id> [--aal2] [--expires 24h]
// Mints an access token for a local user, signed with the stack's JWT secret, with GoTrue's claims.
// npm run token -- --anon (or --service-role) prints the project's API key instead.
import { withClient } from "./lib/database.ts";
import { databaseUrl, stackConfig } from "./lib/env.ts";
import { projectKeys, userToken } from "./lib/keys.ts";
import { runningStack } from "./lib/lock.ts";

const args = process.argv.slice(2);
const cfg = stackConfig();
const running = runningStack(cfg.dataDir);
if (args.includes("--anon") || args.includes("--service-role")) {
  // The running stack's own keys (npm start keeps them in its lock): a key signed now has another
  // iat, so it would differ from the key the stack compares (the worker's drain does, as a string).
  const keys = running?.anonKey && running.serviceRoleKey
    ? { anonKey: running.anonKey, serviceRoleKey: running.serviceRoleKey }
    : await projectKeys(cfg.jwtSecret);
  console.log(args.includes("--anon") ? keys.anonKey : keys.serviceRoleKey);
  process.exit(0);
}
const who = args.find((a) => !a.startsWith("--"));
if (!who) {
  console.error("usage: npm run token -- <email or user id> [--aal2] [--expires 24h]\n       npm run token -- --anon | --service-role");
  process.exit(2);
}
const expiresAt = args.indexOf("--expires");
const url = running?.dbUrl ?? databaseUrl(cfg);
const user = await withClient(url, async (c) =>
  (await c.query(
    `select id, email, phone, raw_app_meta_data as app_metadata, raw_user_meta_data as user_metadata, is_anonymous
     from auth.users where id::text = $1 or lower(email) = lower($1)`,
    [who],
  )).rows[0]
);
if (!user) {
  console.error(`no user ${who} in ${url}`);
  process.exit(1);
}
console.log(await userToken(cfg.jwtSecret, user, {
  aal: args.includes("--aal2") ? "aal2" : "aal1",
  expiresIn: expiresAt >= 0 ? args[expiresAt + 1] : "1h",
}));
