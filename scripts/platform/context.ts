// What every platform stand-in (Storage, Realtime) shares: the database, the project's JWT
// settings, where bytes live, and the public URL clients use. Local only, never deployed.
import type pg from "pg";
import type { TokenVerifier } from "./auth.ts";

export interface PlatformContext {
  /** Connects as the database owner (a superuser, as the real servers' own roles are). */
  pool: pg.Pool;
  dbUrl: string;
  /** The project JWT secret: verifies HS256 tokens and signs Storage's signed URLs. */
  jwtSecret: string;
  verifier: TokenVerifier;
  /** Folder for the stand-ins' files (Storage keeps object bytes under `<dataDir>/storage`). */
  dataDir: string;
  /** What clients call, e.g. http://127.0.0.1:54321 (no trailing slash). */
  publicUrl: string;
  log: (source: string, line: string) => void;
}
