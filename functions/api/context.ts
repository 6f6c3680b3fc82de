// What every api handler can reach: the per-isolate dependencies and the caller.
import type { AdapterRegistry } from "../_shared/ai/adapters.ts";
import type { JwtVerifier } from "../_shared/auth/jwt.ts";
import type { Principal } from "../_shared/auth/principal.ts";
import type { Config } from "../_shared/config.ts";
import type { Db } from "../_shared/db/client.ts";
import type { Producer } from "../_shared/jobs/queue.ts";

export interface ApiDeps {
  cfg: Config;
  db: Db;
  verifyJwt: JwtVerifier;
  jobs: Producer;
  /** AI provider adapters, for the OpenAI-compatible endpoint (which answers in the request). */
  ai: AdapterRegistry;
}

export type ApiEnv = {
  Variables: {
    deps: ApiDeps;
    principal: Principal;
    requestId: string;
  };
};
