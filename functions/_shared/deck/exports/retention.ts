// deck.exports_retention's work (filled in next).
import type { ExportJobDeps } from "./job.ts";

export async function purgeExpiredExports(_deps: ExportJobDeps): Promise<Record<string, unknown>> {
  return { removed: 0 };
}
