// The Storage stand-in's settings, named after the real server's env variables. Defaults are
// the real server's, except where a hosted project differs (noted).
import path from "node:path";
import { z } from "zod";

const Env = z.object({
  /** UPLOAD_FILE_SIZE_LIMIT: the project-wide cap on one object, in bytes (hosted default 50 GB). */
  PLINTH_STORAGE_FILE_SIZE_LIMIT: z.coerce.number().int().positive().default(50 * 1000 ** 3),
  /** UPLOAD_SIGNED_URL_EXPIRATION_TIME, seconds (server default 60; hosted projects use 2 hours). */
  PLINTH_STORAGE_SIGNED_UPLOAD_URL_EXPIRY: z.coerce.number().int().positive().default(7200),
  /** TUS_URL_EXPIRY_MS: how long an unfinished resumable upload can be resumed. */
  PLINTH_STORAGE_TUS_URL_EXPIRY_MS: z.coerce.number().int().positive().default(60 * 60 * 1000),
});

export interface StorageConfig {
  fileSizeLimit: number;
  signedUploadUrlExpiry: number;
  tusUrlExpiryMs: number;
  /** Object bytes: `<root>/objects`, uploads in progress: `<root>/tmp` and `<root>/tus`. */
  root: string;
}

export function storageConfig(dataDir: string, env: NodeJS.ProcessEnv = process.env): StorageConfig {
  const parsed = Env.parse(env);
  return {
    fileSizeLimit: parsed.PLINTH_STORAGE_FILE_SIZE_LIMIT,
    signedUploadUrlExpiry: parsed.PLINTH_STORAGE_SIGNED_UPLOAD_URL_EXPIRY,
    tusUrlExpiryMs: parsed.PLINTH_STORAGE_TUS_URL_EXPIRY_MS,
    root: path.join(dataDir, "storage"),
  };
}
