// The phx_join payload as Realtime reads it: unknown keys ignored, booleans also as "true" /
// "false", and anything invalid falling back to the defaults (the real server logs and goes on).
import { randomUUID } from "node:crypto";

export interface PostgresChangesBinding {
  event?: unknown;
  schema?: unknown;
  table?: unknown;
  filter?: unknown;
  [key: string]: unknown;
}

/** config.broadcast.replay: undefined when absent, "invalid" when present but unusable. */
export type Replay = { since: number; limit: number } | "invalid" | undefined;

export interface JoinConfig {
  ack: boolean;
  self: boolean;
  presenceEnabled: boolean;
  presenceKey: string;
  private: boolean;
  postgresChanges: PostgresChangesBinding[];
  replay: Replay;
  /** access_token, or its legacy alias user_token. */
  accessToken: unknown;
}

const obj = (v: unknown): Record<string, unknown> => (v && typeof v === "object" && !Array.isArray(v) ? (v as Record<string, unknown>) : {});

function bool(v: unknown, fallback: boolean): boolean {
  if (v === true || v === "true") return true;
  if (v === false || v === "false") return false;
  return fallback;
}

/** Realtime replays at most 25 messages, from `since` (unix ms). */
function parseReplay(v: unknown): Replay {
  if (v === undefined || v === null) return undefined;
  const r = obj(v);
  const since = r.since;
  const limit = r.limit ?? 25;
  if (!Number.isInteger(since) || (since as number) < 0) return "invalid";
  if (!Number.isInteger(limit) || (limit as number) < 1 || (limit as number) > 25) return "invalid";
  return { since: since as number, limit: limit as number };
}

export function parseJoin(payload: unknown): JoinConfig {
  const p = obj(payload);
  const config = obj(p.config);
  const broadcast = obj(config.broadcast);
  const presence = obj(config.presence);
  const key = typeof presence.key === "string" ? presence.key : "";
  const changes = Array.isArray(config.postgres_changes) ? config.postgres_changes.filter((b) => b && typeof b === "object") : [];
  return {
    ack: bool(broadcast.ack, false),
    self: bool(broadcast.self, false),
    presenceEnabled: bool(presence.enabled, false),
    presenceKey: key || randomUUID(),
    private: bool(config.private, false),
    postgresChanges: changes as PostgresChangesBinding[],
    replay: parseReplay(broadcast.replay),
    accessToken: p.access_token ?? p.user_token,
  };
}
