// Adapters for the deployments a job routes to, built from ai.providers and the secrets the
// rows name. A key is read from the env (edge function secrets), else from Supabase Vault; it
// never sits in a row a client can read, nor in a log line. Rows are re-read every 30 s so
// that an admin's change in Studio takes effect without a deploy.
import { sql } from "kysely";
import { asService, type Db } from "../db/client.ts";
import { createAdapter } from "./providers/index.ts";
import { type ProviderAdapter, type ProviderConnection, ProviderError, type ProviderKind } from "./types.ts";

interface ProviderRow {
  id: string;
  kind: ProviderKind;
  base_url: string | null;
  api_key_secret: string | null;
  webhook_secret: string | null;
  timeout_ms: number;
}

export interface AdapterRegistry {
  /** The adapter for a provider; throws ProviderError("auth") when its key is missing. */
  get(providerId: string): Promise<ProviderAdapter>;
  /** A provider's kind and webhook signing secret (Replicate); undefined when there is no such provider. */
  provider(providerId: string): Promise<{ kind: ProviderKind; secret?: string } | undefined>;
}

const REFRESH_MS = 30_000;

export function createAdapterRegistry(
  db: Db,
  env: Record<string, string | undefined>,
  opts: { fetch?: typeof fetch; build?: (conn: ProviderConnection) => ProviderAdapter } = {},
): AdapterRegistry {
  let loadedAt = 0;
  let rows = new Map<string, ProviderRow>();
  const adapters = new Map<string, { key: string; adapter: ProviderAdapter }>();
  const vault = new Map<string, string | undefined>();

  async function provider(id: string): Promise<ProviderRow> {
    if (Date.now() - loadedAt > REFRESH_MS || !rows.has(id)) {
      const list = await asService(db, async (tx) =>
        (await sql<ProviderRow>`select id, kind, base_url, api_key_secret, webhook_secret, timeout_ms from ai.providers`.execute(tx)).rows);
      rows = new Map(list.map((r) => [r.id, r]));
      loadedAt = Date.now();
    }
    const row = rows.get(id);
    if (!row) throw new Error(`unknown AI provider ${id}`);
    return row;
  }

  async function secret(name: string | null): Promise<string | undefined> {
    if (!name) return undefined;
    if (env[name]) return env[name];
    if (!vault.has(name)) {
      // Supabase Vault, where a hosted project keeps secrets it does not put in the function env.
      const value = await asService(db, async (tx) => {
        try {
          const { rows } = await sql<{ s: string }>`select decrypted_secret as s from vault.decrypted_secrets where name = ${name}`.execute(tx);
          return rows[0]?.s;
        } catch {
          return undefined; // no Vault here (plain Postgres)
        }
      });
      vault.set(name, value);
    }
    return vault.get(name);
  }

  return {
    async get(providerId) {
      const row = await provider(providerId);
      const apiKey = row.kind === "local" ? "local" : await secret(row.api_key_secret);
      if (!apiKey) {
        throw new ProviderError("auth", `no API key for provider ${providerId}: set ${row.api_key_secret}`);
      }
      const baseUrl = env[`PLINTH_AI_${providerId.toUpperCase().replace(/-/g, "_")}_BASE_URL`] ?? row.base_url;
      const cacheKey = `${row.kind}|${baseUrl}|${apiKey}|${row.timeout_ms}`;
      const cached = adapters.get(providerId);
      if (cached?.key === cacheKey) return cached.adapter;
      const conn: ProviderConnection = { id: row.id, kind: row.kind, baseUrl, apiKey, timeoutMs: row.timeout_ms, fetch: opts.fetch };
      const adapter = (opts.build ?? createAdapter)(conn);
      adapters.set(providerId, { key: cacheKey, adapter });
      return adapter;
    },
    async provider(providerId) {
      const row = await provider(providerId).catch(() => undefined);
      return row && { kind: row.kind, secret: await secret(row.webhook_secret) };
    },
  };
}
