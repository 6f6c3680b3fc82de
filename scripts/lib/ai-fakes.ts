// Keyless AI for the local stack: every provider of the default catalog whose key is not in the
// environment is pointed at the local fake (scripts/fakes), which speaks its wire format. Set a
// provider's key (OPENAI_API_KEY, ...) to use the provider itself.
import { startFakeAi } from "../fakes/ai.ts";
import type { FakeServer } from "../fakes/lib/fake-server.ts";

/** Provider id, the env var its key lives in, and the path its API sits under on the fake. */
const PROVIDERS = [
  { id: "openai", key: "OPENAI_API_KEY", prefix: "/openai/v1" },
  { id: "anthropic", key: "ANTHROPIC_API_KEY", prefix: "/anthropic" },
  { id: "stability", key: "STABILITY_API_KEY", prefix: "/stability" },
  { id: "replicate", key: "REPLICATE_API_TOKEN", prefix: "/replicate/v1" },
  { id: "runway", key: "RUNWAY_API_KEY", prefix: "/runway" },
  { id: "did", key: "DID_API_KEY", prefix: "/did" },
] as const;

export async function startAiFakes(env: Record<string, string | undefined>, port?: number): Promise<{ fake?: FakeServer; env: Record<string, string> }> {
  const missing = PROVIDERS.filter((p) => !env[p.key]);
  if (missing.length === 0) return { env: {} };
  const fake = await startFakeAi({ port });
  const out: Record<string, string> = {};
  for (const p of missing) {
    out[p.key] = `fake-${p.id}-key`;
    out[`PLINTH_AI_${p.id.toUpperCase()}_BASE_URL`] = `${fake.url}${p.prefix}`;
  }
  if (missing.some((p) => p.id === "replicate") && !env.REPLICATE_WEBHOOK_SECRET) {
    // The fake signs its callbacks with an account secret, read the way a deploy reads Replicate's.
    const res = await fetch(`${fake.url}/replicate/v1/webhooks/default/secret`, { headers: { authorization: `Bearer ${out.REPLICATE_API_TOKEN}` } });
    out.REPLICATE_WEBHOOK_SECRET = ((await res.json()) as { key: string }).key;
  }
  return { fake, env: out };
}
