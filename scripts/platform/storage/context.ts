// What every Storage route handler gets: the request, its route parameters, and the
// stand-in's shared parts (database, byte store, URL signer, settings).
import type http from "node:http";
import type pg from "pg";
import type { TokenVerifier } from "../auth.ts";
import type { ByteStore } from "./bytes.ts";
import { type Caller, type RequestScope, resolveCaller } from "./caller.ts";
import type { StorageConfig } from "./config.ts";
import type { UrlSigner } from "./signing.ts";

export interface StorageDeps {
  pool: pg.Pool;
  store: ByteStore;
  config: StorageConfig;
  signer: UrlSigner;
  verifier: TokenVerifier;
  log: (line: string) => void;
}

export interface RouteContext {
  req: http.IncomingMessage;
  res: http.ServerResponse;
  /** Decoded route parameters: `bucket`, `key` (the wildcard), `id`. */
  params: Record<string, string>;
  query: URLSearchParams;
  deps: StorageDeps;
  /** The path after /storage/v1, as the real server sees it. */
  path: string;
}

export type Handler = (ctx: RouteContext) => Promise<void>;

export function scopeOf(ctx: RouteContext, operation: string): RequestScope {
  return { operation, method: ctx.req.method ?? "GET", path: ctx.path, headers: ctx.req.headers };
}

export function callerOf(ctx: RouteContext): Promise<Caller> {
  return resolveCaller(ctx.deps.verifier, ctx.req);
}
