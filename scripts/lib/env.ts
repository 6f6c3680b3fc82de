// Local stack settings. Every value can be overridden from the environment;
// the defaults match the Supabase CLI's local ports so existing habits carry over.
import path from "node:path";

export const ROOT = path.resolve(import.meta.dirname, "../..");

/** The Supabase CLI's well-known local JWT secret; never use it on a hosted project. */
const LOCAL_JWT_SECRET = "super-secret-jwt-token-with-at-least-32-characters-long";

export interface StackConfig {
  dataDir: string;
  dbPort: number;
  dbPassword: string;
  /** The one public port, as a hosted project's URL: /functions/v1, /storage/v1, /realtime/v1. */
  gatewayPort: number;
  /** The Deno edge runtime's own port, behind the gateway. */
  edgePort: number;
  mailSmtpPort: number;
  mailHttpPort: number;
  jwtSecret: string;
}

export function stackConfig(env: NodeJS.ProcessEnv = process.env): StackConfig {
  return {
    dataDir: path.resolve(ROOT, env.PLINTH_DATA_DIR ?? ".plinth"),
    dbPort: Number(env.PLINTH_DB_PORT ?? 54322),
    dbPassword: env.PLINTH_DB_PASSWORD ?? "postgres",
    gatewayPort: Number(env.PLINTH_PORT ?? env.PLINTH_FUNCTIONS_PORT ?? 54321),
    edgePort: Number(env.PLINTH_EDGE_PORT ?? 54328),
    mailSmtpPort: Number(env.PLINTH_MAIL_SMTP_PORT ?? 54325),
    mailHttpPort: Number(env.PLINTH_MAIL_HTTP_PORT ?? 54324),
    jwtSecret: env.PLINTH_JWT_SECRET ?? LOCAL_JWT_SECRET,
  };
}

export function databaseUrl(cfg: StackConfig, db = "postgres"): string {
  return `postgresql://postgres:${encodeURIComponent(cfg.dbPassword)}@127.0.0.1:${cfg.dbPort}/${db}`;
}
