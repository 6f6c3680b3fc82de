// Storage with the service key, for the routes that sign URLs of objects the caller was shown
// through RLS (downloads, exports, uploads to reserved paths).
import type { StorageAccess } from "../_shared/content/storage.ts";
import { ApiError } from "../_shared/http/errors.ts";
import type { ApiEnv } from "./context.ts";

export function storageOf(c: { get: (k: "deps") => ApiEnv["Variables"]["deps"] }): StorageAccess {
  const { cfg } = c.get("deps");
  if (!cfg.SUPABASE_SERVICE_ROLE_KEY) throw new ApiError(503, "storage_not_configured", "Storage signing needs SUPABASE_SERVICE_ROLE_KEY");
  return { url: cfg.SUPABASE_URL, serviceRoleKey: cfg.SUPABASE_SERVICE_ROLE_KEY };
}
